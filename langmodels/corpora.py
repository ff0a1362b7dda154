"""Shipped corpora, user files and folders, and their deterministic train/valid/test splits.

A corpus is three splits of lines. ``Split`` is a plain ``list`` of ``str`` lines (no newlines)
that also knows its corpus, level and default evaluation mode, and the exact text it stands for
(``split.text()``), which is what the metrics count characters and words of. Model code that may
receive either a ``Split`` or a bare list of lines uses :func:`split_text` and :func:`split_mode`.

Shipped corpora (see corpora/SOURCES.md):

- ``brown``: Brown corpus through nltk's own corpus reader, split after Bengio et al. (2003),
  rare words replaced by ``<unk>``. Building it takes seconds, so the three split texts are
  cached (``LANGMODELS_CACHE``, else ``~/.cache/langmodels``) and checked by sha256 on reading.
- ``shakespeare``: Tiny Shakespeare, split by characters exactly as nanoGPT does.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from langmodels.checkpoint import write_atomic
from langmodels.errors import CorpusError

SPLITS = ("train", "valid", "test")
LEVELS = ("word", "char")
UNK = "<unk>"

# Expected sha256 of each split's text() (UTF-8); DESIGN.md section 4.
BROWN_SHA256 = {
    "train": "4aaa7e0179d817d30abf025ff2e3a686b86f9bb0c4472bd7f5b4cd8e67a69a3a",
    "valid": "643ec40d2e0f5a15f7047677b317b448b4cd9107f545cf938b8eaa18754e2539",
    "test": "406580772dc1d0038adb6bafdd0b38b8961b3b0b228b09e08dd6395e9d009fb4",
}
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

# Bengio et al. (2003), section 4.1: first 800,000 words train, next 200,000 valid, rest test;
# words seen at most 3 times in train are merged into one rare-word symbol.
BROWN_TRAIN_WORDS = 800_000
BROWN_VALID_END_WORDS = 1_000_000
BROWN_RARE_MAX_COUNT = 3

# git's heuristic for binary files (buffer_is_binary): a NUL byte in the first 8000 bytes.
BINARY_SNIFF_BYTES = 8000


# ----------------------------------------------------------------------------------------------
# Splits and corpora


class Split(list):
    """One split: a list of lines (str, no newline) plus what it is and its exact text."""

    def __init__(self, lines=(), *, name, corpus, level, mode, trailing_newline=True):
        super().__init__(lines)
        self.name = name
        self.corpus = corpus
        self.level = level
        self.mode = mode
        # False only where a split boundary falls mid-line (Tiny Shakespeare's train part).
        self.trailing_newline = trailing_newline

    @classmethod
    def from_text(cls, text, **attrs):
        """The split whose text() is exactly ``text``."""
        if not text:
            return cls([], **attrs)
        if text.endswith("\n"):
            return cls(text[:-1].split("\n"), **attrs)
        return cls(text.split("\n"), trailing_newline=False, **attrs)

    def __getitem__(self, key):
        """A line; or, for a slice, the Split of those lines (same corpus, level and mode), so that
        `brown.train[:1000]` is still word-level text scored line by line."""
        lines = super().__getitem__(key)
        if not isinstance(key, slice):
            return lines
        taken = range(len(self))[key]
        ends_with_last = len(taken) > 0 and taken[-1] == len(self) - 1
        return Split(lines, name=self.name, corpus=self.corpus, level=self.level, mode=self.mode,
                     trailing_newline=self.trailing_newline if ends_with_last else True)

    def text(self):
        """Lines joined by newlines, with a final newline unless the split ends mid-line."""
        if not self:
            return ""
        return "\n".join(self) + ("\n" if self.trailing_newline else "")

    def __repr__(self):
        return (
            f"Split(corpus={self.corpus!r}, name={self.name!r}, level={self.level!r}, "
            f"mode={self.mode!r}, lines={len(self)})"
        )


def split_text(lines):
    """The exact text of a Split, or of a plain list of lines ("\\n"-joined, final newline)."""
    if isinstance(lines, str):
        raise TypeError("split_text() takes a list of lines, not a str")
    text = getattr(lines, "text", None)
    if callable(text):
        return text()
    lines = list(lines)
    return "\n".join(lines) + "\n" if lines else ""


def split_mode(lines, default="lines"):
    """Default evaluation mode of a Split ("lines" or "stream"); ``default`` for a plain list."""
    return getattr(lines, "mode", default)


def split_level(lines, default="word"):
    """Level of a Split ("word" or "char"); ``default`` for a plain list."""
    return getattr(lines, "level", default)


def default_mode(level):
    """Word corpora are scored line by line, character corpora as one stream (DESIGN.md 3)."""
    return "stream" if level == "char" else "lines"


@dataclass(eq=False, repr=False)
class Corpus:
    """A named corpus: train, valid and test splits at a word or character level."""

    name: str
    level: str
    mode: str
    train: Split
    valid: Split
    test: Split
    note: str = field(default="")

    def split(self, name):
        """The split called ``name`` ("train", "valid" or "test")."""
        if name not in SPLITS:
            raise CorpusError(
                f"unknown split {name!r} of corpus {self.name!r}; splits: {', '.join(SPLITS)}"
            )
        return getattr(self, name)

    def text(self, split_name):
        """The exact text of one split."""
        return self.split(split_name).text()

    def describe(self):
        """Sizes of the splits, JSON-ready (``langmodels corpora --json``)."""
        splits = {}
        for name in SPLITS:
            text = self.text(name)
            splits[name] = {"lines": len(self.split(name)), "words": len(text.split()),
                            "chars": len(text)}
        return {"name": self.name, "level": self.level, "mode": self.mode,
                "note": self.note, "splits": splits}

    def __repr__(self):
        return (
            f"Corpus(name={self.name!r}, level={self.level!r}, mode={self.mode!r}, "
            f"train={len(self.train)} lines, valid={len(self.valid)} lines, "
            f"test={len(self.test)} lines)"
        )


def _corpus(name, level, mode, texts_or_lines, note=""):
    """A Corpus from three texts (str) or three lists of lines."""
    splits = {}
    for split_name, part in zip(SPLITS, texts_or_lines):
        attrs = {"name": split_name, "corpus": name, "level": level, "mode": mode}
        if isinstance(part, str):
            splits[split_name] = Split.from_text(part, **attrs)
        else:
            splits[split_name] = Split(part, **attrs)
    return Corpus(name=name, level=level, mode=mode, note=note, **splits)


# ----------------------------------------------------------------------------------------------
# Where things live


def corpora_dir():
    """The folder of shipped corpora: ``LANGMODELS_CORPORA``, else ``corpora/`` next to the
    package (the repository layout, which an editable install keeps)."""
    env = os.environ.get("LANGMODELS_CORPORA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "corpora"


def cache_dir():
    """The cache folder: ``LANGMODELS_CACHE``, else ``~/.cache/langmodels``."""
    env = os.environ.get("LANGMODELS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "langmodels"


def available():
    """Names of the shipped corpora."""
    return list(_SHIPPED)


def _shipped_file(filename):
    path = corpora_dir() / filename
    if not path.is_file():
        raise CorpusError(
            f"shipped corpus file {path} is missing (set LANGMODELS_CORPORA to the corpora folder)"
        )
    return path


# ----------------------------------------------------------------------------------------------
# Loading


def load(name_or_path, *, level=None):
    """A shipped corpus by name (see :func:`available`), or a UTF-8 text file or folder by path.

    ``level`` is "word" or "char"; by default the corpus's own (paths: "word"). The evaluation
    mode follows the level: "lines" for words, "stream" for characters. A shipped name wins over
    a file of the same name in the working folder; write ``./brown`` for the file.
    """
    if level is not None and level not in LEVELS:
        raise CorpusError(f"unknown corpus level {level!r}; levels: {', '.join(LEVELS)}")
    name = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and name in available():
        return _SHIPPED[name](level)
    path = Path(name)
    if not path.exists():
        looks_like_name = os.sep not in name and "/" not in name and "." not in name
        if looks_like_name:
            raise CorpusError(
                f"unknown corpus {name!r}; shipped corpora: {', '.join(available())} "
                "(or give the path of a UTF-8 text file or folder)"
            )
        raise CorpusError(f"{name}: no such file or folder")
    return _load_path(path, name, level or "word")


def _load_shakespeare(level):
    path = _shipped_file("tinyshakespeare.txt.gz")
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise CorpusError(f"{path} is damaged ({exc})") from None
    if hashlib.sha256(data).hexdigest() != SHAKESPEARE_SHA256:
        raise CorpusError(f"{path} is damaged (sha256 differs from corpora/SOURCES.md)")
    text = data.decode("utf-8")
    # nanoGPT, data/shakespeare_char/prepare.py: train = first 90 % of characters, val = rest.
    # nanoGPT has no test split; its published losses are on val, so valid and test are one text.
    cut = int(len(text) * 0.9)
    level = level or "char"
    note = ("valid and test are the same text, the last 10 % of characters, as in nanoGPT "
            "(which has no test split); train with fixed budgets, not early stopping")
    return _corpus("shakespeare", level, default_mode(level), (text[:cut], text[cut:], text[cut:]),
                   note=note)


def _load_brown(level):
    texts = _brown_texts()
    level = level or "word"
    note = "Brown corpus, split after Bengio et al. (2003); train words seen <= 3 times -> <unk>"
    return _corpus("brown", level, default_mode(level), [texts[s] for s in SPLITS], note=note)


_SHIPPED = {"brown": _load_brown, "shakespeare": _load_shakespeare}


# ----------------------------------------------------------------------------------------------
# Brown: built once with nltk's reader, then cached


def _brown_texts():
    """The three Brown split texts, from the cache when it is intact, else built and cached."""
    folder = cache_dir() / "corpora" / "brown"
    cached = {}
    for split_name in SPLITS:
        try:
            data = (folder / f"{split_name}.txt").read_bytes()
        except OSError:
            break
        if hashlib.sha256(data).hexdigest() != BROWN_SHA256[split_name]:
            break  # corrupted or stale: rebuild silently
        cached[split_name] = data.decode("utf-8")
    if len(cached) == len(SPLITS):
        return cached

    zip_path = _shipped_file("brown.zip")
    texts = _build_brown(zip_path)
    for split_name in SPLITS:
        digest = hashlib.sha256(texts[split_name].encode("utf-8")).hexdigest()
        if digest != BROWN_SHA256[split_name]:
            raise CorpusError(
                f"{zip_path} gives a different Brown {split_name} split than expected "
                f"(sha256 {digest[:12]}..., expected {BROWN_SHA256[split_name][:12]}...); "
                "the file is damaged"
            )
    with contextlib.suppress(OSError):  # an unwritable cache just means no cache
        folder.mkdir(parents=True, exist_ok=True)
        for split_name in SPLITS:
            write_atomic(folder / f"{split_name}.txt", texts[split_name].encode("utf-8"))
    return texts


def _build_brown(zip_path):
    """Split texts of the Brown corpus read from ``zip_path`` (NLTK's brown.zip)."""
    sentences = _brown_sentences(zip_path)
    parts = {name: [] for name in SPLITS}
    seen = 0  # words before the current sentence
    for sentence in sentences:
        if seen < BROWN_TRAIN_WORDS:
            parts["train"].append(sentence)
        elif seen < BROWN_VALID_END_WORDS:
            parts["valid"].append(sentence)
        else:
            parts["test"].append(sentence)
        seen += len(sentence)
    counts = Counter(word for sentence in parts["train"] for word in sentence)
    known = {word for word, count in counts.items() if count > BROWN_RARE_MAX_COUNT}
    texts = {}
    for name, sentences_of_split in parts.items():
        lines = [" ".join([w if w in known else UNK for w in s]) for s in sentences_of_split]
        texts[name] = "\n".join(lines) + "\n"
    return texts


def _brown_sentences(zip_path):
    """Sentences (lists of words) of all Brown files in file-id order, via nltk's reader."""
    import zipfile

    import nltk.data
    from nltk.corpus.reader import CategorizedTaggedCorpusReader

    folder = str(Path(zip_path).resolve().parent)
    # nltk >= 3.9 only opens files under its data roots (nltk.pathsec), so the shipped folder is
    # made one for the time of the read and removed after, leaving nltk's settings as they were.
    added = folder not in nltk.data.path
    if added:
        nltk.data.path.append(folder)
    try:
        root = nltk.data.ZipFilePathPointer(str(Path(zip_path).resolve()), "brown/")
        # Same arguments as nltk.corpus.brown (nltk/corpus/__init__.py).
        reader = CategorizedTaggedCorpusReader(
            root, r"c[a-z]\d\d", cat_file="cats.txt", tagset="brown", encoding="ascii"
        )
        # list(iter(view)), not list(view): list() would first ask the corpus view for its
        # length, which reads the whole corpus once more (3 s instead of 12 s in all).
        sentences = list(iter(reader.sents(reader.fileids())))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CorpusError(f"{zip_path} is damaged or unreadable ({exc})") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                nltk.data.path.remove(folder)
    if not sentences:
        raise CorpusError(f"{zip_path} has no Brown files")
    return sentences


# ----------------------------------------------------------------------------------------------
# User files and folders


def _load_path(path, name, level):
    if path.is_dir():
        files = _text_files(path)
        if not files:
            raise CorpusError(
                f"{name} has no text files (hidden and binary files are skipped)"
            )
        lines = []
        for file in files:
            lines.extend(_read_lines(file, file.read_bytes()))
    elif path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"{name}: cannot read ({exc.strerror})") from None
        lines = _read_lines(Path(name), data)
    else:
        raise CorpusError(f"{name} is not a regular file or folder")

    n = len(lines)
    if n == 0:
        raise CorpusError(f"{name} is empty (no non-blank lines)")
    if n < 3:
        raise CorpusError(
            f"{name} has too few lines ({n} non-blank); a corpus needs at least 3, "
            "one each for train, valid and test"
        )
    # Contiguous 80/10/10 by lines, in integer arithmetic, each part kept non-empty.
    train_end = max(1, min(n * 8 // 10, n - 2))
    valid_end = max(train_end + 1, min(n * 9 // 10, n - 1))
    parts = (lines[:train_end], lines[train_end:valid_end], lines[valid_end:])
    return _corpus(name, level, default_mode(level), parts)


def _text_files(folder):
    """Regular, non-hidden, non-binary files under ``folder``, sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            file = Path(dirpath) / filename
            if filename.startswith(".") or not file.is_file():
                continue
            try:
                with open(file, "rb") as f:
                    head = f.read(BINARY_SNIFF_BYTES)
            except OSError as exc:
                raise CorpusError(f"{file}: cannot read ({exc.strerror})") from None
            if b"\0" not in head:
                found.append(file)
    return sorted(found, key=lambda file: file.relative_to(folder).parts)


def _read_lines(path, data):
    """Non-blank lines of UTF-8 bytes, line endings ("\\n" or "\\r\\n") stripped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not text
    return [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
