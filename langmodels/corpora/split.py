"""Splits and corpora: what a model is fitted on and scored on (docs/design.md sections 4 and 8).

A ``Split`` is a sequence of lines (str, no newline) that also knows its corpus, level and
default evaluation mode, and the exact text it stands for (``split.text()``), which is what the
metrics count characters and words of. It behaves like a read-only list (length, indexing,
slicing to a Split, iteration, ``==`` with a list) and adds the streaming side of contract C-1:

- ``blocks(block_chars)`` hands out the text in chunks that each end just after a newline (the
  last may not, when the split ends mid-line) and whose concatenation is ``text()``;
- ``sha256()`` is the sha256 of ``text()`` in UTF-8, computed over the blocks and kept;
- ``n_lines`` is the number of lines, known without reading them.

A split read from a file (see files.py) holds no lines until a caller asks for one: ``len``,
``n_lines``, ``blocks``, ``sha256`` and iteration stream from the file; indexing and ``==`` load
the lines once and keep them. It also records where it came from: ``source``, the path of its one
file (None when it draws on several), and ``source_sha256``, the sha256 of that file's bytes as
distributed (decompressed, before any line handling) when the split is the whole file, else None.
Shipped corpora and lists of lines have neither.

Model code that may receive either a Split or a bare list of lines uses the module functions
:func:`split_text`, :func:`split_blocks`, :func:`split_sha256` and :func:`split_mode`.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence

from langmodels.errors import CorpusError, InputError
from langmodels.metrics import TextCounts
from langmodels.options import shown

SPLITS = ("train", "valid", "test")
ALL = "all"  # every line of a corpus, in order: a whole file scored as it is
SPLIT_CHOICES = (*SPLITS, ALL)
LEVELS = ("word", "char")
BLOCK_CHARS = 1 << 22


class CorpusNote(UserWarning):
    """How a corpus was read (which file went to which split, or how a text was cut into splits):
    said once per corpus, printed by the CLI as a `note:` line."""


def chunk_text(text, block_chars=BLOCK_CHARS):
    """Chunks of ``text`` of about ``block_chars`` characters, each ending just after a newline
    (except a last chunk without one); a line longer than a block is one chunk."""
    start, size = 0, len(text)
    while start < size:
        end = start + max(1, block_chars)
        if end >= size:
            yield text[start:]
            return
        cut = text.rfind("\n", start, end)
        if cut < 0:
            cut = text.find("\n", end)
            if cut < 0:
                yield text[start:]
                return
        yield text[start:cut + 1]
        start = cut + 1


class Split(Sequence):
    """One split: lines (str, no newline) plus what it is and its exact text."""

    __hash__ = None  # compared by content, like the list it used to be

    def __init__(self, lines=(), *, name, corpus, level, mode, trailing_newline=True):
        self._lines = list(lines)
        self._reader = None  # a file-backed split's FileLines (files.py), while its lines are unread
        self.name = name
        self.corpus = corpus
        self.level = level
        self.mode = mode
        # False only where a split boundary falls mid-line (Tiny Shakespeare's train part).
        self.trailing_newline = trailing_newline
        self.source = None
        self.source_sha256 = None
        self._sha256 = None
        self._figures = None

    @classmethod
    def from_text(cls, text, **attrs):
        """The split whose text() is exactly ``text``."""
        if not text:
            return cls([], **attrs)
        if text.endswith("\n"):
            return cls(text[:-1].split("\n"), **attrs)
        return cls(text.split("\n"), trailing_newline=False, **attrs)

    @classmethod
    def from_reader(cls, reader, **attrs):
        """A split whose lines are read from files when needed (``reader``: files.FileLines)."""
        split = cls((), **attrs)
        split._lines, split._reader = None, reader
        split.source, split.source_sha256 = reader.source, reader.source_sha256
        split._sha256 = reader.text_sha256
        return split

    def _attrs(self):
        return {"name": self.name, "corpus": self.corpus, "level": self.level, "mode": self.mode}

    # ---- the lines --------------------------------------------------------------------------

    @property
    def lines(self):
        """The lines as a list (a file-backed split reads them now, once)."""
        if self._lines is None:
            lines = []
            for block in self._reader.blocks(BLOCK_CHARS):
                lines += block[:-1].split("\n")  # file-backed blocks always end with a newline
            self._lines = lines
        return self._lines

    @property
    def n_lines(self):
        return len(self._lines) if self._lines is not None else self._reader.n_lines

    def __len__(self):
        return self.n_lines

    def __iter__(self):
        if self._lines is not None:
            return iter(self._lines)
        return self._streamed_lines()

    def _streamed_lines(self):
        for block in self._reader.blocks(BLOCK_CHARS):
            yield from block[:-1].split("\n")

    def __getitem__(self, key):
        """A line; or, for a slice, the Split of those lines (same corpus, level and mode), so that
        `brown.train[:1000]` is still word-level text scored line by line."""
        if not isinstance(key, slice):
            return self.lines[key]
        taken = range(self.n_lines)[key]
        if self._lines is None and taken.step == 1:  # still lazy: the same files, fewer lines
            return Split.from_reader(self._reader.slice(taken.start, taken.stop), **self._attrs())
        ends_with_last = len(taken) > 0 and taken[-1] == self.n_lines - 1
        return Split(self.lines[key], **self._attrs(),
                     trailing_newline=self.trailing_newline if ends_with_last else True)

    def __contains__(self, line):
        return any(line == own for own in self) if self._lines is None else line in self._lines

    def __eq__(self, other):
        if isinstance(other, Split):
            return self.lines == other.lines
        if isinstance(other, list):
            return self.lines == other
        return NotImplemented

    def __add__(self, other):
        """Lines followed by other lines: a plain list, as list + list was."""
        if isinstance(other, (Split, list)):
            return self.lines + list(other)
        return NotImplemented

    def __radd__(self, other):
        if isinstance(other, list):
            return other + self.lines
        return NotImplemented

    # ---- the text -------------------------------------------------------------------------------

    def text(self):
        """Lines joined by newlines, with a final newline unless the split ends mid-line."""
        if self._lines is None:
            return "".join(self._reader.blocks(BLOCK_CHARS))
        if not self._lines:
            return ""
        return "\n".join(self._lines) + ("\n" if self.trailing_newline else "")

    def blocks(self, block_chars=BLOCK_CHARS):
        """Chunks of text() that each end just after a newline (the last one may not, when the
        split ends mid-line); a file-backed split reads its files block by block."""
        if self._lines is None:
            return self._reader.blocks(block_chars)
        return chunk_text(self.text(), block_chars)

    def sha256(self):
        """sha256 hex of text() in UTF-8, computed block by block once."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for block in self.blocks():
                digest.update(block.encode("utf-8"))
            self._sha256 = digest.hexdigest()
        return self._sha256

    def figures(self):
        """Lines, whitespace words and characters (newlines included) of text(), read once."""
        if self._figures is None:
            counts = TextCounts.of_blocks(self.blocks())  # its words count one end per line
            self._figures = {"lines": self.n_lines, "words": counts.words - self.n_lines, "chars": counts.chars}
        return dict(self._figures)

    def __repr__(self):
        return (
            f"Split(corpus={self.corpus!r}, name={self.name!r}, level={self.level!r}, "
            f"mode={self.mode!r}, lines={self.n_lines})"
        )


def check_iterable(lines, what: str) -> None:
    """InputError unless `lines` is an iterable of lines (a Split, a list, a generator), not one
    str; the lines themselves are not scanned here (these run on whole corpora)."""
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Iterable):
        raise InputError(f"{what} takes a list of lines or a Corpus split, got {shown(lines)}")


def split_text(lines):
    """The exact text of a Split, or of a plain list of lines ("\\n"-joined, final newline)."""
    check_iterable(lines, "split_text")
    text = getattr(lines, "text", None)
    if callable(text):
        return text()
    lines = list(lines)
    try:
        return "\n".join(lines) + "\n" if lines else ""
    except TypeError:
        raise not_lines(lines, "split_text") from None


def not_lines(lines, what: str) -> InputError:
    """The one-line refusal of a list holding something other than str lines."""
    odd = next(line for line in lines if not isinstance(line, str))
    return InputError(f"{what} takes lines of text (str), got a line {shown(odd)}")


def split_blocks(lines, block_chars=BLOCK_CHARS):
    """Chunks of split_text(lines), each ending just after a newline (a Split's own blocks())."""
    check_iterable(lines, "split_blocks")
    blocks = getattr(lines, "blocks", None)
    if callable(blocks):
        return blocks(block_chars)
    return _list_blocks(lines, block_chars)


def _list_blocks(lines, block_chars):
    group, size = [], 0
    for line in lines:
        if not isinstance(line, str):
            raise not_lines([line], "split_blocks")
        group.append(line)
        size += len(line) + 1
        if size >= block_chars:
            yield "\n".join(group) + "\n"
            group, size = [], 0
    if group:
        yield "\n".join(group) + "\n"


def split_sha256(lines):
    """sha256 hex of split_text(lines) in UTF-8 (a Split's own, kept, sha256())."""
    sha256 = getattr(lines, "sha256", None)
    if callable(sha256):
        return sha256()
    check_iterable(lines, "split_sha256")
    digest = hashlib.sha256()
    for block in split_blocks(lines):
        digest.update(block.encode("utf-8"))
    return digest.hexdigest()


def split_mode(lines, default="lines"):
    """Default evaluation mode of a Split ("lines" or "stream"); ``default`` for a plain list."""
    return getattr(lines, "mode", default)


def split_level(lines, default="word"):
    """Level of a Split ("word" or "char"); ``default`` for a plain list."""
    return getattr(lines, "level", default)


def default_mode(level):
    """Word corpora are scored line by line, character corpora as one stream (docs/design.md 3)."""
    return "stream" if level == "char" else "lines"


class Corpus:
    """A named corpus: train, valid and test splits at a word or character level, and ``all``,
    every line once in order.

    ``splits`` maps split names to Splits (or to functions making one, called once when first
    asked for). ``refusal`` is the reason a text has no train/valid/test (a file of one or two
    lines: only "all" can be scored). ``reading`` is a note on how a user's path was read, given
    once, as a CorpusNote warning, the first time train, valid or test is used.
    """

    def __init__(self, name, level, mode, splits, *, note="", refusal=None, reading=None, files=False):
        self.name = name
        self.level = level
        self.mode = mode
        self.note = note
        self.refusal = refusal
        self.reading = reading
        self.files = files  # read from a user's path: describe() names the file behind each split
        self._splits = dict(splits)

    def _get(self, name):
        split = self._splits.get(name)
        if callable(split) and not isinstance(split, Split):
            split = self._splits[name] = split()
        return split

    def split(self, name):
        """The split called ``name``: "train", "valid", "test", or "all" (every line, in order)."""
        if name not in SPLIT_CHOICES:
            raise CorpusError(
                f"unknown split {name!r} of corpus {self.name!r}; splits: {', '.join(SPLIT_CHOICES)}"
            )
        if name != ALL:
            if self.refusal:
                raise CorpusError(self.refusal)
            if self.reading:
                reading, self.reading = self.reading, None
                warnings.warn(reading, CorpusNote, stacklevel=3)
        return self._get(name)

    @property
    def train(self):
        return self.split("train")

    @property
    def valid(self):
        return self.split("valid")

    @property
    def test(self):
        return self.split("test")

    @property
    def valid_is_test(self):
        """True when valid and test are one text (Tiny Shakespeare, a split folder without a test
        file): early stopping on valid would tune on the test."""
        valid, test = self._get("valid"), self._get("test")
        return valid is test or valid.sha256() == test.sha256()

    def text(self, split_name):
        """The exact text of one split."""
        return self.split(split_name).text()

    def describe(self):
        """Sizes of the splits, JSON-ready (``langmodels corpora --json``); for a user's path also
        the file(s) behind each split. A text too short to split shows "all" only."""
        names = [ALL] if self.refusal else list(SPLITS)
        splits = {}
        for name in names:
            split = self._get(name)
            splits[name] = split.figures()
            if self.files:
                splits[name]["files"] = split_files(split)
                splits[name]["source_sha256"] = split.source_sha256
        note = " ".join(part for part in (self.note, self.reading or self.refusal) if part)
        return {"name": self.name, "level": self.level, "mode": self.mode, "note": note, "splits": splits}

    def __repr__(self):
        if self.refusal:
            return f"Corpus(name={self.name!r}, level={self.level!r}, mode={self.mode!r}, all only)"
        sizes = ", ".join(f"{name}={len(self._get(name))} lines" for name in SPLITS)
        return f"Corpus(name={self.name!r}, level={self.level!r}, mode={self.mode!r}, {sizes})"


def split_files(split):
    """The paths of the files a split's lines come from, in order ([] for lists and shipped text)."""
    reader = split._reader
    if reader is None:
        return [split.source] if split.source else []
    return reader.files()


def make_corpus(name, level, mode, texts_or_lines, note=""):
    """A Corpus from three texts (str) or three lists of lines; "all" is their lines once each,
    in order (valid once when test is the same text)."""
    splits = {}
    for split_name, part in zip(SPLITS, texts_or_lines):
        attrs = {"name": split_name, "corpus": name, "level": level, "mode": mode}
        if isinstance(part, str):
            splits[split_name] = Split.from_text(part, **attrs)
        else:
            splits[split_name] = Split(part, **attrs)

    def whole():
        parts = [splits["train"], splits["valid"]]
        if splits["test"].sha256() != splits["valid"].sha256():
            parts.append(splits["test"])
        text = "".join(part.text() for part in parts)
        return Split.from_text(text, name=ALL, corpus=name, level=level, mode=mode)

    return Corpus(name, level, mode, {**splits, ALL: whole}, note=note)
