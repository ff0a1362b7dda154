"""Batches for training and scoring neural models, in both evaluation modes of DESIGN.md 3.

Training batches are drawn deterministically from (seed, step), so a resumed run sees exactly
the batches an uninterrupted one would have. Shapes: inputs and targets are (B, T) int64;
targets hold IGNORE where nothing is to be predicted (padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IGNORE = -100  # torch.nn.functional.cross_entropy's default ignore_index


@dataclass
class Batch:
    inputs: torch.Tensor  # (B, T) token ids, padded with <pad>
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE where padded
    continues: bool = False  # True: each row continues the previous batch's row (stateful BPTT)

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for one training step: the same (seed, step) always draws the same batch."""
    return np.random.default_rng([seed, step])


def pad_rows(rows: list[np.ndarray], fill: int) -> np.ndarray:
    width = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class LineBatches:
    """Independent lines: input <s> w1 .. wk, target w1 .. wk </s>, padded and masked.

    Lines longer than max_len tokens are cut into pieces of max_len; each piece after the first
    starts from the last token of the previous piece instead of <s>. max_len None keeps every
    line whole (memory: batch size x longest line x V logits).
    """

    def __init__(self, flat: np.ndarray, lengths: np.ndarray, *, bos: int, eos: int, pad: int,
                 max_len: int | None):
        self.pad = pad
        self.inputs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        for line in np.split(np.asarray(flat, dtype=np.int64), np.cumsum(lengths)[:-1]):
            full = np.concatenate([[bos], line, [eos]])
            piece = max_len or len(full)
            for start in range(0, len(full) - 1, piece):
                window = full[start : start + piece + 1]
                self.inputs.append(window[:-1])
                self.targets.append(window[1:])
        self.n_tokens = int(sum(len(t) for t in self.targets))
        self.by_length = np.argsort([len(t) for t in self.targets], kind="stable")  # pieces, shortest first

    def __len__(self) -> int:
        return len(self.inputs)

    def make(self, rows) -> Batch:
        inputs = pad_rows([self.inputs[i] for i in rows], self.pad)
        targets = pad_rows([self.targets[i] for i in rows], IGNORE)
        return Batch(torch.from_numpy(inputs), torch.from_numpy(targets))

    def sample(self, batch_size: int, seed: int, step: int) -> Batch:
        """Pieces of about one length (bucketing, as translation systems batch sentences): a run of
        batch_size neighbours in length order from a random start, so padding stays near zero
        where random lines would pad every row to the longest (over half of a Brown batch)."""
        size = min(batch_size, len(self))
        start = int(step_rng(seed, step).integers(0, len(self) - size + 1))
        return self.make(self.by_length[start : start + size])

    def in_order(self, batch_size: int):
        """Every piece once, in order (a deterministic evaluation pass)."""
        for start in range(0, len(self), batch_size):
            yield self.make(range(start, min(start + batch_size, len(self))))


class StreamBatches:
    """One continuous sequence <s> x1 x2 ... : windows of `block` inputs and their next tokens.

    sample(): random windows (nanoGPT's get_batch). bptt(): the stream cut into `batch_size`
    parallel columns read consecutively, so a recurrent model can carry its state across
    batches (truncated backpropagation through time; Zaremba et al. 2014's batching).
    """

    def __init__(self, ids: np.ndarray, *, bos: int, block: int):
        self.data = np.concatenate([[bos], np.asarray(ids, dtype=np.int64)])
        self.block = block
        self.n_tokens = len(self.data) - 1

    def sample(self, batch_size: int, seed: int, step: int) -> Batch:
        starts = step_rng(seed, step).integers(0, max(self.n_tokens - self.block, 0) + 1, size=batch_size)
        index = starts[:, None] + np.arange(self.block + 1)[None, :]
        index = np.minimum(index, len(self.data) - 1)
        windows = torch.from_numpy(self.data[index])
        return Batch(windows[:, :-1], windows[:, 1:])

    def bptt(self, batch_size: int, step: int) -> Batch:
        column = self.n_tokens // batch_size
        if column < 1:
            raise ValueError("stream shorter than one batch")
        columns = self.data[: batch_size * column + 1]
        chunks = max((column - 1) // self.block, 1)
        chunk = step % chunks
        start = chunk * self.block
        index = np.arange(batch_size)[:, None] * column + start + np.arange(self.block + 1)[None, :]
        windows = torch.from_numpy(columns[np.minimum(index, len(columns) - 1)])
        return Batch(windows[:, :-1], windows[:, 1:], continues=chunk > 0)
