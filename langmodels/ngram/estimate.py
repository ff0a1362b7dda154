"""Estimating an n-gram model within a memory limit: lmplz's pipeline, with numpy on blocks.

Heafield, Pouzyrevsky, Clark & Koehn (2013), "Scalable modified Kneser-Ney language model
estimation", estimate in streaming passes over sorted n-grams that spill to disk. The same stages
here, each working on blocks whose size follows from the memory limit (external_sort.py):

1. Counting. The corpus is cut into blocks of padded positions (``<s> w.. </s>`` per line, or
   one stream). For order n, every position whose n-gram fits in its line gets the key
   ``row of its first n-1 tokens in order n-1 * V + last token``; a block's keys are sorted and
   run-length counted into a sorted run (the run also keeps, per key, the row of its last n-1
   tokens in order n-1: the suffix). Runs are k-way merged into order n's table, sorted by key,
   i.e. in lexicographic order of the words, and each position learns its row in that table
   (what order n+1 builds its keys from). A block's sort may be split by key range over threads
   (external_sort.count_keys); no block exceeds MAX_BLOCK positions.
2. Adjusted counts (Kneser-Ney): a lower-order n-gram's count is its number of distinct left
   extensions, counted from order n+1's suffix rows, except for n-grams starting with <s>,
   which keep their raw count. Then the count-of-counts n_1..n_4 of every order, and the
   discounts (Chen & Goodman 1998, eq. 26) or the estimator's other order parameters.
3. Initial probabilities and interpolation: one pass over each order's rows, lowest order first,
   in slices cut at context boundaries: per-context sums (ContextStats), alpha and gamma from the
   estimator (smoothing.py), and P = alpha + gamma * P_lower(suffix) (Chen & Goodman 1998, eq. 1).
4. Pruning (lmplz's --prune and --limit_vocab_file): an n-gram of order n >= 2 whose raw count
   is at or below order n's threshold, or any n-gram that contains a word outside the allowed
   vocabulary (<unk>, <s>, </s> always allowed), is dropped, and with it every n-gram it is the
   context of; its alpha goes to its context's gamma, so every distribution still sums to one
   (lmplz's initial_probabilities adds the pruned adjusted counts to gamma's numerator: the same
   thing). Discounts come from the unpruned counts, as lmplz's.
5. The tables of contract C-3 (keys, log-probabilities, log back-offs, is_context, counts per
   order, the support and the scalars) are written as .npy files, one slice at a time. Every
   quantity is computed in float64 and the logs are rounded once to float32 (C-3, as KenLM
   stores them) as each slice is written, so a spilled estimation equals an in-memory one bit
   for bit.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .external_sort import (
    Column,
    NpyWriter,
    Workspace,
    count_keys,
    gather,
    merge_runs,
    reused_memory,
    running_count,
    slice_reader,
)
from .smoothing import ContextStats, Smoothing
from .tables import FIELD_DTYPES

TABLE_FLOAT = FIELD_DTYPES["logprob"]  # float32: the tables' log-probabilities and back-offs

# Peak bytes per corpus position while one block is counted (keys, sort order, sorted keys,
# inverse, context and suffix ids, tokens), and per n-gram row while a slice is estimated.
BYTES_PER_POSITION = 112
BYTES_PER_ROW = 224
# Positions per block at most, whatever the limit: past a few million, sorting and scattering in
# larger arrays ran slower per position (cache misses, page faults) than merging more runs.
MAX_BLOCK = 1 << 23
# The share of the limit the stages size their blocks by. Freed numpy blocks are not all handed
# back to the system (glibc keeps freed heap and arena memory for reuse, fragmented), so the
# process's resident memory runs above what the live arrays hold: measured on 15M and 100M words
# (benchmarks/ngram_scale.py), sizing by the whole limit peaked at 1.3-1.55x it.
WORKING_SHARE = 0.5
SPECIAL_WORDS = 3  # <unk>, <s>, </s> (ids 0-2, as lmplz's) are never pruned


@dataclass
class Estimate:
    """What the estimation wrote, and the facts the model keeps."""

    folder: Path
    sizes: list[int]  # rows per order
    vocab_size: int
    support: np.ndarray
    kept_words: np.ndarray | None  # ids of the words kept by limit_vocab (ascending), or None
    unseen_context_logbackoff: float = 0.0
    blocks: int = 1
    spilled_bytes: int = 0


class LinePositions:
    """The ascending positions f(i) = offsets[i + shift] - offsets[0] + step * i + lead of lines
    i = 0..count-1 in the padded layout, found for a range of positions without an entry per line
    in memory: every STRIDE-th one is kept, the others are read from the offsets when needed."""

    STRIDE = 4096

    def __init__(self, read_offsets, count: int, *, step: int, lead: int = 0, shift: int = 0):
        self.read, self.count, self.step, self.lead, self.shift = read_offsets, count, step, lead, shift
        self.base = int(read_offsets(0, 1)[0])
        sampled = np.unique(np.append(np.arange(0, count, self.STRIDE), count - 1)) if count else np.zeros(0, int)
        self.sampled = sampled
        self.sample = np.array([self.values(int(i), int(i) + 1)[0] for i in sampled], dtype=np.int64)

    def values(self, lo: int, hi: int) -> np.ndarray:
        """f(lo), ..., f(hi - 1)."""
        offsets = self.read(lo + self.shift, hi + self.shift).astype(np.int64)
        return offsets - self.base + self.step * np.arange(lo, hi, dtype=np.int64) + self.lead

    def around(self, start: int, stop: int) -> tuple[int, np.ndarray]:
        """(lo, f(lo..hi-1)) for a range of lines holding the last line with f <= start (if any)
        and every line up to the first with f >= stop (if any)."""
        if not self.count:
            return 0, np.zeros(0, dtype=np.int64)
        j0 = max(int(np.searchsorted(self.sample, start, side="right")) - 1, 0)
        j1 = min(int(np.searchsorted(self.sample, stop, side="left")), self.sampled.size - 1)
        lo, hi = int(self.sampled[j0]), int(self.sampled[j1]) + 1
        return lo, self.values(lo, hi)


class PaddedCorpus:
    """The training ids laid out as ``<s> w.. </s>`` per line, read one block of positions at a
    time from the flat ids and the line offsets (contract C-2), holding one number per 4096 lines.

    With eos_id None the text is one stream, ``<s>`` once and then the lines' ids, each line
    followed by `separator` when one is given (</s> for words, the newline character for
    characters; after the last line only when `final`), so that a stream is never held whole.
    """

    def __init__(self, flat, offsets, bos_id: int, eos_id: int | None, order: int, vocab_size: int, *,
                 separator: int | None = None, final: bool = True):
        self.text = slice_reader(flat)
        read_offsets = slice_reader(offsets)
        n_lines = len(offsets) - 1
        self.bos_id, self.eos_id, self.order = bos_id, eos_id, order
        self.dtype = np.int32 if vocab_size < 2**31 else np.int64
        self.separator = None if eos_id is not None else separator
        first, last = (int(x) for x in (read_offsets(0, 1)[0], read_offsets(n_lines, n_lines + 1)[0]))
        if self.separator is not None:  # one line: <s>, then each line's ids and a separator after it
            n_separators = n_lines if final else max(n_lines - 1, 0)
            # line i's separator follows <s>, the ids of lines 0..i and the i separators before it
            self.separators = LinePositions(read_offsets, n_separators, step=1, lead=1, shift=1)
            self.size = 1 + last - first + n_separators
            self.text_base = first
        else:
            self.separators = None
            self.lines = LinePositions(read_offsets, n_lines + 1, step=1 if eos_id is None else 2)
            self.size = int(self.lines.values(n_lines, n_lines + 1)[0])

    def line_starts(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Where the lines overlapping [start, stop) start and end, and the offset in the flat
        ids of the first one's text."""
        if self.separators is not None:  # one line, from 0 to the end
            return np.array([0]), np.array([self.size]), self.text_base
        lo, starts = self.lines.around(start, stop)
        first = int(np.searchsorted(starts, start, side="right")) - 1
        last = int(np.searchsorted(starts, stop, side="left"))
        text_start = int(starts[first]) - self.lines.step * (lo + first) + self.lines.base
        return starts[first:last], starts[first + 1 : last + 1], text_start

    def block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, depth) of positions [start, stop): depth = min(offset from the line's <s>, order)."""
        line_start, line_end, text_start = self.line_starts(start, stop)
        size = stop - start
        tokens = np.empty(size, dtype=self.dtype)
        depth = np.full(size, self.order, dtype=np.int8)
        body = np.ones(size, dtype=bool)
        for k in range(self.order):  # the first positions of each line: their depth is their offset
            at = line_start + k
            at = at[(at >= start) & (at < stop) & (at < line_end)] - start
            depth[at] = k
            if k == 0:
                tokens[at] = self.bos_id
                body[at] = False
        skipped = max(start - int(line_start[0]) - 1, 0)  # positions of the first line before the block
        if self.eos_id is not None:
            at = line_end - 1
            at = at[(at >= start) & (at < stop)] - start
            tokens[at] = self.eos_id
            body[at] = False
            skipped = min(skipped, int(line_end[0] - line_start[0]) - 2)  # the </s> holds no id
        elif self.separators is not None:
            lo, near = self.separators.around(start, stop)
            before = lo + int(np.searchsorted(near, start))  # separators before the block
            at = near[(near >= start) & (near < stop)] - start
            tokens[at] = self.separator
            body[at] = False
            skipped -= before  # they are not ids of the text
        # The body positions, in order, hold one contiguous stretch of the flat ids.
        text_start += skipped
        n_body = int(np.count_nonzero(body))
        tokens[body] = self.text(text_start, text_start + n_body)
        return tokens, depth


@dataclass
class OrderColumns:
    """One order's n-grams in key order: keys, raw counts, suffix rows (None for order 1)."""

    keys: Column
    count: Column
    suffix: Column | None

    def __len__(self):
        return len(self.keys)


def _drop(columns) -> None:
    for column in columns:
        if column is not None:
            column.drop()


def _bar(total, desc, progress, unit="block"):
    return tqdm(total=total, desc=desc, unit=unit, disable=True if progress is False else None,
                leave=False, file=sys.stderr)


class Estimator:
    """One estimation: see the module docstring for the stages."""

    def __init__(self, *, order: int, vocab_size: int, bos_id: int, eos_id: int | None, smoothing: Smoothing,
                 support: np.ndarray, memory: int, tmp_dir=None, prune=None, allowed=None, threads: int = 2,
                 progress=None):
        self.order = order
        self.V = vocab_size
        self.bos_id, self.eos_id = bos_id, eos_id
        self.smoothing = smoothing
        self.allowed = None if allowed is None else np.asarray(allowed, dtype=bool).copy()
        if self.allowed is not None:
            self.allowed[:SPECIAL_WORDS] = True
            self.allowed[~np.asarray(support, dtype=bool)] = True  # pad, mask: never predicted, kept as rows
        self.support = np.asarray(support, dtype=bool) & (True if self.allowed is None else self.allowed)
        self.support_size = int(self.support.sum())
        self.prune = list(prune) if prune is not None else [0] * order
        self.pruning = self.allowed is not None or any(self.prune)
        memory = int(memory * WORKING_SHARE)  # the rest: what the allocator keeps of freed blocks
        self.memory = memory
        self.threads = max(1, int(threads))
        self.count_type = np.int64  # count() narrows it to what the corpus's positions need
        self.progress = progress
        self.workspace = Workspace(memory, tmp_dir, resident_share=0.25)
        self.writers: list[NpyWriter] = []  # the table files being written (write), removed on failure
        self.slice_rows = max(memory // (2 * BYTES_PER_ROW), 1024)  # half the limit: one slice's work
        self.gather_budget = max(memory // 8, 1 << 16)

    # ---- 1. counting -----------------------------------------------------------------------

    def count(self, corpus: PaddedCorpus) -> list[OrderColumns]:
        """Counting (stage 1). For order n, the positions where an n-gram ends (depth >= n - 1)
        are a subset of those of order n - 1, and the n-gram ending at position p has as context
        the (n-1)-gram ending at p - 1, the element just before p in order n - 1's list. Per block,
        only each listed position's row in the current order is kept between orders (as its row
        in the block's run and the merge's map from run rows to table rows); the tokens
        and depths are read again from the corpus (the flat ids: 4 bytes a position, read from
        the page cache) rather than written to and read back from the spill folder."""
        ws, V = self.workspace, self.V
        # Every count (raw, adjusted or continuation) is at most the corpus's positions.
        self.count_type = np.int32 if corpus.size < 2**31 else np.int64
        per_block = max(min(self.memory // (2 * BYTES_PER_POSITION), MAX_BLOCK), 256)  # half the limit
        bounds = [(s, min(s + per_block, corpus.size)) for s in range(0, corpus.size, per_block)]
        self.blocks = len(bounds)
        unigrams = np.zeros(V, dtype=np.int64)
        with _bar(len(bounds), "counting 1-grams", self.progress) as bar:
            for start, stop in bounds:
                token, depth = corpus.block(start, stop)
                unigrams += np.bincount(token[depth > 0], minlength=V)  # <s> is context only
                bar.update()
        orders = [OrderColumns(Column.of(ws, np.arange(V, dtype=np.int64), "keys"),
                               Column.of(ws, unigrams.astype(self.count_type), "count"), None)]
        # Per block, the rows in order n-1 of its listed positions: (inverse, row_of) columns, the
        # row of each position in its block's run and the merged row of each run entry (None: one
        # run, the run's rows are the table's), composed when order n reads them; not written out.
        rows: list[tuple[Column, Column | None] | None] = [None] * len(bounds)
        pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        indexes = np.arange(min(per_block, corpus.size), dtype=np.int64)  # count_keys' packing, kept
        try:
            for n in range(2, self.order + 1):
                carry = -1  # row in order n-1 of the last listed position of the previous block
                runs, inverses = [], []
                with _bar(len(bounds), f"counting {n}-grams", self.progress) as bar:
                    for b, (start, stop) in enumerate(bounds):
                        token, depth = corpus.block(start, stop)
                        if rows[b] is None:  # order 2: every position is listed, its row is its token
                            previous = token
                        else:
                            listed = depth >= n - 2
                            token, depth = token[listed], depth[listed]
                            inverse, row_of = rows[b]
                            previous = inverse.read() if row_of is None else row_of.read()[inverse.read()]
                            _drop(rows[b])
                        last = int(previous[-1]) if previous.size else -1
                        where = np.flatnonzero(depth >= n - 1)  # where an n-gram fits in its line
                        del depth
                        keys = previous[where - 1].astype(np.int64)  # the context ends one position before
                        if where.size and where[0] == 0:
                            keys[0] = carry  # ... in the previous block
                        carry = last
                        keys *= V
                        keys += token[where]
                        del token
                        unique, counts, first, inverse = count_keys(keys, pool, self.threads, indexes)
                        del keys
                        # A block's counts fit in int32 (MAX_BLOCK positions); the merge sums them in int64.
                        runs.append((Column.of(ws, unique, "run-keys"),
                                     Column.of(ws, counts.astype(np.int32), "run-counts"),
                                     Column.of(ws, previous[where[first]], "run-suffix")))
                        del previous, unique, counts, first, where
                        inverses.append(Column.of(ws, inverse, "inverse"))
                        del inverse
                        bar.update()
                if len(runs) == 1:
                    keys, counts, suffix = runs[0]
                    counts = Column.of(ws, counts.read().astype(self.count_type), "count")
                    runs[0][1].drop()
                    rows = [(inverses[0], None)]  # one run: a position's row is its key's row in the run
                else:
                    keys, counts, suffix, rows_of_runs = merge_runs(ws, runs, self.memory // 2, self.count_type,
                                                                    pool=pool)
                    for columns in runs:
                        _drop(columns)
                    rows = list(zip(inverses, rows_of_runs))
                orders.append(OrderColumns(keys, counts, suffix))
        finally:
            if pool is not None:
                pool.shutdown()
        for pair in rows:
            _drop(pair or ())
        return orders

    # ---- 2. adjusted counts, count-of-counts, order parameters ----------------------------

    def continuation_counts(self, above: OrderColumns, size: int) -> Column:
        """N1+(. w): how many distinct rows of the order above have each row as their suffix."""
        out = self.workspace.column(self.count_type, "continuation")
        piece = max(self.gather_budget // 8, 1)
        for low in range(0, size, piece):
            high = min(low + piece, size)
            total = np.zeros(high - low, dtype=np.int64)
            for _, suffix in above.suffix.chunks(self.slice_rows):
                if low == 0 and high == size:
                    total += np.bincount(suffix, minlength=size)
                else:
                    inside = suffix[(suffix >= low) & (suffix < high)]
                    total += np.bincount(inside - low, minlength=high - low)
            out.append(total)
        return out.finish()

    def bos_rows(self, orders: list[OrderColumns]) -> list[tuple[int, int]]:
        """Per order, the rows [lo, hi) of the n-grams that start with <s>: rows are in
        lexicographic order, so they are one range, found from the range one order down."""
        ranges = [(self.bos_id, self.bos_id + 1)]
        for table in orders[1:]:
            lo, hi = ranges[-1]
            ranges.append((table.keys.searchsorted(lo * self.V), table.keys.searchsorted(hi * self.V)))
        return ranges

    def smoothing_counts(self, orders: list[OrderColumns]) -> list[Column]:
        """The counts the estimator works on: raw, or Kneser-Ney's adjusted counts."""
        if not self.smoothing.adjusted:
            return [table.count for table in orders]
        ranges = self.bos_rows(orders)
        adjusted = []
        with _bar(self.order - 1, "adjusting counts", self.progress, unit="order") as bar:
            for n in range(1, self.order):
                continuation = self.continuation_counts(orders[n], len(orders[n - 1]))
                lo, hi = ranges[n - 1]
                out = self.workspace.column(self.count_type, "adjusted")
                for start, values in continuation.chunks(self.slice_rows):
                    stop = start + values.size
                    values = values.copy()
                    a, b = max(lo, start), min(hi, stop)
                    if a < b:  # nothing precedes <s>: these keep their raw counts
                        values[a - start : b - start] = orders[n - 1].count.read(a, b)
                    out.append(values)
                continuation.drop()
                adjusted.append(out.finish())
                bar.update()
        return adjusted + [orders[-1].count]

    def prepare(self, counts: list[Column]) -> None:
        for n, column in enumerate(counts, start=1):
            n_k = np.zeros(5, dtype=np.int64)
            for _, values in column.chunks(self.slice_rows):
                n_k += np.bincount(np.minimum(values, 5), minlength=6)[:5]
            self.smoothing.prepare(n, n_k)

    # ---- 3-4. probabilities, pruning ---------------------------------------------------------

    def context_slices(self, keys: Column):
        """[start, stop) row slices of about slice_rows rows that never split a context."""
        start, size = 0, len(keys)
        while start < size:
            stop = min(start + self.slice_rows, size)
            if stop < size:
                context = int(keys.item(stop)) // self.V
                cut = keys.searchsorted(context * self.V)
                stop = cut if cut > start else keys.searchsorted((context + 1) * self.V)
            yield start, stop
            start = stop

    def probabilities(self, orders: list[OrderColumns], counts: list[Column]):
        """Per order: P of each row (float64), whether it is pruned, and per context of the
        order (a row one order down) its gamma and whether a continuation survived."""
        ws, V, smoothing = self.workspace, self.V, self.smoothing
        probs, pruned_columns, gammas, kept_sizes = [], [], [], []
        uniform = 1.0 / self.support_size
        for n, (table, count) in enumerate(zip(orders, counts), start=1):
            prob = ws.column(np.float64, "prob")
            pruned_out = ws.column(bool, "pruned") if self.pruning else None
            gamma_context = ws.column(np.int64, "gamma-context")
            gamma_value = ws.column(np.float64, "gamma")
            gamma_kept = ws.column(bool, "gamma-kept")
            kept_total = 0
            slices = list(self.context_slices(table.keys))
            lower_probs = None  # order n-1's P, read once when it fits the gather budget
            if n > 1 and smoothing.lower != "uniform" and probs[-1].nbytes <= self.gather_budget:
                lower_probs = probs[-1].read()
            with _bar(len(slices), f"estimating {n}-grams", self.progress, unit="slice") as bar:
                for start, stop in slices:
                    keys = table.keys.read(start, stop)
                    context, word = np.divmod(keys, V)
                    c = count.read(start, stop).astype(np.float64)
                    new = np.empty(keys.size, dtype=bool)
                    new[:1] = True
                    np.not_equal(context[1:], context[:-1], out=new[1:])
                    starts = np.flatnonzero(new)
                    segment = running_count(new) - 1
                    stats = ContextStats.of_segments(c, starts)
                    alpha = smoothing.alpha(c, stats, segment, n, self.support_size)
                    gamma = smoothing.gamma(stats, n, self.support_size)
                    if self.pruning:
                        pruned = self.pruned_rows(n, context, word, table.count.read(start, stop), pruned_columns)
                        # A pruned n-gram's alpha goes to its context's gamma (lmplz's normaliser).
                        gamma = gamma + np.add.reduceat(np.where(pruned, alpha, 0.0), starts)
                        kept_any = np.add.reduceat(~pruned, starts) > 0
                        pruned_out.append(pruned)
                        kept_total += int(np.count_nonzero(~pruned))
                    else:
                        kept_any = np.ones(starts.size, dtype=bool)
                        kept_total += keys.size
                    if n == 1 or smoothing.lower == "uniform":
                        lower = uniform
                    elif lower_probs is not None:
                        lower = lower_probs[table.suffix.read(start, stop)]
                    else:
                        lower = gather(probs[-1], table.suffix.read(start, stop), self.gather_budget)
                    backed = gamma[segment] * lower
                    p = alpha + backed if smoothing.interpolated else np.where(c > 0, alpha, backed)
                    if n == 1:
                        p = np.where(self.support, p, 0.0)
                    prob.append(p)
                    gamma_context.append(context[starts])
                    gamma_value.append(gamma)
                    gamma_kept.append(kept_any)
                    bar.update()
            probs.append(prob.finish())
            pruned_columns.append(pruned_out.finish() if pruned_out is not None else None)
            gammas.append((gamma_context.finish(), gamma_value.finish(), gamma_kept.finish()))
            kept_sizes.append(kept_total)
        return probs, pruned_columns, gammas, kept_sizes

    def pruned_rows(self, n, context, word, raw, pruned_columns) -> np.ndarray:
        """Rows dropped by limit_vocab or by order n's count threshold (never order 1's specials)."""
        pruned = np.zeros(word.size, dtype=bool) if self.allowed is None else ~self.allowed[word]
        if n == 1:
            return pruned
        pruned |= raw <= self.prune[n - 1]
        # Contexts ascend within a slice: read the lower order's flags over their range only.
        lower = pruned_columns[-1].read(int(context[0]), int(context[-1]) + 1)
        return pruned | lower[context - context[0]]

    # ---- 5. the tables -----------------------------------------------------------------------

    def write(self, folder: Path, orders, probs, pruned_columns, gammas, kept_sizes) -> Estimate:
        ws, V = self.workspace, self.V
        folder.mkdir(parents=True, exist_ok=True)
        word_map = None
        new_V = V
        if self.allowed is not None:
            word_map = np.cumsum(self.allowed) - 1
            new_V = int(self.allowed.sum())
        previous_rows = None  # order n-1's new row of each old row (-1: pruned), when pruning
        with _bar(self.order, "writing tables", self.progress, unit="order") as bar:
            for n in range(1, self.order + 1):
                table, prob = orders[n - 1], probs[n - 1]
                size = kept_sizes[n - 1]
                writers = {name: NpyWriter(folder / f"{name}_{n}.npy", dtype, size, ws.writer,
                                           ws.take_free_file(size * np.dtype(dtype).itemsize))
                           for name, dtype in
                           (("keys", np.int64), ("logprob", TABLE_FLOAT), ("logbackoff", TABLE_FLOAT),
                            ("is_context", bool), ("count", self.count_type))}
                self.writers = list(writers.values())  # discarded by `run` if this fails
                new_rows = ws.column(np.int64, "new-rows") if self.pruning else None
                next_row = 0
                above = gammas[n] if n < self.order else None
                cursor = 0
                for start, keys in table.keys.chunks(self.slice_rows):
                    stop = start + keys.size
                    p = prob.read(start, stop)
                    raw = table.count.read(start, stop)
                    is_context = np.zeros(keys.size, dtype=bool)
                    logbackoff = np.zeros(keys.size)
                    if above is not None:
                        end = above[0].searchsorted(stop)
                        rows = above[0].read(cursor, end) - start
                        gamma = above[1].read(cursor, end)
                        kept = above[2].read(cursor, end)
                        is_context[rows] = kept
                        with np.errstate(divide="ignore"):  # gamma = 0 (mle, uniform) is log 0 = -inf
                            logbackoff[rows[kept]] = np.log(gamma[kept])
                        cursor = end
                    with np.errstate(divide="ignore"):
                        logprob = np.log(p).astype(TABLE_FLOAT)  # computed in float64, rounded once
                    logbackoff = logbackoff.astype(TABLE_FLOAT)
                    if self.pruning:
                        keep = ~pruned_columns[n - 1].read(start, stop)
                        renumbered = np.full(keys.size, -1, dtype=np.int64)
                        renumbered[keep] = next_row + np.arange(int(keep.sum()))
                        next_row += int(keep.sum())
                        new_rows.append(renumbered)
                        context, word = np.divmod(keys[keep], V)
                        if word_map is not None:
                            word = word_map[word]
                        if n > 1 and context.size:  # contexts ascend: read their new rows over their range
                            lower = previous_rows.read(int(context[0]), int(context[-1]) + 1)
                            context = lower[context - context[0]]
                        keys = context * new_V + word
                        p_keep = (logprob[keep], logbackoff[keep], is_context[keep], raw[keep])
                    else:
                        p_keep = (logprob, logbackoff, is_context, raw)
                    writers["keys"].append(keys)
                    for name, values in zip(("logprob", "logbackoff", "is_context", "count"), p_keep):
                        writers[name].append(values)
                for writer in writers.values():
                    writer.close()
                if previous_rows is not None:
                    previous_rows.drop()
                previous_rows = new_rows.finish() if new_rows is not None else None
                bar.update()
        support = self.support if word_map is None else self.support[self.allowed]
        unseen = 0.0 if self.smoothing.normalised else float(np.log(getattr(self.smoothing, "backoff", 1.0)))
        for name, values in (("support", support), ("scalars", np.array([unseen], dtype=np.float64))):
            writer = NpyWriter(folder / f"{name}.npy", values.dtype, values.size)
            self.writers = [writer]
            writer.append(values)
            writer.close()
        return Estimate(folder, list(kept_sizes), new_V, support,
                        None if self.allowed is None else np.flatnonzero(self.allowed),
                        unseen_context_logbackoff=unseen, blocks=self.blocks,
                        spilled_bytes=ws.spilled_bytes)

    def run(self, corpus: PaddedCorpus, folder: Path) -> Estimate:
        with reused_memory():
            return self._run(corpus, folder)

    def _run(self, corpus: PaddedCorpus, folder: Path) -> Estimate:
        try:
            orders = self.count(corpus)
            counts = self.smoothing_counts(orders)
            self.prepare(counts)
            probs, pruned, gammas, kept = self.probabilities(orders, counts)
            return self.write(Path(folder), orders, probs, pruned, gammas, kept)
        except BaseException:  # a failure or Ctrl-C: no half-written table left in `folder`
            for writer in self.writers:
                writer.discard()
            raise
        finally:
            self.workspace.close()  # (reused_memory hands the freed memory back on leaving)


def estimate(flat, offsets, folder, *, order: int, vocab_size: int, bos_id: int, eos_id: int | None,
             smoothing: Smoothing, support: np.ndarray, memory: int, tmp_dir=None, prune=None, allowed=None,
             separator: int | None = None, final: bool = True, threads: int = 2, progress=None) -> Estimate:
    """Estimate an n-gram model of the lines flat[offsets[i]:offsets[i+1]] within `memory`
    bytes, writing contract C-3's tables into `folder`. eos_id None: the lines are one stream
    with no end marker, joined by `separator` if given (see PaddedCorpus)."""
    corpus = PaddedCorpus(flat, offsets, bos_id, eos_id, order, vocab_size, separator=separator, final=final)
    estimator = Estimator(order=order, vocab_size=vocab_size, bos_id=bos_id, eos_id=eos_id, smoothing=smoothing,
                          support=support, memory=memory, tmp_dir=tmp_dir, prune=prune, allowed=allowed,
                          threads=threads, progress=progress)
    return estimator.run(corpus, folder)
