"""The shipped corpora (see corpora/SOURCES.md), and where shipped files and caches live.

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
from pathlib import Path

from langmodels.checkpoint import write_atomic
from langmodels.errors import CorpusError

from .split import SPLITS, default_mode, make_corpus

UNK = "<unk>"

# Expected sha256 of each split's text() (UTF-8); docs/design.md section 4.
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


def corpora_dir():
    """The folder of shipped corpora: ``LANGMODELS_CORPORA``, else ``corpora/`` next to the
    package (the repository layout, which an editable install keeps)."""
    env = os.environ.get("LANGMODELS_CORPORA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "corpora"


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
    return make_corpus("shakespeare", level, default_mode(level), (text[:cut], text[cut:], text[cut:]),
                       note=note)


def _load_brown(level):
    texts = _brown_texts()
    level = level or "word"
    note = "Brown corpus, split after Bengio et al. (2003); train words seen <= 3 times -> <unk>"
    return make_corpus("brown", level, default_mode(level), [texts[s] for s in SPLITS], note=note)


_SHIPPED = {"brown": _load_brown, "shakespeare": _load_shakespeare}


def load_shipped(name, level=None):
    """The shipped corpus called ``name`` at ``level`` (default: its own)."""
    return _SHIPPED[name](level)


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
