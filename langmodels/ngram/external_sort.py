"""Arrays that spill to disk, and the k-way merge of sorted runs: the external-memory part of
n-gram estimation (Heafield et al. 2013, "Scalable modified Kneser-Ney language model
estimation", section 3: every stage streams sorted blocks through a fixed amount of memory).

A `Column` is a 1-D array written piece by piece and read back in slices. It stays in memory
while the `Workspace` it belongs to holds less than its share of the memory limit, and moves to a
raw file in the workspace's temporary folder otherwise, so the same code runs on a corpus that
fits in memory and on one that does not. Reads go through np.fromfile (into ordinary memory,
never memory-mapped), so what the process holds is what the code asks for at a time.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from ..checkpoint import named_error, new_temporary, remember_sha256, staging_folder
from ..errors import ConfigError

DEFAULT_MEMORY_FRACTION = 0.5  # of the memory available when a fit starts (lmplz's default is 80 % of physical)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MINIMUM_MEMORY = 1 << 20  # below this the per-block overheads dominate


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def libc() -> ctypes.CDLL:
    """The C library (OSError where there is none to load)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def pwrite_all(fd: int, data, offset: int) -> int:
    """Write all of `data` (a buffer) at `offset` of the file `fd` (one pwrite writes at most
    about 2 GiB on Linux); returns the bytes written."""
    data = memoryview(data).cast("B")
    done = 0
    while done < data.nbytes:
        done += os.pwrite(fd, data[done:], offset + done)
    return done


def release_freed_memory() -> None:
    """Hand the memory freed so far back to the system, where the C library allows it (glibc's
    malloc_trim): when a reused_memory block ends, what its stages freed would otherwise stay in
    the process's resident memory."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = libc().malloc_trim
        except (OSError, AttributeError):
            _TRIM = False  # not glibc: nothing to call
    if _TRIM:
        _TRIM(0)


_TRIM = None
_SYNC_FILE_RANGE = None
SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writing the range's dirty pages, do not wait


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the system to start writing a file's dirty pages to disk now, without waiting
    (Linux's sync_file_range with SYNC_FILE_RANGE_WRITE; length 0: to the end). A table
    written during the fit is then mostly on disk by the time the checkpoint's fsync asks for
    it, the disk working while the next stages compute; elsewhere this does nothing."""
    global _SYNC_FILE_RANGE
    if _SYNC_FILE_RANGE is None:
        try:
            function = libc().sync_file_range
            function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            _SYNC_FILE_RANGE = function
        except (OSError, AttributeError):
            _SYNC_FILE_RANGE = False  # not Linux's C library
    if _SYNC_FILE_RANGE:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # a failure only loses the head start


# <malloc.h>'s mallopt parameters. Setting any of them ends glibc's dynamic mmap threshold for
# the process, so on leaving, the settings it converges to are set: blocks up to 32 MiB from the
# heap (its DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), trimmed past twice that, mmap for the rest.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
AFTER_MMAP_THRESHOLD, AFTER_MMAP_MAX = 32 << 20, 65536
_REUSE_LOCK = threading.Lock()
_REUSE_DEPTH = 0
_REUSE_SAVED: dict = {}


def _mallopt(parameter: int, value: int) -> None:
    try:
        libc().mallopt(ctypes.c_int(parameter), ctypes.c_int(value))
    except (OSError, AttributeError):
        pass  # not glibc: its allocator keeps its own policy


def _numpy_huge_pages(enabled: bool) -> bool | None:
    """Turn numpy's madvise(MADV_HUGEPAGE) of large arrays on or off; the previous setting
    (None where this numpy has no such switch)."""
    switch = getattr(np._core.multiarray, "_set_madvise_hugepage", None)
    return None if switch is None else bool(switch(enabled))


@contextlib.contextmanager
def reused_memory():
    """Within the block, memory the stages free stays in the process for the next block's
    arrays, instead of going back to the system and being mapped anew.

    A block's arrays are large, so by default glibc maps each one fresh and unmaps it when freed,
    and numpy asks the kernel to back it with huge pages. The kernel then zeroes every page at its
    first touch, and where free memory is fragmented (a page cache full of corpus and spill files)
    it stops to compact memory into huge pages first: measured here, touching a fresh 1 GiB array
    took 0.15 to 12.5 s with huge pages, 0.54 s without, and 0.07 s reusing freed memory. So the
    allocator serves large blocks from its heap and keeps what is freed (mallopt: M_MMAP_MAX 0,
    M_TRIM_THRESHOLD unbounded) and numpy stops asking for huge pages. When the outermost block
    ends, numpy's setting comes back, glibc gets the thresholds its dynamic ones converge to (the
    dynamic ones cannot be restored once set), and what is free goes back to the system
    (release_freed_memory).

    On this project's test machine (a virtual machine whose free memory goes back to its host)
    this matters more than usual: a page the guest freed a few seconds ago costs a trip to the host
    at its next first touch, about 8 s per GiB, against 0.09 s for memory the process still holds."""
    global _REUSE_DEPTH
    with _REUSE_LOCK:
        _REUSE_DEPTH += 1
        if _REUSE_DEPTH == 1:
            _mallopt(M_MMAP_MAX, 0)
            _mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
            _REUSE_SAVED["huge"] = _numpy_huge_pages(False)
    try:
        yield
    finally:
        with _REUSE_LOCK:
            _REUSE_DEPTH -= 1
            if _REUSE_DEPTH == 0:
                _mallopt(M_MMAP_MAX, AFTER_MMAP_MAX)
                _mallopt(M_MMAP_THRESHOLD, AFTER_MMAP_THRESHOLD)
                _mallopt(M_TRIM_THRESHOLD, 2 * AFTER_MMAP_THRESHOLD)
                if _REUSE_SAVED.get("huge") is not None:
                    _numpy_huge_pages(_REUSE_SAVED["huge"])
                release_freed_memory()


def parse_memory(value) -> int:
    """A memory limit in bytes, from a byte count or text as lmplz's -S reads it: "2G", "500M",
    "64K", "1.5G" (powers of 1024) or "50%" of the memory available now; None gives the default,
    DEFAULT_MEMORY_FRACTION of the available memory."""
    if value is None:
        return max(int(available_memory() * DEFAULT_MEMORY_FRACTION), MINIMUM_MEMORY)
    if isinstance(value, bool):
        raise ConfigError(f"memory must be a size such as '2G', '500M' or '50%', got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"memory must be a size such as '2G', '500M' or '50%', got {value!r}")
        size = int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([%bBkKmMgGtT]?)\s*", value)
        if not match:
            raise ConfigError(f"memory must be a size such as '2G', '500M' or '50%', got {value!r}")
        number, unit = float(match.group(1)), match.group(2).upper()
        size = int(available_memory() * number / 100) if unit == "%" else int(number * _UNITS[unit])
    else:
        raise ConfigError(f"memory must be a size such as '2G', '500M' or '50%', got {value!r}")
    if size < MINIMUM_MEMORY:
        raise ConfigError(f"memory must be at least 1M, got {value!r}")
    return size


class ScratchFolder:
    """A new folder `.NAME.tmp-PID-HEX` in `tmp_dir` (the system's temporary folder by default),
    made after removing those that dead processes left there (checkpoint.staging_folder), and
    removed by `cleanup`, or with this object, or at exit (as tempfile.TemporaryDirectory)."""

    def __init__(self, tmp_dir, name: str):
        parent = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
        self.path = staging_folder(parent / name)
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)

    def cleanup(self) -> None:
        self._finalizer()


class BackgroundWriter:
    """Threads that write spilled pieces to their files while the caller goes on computing (a
    write call releases the GIL). At most `limit` bytes wait at a time; `wait(owner)` returns
    once every piece of that owner is written, raising the first error of its writes.

    Two threads by default: a page of the page cache that is new to the file costs more than the
    copy into it where memory is fresh (a virtual machine that hands freed memory back to its
    host: 1 GiB into new file pages took 2.5-9 s from one thread, 1.6 s from two). Each owner's
    pieces are written in the order they came, by one thread at a time (a table file is hashed
    as it is written); different owners' pieces are written side by side."""

    def __init__(self, limit: int, threads: int = 2):
        self.limit = max(int(limit), 1)
        self.queued = 0
        self.tasks: collections.deque = collections.deque()
        self.busy: set = set()  # owners a thread is writing a piece of
        self.pending: dict[object, int] = {}  # owner (kept alive while listed) -> pieces not yet written
        self.errors: dict[object, OSError] = {}
        self.condition = threading.Condition()
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, name=f"langmodels-spill-writer-{i}", daemon=True)
                        for i in range(max(int(threads), 1))]
        for thread in self.threads:
            thread.start()

    def submit(self, owner, handle, piece: np.ndarray) -> None:
        with self.condition:
            while self.tasks and self.queued + piece.nbytes > self.limit and owner not in self.errors:
                self.condition.wait()
            self._raise(owner)
            self.tasks.append((owner, handle, piece))
            self.queued += piece.nbytes
            self.pending[owner] = self.pending.get(owner, 0) + 1
            self.condition.notify_all()

    def wait(self, owner, *, discard: bool = False) -> None:
        """Until every piece of `owner` is written; then its first write error is raised, or
        dropped with `discard` (its file is being removed)."""
        with self.condition:
            while self.pending.get(owner, 0):
                self.condition.wait()
            self.pending.pop(owner, None)
            if discard:
                self.errors.pop(owner, None)
            else:
                self._raise(owner)

    def _raise(self, owner) -> None:
        """The first write error of `owner`'s pieces, named after its file (the caller holds the
        condition)."""
        error = self.errors.pop(owner, None)
        if error is not None:
            raise named_error(error, owner.path) from None

    def _next(self):
        """The first queued piece whose owner no other thread is writing (the caller holds the
        condition), taken off the queue; None if there is none."""
        for index, task in enumerate(self.tasks):
            if task[0] not in self.busy:
                del self.tasks[index]
                self.busy.add(task[0])
                return task
        return None

    def _run(self) -> None:
        while True:
            with self.condition:
                while not self.stopping and (task := self._next()) is None:
                    self.condition.wait()
                if self.stopping:
                    return
            key, handle, piece = task
            try:
                if key not in self.errors:
                    handle.write(piece.data)  # the array's own buffer: no copy into a bytes object
            except (OSError, ValueError) as error:  # a full disk, or a file closed under it
                with self.condition:
                    self.errors[key] = error if isinstance(error, OSError) else OSError(str(error))
            with self.condition:
                self.busy.discard(key)
                if self.stopping:  # close() dropped what was queued
                    return
                self.queued -= piece.nbytes
                self.pending[key] -= 1
                self.condition.notify_all()

    def close(self) -> None:
        with self.condition:
            self.stopping = True
            self.tasks.clear()
            self.pending.clear()
            self.queued = 0
            self.condition.notify_all()
        for thread in self.threads:
            thread.join()


class Workspace:
    """The memory limit of one estimation, and the temporary folder its spilled columns go to.

    `resident_limit` bytes of columns may stay in memory (the rest of the limit is left to the
    blocks being worked on); the folder is made on the first spill and removed by `close`.
    """

    def __init__(self, memory: int, tmp_dir=None, *, resident_share: float = 0.5):
        self.memory = int(memory)
        self.resident_limit = int(memory * resident_share)
        self.resident = 0
        self.tmp_dir = tmp_dir
        self._folder: ScratchFolder | None = None
        self._names = 0
        self.spilled_bytes = 0
        self.lock = threading.Lock()
        self._writer: BackgroundWriter | None = None
        self._free_files: dict[Path, int] = {}  # spill files of dropped columns -> bytes they hold

    @property
    def writer(self) -> BackgroundWriter:
        """The threads spilled pieces are written by (started on the first spill); the pieces
        waiting for them hold at most a sixteenth of the limit."""
        if self._writer is None:
            self._writer = BackgroundWriter(self.memory // 16)
        return self._writer

    def folder(self) -> Path:
        if self._folder is None:
            self._folder = ScratchFolder(self.tmp_dir, "langmodels-ngram")
        return self._folder.path

    def spill_file(self, name: str):
        """(path, handle) of a file for a column to spill to: the largest file a dropped column
        left, overwritten from its start, else a new one. Rewriting pages the page cache still
        holds costs a copy; a new file's pages are fresh memory (reused_memory's note), so the
        stages' few GB of short-lived spills go through the same files again and again. The
        caller holds the workspace's lock."""
        path = self._take_free_file()
        if path is None:
            path = self.folder() / f"{name}.bin"
        try:
            return path, open(path, "r+b" if path.exists() else "wb")
        except OSError as error:
            raise named_error(error, path) from None

    def _take_free_file(self, size: int | None = None) -> Path | None:
        """The smallest free file of at least `size` bytes, else the largest (None if none)."""
        sizes = self._free_files
        fitting = [path for path in sizes if size is not None and sizes[path] >= size]
        path = min(fitting, key=sizes.get) if fitting else max(sizes, key=sizes.get, default=None)
        if path is not None:
            del sizes[path]
        return path

    def take_free_file(self, size: int | None = None) -> Path | None:
        """A spill file a dropped column left, given up by the workspace (None if none): the
        smallest of at least `size` bytes, else the largest. A table is written over its cached
        pages (NpyWriter's `recycled`)."""
        with self.lock:
            return self._take_free_file(size)

    def free_file(self, path: Path) -> None:
        """A dropped column's spill file, kept for the next spill (removed with the folder) while
        the kept files hold at most twice the workspace's memory (the fit's whole limit: no more of
        their pages would stay cached anyway); past that it is removed, so the disk a fit takes at
        its peak grows by at most that much."""
        try:
            size = path.stat().st_size
        except OSError:
            return
        with self.lock:
            if sum(self._free_files.values()) + size <= 2 * self.memory:
                self._free_files[path] = size
                return
        path.unlink(missing_ok=True)

    def column(self, dtype, name: str = "column") -> Column:
        self._names += 1
        return Column(self, np.dtype(dtype), f"{self._names:05d}-{name}")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Column:
    """A 1-D array appended in pieces, then read in slices; in memory or in a raw file."""

    def __init__(self, workspace: Workspace, dtype: np.dtype, name: str):
        self.workspace = workspace
        self.dtype = dtype
        self.name = name
        self.pieces: list[np.ndarray] = []
        self.starts = [0]  # offset of each piece, then the length
        self.path: Path | None = None
        self._file = None

    def __len__(self) -> int:
        return self.starts[-1]

    @property
    def nbytes(self) -> int:
        return len(self) * self.dtype.itemsize

    def append(self, piece) -> None:
        piece = np.ascontiguousarray(piece, dtype=self.dtype)
        if not piece.size:
            return
        with self.workspace.lock:
            if self.path is None and self.workspace.resident + piece.nbytes > self.workspace.resident_limit:
                self._spill()
            if self.path is None:
                self.pieces.append(piece)
                self.workspace.resident += piece.nbytes
            else:
                self.workspace.spilled_bytes += piece.nbytes
        if self.path is not None:  # written by the workspace's thread; a full disk names the spill file
            self.workspace.writer.submit(self, self._file, piece)
        self.starts.append(self.starts[-1] + piece.size)

    def _spill(self) -> None:
        self.path, self._file = self.workspace.spill_file(self.name)  # the caller holds the workspace's lock
        for piece in self.pieces:
            self.workspace.resident -= piece.nbytes
            self.workspace.spilled_bytes += piece.nbytes
        pieces, self.pieces = self.pieces, []
        for piece in pieces:  # the caller holds the workspace's lock: submit does not take it
            self.workspace.writer.submit(self, self._file, piece)

    def finish(self) -> Column:
        """Done appending: the pieces written and the file flushed (reads may follow)."""
        if self._file is not None:
            try:
                self.workspace.writer.wait(self)
                self._file.close()
            except OSError as error:
                raise named_error(error, self.path) from None
            self._file = None
        if self.path is None and len(self.pieces) > 1:  # one piece: slices are views, no copies
            whole = np.concatenate(self.pieces)
            self.pieces = [whole]
            self.starts = [0, whole.size]
        return self

    @classmethod
    def of(cls, workspace: Workspace, array: np.ndarray, name: str = "column") -> Column:
        column = workspace.column(array.dtype, name)
        column.append(array)
        return column.finish()

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The elements [start, stop) (a view for an in-memory column: do not write to it)."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = max(0, min(start, stop))
        if self.path is not None:
            if self._file is not None:  # still being appended to: what was appended so far
                self.workspace.writer.wait(self)
                self._file.flush()
            return np.fromfile(self.path, dtype=self.dtype, count=stop - start, offset=start * self.dtype.itemsize)
        if not self.pieces:
            return np.zeros(0, dtype=self.dtype)
        return self.pieces[0][start:stop]

    def item(self, index: int):
        return self.read(index, index + 1)[0]

    def chunks(self, size: int):
        """(start, elements) for consecutive slices of `size` elements."""
        size = max(int(size), 1)
        for start in range(0, len(self), size):
            yield start, self.read(start, start + size)

    def searchsorted(self, value, side: str = "left") -> int:
        """np.searchsorted on an ascending column, reading O(log n) small slices of a file."""
        if self.path is None:
            return int(np.searchsorted(self.read(), value, side=side))
        lo, hi = 0, len(self)
        while hi - lo > 4096:
            probe = np.linspace(lo, hi - 1, 64).astype(np.int64)
            values = np.array([self.item(int(i)) for i in probe])
            k = int(np.searchsorted(values, value, side=side))
            lo, hi = (int(probe[k - 1]) + 1 if k > 0 else lo), (int(probe[k]) + 1 if k < probe.size else hi)
        return lo + int(np.searchsorted(self.read(lo, hi), value, side=side))

    def drop(self) -> None:
        """Free the memory or the file."""
        if self._file is not None:
            self.workspace.writer.wait(self, discard=True)
            self._file.close()
            self._file = None
        if self.path is not None:
            self.workspace.free_file(self.path)
            self.path = None
        with self.workspace.lock:
            for piece in self.pieces:
                self.workspace.resident -= piece.nbytes
        self.pieces = []
        self.starts = [0]


def gather(column: Column, index: np.ndarray, budget: int) -> np.ndarray:
    """column[index] reading at most `budget` bytes of the column at a time (a column larger
    than that is read in pieces, each answering the indices that fall in it)."""
    if column.nbytes <= budget or column.path is None:
        return column.read()[index]
    out = np.empty(index.size, dtype=column.dtype)
    piece = max(budget // column.dtype.itemsize, 1)
    for start, values in column.chunks(piece):
        inside = (index >= start) & (index < start + values.size)
        out[inside] = values[index[inside] - start]
    return out


def sorted_unique_counts(keys: np.ndarray, counts: np.ndarray | None = None):
    """Sort keys, merge equal ones: (unique keys, summed counts, order, first position of each
    unique key in sorted order). counts None counts occurrences."""
    order, ordered = sort_order(keys)
    new = np.empty(ordered.size, dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    if counts is None:
        summed = run_lengths(starts, ordered.size)
    else:
        summed = np.add.reduceat(counts[order], starts) if starts.size else counts[:0]
    return ordered[starts], summed, order, new


def sort_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(np.argsort(keys), the sorted keys) for keys >= 0, by sorting each key packed with its
    index in one int64 (a plain sort of integers runs about twice as fast as an argsort, and the
    sorted keys come without a gather) when both fit in 63 bits."""
    if not keys.size:
        return np.zeros(0, dtype=np.int64), keys[:0]
    index_bits = max(int(keys.size - 1).bit_length(), 1)
    if int(keys.max()).bit_length() + index_bits > 63:
        order = np.argsort(keys)
        return order, keys[order]
    packed = keys << index_bits
    packed |= np.arange(keys.size, dtype=np.int64)
    packed.sort()
    ordered = packed >> index_bits
    packed &= (1 << index_bits) - 1
    return packed, ordered


def running_count(flags: np.ndarray) -> np.ndarray:
    """np.cumsum of a bool array as int32 where it fits (casting to int64 runs 20x slower)."""
    return np.cumsum(flags, dtype=np.int32 if flags.size < 2**31 else np.int64)


def run_lengths(starts: np.ndarray, size: int) -> np.ndarray:
    """Lengths of the runs that begin at `starts` (ascending) in an array of `size` elements."""
    lengths = np.empty(starts.size, dtype=np.int64)
    np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
    if starts.size:
        lengths[-1] = size - starts[-1]
    return lengths


def count_keys(keys: np.ndarray, pool=None, parts: int = 1, indexes: np.ndarray | None = None):
    """The distinct keys (ascending) of a block, how often each occurs, the index in `keys` of
    one occurrence of each, and each key's row among the distinct ones (the inverse). `keys`
    (int64, >= 0) is overwritten; `indexes`, if given, is np.arange of at least len(keys) (kept
    by the caller between blocks: a fresh array of that size costs more in page faults than in
    writing it).

    Each key is packed with its index into one int64 and the packed values are sorted (see
    sort_order). With a thread pool and parts > 1, the packed values are first cut into `parts`
    ranges at sampled quantiles of the keys, each range sorted by its own thread (numpy releases
    the GIL while it sorts), and the sorted ranges are laid end to end: no merge is needed.
    """
    n = keys.size
    index_bits = max(int(n - 1).bit_length(), 1) if n else 1
    if n and int(keys.max()).bit_length() + index_bits > 63:  # too wide to pack: an argsort
        order = np.argsort(keys)
        pieces = [(keys[order], order)]
    else:
        packed = np.left_shift(keys, index_bits, out=keys)
        packed |= np.arange(n, dtype=np.int64) if indexes is None or indexes.size < n else indexes[:n]
        if parts > 1 and pool is not None and n >= 1 << 16:
            sample = np.sort(packed[:: max(n // 4096, 1)] >> index_bits)
            bounds = np.unique(sample[(np.arange(1, parts) * sample.size) // parts]) << index_bits
            which = np.searchsorted(bounds, packed, side="right")
            pieces = [packed[which == p] for p in range(bounds.size + 1)]
            del which
        else:
            pieces = [packed]
        del packed

    def sort_piece(piece):
        if isinstance(piece, tuple):  # already sorted by argsort
            ordered, position = piece
        else:
            piece.sort()
            ordered = piece >> index_bits
            piece &= (1 << index_bits) - 1
            position = piece
        new = np.empty(ordered.size, dtype=bool)
        new[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        return ordered[starts], run_lengths(starts, ordered.size), position[starts], position, new

    if len(pieces) > 1:
        results = list(pool.map(sort_piece, pieces))
    else:
        results = [sort_piece(pieces[0])]
    del pieces
    inverse = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
    offsets = np.cumsum([0] + [result[0].size for result in results])

    def scatter(k):
        _, _, _, position, new = results[k]
        group = running_count(new)
        group += int(offsets[k]) - 1
        inverse[position] = group

    if len(results) > 1:
        list(pool.map(scatter, range(len(results))))
    else:
        scatter(0)
    unique = np.concatenate([result[0] for result in results])
    counts = np.concatenate([result[1] for result in results])
    first = np.concatenate([result[2] for result in results])
    return unique, counts, first, inverse


def merge_runs(workspace: Workspace, runs: list[tuple[Column, Column, Column]], budget: int,
               count_type=np.int64, pool=None):
    """k-way merge of sorted runs (keys, counts, payload) whose keys are unique within a run.

    Equal keys from several runs become one entry with summed counts (summed in int64, whatever
    the runs' count type, and kept as `count_type`, which the caller knows holds every sum; the
    payload of equal keys is equal: it is a function of the key). Returns (keys,
    counts, payload) columns of the merged entries and, per run, a column giving the merged row
    of each of its entries (int32 while the rows fit).

    Each round reads the next slice of every run, merges the entries up to the smallest last key
    among the slices (everything below it is complete), and keeps the rest for the next round.
    With a thread pool, a round is merged (sorted: numpy releases the GIL) on the pool while the
    next one is read, two at a time, each with half the budget; the results are appended in order.
    """
    keys_out = workspace.column(np.int64, "keys")
    counts_out = workspace.column(count_type, "counts")
    payload_out = workspace.column(runs[0][2].dtype if runs else np.int64, "payload")
    total = sum(len(keys) for keys, _, _ in runs)  # the merged rows number at most this
    row_type = np.int32 if total < 2**31 else np.int64
    rows = [workspace.column(row_type, "rows") for _ in runs]
    in_flight = 2 if pool is not None else 1
    per_run = max(budget // (64 * in_flight * max(len(runs), 1)), 1024)

    def rounds():
        """Per round, the runs taking part and the entries taken from each."""
        cursor = [0] * len(runs)
        empty = np.zeros(0, np.int64)
        buffered = [(empty, empty, empty) for _ in runs]
        while True:
            live = []
            for r, (keys, counts, payload) in enumerate(runs):
                if buffered[r][0].size == 0 and cursor[r] < len(keys):
                    stop = cursor[r] + per_run
                    buffered[r] = (keys.read(cursor[r], stop), counts.read(cursor[r], stop),
                                   payload.read(cursor[r], stop))
                    cursor[r] = min(stop, len(keys))
                if buffered[r][0].size:
                    live.append(r)
            if not live:
                return
            bound = min(buffered[r][0][-1] for r in live)
            taken = []
            for r in live:
                keys, counts, payload = buffered[r]
                m = int(np.searchsorted(keys, bound, side="right"))
                taken.append((keys[:m], counts[:m], payload[:m]))
                buffered[r] = (keys[m:], counts[m:], payload[m:])
            yield live, taken

    def merge(live, taken):
        """One round: the merged entries, and the merged row (from 0) of each taken entry."""
        keys = np.concatenate([entries[0] for entries in taken])
        counts = np.concatenate([entries[1] for entries in taken]).astype(np.int64, copy=False)  # runs may hold int32
        unique, summed, order, new = sorted_unique_counts(keys, counts)
        payload = np.concatenate([entries[2] for entries in taken])[order[new]]
        merged_row = np.empty(keys.size, dtype=row_type)  # the merged row of each taken entry
        merged_row[order] = running_count(new)
        merged_row -= 1
        return live, [entries[0].size for entries in taken], unique, summed, payload, merged_row

    base = 0

    def append(live, sizes, unique, summed, payload, merged_row):
        nonlocal base
        keys_out.append(unique)
        counts_out.append(summed)
        payload_out.append(payload)
        merged_row += base
        at = 0
        for r, size in zip(live, sizes):
            rows[r].append(merged_row[at : at + size])
            at += size
        base += unique.size

    pending = collections.deque()
    for live, taken in rounds():
        if pool is None:
            append(*merge(live, taken))
            continue
        if len(pending) == in_flight:
            append(*pending.popleft().result())
        pending.append(pool.submit(merge, live, taken))
    while pending:
        append(*pending.popleft().result())
    return keys_out.finish(), counts_out.finish(), payload_out.finish(), [column.finish() for column in rows]


def mapped_file(array) -> tuple[str, int] | None:
    """(file name, byte offset) when `array` is one whole 1-D memory-mapped file (a np.memmap or
    a plain view of one, as tables.open_array returns), else None."""
    mapped = array
    while mapped is not None and not isinstance(mapped, np.memmap):
        mapped = getattr(mapped, "base", None)
    if mapped is None or getattr(mapped, "filename", None) is None or array.ndim != 1:
        return None
    whole = (array.flags.c_contiguous and array.ctypes.data == mapped.ctypes.data and array.nbytes == mapped.nbytes
             and os.path.getsize(mapped.filename) == mapped.offset + mapped.nbytes)
    return (mapped.filename, mapped.offset) if whole else None


def slice_reader(array):
    """(lo, hi) -> array[lo:hi] as an ordinary array. A memory-mapped file is read with
    np.fromfile: pages of a mapping, once read, stay counted in the process's resident memory."""
    found = mapped_file(array)
    if found is None:
        return lambda lo, hi: np.asarray(array[lo:hi])
    filename, offset = found

    def read(lo, hi):
        return np.fromfile(filename, dtype=array.dtype, count=max(hi - lo, 0), offset=offset + lo * array.itemsize)
    return read


class HashedFile:
    """A binary file whose bytes also go to a sha256 as they are written."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data) -> None:
        self.handle.write(data)
        self.digest.update(data)


class NpyWriter:
    """One .npy file of a known length, written in pieces, under a temporary name
    (checkpoint.new_temporary: `.NAME.tmp-PID-HEX`, dead writers' ones removed first) until
    `close` renames it into place; `discard` (or any failure) removes it, so an interrupted
    estimation leaves no half-written table. A full disk names the table's path.

    With a BackgroundWriter the pieces are written (and hashed) by its thread while the caller
    computes the next ones; the caller must not change a piece after appending it. The file's
    sha256, computed from the bytes as they were written, is recorded for the checkpoint that
    will take the file in (checkpoint.remember_sha256), which then need not read it again."""

    def __init__(self, path, dtype, length: int, writer: BackgroundWriter | None = None,
                 recycled: Path | None = None):
        self.path = Path(path)
        self.tmp = new_temporary(self.path)
        self.dtype = np.dtype(dtype)
        self.length = int(length)
        self.written = 0
        self.writer = writer
        try:
            self._file = self._recycle(recycled) or open(self.tmp, "xb")  # noqa: SIM115 (closed by close)
            self._out = HashedFile(self._file)
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": (self.length,)}
            np.lib.format.write_array_header_1_0(self._out, header)
        except OSError as error:
            self.discard()
            raise named_error(error, self.path) from None

    def _recycle(self, recycled: Path | None):
        """The spill file `recycled` renamed to this table's temporary name and opened to be
        written over from its start (its pages cached: Workspace.spill_file), or None (none
        given, or on another file system: a new file is made)."""
        if recycled is None:
            return None
        try:
            os.rename(recycled, self.tmp)
            return open(self.tmp, "r+b")
        except OSError:
            with contextlib.suppress(OSError):
                recycled.unlink()
            return None

    def append(self, piece) -> None:
        piece = np.ascontiguousarray(piece, dtype=self.dtype)
        try:
            if self.writer is not None:
                self.writer.submit(self, self._out, piece)  # a write error of an earlier piece: raised here
            else:
                self._out.write(piece.data)
        except OSError as error:
            self.discard()
            raise named_error(error, self.path) from None
        except BaseException:
            self.discard()
            raise
        self.written += piece.size

    def close(self) -> Path:
        try:
            if self.writer is not None:
                self.writer.wait(self)
            self._file.truncate(self._file.tell())  # a recycled file held more than this table
            self._file.flush()
            start_writeback(self._file.fileno())
            self._file.close()
            if self.written != self.length:
                raise RuntimeError(f"{self.path.name}: wrote {self.written} elements, expected {self.length}")
            os.replace(self.tmp, self.path)
            remember_sha256(self.path, self._out.digest.hexdigest())
        except OSError as error:
            self.discard()
            raise named_error(error, self.path) from None
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Close and remove the temporary file (a failed or interrupted estimation)."""
        with contextlib.suppress(OSError):
            if self.writer is not None and getattr(self, "_file", None) is not None:
                self.writer.wait(self, discard=True)
            if getattr(self, "_file", None) is not None:
                self._file.close()
        self.tmp.unlink(missing_ok=True)
