"""Batches for training and scoring neural models, in both evaluation modes of docs/design.md 3.

Training batches are drawn deterministically from (seed, step), so a resumed run sees exactly
the batches an uninterrupted one would have. On several processes (docs/design.md 10) each step
draws one global batch of world x batch_size rows from (seed, step), and rank r reads only its
r-th share of the rows from the (memory-mapped) ids: N processes of batch_size B see together
exactly the batch one process of batch_size N x B sees. Shapes: inputs and targets are (B, T) int64;
targets hold IGNORE where nothing is to be predicted (padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LangmodelsError
from .devices import to_device

IGNORE = -100  # torch.nn.functional.cross_entropy's default ignore_index


@dataclass
class Batch:
    inputs: torch.Tensor  # (B, T) token ids, padded with <pad>
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE where padded
    continues: bool = False  # True: each row continues the previous batch's row (stateful BPTT)

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())

    def to(self, device: torch.device) -> Batch:
        """The batch on `device` (through pinned memory to a GPU: devices.to_device)."""
        return Batch(to_device(self.inputs, device), to_device(self.targets, device), self.continues)


class Shards:
    """The share of each step's global batch this process reads: rank `rank` of `world` (a mixin)."""

    rank, world = 0, 1

    def shard(self, rank: int, world: int) -> None:
        """Read rank `rank`'s share of every global batch of `world` shares from now on."""
        self.rank, self.world = rank, world

    def share(self, rows: np.ndarray) -> np.ndarray:
        """This rank's part of a global batch's rows (contiguous, the first ranks one longer when
        the rows do not divide evenly)."""
        return np.array_split(rows, self.world)[self.rank] if self.world > 1 else rows


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for one training step: the same (seed, step) always draws the same batch."""
    return np.random.default_rng([seed, step])


def pad_rows(rows: list[np.ndarray], fill: int) -> np.ndarray:
    width = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class LineBatches(Shards):
    """Independent lines: input <s> w1 .. wk, target w1 .. wk </s>, padded and masked.

    Lines longer than max_len tokens are cut into pieces of max_len; each piece after the first
    starts from the last token of the previous piece instead of <s>. max_len None keeps every
    line whole (memory: batch size x longest line x V logits).

    Held as arrays, not one array per line: ``sequence`` is every line as <s> w1 .. wk </s>, one
    after another, and piece p's inputs are ``sequence[starts[p] : starts[p] + sizes[p]]``, its
    targets the same positions shifted by one (a line's ids may be a memory-mapped TokenIds).
    """

    def __init__(self, flat: np.ndarray, lengths: np.ndarray, *, bos: int, eos: int, pad: int,
                 max_len: int | None):
        self.pad = pad
        lengths = np.asarray(lengths, dtype=np.int64)
        n_lines = len(lengths)
        line_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) + 2 * np.arange(n_lines)  # each <s>
        ends = line_starts + lengths + 1  # each </s>
        flat = np.asarray(flat)
        # The ids' own width (a cached TokenIds' uint16 or uint32), widened when batches are made.
        dtype = flat.dtype if flat.dtype in (np.uint16, np.uint32) and max(bos, eos) < 1 << 16 else np.int64
        sequence = np.empty(int(lengths.sum()) + 2 * n_lines, dtype=dtype)
        words = np.ones(len(sequence), dtype=bool)
        words[line_starts] = words[ends] = False
        sequence[words] = flat
        sequence[line_starts], sequence[ends] = bos, eos
        self.sequence = sequence
        # A line of k tokens has k + 1 targets, cut into ceil((k + 1) / piece) pieces.
        targets = lengths + 1
        piece = np.full(n_lines, max_len, dtype=np.int64) if max_len else targets
        pieces = -(-targets // np.maximum(piece, 1))
        line = np.repeat(np.arange(n_lines), pieces)
        first = np.cumsum(pieces) - pieces  # each line's first piece
        k = np.arange(int(pieces.sum())) - np.repeat(first, pieces)  # a piece's rank in its line
        self.starts = line_starts[line] + k * piece[line]
        self.sizes = np.minimum(piece[line], targets[line] - k * piece[line])
        self.n_tokens = int(self.sizes.sum())
        self.by_length = np.argsort(self.sizes, kind="stable")  # pieces, shortest first

    def __len__(self) -> int:
        return len(self.starts)

    def target_ids(self) -> np.ndarray:
        """Every target id once, piece by piece: the lines' tokens and their </s>."""
        first = np.cumsum(self.sizes) - self.sizes  # each piece's first target among all targets
        index = np.repeat(self.starts + 1 - first, self.sizes) + np.arange(self.n_tokens)
        return self.sequence[index]

    def make(self, rows) -> Batch:
        rows = np.asarray(rows, dtype=np.int64)
        sizes = self.sizes[rows]
        width = int(sizes.max()) if len(rows) else 0
        offsets = np.arange(width)
        index = self.starts[rows, None] + offsets
        real = offsets < sizes[:, None]
        last = len(self.sequence) - 1
        inputs = np.where(real, self.sequence[np.minimum(index, last)].astype(np.int64), self.pad)
        targets = np.where(real, self.sequence[np.minimum(index + 1, last)].astype(np.int64), IGNORE)
        return Batch(torch.from_numpy(inputs), torch.from_numpy(targets))

    def sample(self, batch_size: int, seed: int, step: int) -> Batch:
        """Pieces of about one length (bucketing, as translation systems batch sentences): a run of
        batch_size neighbours in length order from a random start, so padding stays near zero
        where random lines would pad every row to the longest (over half of a Brown batch)."""
        size = min(batch_size * self.world, len(self))  # the global batch: every rank's rows
        if size < self.world:
            raise LangmodelsError(f"the training text has {len(self)} rows, fewer than the {self.world} processes")
        start = int(step_rng(seed, step).integers(0, len(self) - size + 1))
        return self.make(self.share(self.by_length[start : start + size]))

    def in_order(self, batch_size: int):
        """Every piece once, in order (a deterministic evaluation pass)."""
        for start in range(0, len(self), batch_size):
            yield self.make(range(start, min(start + batch_size, len(self))))


class StreamBatches(Shards):
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
        high = max(self.n_tokens - self.block, 0) + 1
        starts = self.share(step_rng(seed, step).integers(0, high, size=batch_size * self.world))  # (B,)
        index = starts[:, None] + np.arange(self.block + 1)[None, :]
        index = np.minimum(index, len(self.data) - 1)
        windows = torch.from_numpy(self.data[index])
        return Batch(windows[:, :-1], windows[:, 1:])

    def bptt(self, batch_size: int, step: int) -> Batch:
        width = batch_size * self.world  # columns of the global batch; this rank reads its share
        column = self.n_tokens // width
        if column < 1:
            raise ValueError("stream shorter than one batch")
        columns = self.data[: width * column + 1]
        chunks = max((column - 1) // self.block, 1)
        chunk = step % chunks
        start = chunk * self.block
        index = self.share(np.arange(width))[:, None] * column + start + np.arange(self.block + 1)[None, :]
        windows = torch.from_numpy(columns[np.minimum(index, len(columns) - 1)])
        return Batch(windows[:, :-1], windows[:, 1:], continues=chunk > 0)
