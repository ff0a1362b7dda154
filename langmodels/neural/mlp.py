"""The neural probabilistic language model of Bengio, Ducharme, Vincent & Jauvin (2003).

Each next token is predicted from the embeddings of the order-1 tokens before it, concatenated,
through one tanh hidden layer (and optionally a direct linear path) to a softmax:

    x = [C(w_{t-n+1}); ...; C(w_{t-1})]           the window of order-1 embeddings
    y = b + W x + U tanh(d + H x)                 Bengio et al. 2003, eq. 1 (W = 0 without `direct`)
    P(w_t | window) = softmax(y)                  or an adaptive softmax of tanh(d + H x) (output.py)

The forward pass gives the logits of every position of (B, T) ids at once, the windows cut
with one `unfold`. Positions before the first input are <pad>: a line starts with <s>, so the
first window of a line is (<pad>, ..., <pad>, <s>) and the model knows it is at the start.

Since a prediction needs only its window, training and scoring never pay for padding: the loss
runs the hidden and output layers on the real targets of a batch only, and scoring cuts one
window per target straight from the lines or the stream (numpy's sliding_window_view), so a
line or stream of any length is scored exactly, in batches of windows, with no overlap. The
`context` setting is only the length of the training windows cut from a stream; their first
order-2 positions see <pad> where the stream had tokens (lines are trained whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from ..base import scoring_bar
from ..errors import ConfigError
from ..tokenizers import Vocabulary
from .core import SCORE_LOGITS, NeuralConfig, NeuralLM
from .data import IGNORE, Batch
from .output import OutputLayer


@dataclass
class MLPConfig(NeuralConfig):
    order: int = 5  # n of the n-gram: each prediction reads the order-1 previous tokens
    n_embd: int = 64  # embedding width per token (m in the paper)
    hidden: int = 256  # tanh hidden units (h in the paper); the hidden x V output layer is most of the cost
    direct: bool = False  # the paper's direct connections from the embeddings to the output (W)
    dropout: float = 0.1  # on the concatenated embeddings and the hidden layer, in training only

    def check(self, *, machine: bool = False) -> None:
        super().check(machine=machine)
        if self.direct and self.softmax != "full":
            raise ConfigError("direct connections add to the logits of a full softmax: use softmax='full' with direct")


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ..., n-1 for each length n, concatenated."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


class MLPModule(nn.Module):
    """ids (B, T) -> next-token logits (B, T, V), each position from its order-1 previous tokens."""

    def __init__(self, vocab_size: int, config: MLPConfig):
        super().__init__()
        self.window = config.order - 1
        self.pad_id = Vocabulary.pad_id
        width = self.window * config.n_embd
        self.token_embedding = nn.Embedding(vocab_size, config.n_embd)  # C
        self.hidden = nn.Linear(width, config.hidden)  # H and d
        self.output = OutputLayer(vocab_size, config.hidden, softmax=config.softmax)  # U and b
        self.direct = nn.Linear(width, vocab_size, bias=False) if config.direct else None  # W
        self.drop = nn.Dropout(config.dropout)

    def windows(self, idx: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, window): position t holds idx[t-window+1 .. t], <pad> before 0."""
        padded = F.pad(idx, (self.window - 1, 0), value=self.pad_id)  # (B, T + window - 1)
        return padded.unfold(1, self.window, 1)  # (B, T, window)

    def window_features(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """windows (..., window) -> the hidden layer (..., hidden) and the embeddings x it read."""
        x = self.drop(self.token_embedding(windows).flatten(-2))  # (..., window * n_embd)
        return self.drop(torch.tanh(self.hidden(x))), x  # (..., hidden)

    def predict(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (..., window) -> next-token scores (..., V)."""
        h, x = self.window_features(windows)
        scores = self.output(h)  # (..., V)
        return scores if self.direct is None else scores + self.direct(x)

    def window_loss(self, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of targets (N,) after windows (N, window)."""
        if self.direct is not None:  # (full softmax only) the direct path adds to the logits
            return F.cross_entropy(self.predict(windows), targets)
        return self.output.loss(self.window_features(windows)[0], targets)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        return self.window_features(self.windows(idx))[0]  # (B, T, hidden)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.predict(self.windows(idx))  # (B, T, V)


class MLPLM(NeuralLM):
    """Bengio et al. 2003: a fixed window of embeddings, a tanh hidden layer, a softmax."""

    Config = MLPConfig

    @property
    def name(self) -> str:
        return f"MLP {self.config.order}-gram"

    def build_module(self, vocab_size: int) -> MLPModule:
        self.config.check()
        return MLPModule(vocab_size, self.config)

    def line_pieces(self) -> None:
        """Lines are trained whole, as they are scored: a line cut into pieces would show each later
        piece's first order-2 positions <pad> where scoring shows them the real tokens."""
        return

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over the real targets only: padded positions never reach the
        hidden and output layers (most of a batch of lines of mixed lengths is padding)."""
        module = self._fitted_module()
        device = self.device
        targets = batch.targets.to(device)  # (B, T)
        real = targets != IGNORE
        windows = module.windows(batch.inputs.to(device))[real]  # (N, window)
        return module.window_loss(windows, targets[real])

    # ---- scoring: one window per target, no padding, any length exact ----------------------------

    @torch.no_grad()
    def window_logprobs(self, windows: np.ndarray, targets: np.ndarray, progress: bool | None = False) -> np.ndarray:
        """log P(targets[i] | windows[i]) for windows (N, order-1) and targets (N,), float64."""
        module = self._fitted_module()
        module.eval()
        device = self.device
        rows = max(1, SCORE_LOGITS // len(self.tokenizer.vocab))  # bounds the (rows, V) logits
        out = np.empty(len(targets))
        for begin in scoring_bar(range(0, len(targets), rows), name=self.name, progress=progress, unit="batch"):
            end = begin + rows
            chunk = torch.tensor(windows[begin:end], device=device)  # (rows, window)
            picked = torch.from_numpy(targets[begin:end]).to(device)  # (rows,)
            if module.direct is None:
                out[begin:end] = self.output_logprobs(module.window_features(chunk)[0], picked)
            else:  # the direct path adds to the logits: the whole distribution is needed
                logprobs = self.log_softmax(module.predict(chunk))  # (rows, V)
                out[begin:end] = logprobs.gather(-1, picked[:, None])[:, 0].double().cpu().numpy()
        return out

    def line_windows(self, flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window and target of every prediction of many lines: per line, <s> then each token
        is an input (its window ends there), and the targets are the tokens then </s>."""
        vocab = self._check_fitted().vocab
        w = self.config.order - 1
        flat, lengths = np.asarray(flat, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        sizes = lengths + w  # per line: w-1 <pad>, <s>, its tokens
        starts = np.cumsum(sizes) - sizes
        sequence = np.full(int(sizes.sum()), vocab.pad_id, dtype=np.int64)
        sequence[starts + w - 1] = vocab.bos_id
        sequence[np.repeat(starts + w, lengths) + _offsets(lengths)] = flat
        n_targets = lengths + 1
        ends = np.repeat(starts + w - 1, n_targets) + _offsets(n_targets)  # each window's last input
        windows = sliding_window_view(sequence, w)[ends - w + 1]  # (N, w)
        return windows, np.insert(flat, np.cumsum(lengths), vocab.eos_id)

    def score_lines(self, flat, lengths, *, progress: bool | None = None) -> np.ndarray:
        windows, targets = self.line_windows(flat, lengths)
        return self.window_logprobs(windows, targets, progress)

    def score_ids(self, batch) -> list[np.ndarray]:
        lines = [np.asarray(ids, dtype=np.int64) for ids in batch]
        lengths = np.array([len(ids) for ids in lines], dtype=np.int64)
        if not len(lines):
            return []
        scores = self.score_lines(np.concatenate(lines), lengths, progress=False)
        return np.split(scores, np.cumsum(lengths + 1)[:-1])

    def score_stream(self, ids) -> np.ndarray:
        vocab = self._check_fitted().vocab
        w = self.config.order - 1
        ids = np.asarray(ids, dtype=np.int64)
        sequence = np.concatenate([np.full(w - 1, vocab.pad_id), [vocab.bos_id], ids]).astype(np.int64)
        windows = sliding_window_view(sequence, w)[: len(ids)]  # window i ends at input i (<s> first)
        return self.window_logprobs(windows, ids)

    @torch.no_grad()
    def next_logprobs(self, context_ids) -> np.ndarray:
        """One window: only the last order-1 tokens of start + context matter, so any context
        length is exact and costs the same (no truncation note)."""
        vocab = self._check_fitted().vocab
        sequence = [vocab.bos_id, *[int(i) for i in context_ids]][-(self.config.order - 1) :]
        module = self._fitted_module()
        module.eval()
        logits = module(torch.tensor([sequence], device=self.device))[0, -1].float()  # (V,)
        return self.log_softmax(logits).double().cpu().numpy()
