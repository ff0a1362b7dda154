"""The neural probabilistic language model of Bengio, Ducharme, Vincent & Jauvin (2003).

Each next token is predicted from the embeddings of the order-1 tokens before it, concatenated,
through one tanh hidden layer (and optionally a direct linear path) to a softmax:

    x = [C(w_{t-n+1}); ...; C(w_{t-1})]           the window of order-1 embeddings
    y = b + W x + U tanh(d + H x)                 Bengio et al. 2003, eq. 1 (W = 0 without `direct`)
    P(w_t | window) = softmax(y)

The forward pass gives the logits of every position at once: the windows are cut from the
(B, T) ids with one `unfold`, so scoring and training see the same vectorised computation.
Positions before the first input are <pad>: a line starts with <s>, so the first window of a
line is (<pad>, ..., <pad>, <s>) and the model knows it is at the start. A window cut out of
the middle of a stream also begins with <pad> positions in training; in scoring, the core's
half-overlapping windows keep only positions with a full window of real tokens (hence the check
context >= 2 * (order - 1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..tokenizers import Vocabulary
from .core import NeuralConfig, NeuralLM
from .data import LineBatches


@dataclass
class MLPConfig(NeuralConfig):
    order: int = 5  # n of the n-gram: each prediction reads the order-1 previous tokens
    n_embd: int = 64  # embedding width per token (m in the paper)
    hidden: int = 512  # tanh hidden units (h in the paper)
    direct: bool = False  # the paper's direct connections from the embeddings to the output (W)
    dropout: float = 0.1  # on the concatenated embeddings and the hidden layer, in training only

    def check(self) -> None:
        super().check()
        if self.order < 2:
            raise ConfigError(f"order must be >= 2 (an order-1 model has no context to embed), got {self.order!r}")
        for name in ("n_embd", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.context < 2 * (self.order - 1):
            raise ConfigError(
                f"context must be >= 2 * (order - 1) = {2 * (self.order - 1)} so windowed scoring keeps "
                f"every token's full window, got {self.context!r}"
            )


def whole_lines(tokenizer, lines) -> LineBatches:
    """Every line one training row, however long (memory: batch_size x longest line x V logits)."""
    flat, lengths = tokenizer.encode_lines(list(lines))
    vocab = tokenizer.vocab
    longest = int(lengths.max()) + 1 if len(lengths) else 1  # <s> + the line's tokens as inputs
    return LineBatches(flat, lengths, bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id, max_len=longest)


class MLPModule(nn.Module):
    """ids (B, T) -> next-token logits (B, T, V), each position from its order-1 previous tokens."""

    def __init__(self, vocab_size: int, config: MLPConfig):
        super().__init__()
        self.window = config.order - 1
        self.pad_id = Vocabulary.pad_id
        width = self.window * config.n_embd
        self.token_embedding = nn.Embedding(vocab_size, config.n_embd)  # C
        self.hidden = nn.Linear(width, config.hidden)  # H and d
        self.output = nn.Linear(config.hidden, vocab_size)  # U and b
        self.direct = nn.Linear(width, vocab_size, bias=False) if config.direct else None  # W
        self.drop = nn.Dropout(config.dropout)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        padded = F.pad(idx, (self.window - 1, 0), value=self.pad_id)  # (B, T + window - 1)
        windows = padded.unfold(1, self.window, 1)  # (B, T, window): position t sees idx[t-window+1 .. t]
        x = self.token_embedding(windows).reshape(B, T, -1)  # (B, T, window * n_embd)
        x = self.drop(x)
        h = self.drop(torch.tanh(self.hidden(x)))  # (B, T, hidden)
        logits = self.output(h)  # (B, T, V)
        if self.direct is not None:
            logits = logits + self.direct(x)
        return logits


class MLPLM(NeuralLM):
    """Bengio et al. 2003: a fixed window of embeddings, a tanh hidden layer, a softmax."""

    Config = MLPConfig

    @property
    def name(self) -> str:
        return f"MLP {self.config.order}-gram"

    def build_module(self, vocab_size: int) -> MLPModule:
        self.config.check()
        return MLPModule(vocab_size, self.config)

    def training_data(self, lines, mode: str):
        """Streams as the core cuts them; lines whole: a line cut into pieces would show each later
        piece's first order-2 positions <pad> where scoring shows them the real tokens."""
        if mode == "stream":
            return super().training_data(lines, mode)
        return whole_lines(self.tokenizer, lines)

    @torch.no_grad()
    def next_logprobs(self, context_ids) -> np.ndarray:
        """One window: only the last order-1 tokens of start + context matter, so any context
        length is exact and costs the same (no truncation note)."""
        vocab = self._check_fitted().vocab
        sequence = [vocab.bos_id, *[int(i) for i in context_ids]][-(self.config.order - 1) :]
        module = self._fitted_module()
        module.eval()
        logits = module(torch.tensor([sequence], device=self.device))[0, -1].float()  # (V,)
        return torch.log_softmax(logits, dim=-1).double().cpu().numpy()
