"""ARPA back-off files (the format of SRILM and KenLM): export, and import as a LanguageModel.

An ARPA file lists, per order, ``log10 P(w | h)  h w  [log10 gamma(h w)]``. Our back-off tables
(tables.py) hold exactly that in natural logs, so writing is a change of base, and a file made by
KenLM's lmplz or SRILM's ngram-count reads back into the same tables and is scored by the same
code as a model fitted here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..checkpoint import write_atomic
from ..errors import ConfigError, CorpusError, LangmodelsError
from ..tokenizers import Vocabulary, WordTokenizer
from .model import NGramLM
from .tables import BackoffTables, OrderTable

LN10 = math.log(10.0)
ARPA_ZERO = -99.0  # log10 of "never": how ARPA writers print a probability of zero


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
    if any(not token or any(ch.isspace() for ch in token) for token in vocab.tokens):
        raise ConfigError("ARPA words cannot contain whitespace: only word-level models can be written")
    out = ["\\data\\"]
    sections = []
    names = list(vocab.tokens)  # the text of each n-gram of the previous order, by id
    for n, table in enumerate(tables.orders, start=1):
        if n == 1:
            rows = np.flatnonzero(tables.support | (np.arange(len(names)) == vocab.bos_id))
            text = [names[i] for i in rows.tolist()]
        else:
            context, word = np.divmod(table.keys, tables.vocab_size)
            names = [names[c] + " " + vocab.tokens[w] for c, w in zip(context.tolist(), word.tolist())]
            rows, text = np.arange(len(names)), names
        logprob = _log10(table.logprob[rows])
        if n == 1:
            logprob[rows == vocab.bos_id] = ARPA_ZERO  # <s> is context only
        backoff = (table.logbackoff[rows] / LN10).tolist()
        has_backoff = table.is_context[rows].tolist()
        # repr keeps every digit, so reading the file back gives the same model exactly.
        sections.append([
            f"{p!r}\t{s}\t{b!r}" if h else f"{p!r}\t{s}"
            for p, s, b, h in zip(logprob.tolist(), text, backoff, has_backoff)
        ])
        out.append(f"ngram {n}={len(rows)}")
    for n, lines in enumerate(sections, start=1):
        out += ["", f"\\{n}-grams:", *lines]
    out += ["", "\\end\\", ""]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(target, "\n".join(out).encode("utf-8"))


def _read_sections(path: Path) -> list[list[str]]:
    """The entry lines of each \\n-grams: section, after checking them against the header."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"no ARPA file at {path}") from None
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path} is not UTF-8 (invalid byte at offset {error.start})") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder, not an ARPA file") from None
    _, marker, body = text.partition("\\data\\")
    if not marker:
        raise LangmodelsError(f"{path} is not an ARPA file (no \\data\\ header)")
    body = body.split("\\end\\")[0]
    header, *parts = body.split("-grams:")
    declared = {}
    for line in header.splitlines():
        if line.startswith("ngram "):
            order, _, count = line[6:].partition("=")
            declared[int(order)] = int(count)
    sections = []
    for n, part in enumerate(parts, start=1):
        lines = part.splitlines()
        if n < len(parts):
            lines = lines[:-1]  # the next section's "\\k" title
        entries = [line for line in lines if line.strip()]
        if declared.get(n) != len(entries):
            raise LangmodelsError(
                f"{path}: header says {declared.get(n)} {n}-grams, the file has {len(entries)} (truncated?)"
            )
        sections.append(entries)
    if not sections:
        raise LangmodelsError(f"{path} has no n-gram sections")
    return sections


def _parse_section(path: Path, n: int, lines: list[str], vocab: Vocabulary):
    """(log10 p, (G, n) word ids, log10 backoff) arrays of one section."""
    rows = [line.split() for line in lines]
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero((widths != n + 1) & (widths != n + 2))
    if bad.size:
        raise LangmodelsError(f"{path}: {n}-gram entry {lines[bad[0]].strip()!r} does not have {n} words")
    try:
        logprob = np.array([row[0] for row in rows], dtype=np.float64)
        backoff = np.array([row[n + 1] if len(row) > n + 1 else "0" for row in rows], dtype=np.float64)
    except ValueError:
        raise LangmodelsError(f"{path}: a {n}-gram probability or back-off is not a number") from None
    words = vocab.ids([word for row in rows for word in row[1 : n + 1]]).reshape(-1, n)
    return logprob, words, backoff


def read_arpa(path) -> ArpaLM:
    """Read an ARPA file (from KenLM, SRILM or `write_arpa`) as a model that scores like the others."""
    path = Path(path)
    sections = _read_sections(path)
    vocab = Vocabulary(line.split()[1] for line in sections[0])
    size = len(vocab)
    tokenizer = WordTokenizer()
    tokenizer.vocab = vocab
    logprob10, words, backoff10 = _parse_section(path, 1, sections[0], vocab)
    ids = words[:, 0]
    logprob = np.full(size, -np.inf)
    logbackoff = np.zeros(size)
    logprob[ids] = logprob10 * LN10
    logbackoff[ids] = backoff10 * LN10
    support = np.zeros(size, dtype=bool)
    support[ids] = True
    support[vocab.bos_id] = False
    logprob[vocab.bos_id] = -np.inf  # <s> is context only (ARPA writes -99)
    unigrams = OrderTable(np.arange(size, dtype=np.int64), logprob, logbackoff, np.zeros(size, dtype=bool))
    tables = BackoffTables([unigrams], size, support, bos_id=vocab.bos_id)
    for n, lines in enumerate(sections[1:], start=2):
        logprob10, words, backoff10 = _parse_section(path, n, lines, vocab)
        context = words[:, 0]
        for column in range(1, n - 1):
            context = tables.lookup(column + 1, context, words[:, column])
        if np.any(context < 0):
            bad = lines[int(np.flatnonzero(context < 0)[0])].split()[1 : n + 1]
            raise LangmodelsError(f"{path}: the {n}-gram '{' '.join(bad)}' has no entry for its first {n - 1} words")
        keys = context * size + words[:, -1]
        order = np.argsort(keys, kind="stable")
        tables.orders[-1].is_context[context] = True
        tables.append(
            OrderTable(keys[order], logprob10[order] * LN10, backoff10[order] * LN10, np.zeros(len(keys), dtype=bool))
        )
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
