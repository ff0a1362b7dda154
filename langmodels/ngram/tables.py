"""N-gram probability tables in back-off form (contract C-3), and scoring with them.

This is the ARPA view of a model: every seen n-gram carries its final probability P(w | h)
(already interpolated), every n-gram that serves as a context carries a back-off weight gamma,
and for an unseen n-gram

    log P(w | h) = log gamma(h) + log P(w | h')      (h seen as an n-gram; else gamma = 1)

which for an interpolated model is exactly the interpolation formula, because alpha(w | h) = 0
for an unseen continuation (Chen & Goodman 1998, eq. 1 written in back-off form; Katz 1987). For
the estimators whose lower distribution is the uniform one (mle, uniform, laplace, lidstone) an
unseen continuation of a seen context gets gamma(h) / V instead, and a context never seen falls
back to its longest seen suffix.

Each order keeps its n-grams as sorted int64 keys ``context_row * V + word`` (sorted, so a
context's continuations are one slice) and a probing hash index over them for batch lookups.
The arrays are one .npy file each (`keys_3.npy`, `index_3.npy`, ...) and are memory-mapped, so
a model of any size opens in milliseconds and scoring reads only the pages it touches.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import replacing
from ..errors import CheckpointError
from .counting import NGramCounts
from .external_sort import pwrite_all, reused_memory, slice_reader, start_writeback
from .probing import BUILD_MEMORY, ProbingIndex, slot_count

TABLE_FIELDS = ("keys", "logprob", "logbackoff", "is_context")
FIELD_DTYPES = {"keys": np.int64, "logprob": np.float32, "logbackoff": np.float32, "is_context": np.bool_}
PARALLEL_POSITIONS = 1 << 16  # scoring batches this large are split over two threads
_POOL: ThreadPoolExecutor | None = None


def gather(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """values[ids] where an id of -1 (read as the last entry) is masked off by the caller."""
    return values[ids] if values.size else np.zeros(ids.size, dtype=values.dtype)


def array_file(name: str) -> str:
    return f"{name}.npy"


def open_array(path: Path) -> np.ndarray:
    """A .npy file memory-mapped read-only (never unpickled), as a plain ndarray view: indexing a
    np.memmap subclass costs a Python-level __getitem__ on every gather."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise CheckpointError(f"n-gram table file {path} is missing") from None
    except ValueError as error:
        if "empty" not in str(error) and "mmap length" not in str(error):
            raise CheckpointError(f"{path} is not a .npy table ({error})") from None
        mapped = np.load(path, allow_pickle=False)  # a zero-length array cannot be mapped
    return np.asarray(mapped)


def save_array(path: Path, values: np.ndarray) -> Path:
    """Write one array as .npy under a temporary name, then rename it into place (`replacing`)."""
    with replacing(path) as temporary, open(temporary, "xb") as handle:
        np.lib.format.write_array(handle, np.ascontiguousarray(values), allow_pickle=False)
    return path



def write_index(path: Path, keys: np.ndarray, memory: int = BUILD_MEMORY) -> None:
    """The probing index of `keys` written to `path` as a .npy file, one window of slots at a
    time through file writes (never a writable mapping, whose touched pages would count in
    the process's resident memory): about `memory` bytes are held at any size."""
    dtype = np.dtype(np.int32 if keys.size < 2**31 else np.int64)
    n_slots = slot_count(keys.size)
    read_keys = slice_reader(keys)
    with open(path, "w+b") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n_slots,)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.flush()
        base, fd = handle.tell(), handle.fileno()

        def write(start, window):
            offset = base + start * dtype.itemsize
            done = pwrite_all(fd, np.ascontiguousarray(window), offset)
            start_writeback(fd, offset, done)  # to disk while the next window is built

        def read_back(lo, hi):
            data = os.pread(fd, (hi - lo) * dtype.itemsize, base + lo * dtype.itemsize)
            return np.frombuffer(data, dtype=dtype).copy()

        with reused_memory():  # one window's temporaries after another's (external_sort.reused_memory)
            ProbingIndex.place(read_keys, keys.size, n_slots, dtype, write, read_back, memory)

@dataclass
class OrderTable:
    """The n-grams of one order: sorted keys and their log-probability and log back-off."""

    keys: np.ndarray  # (G,) int64, context_id * V + word, sorted (order 1: the word ids)
    logprob: np.ndarray  # (G,) natural log P(w | h)
    logbackoff: np.ndarray  # (G,) natural log gamma of this n-gram as a context (0 if none)
    is_context: np.ndarray  # (G,) bool: some continuation of this n-gram was seen


def line_targets(flat: np.ndarray, lengths: np.ndarray, eos_id: int, bos_id: int):
    """(targets, previous) of lines: every line's tokens then </s>, and the token before each
    target (<s> at a line's start). Every target is scored; no n-gram crosses a line, because
    no table has an n-gram with </s> before its last word."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths + 1) - 1  # where each line's </s> goes
    targets = np.empty(int(lengths.sum()) + lengths.size, dtype=np.asarray(flat).dtype if len(flat) else np.int64)
    body = np.ones(targets.size, dtype=bool)
    body[ends] = False
    targets[body] = flat
    targets[ends] = eos_id
    previous = np.empty_like(targets)
    previous[1:] = targets[:-1]
    if lengths.size:
        previous[ends[:-1] + 1] = bos_id
        previous[0] = bos_id
    return targets, previous


def stream_targets(ids: np.ndarray, bos_id: int):
    """(targets, previous) of one stream read from a single <s>."""
    ids = np.asarray(ids)
    previous = np.empty_like(ids)
    if ids.size:
        previous[1:] = ids[:-1]
        previous[0] = bos_id
    return ids, previous


class BackoffTables:
    """Orders 1..N of a back-off model over a vocabulary of V ids, with vectorised lookups.

    index_folder: where a probing index built on first use is written (as `index_{n}.npy`,
    then memory-mapped); None keeps it in memory. `sources` names the file each array was
    mapped from (a checkpoint links those instead of writing them again).
    """

    def __init__(
        self,
        orders: list[OrderTable],
        vocab_size: int,
        support: np.ndarray,
        *,
        bos_id: int,
        lower: str = "recursive",
        unseen_context_logbackoff: float = 0.0,
        index_folder: Path | None = None,
    ):
        self.orders: list[OrderTable] = []
        self._indexes: list[ProbingIndex | None] = []  # order 1 needs none: its ids are the words
        self.vocab_size = vocab_size
        for table in orders:
            self.append(table)
        self.support = support  # (V,) bool: ids that can be predicted
        self.log_uniform = -np.log(max(int(np.count_nonzero(support)), 1))
        self.bos_id = bos_id
        self.lower = lower
        self.unseen_context_logbackoff = unseen_context_logbackoff
        self.index_folder = index_folder
        self.build_memory = BUILD_MEMORY  # what building one hash index may hold (a fit sets its limit)
        self.sources: dict[str, Path] = {}
        self._index_data: dict[str, bytes] = {}

    @property
    def order(self) -> int:
        return len(self.orders)

    def append(self, table: OrderTable) -> None:
        """Add the next order's table (its hash index is built when first needed)."""
        self.orders.append(table)
        self._indexes.append(None)

    def index(self, n: int) -> ProbingIndex:
        """The probing index of order n >= 2: mapped from its file, else built (and written to
        index_folder when there is one)."""
        found = self._indexes[n - 1]
        if found is None:
            keys = self.orders[n - 1].keys
            name = f"index_{n}"
            if name in self.sources or name in self._index_data:
                stored = (open_array(self.sources[name]) if name in self.sources
                          else np.load(io.BytesIO(self._index_data[name]), allow_pickle=False))
                try:
                    found = ProbingIndex(keys, stored)
                except ValueError as error:
                    raise CheckpointError(f"{array_file(name)}: {error}") from None
            elif self.index_folder is not None:
                path = Path(self.index_folder) / array_file(name)
                with replacing(path) as temporary:
                    write_index(temporary, keys, self.build_memory)
                self.sources[name] = path
                found = ProbingIndex(keys, open_array(path))
            else:
                found = ProbingIndex(keys)
            self._indexes[n - 1] = found
        return found

    def index_slots(self, n: int) -> np.ndarray:
        return self.index(n).slots

    def build_indexes(self) -> None:
        """Build every order's index not built yet, one after another, one order's freed arrays
        serving the next's (external_sort.reused_memory). (Two orders at a time on two threads
        ran slower: 11.5 s against 8.0-9.5 s for a 100M-word KN-5, each build's windows halved.)"""
        with reused_memory():
            for n in range(2, self.order + 1):
                self.index(n)

    @classmethod
    def load(cls, folder: Path, order: int, vocab_size: int, *, bos_id: int, lower: str = "recursive",
             files: dict[str, Path] | None = None, index_folder: Path | None = None):
        """Contract C-3's tables memory-mapped from .npy files: `folder`/NAME.npy, or the paths
        `files` gives by NAME (a checkpoint's). Returns (tables, raw counts per order)."""
        def source(name):
            if files is None:
                return Path(folder) / array_file(name)
            if array_file(name) not in files:
                raise CheckpointError(f"the checkpoint has no {array_file(name)} (order {order} needs it)")
            value = files[array_file(name)]
            return value if isinstance(value, (bytes, bytearray)) else Path(value)

        def read(value):
            if isinstance(value, (bytes, bytearray)):
                try:
                    return np.load(io.BytesIO(value), allow_pickle=False)
                except ValueError as error:
                    raise CheckpointError(f"an n-gram table is not a .npy array ({error})") from None
            return open_array(value)

        orders, counts, sources = [], [], {}
        for n in range(1, order + 1):
            fields = {}
            for field in (*TABLE_FIELDS, "count"):
                sources[f"{field}_{n}"] = source(f"{field}_{n}")
                fields[field] = read(sources[f"{field}_{n}"])
            sizes = {field: values.shape for field, values in fields.items()}
            if len(set(sizes.values())) != 1 or len(sizes["keys"]) != 1:
                raise CheckpointError(f"the order-{n} tables disagree in length: {sizes}")
            if fields["keys"].dtype != np.int64:
                raise CheckpointError(f"keys_{n}.npy holds {fields['keys'].dtype}, not int64 keys")
            orders.append(OrderTable(*(fields[field] for field in TABLE_FIELDS)))
            counts.append(fields["count"])
        for name in ("support", "scalars"):
            sources[name] = source(name)
        support = np.array(read(sources["support"]), dtype=bool)
        scalars = read(sources["scalars"])
        if support.shape != (vocab_size,) or scalars.size < 1:
            raise CheckpointError(f"support.npy has {support.size} entries for a vocabulary of {vocab_size}")
        for n in range(2, order + 1):
            name = array_file(f"index_{n}")
            if files is not None and name in files:
                sources[f"index_{n}"] = source(f"index_{n}")
            elif files is None and (Path(folder) / name).is_file():
                sources[f"index_{n}"] = Path(folder) / name
        tables = cls(orders, vocab_size, support, bos_id=bos_id, lower=lower,
                     unseen_context_logbackoff=float(scalars[0]), index_folder=index_folder)
        tables.sources = {name: value for name, value in sources.items() if isinstance(value, Path)}
        tables._index_data = {name: value for name, value in sources.items()
                              if name.startswith("index_") and not isinstance(value, Path)}
        return tables, counts

    # ---- lookups -------------------------------------------------------------------------

    def lookup(self, n: int, context_ids: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Ids in order n of the n-grams (context, word), -1 where absent or context is -1."""
        if n == 1:
            return np.asarray(words, dtype=np.int64)
        # Keys are >= 0, so the query -1 (an unseen context) never matches.
        query = np.where(context_ids >= 0, context_ids * self.vocab_size + words, -1)
        return self.index(n).find(query)

    def gram_ids(self, tokens: np.ndarray, position: np.ndarray) -> list[np.ndarray]:
        """ids[n - 1][i] = id of the n-gram ending at position i (-1 if unseen or crossing a line)."""
        ids = [tokens]
        for n in range(2, self.order + 1):
            # The (n-1)-gram ending just before i is its context, if the n-gram fits in the line.
            context = np.concatenate([[-1], np.where(position[1:] >= n - 1, ids[-1][:-1], -1)])[: tokens.size]
            ids.append(self.lookup(n, context, tokens))
        return ids

    # ---- scoring -------------------------------------------------------------------------

    # ---- scoring -------------------------------------------------------------------------

    def score_lines(self, flat: np.ndarray, lengths: np.ndarray, eos_id: int) -> np.ndarray:
        """log P of every token and end-of-line of lines given as flat ids and lengths."""
        if self.lower == "recursive" and not self.unseen_context_logbackoff:
            return self.score_targets(*line_targets(flat, lengths, eos_id, self.bos_id))
        tokens, position = NGramCounts.pad(np.asarray(flat, dtype=np.int64), lengths, self.bos_id, eos_id)
        return self._score_padded(tokens, position)

    def score_stream(self, ids: np.ndarray) -> np.ndarray:
        """log P of every token of one stream read from <s> (no end of line)."""
        ids = np.asarray(ids)
        if self.lower == "recursive" and not self.unseen_context_logbackoff:
            return self.score_targets(*stream_targets(ids, self.bos_id))
        tokens, position = NGramCounts.pad(ids.astype(np.int64), np.array([ids.size]), self.bos_id, None)
        return self._score_padded(tokens, position)

    def score_targets(self, targets: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """The back-off scorer of normalised recursive tables (the ARPA reading), over two
        threads for big batches: each half gets the N-1 targets before it as context (an
        n-gram's ids only depend on the N-1 positions before it), numpy releasing the GIL."""
        size, overlap = targets.size, self.order - 1
        for n in range(2, self.order + 1):
            self.index(n)  # built (once) before the threads need it
        if size < PARALLEL_POSITIONS or (os.cpu_count() or 1) < 2:
            return self._score_targets(targets, previous)
        global _POOL
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ngram-score")
        middle = size // 2
        start = max(middle - overlap, 0)
        second = _POOL.submit(self._score_targets, targets[start:], previous[start:])
        first = self._score_targets(targets[:middle], previous[:middle])
        return np.concatenate([first, second.result()[middle - start :]])

    def _score_targets(self, targets: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """log P(target | the tokens before it) at every position, Katz's back-off recursion
        (Katz 1987, eq. 7-8; Heafield 2011, sec. 2) read from the top order down:

            log P = log p_h(w_h | ...) + sum over m = h .. N-1 of log gamma_m(context of length m)

        where h is the highest order whose n-gram ending here was seen and gamma_m is 0 where the
        context of length m was never seen. The n-gram ids of order n are looked up only at the
        positions whose context (the (n-1)-gram ending just before) was found, so each order works
        on fewer positions than the one below: arrays of positions, not masks over all of them.
        """
        size, vocab = targets.size, self.vocab_size
        result = self.orders[0].logprob[targets].astype(np.float64)  # order 1 covers every word
        if self.order == 1 or size == 0:
            return result
        hit_order = np.ones(size, dtype=np.int8)
        contexts = []  # per order n >= 2: (positions, context rows of order n-1) that were looked up
        positions, context_rows = None, previous  # order 2: every position, context = previous token
        for n in range(2, self.order + 1):
            words = targets if positions is None else targets[positions]
            query = np.multiply(context_rows, vocab, dtype=np.int64)
            query += words
            rows = self.index(n).find_valid(query)
            found = np.flatnonzero(rows >= 0)
            found_rows = rows[found]
            found_positions = found if positions is None else positions[found]
            result[found_positions] = self.orders[n - 1].logprob[found_rows]
            hit_order[found_positions] = n
            contexts.append((positions, context_rows))
            # The n-gram found at position i is the context of the (n+1)-gram ending at i + 1.
            positions, context_rows = found_positions + 1, found_rows
            if positions.size and positions[-1] >= size:
                positions, context_rows = positions[:-1], context_rows[:-1]
        for m, (positions, context_rows) in enumerate(contexts, start=1):
            backoff = self.orders[m - 1].logbackoff
            if positions is None:  # order 1 contexts: every position
                result += np.where(hit_order <= m, backoff[context_rows], 0.0)
                continue
            chosen = np.flatnonzero(hit_order[positions] <= m)
            result[positions[chosen]] += backoff[context_rows[chosen]]
        return result

    def _score_padded(self, tokens: np.ndarray, position: np.ndarray) -> np.ndarray:
        """log P(tokens[i] | its line up to i) for every position i with position[i] > 0, on the
        padded layout of NGramCounts.pad: the general scorer (every smoothing).

        Walks down from the highest order: a position takes the first order whose n-gram was
        seen, plus the back-off weights of the contexts it passed on the way. Every array below
        covers positions 1.. (slices, not copies; the <s> among them are dropped at the end),
        updated whole with np.where (masked indexing costs several times more at these sizes);
        an id of -1 reads the last table entry, always under a mask that discards it.
        """
        ids = self.gram_ids(tokens, position)
        depth = position[1:]  # an n-gram ending here lies inside the line iff depth >= n - 1
        result = np.zeros(depth.size)
        accumulated = np.zeros(depth.size)
        pending = np.ones(depth.size, dtype=bool)
        for n in range(self.order, 1, -1):
            gram = ids[n - 1][1:]  # >= 0 only if its context was seen and it fits the line
            hit = pending & (gram >= 0)
            result = np.where(hit, accumulated + gather(self.orders[n - 1].logprob, gram), result)
            pending &= gram < 0
            context = ids[n - 2][:-1]
            lower_table = self.orders[n - 2]
            seen = pending & (context >= 0)
            if self.lower == "uniform":
                # A context with continuations gives unseen words gamma(h) / V; one without falls through.
                usable = seen & gather(lower_table.is_context, context)
                backed = accumulated + gather(lower_table.logbackoff, context) + self.log_uniform
                result = np.where(usable, backed, result)
                pending &= ~usable
            else:
                accumulated += np.where(seen, gather(lower_table.logbackoff, context), 0.0)
                if self.unseen_context_logbackoff:
                    unseen = pending & (context < 0) & (depth >= n - 1)
                    accumulated += np.where(unseen, self.unseen_context_logbackoff, 0.0)
        # Order 1 has an entry for every word of the vocabulary.
        result = np.where(pending, accumulated + self.orders[0].logprob[tokens[1:]], result)
        return result[depth > 0]

    def next_logprobs(self, history: np.ndarray) -> np.ndarray:
        """log P(. | history) over the whole vocabulary; history starts with <s>."""
        history = np.asarray(history, dtype=np.int64)
        history = history[max(0, len(history) - (self.order - 1)) :] if self.order > 1 else history[:0]
        dist = self.orders[0].logprob.astype(np.float64)  # float32 tables, float64 sums
        if self.lower == "uniform":
            return self._uniform_backed(history, dist)
        for n in range(2, min(self.order, len(history) + 1) + 1):
            context = self.context_id(history[-(n - 1) :])
            if context < 0:
                dist += self.unseen_context_logbackoff
                continue
            dist += self.orders[n - 2].logbackoff[context]
            words, logprob = self.continuations(n, context)
            dist[words] = logprob
        return dist

    def _uniform_backed(self, history: np.ndarray, dist: np.ndarray) -> np.ndarray:
        for n in range(min(self.order, len(history) + 1), 1, -1):
            context = self.context_id(history[-(n - 1) :])
            if context >= 0 and self.orders[n - 2].is_context[context]:
                backed = self.orders[n - 2].logbackoff[context] + self.log_uniform
                dist = np.where(self.support, backed, -np.inf)
                words, logprob = self.continuations(n, context)
                dist[words] = logprob
                return dist
        return dist

    def context_id(self, gram: np.ndarray) -> int:
        """Id of a token sequence in the table of its own order, or -1 if it was never seen."""
        current = int(gram[0])
        for n in range(2, len(gram) + 1):
            current = int(self.lookup(n, np.array([current]), np.array([gram[n - 1]]))[0])
            if current < 0:
                return -1
        return current

    def continuations(self, n: int, context: int) -> tuple[np.ndarray, np.ndarray]:
        """Words seen after context (an id of order n-1) and their log P at order n."""
        table = self.orders[n - 1]
        lo, hi = np.searchsorted(table.keys, [context * self.vocab_size, (context + 1) * self.vocab_size])
        return table.keys[lo:hi] % self.vocab_size, table.logprob[lo:hi]

    def row_tokens(self, n: int, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) token ids of the given rows of order n, read down the context rows
        (only the rows asked for are touched: a memory-mapped model stays on disk)."""
        rows = np.asarray(rows, dtype=np.int64)
        columns = []
        for m in range(n, 1, -1):
            rows, word = np.divmod(self.orders[m - 1].keys[rows], self.vocab_size)
            columns.append(word)
        columns.append(self.orders[0].keys[rows])
        return np.stack(columns[::-1], axis=1) if rows.size else np.zeros((0, n), dtype=np.int64)
