"""ARPA back-off files (the format of SRILM and KenLM): export, and import as a LanguageModel.

An ARPA file lists, per order, ``log10 P(w | h)  h w  [log10 gamma(h w)]``. Our back-off tables
(tables.py) hold exactly that in natural logs, so writing is a change of base, and a file made by
KenLM's lmplz or SRILM's ngram-count reads back into the same tables and is scored by the same
code as a model fitted here.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, CorpusError, LangmodelsError
from ..tokenizers import Vocabulary, WordTokenizer
from .model import NGramLM
from .tables import BackoffTables, OrderTable

LN10 = math.log(10.0)
ARPA_ZERO = -99.0  # log10 of "never": how ARPA writers print a probability of zero


def ngram_token_ids(tables: BackoffTables) -> list[np.ndarray]:
    """For each order n, the (G, n) array of token ids of its n-grams, in table order."""
    words = [tables.orders[0].keys[:, None]]
    for table in tables.orders[1:]:
        context, word = np.divmod(table.keys, tables.vocab_size)
        words.append(np.hstack([words[-1][context], word[:, None]]))
    return words


def _log10(natural: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(natural), natural / LN10, ARPA_ZERO)


def write_arpa(model: NGramLM, path) -> Path:
    """Write a fitted back-off n-gram model as an ARPA file (atomically)."""
    tables = model._check_tables()
    if tables.lower != "recursive" or not model.is_normalised:
        raise ConfigError(
            f"ARPA holds normalised back-off models only; {model.smoothing!r} cannot be written "
            "(use kneser-ney, witten-bell or absolute)"
        )
    vocab = model.tokenizer.vocab
    tokens = np.array(vocab.tokens, dtype=object)
    if any(not token or any(ch.isspace() for ch in token) for token in vocab.tokens):
        raise ConfigError("ARPA words cannot contain whitespace: only word-level models can be written")
    gram_words = ngram_token_ids(tables)
    keep_unigram = tables.support.copy()
    keep_unigram[vocab.bos_id] = True
    sections = []
    for n, (table, words) in enumerate(zip(tables.orders, gram_words), start=1):
        rows = np.flatnonzero(keep_unigram) if n == 1 else np.arange(len(table.keys))
        logprob = _log10(table.logprob[rows])
        if n == 1:
            logprob[rows == vocab.bos_id] = ARPA_ZERO  # <s> is context only
        backoff = table.logbackoff[rows] / LN10
        has_backoff = table.is_context[rows]
        strings = [" ".join(row) for row in tokens[words[rows]]]
        lines = [
            f"{p!r}\t{s}\t{b!r}" if h else f"{p!r}\t{s}"
            for p, s, b, h in zip(logprob.tolist(), strings, backoff.tolist(), has_backoff.tolist())
        ]
        sections.append((n, lines))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\\data\\\n")
            for n, lines in sections:
                out.write(f"ngram {n}={len(lines)}\n")
            for n, lines in sections:
                out.write(f"\n\\{n}-grams:\n")
                out.write("\n".join(lines))
                out.write("\n")
            out.write("\n\\end\\\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _parse_arpa(path: Path) -> list[list[tuple[float, list[str], float]]]:
    """Entries per order: (log10 p, words, log10 backoff)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"no ARPA file at {path}") from None
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path} is not UTF-8 (invalid byte at offset {error.start})") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder, not an ARPA file") from None
    lines = iter(enumerate(text.splitlines(), start=1))
    for _, line in lines:
        if line.strip() == "\\data\\":
            break
    else:
        raise LangmodelsError(f"{path} is not an ARPA file (no \\data\\ header)")
    declared: dict[int, int] = {}
    entries: list[list] = []
    current = None
    for number, line in lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith("ngram ") and current is None:
            order, _, count = line[6:].partition("=")
            declared[int(order)] = int(count)
        elif line.startswith("\\") and line.endswith("-grams:"):
            current = int(line[1:].split("-")[0])
            if current != len(entries) + 1:
                raise LangmodelsError(f"{path}:{number}: section \\{current}-grams: is out of order")
            entries.append([])
        elif line == "\\end\\":
            break
        elif current is not None:
            fields = line.split()
            if len(fields) not in (current + 1, current + 2):
                raise LangmodelsError(f"{path}:{number}: expected {current} words after the probability")
            try:
                backoff = float(fields[current + 1]) if len(fields) == current + 2 else 0.0
                entries[-1].append((float(fields[0]), fields[1 : current + 1], backoff))
            except ValueError:
                raise LangmodelsError(f"{path}:{number}: a probability or back-off is not a number") from None
        else:
            raise LangmodelsError(f"{path}:{number}: unexpected line before the n-gram sections")
    if not entries:
        raise LangmodelsError(f"{path} has no n-gram sections")
    for n, count in declared.items():
        if n <= len(entries) and len(entries[n - 1]) != count:
            raise LangmodelsError(f"{path}: header says {count} {n}-grams, the file has {len(entries[n - 1])} (truncated?)")
    return entries


def read_arpa(path) -> ArpaLM:
    """Read an ARPA file (from KenLM, SRILM or `write_arpa`) as a model that scores like the others."""
    path = Path(path)
    entries = _parse_arpa(path)
    unigram_words = [words[0] for _, words, _ in entries[0]]
    vocab = Vocabulary(unigram_words)
    size = len(vocab)
    tokenizer = WordTokenizer()
    tokenizer.vocab = vocab
    orders = []
    support = np.zeros(size, dtype=bool)
    logprob = np.full(size, -np.inf)
    logbackoff = np.zeros(size)
    present = np.zeros(size, dtype=bool)
    ids = np.array([vocab[word] for word in unigram_words], dtype=np.int64)
    logprob[ids] = np.array([p for p, _, _ in entries[0]]) * LN10
    logbackoff[ids] = np.array([b for _, _, b in entries[0]]) * LN10
    present[ids] = True
    support[ids] = True
    support[vocab.bos_id] = False
    logprob[vocab.bos_id] = -np.inf
    orders.append(OrderTable(np.arange(size, dtype=np.int64), logprob, logbackoff, present))
    tables = BackoffTables(orders, size, support, bos_id=vocab.bos_id)
    for n, section in enumerate(entries[1:], start=2):
        words = np.array([[vocab[w] for w in gram] for _, gram, _ in section], dtype=np.int64).reshape(-1, n)
        context = words[:, 0]
        for column in range(1, n - 1):
            context = tables.lookup(column + 1, context, words[:, column])
        if np.any(context < 0):
            bad = " ".join(section[int(np.flatnonzero(context < 0)[0])][1])
            raise LangmodelsError(f"{path}: the {n}-gram '{bad}' has no entry for its first {n - 1} words")
        keys = context * size + words[:, -1]
        order = np.argsort(keys, kind="stable")
        values = np.array([(p, b) for p, _, b in section], dtype=np.float64).reshape(-1, 2)[order] * LN10
        tables.orders.append(OrderTable(keys[order], values[:, 0], values[:, 1], np.zeros(len(order), bool)))
    for n in range(1, len(tables.orders)):
        above = tables.orders[n]
        is_context = np.zeros(len(tables.orders[n - 1].keys), dtype=bool)
        is_context[above.keys // size] = True
        tables.orders[n - 1].is_context = is_context if n > 1 else is_context & present
    model = ArpaLM(order=len(tables.orders), source=str(path))
    model.tokenizer = tokenizer
    model.tables_ = tables
    model.counts_ = [np.zeros(len(table.keys)) for table in tables.orders]
    model.mode_ = "lines"
    model.discounts_ = {}
    return model


class ArpaLM(NGramLM):
    """A back-off model read from an ARPA file: `ArpaLM.read("model.arpa")` or `read_arpa`."""

    def __init__(self, order: int = 3, source: str = ""):
        super().__init__(order, "kneser-ney")
        self.source = source

    def get_params(self) -> dict:
        return {"order": self.order, "source": self.source}

    @property
    def name(self) -> str:
        return f"arpa {self.order}-gram ({Path(self.source).name})" if self.source else f"arpa {self.order}-gram"

    read = staticmethod(read_arpa)

    def fit(self, train, valid=None, **budget):
        raise LangmodelsError("an ARPA model is read from a file, not fitted: use ArpaLM.read(path)")
