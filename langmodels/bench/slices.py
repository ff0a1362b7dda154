"""The corpora of a benchmark: loaded once, cut to the config's slices, hashed for the run cache."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import corpora
from ..corpora import Split
from .config import POSITION_MAX, SAMPLE_TOKENS, CorpusSpec


def first_lines(split: Split, n: int | None) -> Split:
    """The first n lines of a split as a Split of the same corpus, level and mode (whole lines,
    so its text ends with a newline); the split itself when n is None or covers it."""
    if n is None or n >= len(split):
        return split
    return split[:n]


def leading_fraction(split: Split, fraction: float | None) -> Split:
    """The shortest run of whole lines from the start of a split that holds at least `fraction`
    of its characters (newlines included): a data-scaling point's training set. The split itself
    for None or 1."""
    if fraction is None or fraction >= 1:
        return split
    ends = np.cumsum([len(line) + 1 for line in split])  # characters up to and including each newline
    return first_lines(split, int(np.searchsorted(ends, fraction * ends[-1])) + 1)


def text_sha256(split: Split) -> str:
    return split.sha256()  # of its exact text, read block by block and kept on the split


@dataclass
class CorpusData:
    """One configured corpus: its (sliced) splits and what the cache key needs to know of them."""

    spec: CorpusSpec
    corpus: corpora.Corpus
    train: Split
    valid: Split | None  # None when valid is the test text (Tiny Shakespeare): no early stopping
    test: Split
    sha256: dict
    _parts: dict = field(default_factory=dict, repr=False)  # train fraction -> (Split, sha256)

    @property
    def level(self) -> str:
        return self.corpus.level

    @property
    def mode(self) -> str:
        return self.corpus.mode

    @property
    def default_sample_tokens(self) -> int:
        return SAMPLE_TOKENS.get(self.level, SAMPLE_TOKENS["word"])

    @property
    def default_position_max(self) -> int:
        return POSITION_MAX.get(self.level, POSITION_MAX["word"])

    def test_split(self, lines: int | None) -> Split:
        """The test split, or its first `lines` lines (a model scored on part of it)."""
        return first_lines(self.test, lines)

    def train_split(self, fraction: float | None) -> Split:
        """The training split, or its leading `fraction` (a data-scaling sweep's point)."""
        return self._train_part(fraction)[0]

    def _train_part(self, fraction: float | None) -> tuple[Split, str]:
        if fraction is None or fraction >= 1:
            return self.train, self.sha256["train"]
        if fraction not in self._parts:
            part = leading_fraction(self.train, fraction)
            self._parts[fraction] = (part, text_sha256(part))
        return self._parts[fraction]

    def key(self, test_lines: int | None = None, train_fraction: float | None = None) -> dict:
        """The corpus part of a run's cache key: the exact texts, not names or paths."""
        test = self.sha256["test"] if test_lines is None else text_sha256(self.test_split(test_lines))
        return {"level": self.level, "mode": self.mode, "train": self._train_part(train_fraction)[1],
                "valid": self.sha256["valid"] if self.valid is not None else None, "test": test}


def load_corpus(spec: CorpusSpec) -> CorpusData:
    corpus = corpora.load(spec.source, level=spec.level)
    # Early stopping on the text the model is scored on would tune on the test (docs/design.md 4):
    # compared on the whole corpus, so slices of the same text never pass for a validation split.
    # A split folder gives each split its own file, never re-split (corpora/files.py).
    valid_is_test = corpus.valid_is_test
    train = first_lines(corpus.train, spec.slices["train"])
    valid = None if valid_is_test else first_lines(corpus.valid, spec.slices["valid"])
    test = first_lines(corpus.test, spec.slices["test"])
    sha256 = {"train": text_sha256(train), "test": text_sha256(test)}
    sha256["valid"] = text_sha256(valid) if valid is not None else None
    return CorpusData(spec=spec, corpus=corpus, train=train, valid=valid, test=test, sha256=sha256)
