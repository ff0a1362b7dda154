"""A linear-probing hash index over int64 n-gram keys, built and queried with array operations.

This is the structure KenLM calls PROBING (Heafield 2011, "KenLM: Faster and Smaller Language
Model Queries", section 3.1): a key's home slot is its hash, and a key that finds its home taken
goes to the next free slot. Looking a key up walks from its home until it finds the key or an
empty slot. Here every query of a batch walks at once: each round is a gather, a compare and a
step forward for the queries still walking, and a batch needs as many rounds as its longest walk.

The slots hold row numbers into the (sorted) keys, not the keys: the index is one int32 array
(int64 past 2^31 rows), saved beside the tables as a .npy file and memory-mapped like them, so a
loaded model never rebuilds it.

The hash is Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4): multiply by 2^64 / golden ratio and
keep the top 32 bits, h; the home slot is floor(h * S / 2^32) for a table of S slots (Lemire's
multiply-shift range reduction, 2019), so S need not be a power of two and the table is exactly
1 / LOAD slots per key: a quarter full, the expected number of probes for a missing key under
linear probing is (1 + 1/(1 - load)^2) / 2 = 1.39 (Knuth 6.4), and the index costs 16 bytes per
n-gram (int32 slots). Measured on Brown KN-5 scoring, a half-full table (8 bytes per n-gram)
scores 28 % slower. SCHEME names this layout; a stored index of another scheme is not used.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / phi, odd
_EMPTY = -1
LOAD = 0.25  # keys per slot
SCHEME = "probing-fibonacci32-multiply-shift-load0.25"
BUILD_BLOCK = 1 << 22  # keys hashed per batch while a window's keys are gathered
BUILD_MEMORY = 1 << 29  # bytes one window of the build holds, by default (a model's fit sets its own)


def slot_count(n_keys: int) -> int:
    """Slots of the index of `n_keys` keys: n_keys / LOAD, and always one more than the keys (an
    empty slot ends every walk)."""
    return max(int(n_keys / LOAD), n_keys + 1, 2)


def empty_slots(n_keys: int, out=None) -> np.ndarray:
    """An all-empty slot array for `n_keys` keys (written into `out`, e.g. a memmap, if given)."""
    dtype = np.int32 if n_keys < 2**31 else np.int64
    slots = np.empty(slot_count(n_keys), dtype=dtype) if out is None else out
    slots.fill(_EMPTY)
    return slots


class ProbingIndex:
    """Maps each of `keys` (distinct int64) to its position in `keys`; find() answers batches.

    slots: a finished slot array (as `build` leaves it, e.g. memory-mapped from a file); without
    it the index is built here, in memory."""

    def __init__(self, keys: np.ndarray, slots: np.ndarray | None = None):
        self.keys = np.asarray(keys)
        if self.keys.dtype != np.int64:
            self.keys = self.keys.astype(np.int64)
        if slots is None:
            slots = self.build(self.keys, empty_slots(self.keys.size))
        slots = np.asarray(slots)
        size = slots.size
        if size != slot_count(self.keys.size) or slots.dtype not in (np.int32, np.int64):
            raise ValueError(f"not a probing index for {self.keys.size} keys ({size} slots of {slots.dtype})")
        self.slots = slots
        self.size = size

    @staticmethod
    def home(keys: np.ndarray, n_slots: int) -> np.ndarray:
        """The home slot of each key (non-negative int64 keys): the top 32 bits of the Fibonacci
        hash scaled to [0, n_slots) by one multiply and shift (n_slots < 2^32)."""
        hashed = np.multiply(np.ascontiguousarray(keys, dtype=np.int64).view(np.uint64), _GOLDEN)
        hashed >>= np.uint64(32)
        hashed *= np.uint64(n_slots)
        hashed >>= np.uint64(32)
        return hashed.view(np.int64)

    @staticmethod
    def step(position: np.ndarray, n_slots: int) -> np.ndarray:
        """The next slot of each walk, wrapping from the last slot to the first."""
        position += 1
        position[position == n_slots] = 0
        return position

    @classmethod
    def build(cls, keys: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Insert every key into the empty in-memory `slots` and return them (see `place`)."""
        def write(start, window):
            slots[start : start + window.size] = window

        cls.place(lambda lo, hi: keys[lo:hi], len(keys), slots.size, slots.dtype, write,
                  lambda lo, hi: slots[lo:hi].copy())
        return slots

    @classmethod
    def place(cls, read_keys, n_keys: int, n_slots: int, dtype, write, read_back, memory: int = BUILD_MEMORY):
        """Build the slots of `n_keys` keys one window of slots at a time, in slot order, so that
        no more than about `memory` bytes are held whatever the index's size: write(start, window)
        receives each window once, in order; read_keys(lo, hi) gives keys[lo:hi]; read_back(lo, hi)
        returns slots already written (only for the few keys that wrap past the last slot).

        Within a window every key still homeless tries its current slot; where several try one
        free slot, the write that lands wins (read back to see which) and the others step on,
        like the keys that met a taken slot, so a key only steps past taken slots and lookups
        stay correct whatever order the keys went in. A window's keys are found by one pass over
        the keys' homes, hashed once and kept (4 bytes a key) when they fit in half of `memory`,
        else hashed again per window; those that step past its end go on from the next window's
        first slot, and those that step past the last slot take the first free slots from slot 0.
        """
        if n_slots >= 2**32:
            raise ValueError(f"{n_keys} keys are more than one probing index holds")
        # Per slot of a window: the slot itself and, at LOAD keys per slot, ~5 int64 temporaries per key.
        per_slot = np.dtype(dtype).itemsize + 40 * LOAD
        window_slots = max(int(memory // per_slot), 1 << 16)
        every_home = None  # with several windows, each key's home (uint32) kept from one pass, if it fits
        if window_slots < n_slots and n_keys * 4 <= memory // 2:
            every_home = np.empty(n_keys, dtype=np.uint32)
            for lo in range(0, n_keys, BUILD_BLOCK):
                every_home[lo : lo + BUILD_BLOCK] = cls.home(read_keys(lo, min(lo + BUILD_BLOCK, n_keys)), n_slots)
            window_slots = max(int((memory - every_home.nbytes) // per_slot), 1 << 16)

        def homes_of_block(lo):
            hi = min(lo + BUILD_BLOCK, n_keys)
            return every_home[lo:hi] if every_home is not None else cls.home(read_keys(lo, hi), n_slots)

        carried = np.zeros(0, dtype=np.int64)  # rows that stepped past the previous window
        for start in range(0, n_slots, window_slots):
            stop = min(start + window_slots, n_slots)
            homes, rows = [], []
            for lo in range(0, n_keys, BUILD_BLOCK):
                home = homes_of_block(lo)
                if window_slots < n_slots:
                    inside = np.flatnonzero((home >= start) & (home < stop))
                    homes.append(home[inside].astype(np.int64, copy=False) - start)
                    rows.append(lo + inside)
                else:
                    homes.append(home.astype(np.int64, copy=False) - start)
                    rows.append(lo + np.arange(home.size))
            position = np.concatenate([np.zeros(carried.size, dtype=np.int64), *homes])  # relative to start
            pending = np.concatenate([carried, *rows]).astype(dtype, copy=False)
            width = stop - start
            window = np.full(width, _EMPTY, dtype=dtype)
            passed = []
            while pending.size:
                free = window[position] == _EMPTY
                window[position[free]] = pending[free]
                placed = free & (window[position] == pending)
                pending, position = pending[~placed], position[~placed] + 1
                out = position == width
                if out.any():
                    passed.append(pending[out])
                    pending, position = pending[~out], position[~out]
            write(start, window)
            carried = np.concatenate(passed).astype(np.int64) if passed else np.zeros(0, dtype=np.int64)
        lo = 0
        while carried.size:  # wrapped past the last slot: the first free slots from slot 0, in order
            hi = min(lo + BUILD_BLOCK, n_slots)
            window = read_back(lo, hi)
            free = np.flatnonzero(window == _EMPTY)[: carried.size]
            window[free] = carried[: free.size]
            write(lo, window)
            carried, lo = carried[free.size :], hi

    def find(self, query: np.ndarray) -> np.ndarray:
        """Position of each query in `keys`, or -1 where it is absent (always for negative queries)."""
        query = np.asarray(query, dtype=np.int64)
        if not self.keys.size:
            return np.full(query.size, -1, dtype=np.int64)
        valid = query >= 0
        if valid.all():
            return self.find_valid(query).astype(np.int64)
        result = np.full(query.size, -1, dtype=np.int64)
        chosen = np.flatnonzero(valid)
        result[chosen] = self.find_valid(query[chosen])
        return result

    def find_valid(self, query: np.ndarray) -> np.ndarray:
        """find() for queries known to be >= 0 (every query of the scorer): rows in the slots'
        integer type, -1 where absent.

        Round one covers every query; later rounds only the few still walking, by integer index
        (boolean-mask indexing costs several times more on arrays this size).
        """
        if not self.keys.size:
            return np.full(query.size, -1, dtype=self.slots.dtype)
        # An empty slot (-1) reads the last key, which never equals the query there: a stored
        # key's walk from its home crosses no empty slot, so a query that meets one is absent.
        position = self.home(query, self.slots.size)
        slot = self.slots[position]
        result = np.where(self.keys[slot] == query, slot, _EMPTY).astype(self.slots.dtype, copy=False)
        walking = np.flatnonzero(slot != result)  # taken by another key: step on
        position = position[walking]
        while walking.size:
            position = self.step(position, self.size)
            slot = self.slots[position]
            result[walking] = np.where(self.keys[slot] == query[walking], slot, _EMPTY)
            keep = np.flatnonzero(slot != result[walking])
            walking, position = walking[keep], position[keep]
        return result
