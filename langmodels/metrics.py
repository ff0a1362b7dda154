"""One quantity, several normalisations (DESIGN.md section 3).

Every model is scored by the total negative log-likelihood, in nats, that it gives a test text.
That one number is divided by different counts so that models with different tokenisations
compare on the same axis (the lm-evaluation-harness convention):

    perplexity      = exp(NLL / tokens in the model's own tokenisation)
    word_perplexity = exp(NLL / words), words = whitespace words + one end-of-line per line
    bits_per_char   = NLL / (characters incl. newlines * ln 2)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def perplexity(nll: float, count: int) -> float:
    """exp(NLL / count): the geometric-mean inverse probability per counted unit."""
    if count <= 0:
        return float("nan")
    return math.exp(nll / count) if math.isfinite(nll) else math.inf


def bits_per_char(nll: float, n_chars: int) -> float:
    """NLL in bits divided by the characters of the text (newlines included)."""
    if n_chars <= 0:
        return float("nan")
    return nll / (n_chars * math.log(2))


def count_lines(text: str) -> int:
    """Lines of a text: its newlines, plus one for a last line that has none."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def count_words(text: str) -> int:
    """Whitespace words plus one end-of-line per line: what a word model predicts."""
    return len(text.split()) + count_lines(text)


@dataclass
class Evaluation:
    """The result of scoring one text with one model (what `evaluate --json` prints)."""

    model: str
    corpus: str
    split: str
    mode: str
    n_tokens: int
    n_words: int
    n_chars: int
    nll: float
    perplexity: float
    word_perplexity: float
    bits_per_char: float
    seconds: float
    tokens_per_second: float
    n_unk: int = 0
    n_zero_prob: int = 0
    pseudo: bool = False

    @classmethod
    def from_nll(cls, nll: float, *, n_tokens: int, text: str, seconds: float, n_words: int | None = None,
                 **labels) -> Evaluation:
        """Derive every normalisation from the one measured NLL (n_words: pass it if already counted)."""
        n_words, n_chars = count_words(text) if n_words is None else n_words, len(text)
        return cls(
            nll=nll,
            n_tokens=n_tokens,
            n_words=n_words,
            n_chars=n_chars,
            perplexity=perplexity(nll, n_tokens),
            word_perplexity=perplexity(nll, n_words),
            bits_per_char=bits_per_char(nll, n_chars),
            seconds=seconds,
            tokens_per_second=n_tokens / seconds if seconds > 0 else math.inf,
            **labels,
        )

    @property
    def nats_per_token(self) -> float:
        return self.nll / self.n_tokens if self.n_tokens else float("nan")

    def to_dict(self) -> dict:
        """JSON-safe fields: an infinite or undefined figure becomes None (null in JSON)."""
        return {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in asdict(self).items()
        }
