"""ARPA back-off files (the format of SRILM and KenLM): the model's tables written and read.

An ARPA file lists, per order, ``log10 P(w | h)  h w  [log10 gamma(h w)]``. The back-off tables
(tables.py, contract C-3) hold exactly that in natural logs, so writing is a change of base, and
a file made by KenLM's lmplz or SRILM's ngram-count reads back into the same tables and is scored
by the same code as a model fitted here. This module knows the format and the tables only; the
model class that wraps read tables is ArpaLM (model.py).

Writing streams from the arrays a block of rows at a time and never formats a number or joins a
line in Python: each block's bytes are assembled in one uint8 buffer with array operations (the
words copied from one byte string of the vocabulary, the numbers written digit by digit with
9 significant digits for float32 tables and 17 for float64 ones, the counts that give back every
value exactly, IEEE 754-2008 sec. 5.12.2: float32 values in [1e-4, 10) in fixed notation without
trailing zeros, as lmplz writes them, the others in scientific notation), so a model of any size
is written in bounded memory at disk speed, by two forked processes that write their blocks in
place (forked_writer.py). Reading keeps float32 (contract C-3) for a file whose
numbers have at most 9 significant digits (lmplz's, ours from float32 tables), float64 otherwise.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from pathlib import Path

import numpy as np

from ..base import note
from ..checkpoint import replacing
from ..errors import ArpaFormatError, ConfigError, CorpusError
from .external_sort import pwrite_all, reused_memory
from .forked_writer import write_in_order
from .tables import BackoffTables, OrderTable

LN10 = math.log(10.0)
ARPA_ZERO = -99.0  # log10 of "never": how ARPA writers print a probability of zero
BLOCK_ROWS = 1 << 13  # n-grams formatted per block: its ~4 MB of index arrays stay in the cache
FLOAT32_DIGITS, FLOAT64_DIGITS = 9, 17  # significant digits for an exact decimal round trip


def _log10(natural: np.ndarray) -> np.ndarray:
    values = np.asarray(natural, dtype=np.float64) / LN10
    values[~np.isfinite(values)] = ARPA_ZERO
    return values


def digits_for(dtype) -> int:
    return FLOAT32_DIGITS if np.dtype(dtype).itemsize <= 4 else FLOAT64_DIGITS


def _group_table() -> np.ndarray:
    """The 4 ASCII digits of 0000..9999, one row each: numbers are written 4 digits a gather."""
    values = np.arange(10_000)
    return np.stack([values // 1000, values // 100 % 10, values // 10 % 10, values % 10], axis=1).astype(np.uint8) + 48


def _exponent_table() -> np.ndarray:
    """'e-99' .. 'e+99', row e + 99."""
    exponent = np.arange(-99, 100)
    size = np.abs(exponent)
    return np.stack([np.full(199, ord("e")), np.where(exponent < 0, ord("-"), ord("+")),
                     size // 10 + 48, size % 10 + 48], axis=1).astype(np.uint8)


_POW10 = 10.0 ** np.arange(-300, 309)  # a table: the float power of an array costs ~20x a gather
_POW10_WIDE = np.longdouble(10) ** np.arange(-300, 309).astype(np.longdouble)
# As uint32: one gather of 4-byte items (gathering rows of a (N, 4) uint8 array copies item by item).
_GROUPS, _EXPONENTS = _group_table().view(np.uint32).ravel(), _exponent_table().view(np.uint32).ravel()


def _trailing_zeros_table() -> np.ndarray:
    """How many trailing zeros each group 0000..9999 has (4 for 0000)."""
    values = np.arange(10_000)
    zeros = np.zeros(10_000, dtype=np.int64)
    for k in range(1, 5):
        zeros += values % 10**k == 0
    return zeros


_TRAILING_ZEROS = _trailing_zeros_table()
_GROUPS_THEN_EXPONENTS = np.concatenate([_GROUPS, _EXPONENTS])
FIXED_EXPONENTS = (-4, 0)  # float32 values in [1e-4, 10) are written -d.ddd or -0.0ddd (as lmplz's are)


def _float32_layout(mantissa: np.ndarray, exponent: np.ndarray, stop: np.ndarray):
    """format_numbers' pieces for 9 significant digits: the lead digit, the two groups of 4
    digits and the last item (the exponent, or in fixed notation the third group of decimals),
    and where `end` goes. In [1e-4, 10) the 12 decimals of the value are " -I." and three
    groups, trailing zeros dropped. The digits are split in float64 (every integer here is
    below 2^53 and each quotient is floored from a correctly rounded division: exact), about
    ten times faster than int64 division."""
    m = mantissa.astype(np.float64)
    lead = np.floor(m / 1e8)
    rest = m - lead * 1e8
    fixed = (exponent >= FIXED_EXPONENTS[0]) & (exponent <= FIXED_EXPONENTS[1])
    below_one = exponent < 0
    # Three groups of 4 digits as one integer: in fixed notation below 1 the value's 12 decimals
    # (all 9 digits shifted right); otherwise the 8 digits after the lead one, then 0000.
    source = np.where(fixed & below_one, m * _POW10[np.clip(exponent + 4, 0, 3) + 300], rest * 1e4)
    high = np.floor(source / 1e8)
    remainder = source - high * 1e8
    middle = np.floor(remainder / 1e4)
    low = (remainder - middle * 1e4).astype(np.int64)
    high, middle = high.astype(np.int64), middle.astype(np.int64)
    # The last item: the third group (fixed) or the exponent, from one table of both.
    scientific = _GROUPS_THEN_EXPONENTS[np.where(fixed, low, exponent + 10_099)]
    # Trailing zeros of the 12 decimals: those of the last group that is not 0000, and 4 per 0000 after it.
    last_group = np.where(low != 0, low, np.where(middle != 0, middle, high))
    trailing = _TRAILING_ZEROS[last_group] + np.where(low != 0, 0, np.where(middle != 0, 4, 8))
    stop = np.where(fixed, np.where(trailing < 12, 16 - trailing, 3), stop)  # a whole number ends before its point
    lead = np.where(below_one & fixed, 0.0, lead)
    return lead.astype(np.int64), [high, middle], scientific, stop


def format_numbers(values: np.ndarray, digits: int, end) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`values` (float64) with `digits` significant digits and the byte `end` (one, or one per
    value) after each, in a (B, W) uint8 matrix: number i is chars[i, start[i] : start[i] +
    length[i]], its `end` included. Returns (chars, start, length).

    With 9 digits (float32 tables) a value in [1e-4, 10), which is most log10 probabilities and
    back-offs, is written in fixed notation with its trailing zeros dropped (-2.03448117,
    -0.0570804603, 0), as lmplz writes them; every other value in scientific notation,
    d.ddd..e±XX. Both give every value back exactly."""
    values = np.asarray(values, dtype=np.float64)
    negative = np.signbit(values) & (values != 0)
    magnitude = np.abs(values)
    zero = magnitude == 0
    exponent = np.floor(np.log10(np.where(zero, 1.0, magnitude))).astype(np.int64)
    np.clip(exponent, -290, 290, out=exponent)
    # 17 digits of a float64 need a product rounded finer than float64's own: x87 extended
    # precision (64-bit significand) where numpy has it; 9 digits of a float32 are exact in float64.
    wide = digits > FLOAT32_DIGITS and np.finfo(np.longdouble).nmant > 52
    powers = _POW10_WIDE if wide else _POW10
    if wide:
        magnitude = magnitude.astype(np.longdouble)
    mantissa = np.rint(magnitude * powers[digits - 1 - exponent + 300]).astype(np.int64)
    for _ in range(2):  # log10 of a value near a power of ten can land one off: correct, then round again
        high, low = mantissa >= 10**digits, (mantissa < 10 ** (digits - 1)) & ~zero
        if not (high.any() or low.any()):
            break
        exponent += high.astype(np.int64) - low.astype(np.int64)
        mantissa = np.rint(magnitude * powers[digits - 1 - exponent + 300]).astype(np.int64)
    mantissa[zero], exponent[zero] = 0, 0
    np.clip(exponent, -99, 99, out=exponent)
    # Laid out as 4-byte items, so that each group of 4 digits and the exponent are one uint32
    # store: " -d." (a spare byte, then sign, lead digit, point), the (digits - 1) / 4 groups,
    # "e±XX", then `end` and 3 spare bytes.
    groups = (digits - 1) // 4
    items = np.empty((values.size, groups + 3), dtype=np.uint32)
    chars = items.view(np.uint8)  # (B, 4 * (groups + 3))
    stop = np.full(values.size, 4 * groups + 8, dtype=np.int64)  # where `end` goes
    if digits == FLOAT32_DIGITS:
        lead, digit_groups, scientific, stop = _float32_layout(mantissa, exponent, stop)
    else:
        lead, rest = np.divmod(mantissa, 10 ** (digits - 1))
        digit_groups = [rest // 10 ** (digits - 1 - 4 * (group + 1)) % 10_000 for group in range(groups)]
        scientific = _EXPONENTS[exponent + 99]
    for group, values_of_group in enumerate(digit_groups):
        items[:, 1 + group] = _GROUPS[values_of_group]
    items[:, groups + 1] = scientific
    chars[:, 1] = ord("-")
    chars[:, 2] = lead + 48
    chars[:, 3] = ord(".")
    chars[np.arange(values.size), stop] = end
    start = 2 - negative.astype(np.int64)  # a value that is not negative starts after the '-'
    return chars, start, stop + 1 - start


class _Words:
    """The vocabulary as one byte string: each word three times, followed by ' ', by a tab and
    by a newline, with the offset of each copy and the word's length (separator included)."""

    def __init__(self, tokens: list[str]):
        encoded = [token.encode("utf-8") for token in tokens]
        self.length = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) + 1
        starts = np.cumsum(self.length) - self.length
        total = int(self.length.sum())
        self.start = {sep: starts + i * total for i, sep in enumerate(b" \t\n")}
        self.blob = np.frombuffer(b"".join(b"".join(word + bytes([sep]) for word in encoded) for sep in b" \t\n"),
                                  dtype=np.uint8)
        self._buffer: np.ndarray | None = None  # each writing process has its own (forked_writer)

    def with_numbers(self, numbers: np.ndarray) -> np.ndarray:
        """The vocabulary's bytes followed by `numbers` (a block's formatted numbers), in a buffer
        kept from block to block: copying the vocabulary (MBs) for every block cost more than the block."""
        size = self.blob.size + numbers.size
        buffer = self._buffer
        if buffer is None or buffer.size < size:
            buffer = np.empty(max(size, 2 * (buffer.size if buffer is not None else 0)), dtype=np.uint8)
            buffer[: self.blob.size] = self.blob
            self._buffer = buffer
        buffer[self.blob.size : size] = numbers.ravel()
        return buffer


def _format_block(words: _Words, grams: np.ndarray, logprob10: np.ndarray, backoff10: np.ndarray,
                  has_backoff: np.ndarray, digits: int) -> np.ndarray:
    """The bytes of the lines ``logprob<TAB>w1 .. wn[<TAB>backoff]<NEWLINE>`` of a block.

    Each line is n + 2 pieces of known source and length (the probability with its tab, each
    word with the space, tab or newline after it, the back-off with its newline or nothing),
    so the whole block is one gather from the pieces' bytes (vocabulary and formatted numbers)."""
    rows, n = grams.shape
    chosen = np.flatnonzero(has_backoff)
    ends = np.full(rows + chosen.size, ord("\t"), dtype=np.uint8)
    ends[rows:] = ord("\n")  # a back-off ends its line
    numbers, start, size = format_numbers(np.concatenate([logprob10, backoff10[chosen]]), digits, ends)
    width = numbers.shape[1]
    blob = words.with_numbers(numbers)
    number_source = words.blob.size + np.arange(numbers.shape[0], dtype=np.int64) * width + start
    # A block where no line, or every line, has a back-off (the highest order: none) has the same
    # number of pieces on every line, and needs no pass to drop the empty back-off pieces.
    uniform = chosen.size in (0, rows)
    pieces = n + 2 if chosen.size else n + 1
    source = np.empty((rows, pieces), dtype=np.int64)
    length = np.empty((rows, pieces), dtype=np.int64) if uniform else np.zeros((rows, pieces), dtype=np.int64)
    source[:, 0], length[:, 0] = number_source[:rows], size[:rows]
    if n > 1:
        source[:, 1:n] = words.start[ord(" ")][grams[:, :-1]]
        length[:, 1:n] = words.length[grams[:, :-1]]
    last = grams[:, -1]
    if uniform:
        source[:, n] = words.start[ord("\t") if chosen.size else ord("\n")][last]
    else:
        source[:, n] = np.where(has_backoff, words.start[ord("\t")][last], words.start[ord("\n")][last])
    length[:, n] = words.length[last]
    if chosen.size:
        source[chosen, n + 1], length[chosen, n + 1] = number_source[rows:], size[rows:]
    source, length = source.ravel(), length.ravel()
    if not uniform:
        used = np.flatnonzero(length)
        source, length = source[used], length[used]
    if not source.size:
        return np.zeros(0, dtype=np.uint8)
    # The source index of every output byte: +1 along a piece, a jump where the next one starts.
    first = np.cumsum(length) - length  # where each piece starts in the output
    index = np.ones(int(first[-1] + length[-1]), dtype=np.int64)
    index[0] = source[0]
    index[first[1:]] = source[1:] - (source[:-1] + length[:-1]) + 1
    np.cumsum(index, out=index)
    return np.take(blob, index)


def check_writable(tables: BackoffTables, tokens: list[str], normalised: bool, smoothing: str) -> None:
    """The one-line refusals: ARPA holds normalised back-off models over whitespace-free words."""
    if tables.lower != "recursive" or not normalised:
        raise ConfigError(
            f"ARPA holds normalised back-off models only; {smoothing!r} cannot be written "
            "(use kneser-ney, witten-bell or absolute)"
        )
    joined = "\0".join(tokens)  # str.split() cuts at exactly the characters str.isspace() names
    if not all(tokens) or joined.split() != [joined]:
        raise ConfigError("ARPA words cannot contain whitespace: only word-level models can be written")


def write_tables(tables: BackoffTables, tokens: list[str], path, *, bos_id: int, workers: int | None = None) -> Path:
    """Write back-off tables over the vocabulary `tokens` as an ARPA file, atomically, streaming
    BLOCK_ROWS n-grams at a time from the (possibly memory-mapped) arrays; the blocks are made
    and written in order by `workers` forked processes (default: two, one where there is one
    core; forked_writer: threads would wait on each other for the interpreter lock between
    numpy's small calls)."""
    workers = min(os.cpu_count() or 1, 2) if workers is None else workers
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    words = _Words(tokens)
    unigram_rows = np.flatnonzero(np.asarray(tables.support) | (np.arange(len(tokens)) == bos_id))
    sizes = [unigram_rows.size] + [len(table.keys) for table in tables.orders[1:]]
    # Block j: order n from row `start`; an order's first block opens with its section title (an
    # order with no n-grams left by pruning has that block only).
    blocks = [(n, start) for n in range(1, tables.order + 1) for start in range(0, max(sizes[n - 1], 1), BLOCK_ROWS)]

    def block(j: int) -> np.ndarray:
        n, start = blocks[j]
        title = np.frombuffer(f"\n\\{n}-grams:\n".encode("ascii"), dtype=np.uint8) if start == 0 else None
        if start >= sizes[n - 1]:
            return title
        table = tables.orders[n - 1]
        if n == 1:
            rows = unigram_rows[start : start + BLOCK_ROWS]
            grams = rows[:, None]
        else:
            rows = np.arange(start, min(start + BLOCK_ROWS, sizes[n - 1]), dtype=np.int64)
            grams = tables.row_tokens(n, rows)
        logprob10 = _log10(table.logprob[rows])
        if n == 1:
            logprob10[rows == bos_id] = ARPA_ZERO  # <s> is context only
        backoff10 = np.asarray(table.logbackoff[rows], dtype=np.float64) / LN10
        has_backoff = np.asarray(table.is_context[rows], dtype=bool)
        digits = max(digits_for(table.logprob.dtype), digits_for(table.logbackoff.dtype))
        lines = _format_block(words, grams, logprob10, backoff10, has_backoff, digits)
        return lines if title is None else np.concatenate([title, lines])

    header = "\n".join(["\\data\\", *(f"ngram {n}={size}" for n, size in enumerate(sizes, start=1))]) + "\n"
    with replacing(target) as temporary, reused_memory():
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            start = pwrite_all(fd, header.encode("ascii"), 0)
            end = write_in_order(fd, start, len(blocks), block, workers=workers)
            pwrite_all(fd, b"\n\\end\\\n", end)
        finally:
            os.close(fd)
    return target


def write_arpa(model, path) -> Path:
    """Write a fitted back-off n-gram model (anything with `tables_` and a word tokenizer, e.g.
    NGramLM) as an ARPA file, atomically."""
    tables = model._check_tables()
    vocab = model.tokenizer.vocab
    check_writable(tables, vocab.tokens, model.is_normalised, model.smoothing)
    return write_tables(tables, list(vocab.tokens), path, bos_id=vocab.bos_id)


# ---- reading --------------------------------------------------------------------------------

UNKNOWN_MISSING_LOG10 = -100.0  # KenLM's config.unknown_missing_logprob: <unk>'s score where a file has none
_COUNT_LINE = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")


class _Lines:
    """The file's lines with their numbers (1-based), read as UTF-8 text; .gz files through gzip."""

    def __init__(self, path: Path):
        self.path = path
        self.number = 0
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            self.handle = opener(path, "rt", encoding="utf-8", newline=None)  # closed by close()
        except FileNotFoundError:
            raise CorpusError(f"no ARPA file at {path}") from None
        except IsADirectoryError:
            raise CorpusError(f"{path} is a folder, not an ARPA file") from None
        self.pending: str | None = None

    def error(self, problem: str, line: int | None = None) -> ArpaFormatError:
        return ArpaFormatError(f"{self.path}:{self.number if line is None else line}: {problem}")

    def next(self) -> str | None:
        """The next line without its end (None at the end of the file)."""
        if self.pending is not None:
            line, self.pending = self.pending, None
            self.number += 1
            return line
        try:
            line = self.handle.readline()
        except UnicodeDecodeError as error:
            raise self.error(f"not UTF-8 text (invalid byte at offset {error.start} of a block)",
                             self.number + 1) from None
        except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            raise self.error(f"cannot be read ({error})", self.number + 1) from None
        if not line:
            return None
        self.number += 1
        return line.rstrip("\r\n")

    def push_back(self, line: str) -> None:
        self.pending = line
        self.number -= 1

    def next_non_blank(self) -> str | None:
        while (line := self.next()) is not None and not line.strip():
            pass
        return line

    def close(self) -> None:
        self.handle.close()


def _read_sections(path: Path) -> tuple[list[list[str]], list[np.ndarray]]:
    """The entry lines of each \n-grams: section and their line numbers, after KenLM's checks of
    the layout (lm/read_arpa.cc): blank lines and # comments before \\data\\, one `ngram N=count`
    line per order from 1, each declared section present under its title with exactly the
    declared number of entries, then \\end\\ and nothing but blank lines after it."""
    lines = _Lines(path)
    try:
        line = lines.next()
        while line is not None and (not line.strip() or line.startswith("#")):
            line = lines.next()
        if line is None:
            raise lines.error("no \\data\\ header: the file is empty or only comments")
        if line.strip() != "\\data\\":
            raise lines.error(f"expected \\data\\ (an ARPA file), found {line.strip()[:60]!r}")
        declared = []
        while (line := lines.next()) is not None and line.strip() and not line.startswith("\\"):
            match = _COUNT_LINE.fullmatch(line.strip())
            if match is None:
                raise lines.error(f"malformed count line {line.strip()[:60]!r} (expected 'ngram N=count')")
            order, count = int(match.group(1)), int(match.group(2))
            if order != len(declared) + 1:
                raise lines.error(f"count line for order {order} where order {len(declared) + 1} was due "
                                  "(orders are declared 1, 2, 3, ...)")
            declared.append(count)
        if line is not None and line.startswith("\\"):
            lines.push_back(line)
        if not declared:
            raise lines.error("the \\data\\ header declares no 'ngram N=count' lines")
        if declared[0] == 0:
            raise lines.error("the header declares no unigrams (ngram 1=0)")
        sections, numbers = [], []
        for n, count in enumerate(declared, start=1):
            title = lines.next_non_blank()
            expected = f"\\{n}-grams:"
            if title is None:
                raise lines.error(f"the file ends before the {expected} section the header declares (cut short?)")
            if title.strip() == "\\end\\":
                raise lines.error(f"\\end\\ before the {expected} section the header declares")
            if title.strip() != expected:
                raise lines.error(f"expected {expected}, found {title.strip()[:60]!r}")
            entries, where = [], []
            while (line := lines.next()) is not None and line.strip() and not line.startswith("\\"):
                entries.append(line)
                where.append(lines.number)
            stop = lines.number  # the line that ended the section: a blank line, the next title, the last line
            if line is not None and line.startswith("\\"):
                lines.push_back(line)
            if len(entries) != count:
                raise lines.error(f"the {expected} section has {len(entries)} entries but the header declares "
                                  f"ngram {n}={count}" + (" (cut short?)" if line is None else ""), stop)
            sections.append(entries)
            numbers.append(np.array(where, dtype=np.int64))
        end = lines.next_non_blank()
        if end is None:
            raise lines.error("no \\end\\ after the last section (cut short?)")
        if end.strip() != "\\end\\":
            found = end.strip()[:60]
            if re.fullmatch(r"\\\d+-grams:", found):
                raise lines.error(f"a {found} section the header does not declare")
            raise lines.error(f"expected \\end\\, found {found!r}")
        trailing = lines.next_non_blank()
        if trailing is not None:
            raise lines.error(f"text after \\end\\: {trailing.strip()[:60]!r}")
    finally:
        lines.close()
    return sections, numbers


def _parse_section(path: Path, n: int, lines: list[str], numbers: np.ndarray, word_id: dict, highest: bool):
    """(log10 p, (G, n) word ids, log10 backoff) arrays of one section, every entry checked:
    n words, a finite log10 probability <= 0, a finite back-off (none but 0 at the highest
    order, as KenLM's reader), every word a unigram."""
    def error(index: int, problem: str) -> ArpaFormatError:
        return ArpaFormatError(f"{path}:{numbers[index]}: {problem}")

    rows = [line.split() for line in lines]
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero((widths != n + 1) & (widths != n + 2))
    if bad.size:
        raise error(bad[0], f"a {n}-gram entry needs a log10 probability, {n} word(s) and an optional back-off, "
                            f"found {lines[bad[0]].strip()[:60]!r}")
    logprob = _numbers(error, [row[0] for row in rows], "log10 probability")
    backoff = _numbers(error, [row[n + 1] if len(row) > n + 1 else "0" for row in rows], "back-off")
    # finite as the tables hold them (float32, as KenLM's): -1e40 is finite in float64 only
    with np.errstate(over="ignore"):
        logprob32, backoff32 = logprob.astype(np.float32), backoff.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(logprob32) | (logprob > 0))
    if bad.size:
        problem = "is positive" if np.isfinite(logprob32[bad[0]]) else "is not a finite 32-bit float"
        raise error(bad[0], f"log10 probability {rows[bad[0]][0]} {problem} (ARPA probabilities are finite "
                            "log10 values <= 0; -99 is zero)")
    bad = np.flatnonzero(~np.isfinite(backoff32) | ((backoff != 0) & highest))
    if bad.size:
        problem = ("is not a finite 32-bit float" if not np.isfinite(backoff32[bad[0]])
                   else f"is given to a {n}-gram of the highest order, which backs off to nothing")
        raise error(bad[0], f"back-off {rows[bad[0]][n + 1]} {problem}")
    flat = [word for row in rows for word in row[1 : n + 1]]
    words = np.fromiter((word_id.get(word, -1) for word in flat), dtype=np.int64, count=len(flat)).reshape(-1, n)
    bad = np.flatnonzero((words < 0).any(axis=1))
    if bad.size:
        raise error(bad[0], f"the {n}-gram '{' '.join(rows[bad[0]][1 : n + 1])}' has a word that is not a unigram")
    return logprob, words, backoff


def _numbers(error, fields: list[str], what: str) -> np.ndarray:
    try:
        return np.array(fields, dtype=np.float64)
    except ValueError:
        for index, field in enumerate(fields):
            try:
                float(field)
            except ValueError:
                raise error(index, f"{what} {field[:30]!r} is not a number") from None
        raise


def _significant_digits(lines: list[str]) -> int:
    """The most significant digits any number of these entry lines is written with."""
    most = 0
    for line in lines:
        for field in line.split("\t")[::2]:  # the probability, and the back-off if any
            mantissa = field.strip().lstrip("+-").lower().split("e")[0].replace(".", "").lstrip("0")
            most = max(most, len(mantissa.rstrip("0")))
    return most


def read_tables(path, vocabulary) -> tuple[BackoffTables, object]:
    """Read an ARPA file (from KenLM, SRILM or `write_tables`; `.arpa.gz` too) into back-off
    tables, refusing a malformed file with one ArpaFormatError line naming the file, the line
    and the problem (the checks are KenLM's: see _read_sections and _parse_section; duplicates
    are refused too).

    vocabulary: a callable making the vocabulary (an object with `tokens`, `unk_id`, `bos_id`
    and len) from the unigram words in file order. Returns (tables, vocabulary). A file without
    <unk> scores unknown words log10 -100, as KenLM does, with one note. The log-probabilities
    and back-offs are float32 (contract C-3) when the file's numbers have at most 9 significant
    digits, which give every float32 back exactly; float64 otherwise."""
    path = Path(path)
    sections, numbers = _read_sections(path)
    order = len(sections)
    dtype = np.float32 if _significant_digits(sections[0][:1000]) <= FLOAT32_DIGITS else np.float64
    unigram_words = [line.split()[1] if len(line.split()) > 1 else "" for line in sections[0]]
    seen: dict[str, int] = {}
    for index, word in enumerate(unigram_words):
        if word in seen:
            raise ArpaFormatError(f"{path}:{numbers[0][index]}: the unigram {word!r} is listed twice "
                                  f"(first at line {numbers[0][seen[word]]})")
        seen[word] = index
    vocab = vocabulary(word for word in unigram_words if word)
    word_id = {token: i for i, token in enumerate(vocab.tokens)}
    size = len(vocab)
    logprob10, words, backoff10 = _parse_section(path, 1, sections[0], numbers[0], word_id, order == 1)
    ids = words[:, 0]
    logprob = np.full(size, -np.inf, dtype=dtype)
    logbackoff = np.zeros(size, dtype=dtype)
    logprob[ids] = logprob10 * LN10
    logbackoff[ids] = backoff10 * LN10
    support = np.zeros(size, dtype=bool)
    support[ids] = True
    unk = vocab.tokens[vocab.unk_id]
    if unk not in seen:  # KenLM: "The ARPA file is missing <unk>.  Substituting log10 probability -100."
        logprob[vocab.unk_id] = UNKNOWN_MISSING_LOG10 * LN10
        support[vocab.unk_id] = True
        note(f"{path} has no {unk}: unknown words score log10 probability {UNKNOWN_MISSING_LOG10:g}, as KenLM "
             "scores them")
    support[vocab.bos_id] = False
    logprob[vocab.bos_id] = -np.inf  # <s> is context only (ARPA writes -99)
    unigrams = OrderTable(np.arange(size, dtype=np.int64), logprob, logbackoff, np.zeros(size, dtype=bool))
    tables = BackoffTables([unigrams], size, support, bos_id=vocab.bos_id)
    for n, (lines, where) in enumerate(zip(sections[1:], numbers[1:]), start=2):
        logprob10, words, backoff10 = _parse_section(path, n, lines, where, word_id, n == order)
        context = words[:, 0].astype(np.int64)
        for column in range(1, n - 1):
            context = tables.lookup(column + 1, context, words[:, column])
        if np.any(context < 0):
            bad = int(np.flatnonzero(context < 0)[0])
            raise ArpaFormatError(f"{path}:{where[bad]}: the {n}-gram '{' '.join(lines[bad].split()[1 : n + 1])}' "
                                  f"has no entry for its first {n - 1} words")
        keys = context * size + words[:, -1]
        order_of = np.argsort(keys, kind="stable")
        repeated = np.flatnonzero(keys[order_of][1:] == keys[order_of][:-1])
        if repeated.size:
            first, again = sorted((int(order_of[repeated[0]]), int(order_of[repeated[0] + 1])))
            raise ArpaFormatError(f"{path}:{where[again]}: the {n}-gram '{' '.join(lines[again].split()[1 : n + 1])}' "
                                  f"is listed twice (first at line {where[first]})")
        tables.orders[-1].is_context[context] = True
        tables.append(
            OrderTable(
                keys[order_of],
                (logprob10[order_of] * LN10).astype(dtype),
                (backoff10[order_of] * LN10).astype(dtype),
                np.zeros(len(keys), dtype=bool),
            )
        )
    return tables, vocab
