"""Corpora: the shipped ones, a user's files and folders, and their train/valid/test splits.

A corpus is three splits of lines, plus ``all``, every line once in order. Where each part lives:

- split.py: ``Split`` (lines, their exact text, blocks and sha256) and ``Corpus``, and the
  functions model code uses on a Split or a bare list of lines (:func:`split_text`, ...);
- shipped.py: ``brown`` and ``shakespeare``, the corpora folder and the cache folder;
- files.py: a user's file, folder or split folder (``ptb.train.txt``, ``wiki.valid.tokens``);
- reading.py: reading a plain or compressed (.gz, .bz2, .xz) file in blocks, as UTF-8.
"""

from __future__ import annotations

import os
from pathlib import Path

from langmodels.errors import CorpusError

from .files import SPLIT_WORDS, load_path, split_named
from .reading import COMPRESSED
from .shipped import UNK, available, cache_dir, corpora_dir, load_shipped
from .split import (
    ALL,
    LEVELS,
    SPLIT_CHOICES,
    SPLITS,
    Corpus,
    CorpusNote,
    Split,
    default_mode,
    split_blocks,
    split_level,
    split_mode,
    split_sha256,
    split_text,
)

__all__ = [
    "ALL", "COMPRESSED", "LEVELS", "SPLITS", "SPLIT_CHOICES", "SPLIT_WORDS", "UNK", "Corpus", "CorpusNote",
    "Split", "available", "cache_dir", "corpora_dir", "default_mode", "load", "split_blocks", "split_level",
    "split_mode", "split_named", "split_sha256", "split_text",
]


def load(name_or_path, *, level=None):
    """A shipped corpus by name (see :func:`available`), or a UTF-8 text file or folder by path
    (plain or .gz/.bz2/.xz; a folder of split files is read as those splits, see files.py).

    ``level`` is "word" or "char"; by default the corpus's own (paths: "word"). The evaluation
    mode follows the level: "lines" for words, "stream" for characters. A shipped name wins over
    a file of the same name in the working folder; write ``./brown`` for the file.
    """
    if level is not None and level not in LEVELS:
        raise CorpusError(f"unknown corpus level {level!r}; levels: {', '.join(LEVELS)}")
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(os.fspath(name_or_path)).strip():
        # Path("") is the current folder: never read it by accident
        raise CorpusError(f"a corpus is a shipped name or a file or folder path, got {name_or_path!r}")
    name = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and name in available():
        return load_shipped(name, level)
    path = Path(name)
    if not path.exists():
        looks_like_name = os.sep not in name and "/" not in name and "." not in name
        if looks_like_name:
            raise CorpusError(
                f"unknown corpus {name!r}; shipped corpora: {', '.join(available())} "
                "(or give the path of a UTF-8 text file or folder)"
            )
        raise CorpusError(f"{name}: no such file or folder")
    return load_path(path, name, level or "word")
