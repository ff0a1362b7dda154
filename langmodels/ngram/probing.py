"""A linear-probing hash index over int64 n-gram keys, built and queried with array operations.

This is the structure KenLM calls PROBING (Heafield 2011, "KenLM: Faster and Smaller Language
Model Queries", section 3.1): a key's home slot is its hash, and a key that finds its home taken
goes to the next free slot. Looking a key up walks from its home until it finds the key or an
empty slot. Here every query of a batch walks at once: each round is a gather, a compare and a
step forward for the queries still walking, and a batch needs as many rounds as its longest walk.

The hash is Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4): multiply by 2^64 / golden ratio and
keep the top bits. The table is at most a quarter full, so walks stay short (the expected number
of probes for a missing key under linear probing is (1 + 1/(1 - load)^2) / 2, Knuth 6.4).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / phi, odd
_EMPTY = -1
LOAD = 0.25  # keys per slot at most


class ProbingIndex:
    """Maps each of `keys` (distinct int64) to its position in `keys`; find() answers batches."""

    def __init__(self, keys: np.ndarray):
        self.keys = np.asarray(keys, dtype=np.int64)
        bits = max(int(np.ceil(np.log2(max(self.keys.size / LOAD, 2)))), 1)
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        dtype = np.int32 if self.keys.size < 2**31 else np.int64
        self.slots = np.full(1 << bits, _EMPTY, dtype=dtype)
        self._insert_all()

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> self.shift).astype(np.int64)

    def _insert_all(self) -> None:
        # Every key still homeless tries its current slot; where several try one free slot, the
        # write that lands wins (read back to see which) and the others step on, like the keys
        # that met a taken slot. A key only steps past taken slots, so lookups stay correct.
        pending = np.arange(self.keys.size, dtype=np.int64)
        position = self._home(self.keys)
        while pending.size:
            free = self.slots[position] == _EMPTY
            self.slots[position[free]] = pending[free]
            placed = free & (self.slots[position] == pending)
            pending, position = pending[~placed], (position[~placed] + 1) & self.mask

    def find(self, query: np.ndarray) -> np.ndarray:
        """Position of each query in `keys`, or -1 where it is absent (always for negative queries)."""
        query = np.asarray(query, dtype=np.int64)
        if not self.keys.size:
            return np.full(query.size, -1, dtype=np.int64)
        # Round one covers every query; later rounds only the few still walking, by integer
        # index (boolean-mask indexing costs several times more on arrays this size).
        position = self._home(query)
        slot = self.slots[position]
        hit = (slot != _EMPTY) & (self.keys[slot] == query)  # slot -1 reads the last key: masked off
        result = np.where(hit, slot, -1).astype(np.int64)
        walking = np.flatnonzero(((slot != _EMPTY) ^ hit) & (query >= 0))  # keys are never negative
        while walking.size:
            position[walking] = (position[walking] + 1) & self.mask
            slot = self.slots[position[walking]]
            hit = (slot != _EMPTY) & (self.keys[slot] == query[walking])
            result[walking] = np.where(hit, slot, -1)
            walking = walking[np.flatnonzero((slot != _EMPTY) ^ hit)]
        return result
