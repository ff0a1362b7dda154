"""One quantity, several normalisations (docs/design.md section 3).

Every model is scored by the total negative log-likelihood, in nats, that it gives a test text.
That one number is divided by different counts so that models with different tokenisations
compare on the same axis (the lm-evaluation-harness convention):

    perplexity      = exp(NLL / tokens in the model's own tokenisation)
    word_perplexity = exp(NLL / words), words = whitespace words + one end-of-line per line
    bits_per_char   = NLL / (characters incl. newlines * ln 2)
    bits_per_byte   = NLL / (UTF-8 bytes incl. newlines * ln 2)   (lm-evaluation-harness)

Bits per character and per byte agree on ASCII text and differ on any other: a character outside
ASCII is 2 to 4 bytes of UTF-8, so byte-level models (GPT-2) and the Pile-style leaderboards
quote the per-byte figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

LN2 = math.log(2)  # nats per bit


def perplexity(nll: float, count: int) -> float:
    """exp(NLL / count): the geometric-mean inverse probability per counted unit."""
    if count <= 0:
        return float("nan")
    return math.exp(nll / count) if math.isfinite(nll) else math.inf


def bits_per_char(nll: float, n_chars: int) -> float:
    """NLL in bits divided by the characters of the text (newlines included)."""
    if n_chars <= 0:
        return float("nan")
    return nll / (n_chars * LN2)


def bits_per_byte(nll: float, n_bytes: int) -> float:
    """NLL in bits divided by the UTF-8 bytes of the text (lm-evaluation-harness's bits_per_byte:
    the summed log-likelihood over bytes * ln 2, as Gao et al. 2020 report The Pile)."""
    if n_bytes <= 0:
        return float("nan")
    return nll / (n_bytes * LN2)


def count_bytes(text: str) -> int:
    """UTF-8 bytes of a text (a lone surrogate, which no file holds, counted as its 3 bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def count_lines(text: str) -> int:
    """Lines of a text: its newlines, plus one for a last line that has none."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def count_words(text: str) -> int:
    """Whitespace words plus one end-of-line per line: what a word model predicts."""
    return len(text.split()) + count_lines(text)


@dataclass(frozen=True)
class TextCounts:
    """What the normalisations divide by: words (with one end-of-line per line), characters and
    UTF-8 bytes (newlines included)."""

    words: int
    chars: int
    bytes: int

    @classmethod
    def of_text(cls, text: str) -> TextCounts:
        return cls(count_words(text), len(text), count_bytes(text))

    @classmethod
    def of_blocks(cls, blocks) -> TextCounts:
        """The counts of a text given as blocks that each end at a newline (the last may not), so
        that no word spans two blocks: a split's text is counted without being held whole."""
        words = chars = n_bytes = newlines = 0
        last = ""
        for block in blocks:
            words += len(block.split())
            chars += len(block)
            n_bytes += count_bytes(block)
            newlines += block.count("\n")
            last = block or last
        unterminated = 1 if last and not last.endswith("\n") else 0
        return cls(words + newlines + unterminated, chars, n_bytes)


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
    n_bytes: int
    nll: float
    perplexity: float
    word_perplexity: float
    bits_per_char: float
    bits_per_byte: float
    seconds: float
    tokens_per_second: float
    n_unk: int = 0
    n_zero_prob: int = 0
    pseudo: bool = False

    @classmethod
    def from_nll(cls, nll: float, *, n_tokens: int, counts: TextCounts, seconds: float, **labels) -> Evaluation:
        """Derive every normalisation from the one measured NLL and the text's counts."""
        n_words, n_chars, n_bytes = counts.words, counts.chars, counts.bytes
        return cls(
            nll=nll,
            n_tokens=n_tokens,
            n_words=n_words,
            n_chars=n_chars,
            n_bytes=n_bytes,
            perplexity=perplexity(nll, n_tokens),
            word_perplexity=perplexity(nll, n_words),
            bits_per_char=bits_per_char(nll, n_chars),
            bits_per_byte=bits_per_byte(nll, n_bytes),
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
