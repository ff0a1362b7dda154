"""The output layer every causal family shares: hidden vectors -> a distribution over the vocabulary.

    full:      logits = h W^T + b        W (V, width): the input embedding (tied; Press & Wolf 2017)
                                         or a matrix of its own
    adaptive:  Grave et al. 2017's adaptive softmax (torch.nn.AdaptiveLogSoftmaxWithLoss)
    auto:      adaptive for a vocabulary of AUTO_ADAPTIVE_VOCAB tokens or more (words), else full

The adaptive softmax puts the `cutoffs[0]` most frequent tokens and one entry per tail cluster in a
head softmax; a rarer token's probability is its cluster's head probability times its probability
inside the cluster, whose softmax reads a narrower projection of h (width / 4, then / 16, ...).
Training runs the head on every position and a tail only on the positions whose target lies in
it, so the cost per token falls from width x V to about width x cutoffs[0] plus the small tails.
It needs ids sorted by frequency, which the tokenizers' vocabularies are (specials first).

forward() gives scores whose log_softmax is log P in both modes (logits, or log-probabilities
already normalised), so scoring code treats them alike; loss() is the training cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SOFTMAXES = ("auto", "full", "adaptive")  # auto: one of the other two, by vocabulary size
AUTO_ADAPTIVE_VOCAB = 8192  # softmax="auto" is adaptive from this vocabulary size (word vocabularies), else full
HEAD_SIZE = 2000  # most tokens in the adaptive head; each tail cluster is 4x larger than the one before
DIV_VALUE = 4  # each tail cluster's projection is this much narrower than the previous one


def resolve_softmax(softmax: str, vocab_size: int) -> str:
    """'full' or 'adaptive': softmax="auto" is the adaptive one for a vocabulary of AUTO_ADAPTIVE_VOCAB
    tokens or more, where the full one's width x V products are most of a step (Brown's 14k words:
    about three quarters of a 2x256 LSTM's), and the full one for characters and subword pieces."""
    if softmax == "auto":
        return "adaptive" if vocab_size >= AUTO_ADAPTIVE_VOCAB else "full"
    return softmax


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """Cluster boundaries head, 4 head, 16 head, ... below the vocabulary size, the head holding
    HEAD_SIZE tokens or a quarter of a smaller vocabulary (Brown's 14k: 2000 and 8000)."""
    head = max(min(HEAD_SIZE, vocab_size // 4), 1)
    cutoffs = []
    while head < vocab_size - 1:
        cutoffs.append(head)
        head *= 4
    return cutoffs


class OutputLayer(nn.Module):
    """(..., width) hidden vectors -> (..., V) scores, and the cross-entropy of targets under them.

    tied: an nn.Embedding (V, width) whose matrix is also the output matrix (full softmax only; it
    stays registered in its own module, so the weights are stored once).
    """

    def __init__(self, vocab_size: int, width: int, *, softmax: str = "full", tied: nn.Embedding | None = None,
                 bias: bool = True):
        super().__init__()
        # Tail i reads a projection width // 4^(i+1) wide: no more tails than leave it >= 1.
        tails = 0
        while width // DIV_VALUE ** (tails + 1) >= 1:
            tails += 1
        adaptive = resolve_softmax(softmax, vocab_size) == "adaptive"
        self.cutoffs = adaptive_cutoffs(vocab_size)[:tails] if adaptive else []
        self._tied = (tied,) if tied is not None and not self.cutoffs else ()  # a tuple: not a submodule
        self.linear = None
        self.adaptive = None
        self.bias = None
        if self.cutoffs:
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                width, vocab_size, self.cutoffs, div_value=DIV_VALUE, head_bias=bias
            )
        elif self._tied:
            self.bias = nn.Parameter(torch.zeros(vocab_size)) if bias else None
        else:
            self.linear = nn.Linear(width, vocab_size, bias=bias)

    @property
    def is_adaptive(self) -> bool:
        return self.adaptive is not None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., width) -> (..., V): logits (full) or log-probabilities (adaptive)."""
        if self.adaptive is not None:
            flat = self.adaptive.log_prob(h.reshape(-1, h.size(-1)))  # (N, V), every cluster
            return flat.reshape(*h.shape[:-1], -1)
        if self._tied:
            return F.linear(h, self._tied[0].weight, self.bias)
        return self.linear(h)

    @torch.no_grad()
    def start_at_unigram(self, log_frequencies: torch.Tensor) -> None:
        """Set the bias to the training tokens' log frequencies (V,), so that the untrained layer
        is the unigram model and the first steps learn context rather than frequencies ("init
        well": Karpathy 2019, A Recipe for Training Neural Networks). A layer without a bias is
        left as it is; the adaptive head gets its tokens' and each tail cluster's log mass."""
        if self.adaptive is not None:
            head = self.adaptive.head.bias
            if head is not None:
                bounds = self.adaptive.cutoffs  # [cutoffs..., V]
                head[: bounds[0]] = log_frequencies[: bounds[0]]
                for cluster in range(len(bounds) - 1):
                    mass = log_frequencies[bounds[cluster] : bounds[cluster + 1]]
                    head[bounds[0] + cluster] = torch.logsumexp(mass, 0)
            return
        bias = self.bias if self._tied else self.linear.bias
        if bias is not None:
            bias.copy_(log_frequencies)

    def target_logprobs(self, h: torch.Tensor, targets: torch.Tensor, excluded: list[int]) -> torch.Tensor:
        """log P(targets) (N,) float32 given h (N, width), with the `excluded` ids (tokens that are
        never next) given probability 0 and the rest renormalised:

            log P'(t) = log P(t) - log(1 - sum_{e in excluded} P(e))

        The adaptive softmax runs its head once and each tail only on the rows whose target lies
        in it, as in training, instead of computing all V probabilities of every row:

            log P(t) = log head(t)                                   t in the head
            log P(t) = log head(cluster i) + log tail_i(t)           t in cluster i
        """
        if self.adaptive is None or max(excluded, default=0) >= self.cutoffs[0]:
            scores = self(h).float()  # (N, V)
            scores[:, excluded] = -torch.inf
            return torch.log_softmax(scores, dim=-1).gather(-1, targets[:, None])[:, 0]
        head = torch.log_softmax(self.adaptive.head(h).float(), dim=-1)  # (N, cutoffs[0] + clusters)
        bounds = self.adaptive.cutoffs  # [cutoffs..., V]
        picked = head.gather(-1, targets.clamp(max=bounds[0] - 1)[:, None])[:, 0]  # right for head targets
        for cluster, tail in enumerate(self.adaptive.tail):
            rows = ((targets >= bounds[cluster]) & (targets < bounds[cluster + 1])).nonzero()[:, 0]
            if len(rows):
                inside = torch.log_softmax(tail(h[rows]).float(), dim=-1)  # (rows, cluster size)
                picked[rows] = head[rows, bounds[0] + cluster] + inside.gather(
                    -1, (targets[rows] - bounds[cluster])[:, None])[:, 0]
        excluded_mass = torch.logsumexp(head[:, excluded], dim=-1).exp()  # excluded ids are all head ids
        return picked - torch.log1p(-excluded_mass.clamp(max=1 - 1e-7))

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats) of targets (N,) given h (N, width)."""
        if self.adaptive is not None:
            return self.adaptive(h, targets).loss  # each tail run on its own targets only
        return F.cross_entropy(self(h), targets)
