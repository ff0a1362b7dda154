"""Looking tokens up in a model's vocabulary: a miss names the token and suggests close ones."""

from __future__ import annotations

import difflib

from ..errors import LangmodelsError
from ..options import RUN, check_text

SUGGESTIONS = 5


class UnknownWordError(LangmodelsError):
    """A word the model's vocabulary does not hold."""


def close_words(token: str, vocab, n: int = SUGGESTIONS) -> list[str]:
    """Up to n vocabulary entries that look like `token`: the same word in another case first,
    then difflib's closest matches (case-insensitive), equally close ones most frequent first."""
    check_text(token, "close_words' token")
    RUN["k"].check(n, "n")
    rank: dict[str, int] = {}  # lower-cased entry -> its first (most frequent) spelling's id
    for i, entry in enumerate(vocab.tokens[len(vocab.SPECIALS) :], start=len(vocab.SPECIALS)):
        rank.setdefault(entry.lower(), i)
    query = token.lower()
    matches = difflib.get_close_matches(query, list(rank), n=4 * n, cutoff=0.6)
    scored = sorted(matches, key=lambda m: (-round(difflib.SequenceMatcher(None, query, m).ratio(), 3), rank[m]))
    found = [vocab.token(rank[m]) for m in scored]
    return [entry for entry in dict.fromkeys(found) if entry != token][:n]


def require_tokens(tokens, vocab, what: str = "word") -> None:
    """Raise UnknownWordError for the first token not in the vocabulary, with suggestions."""
    for token in tokens:
        if token not in vocab:
            close = close_words(token, vocab)
            hint = f"; did you mean {', '.join(repr(t) for t in close)}?" if close else "; no close match"
            raise UnknownWordError(f"{what} {token!r} is not in the vocabulary ({len(vocab):,} tokens){hint}")
