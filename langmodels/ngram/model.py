"""NGramLM: count-based graph models of any order with every classic smoothing."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from ..base import LanguageModel, NotFittedError
from ..corpora import split_mode, split_text
from ..errors import CheckpointError, ConfigError, LangmodelsError
from ..tokenizers import CharTokenizer, WordTokenizer
from .counting import NGramCounts
from .smoothing import SMOOTHINGS, AbsoluteDiscounting, KneserNey, Lidstone, Smoothing, StupidBackoff
from .tables import BackoffTables, OrderTable

TABLES_FILE = "weights.npz"
BUDGET_KEYS = {"max_steps", "max_tokens", "max_seconds"}


class NGramLM(LanguageModel):
    """An n-gram model: P(w | previous order-1 tokens), smoothed.

    smoothing: 'mle', 'uniform', 'laplace', 'lidstone' (k), 'absolute' (discount),
    'witten-bell', 'kneser-ney' (interpolated modified KN; discount = (D1, D2, D3) to fix them)
    or 'stupid-backoff' (backoff factor; unnormalised: no perplexity).
    level: 'word' or 'char'; by default the training split's own level.

    >>> lm = NGramLM(order=3, smoothing="kneser-ney").fit(corpora.load("brown").train)
    """

    def __init__(
        self,
        order: int = 3,
        smoothing: str = "kneser-ney",
        *,
        k: float = 0.5,
        discount: float | list[float] | None = None,
        backoff: float = 0.4,
        level: str | None = None,
        min_count: int = 1,
    ):
        self.order = order
        self.smoothing = smoothing
        self.k = k
        self.discount = discount
        self.backoff = backoff
        self.level = level
        self.min_count = min_count
        self.tokenizer = None

    # ---- configuration -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.smoothing} {self.order}-gram"

    @property
    def is_normalised(self) -> bool:
        return SMOOTHINGS.get(self.smoothing, Smoothing).normalised

    def make_smoothing(self) -> Smoothing:
        """The estimator named by `smoothing`, with its own hyper-parameter, after checking both."""
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ConfigError(f"order must be a whole number >= 1, got {self.order!r}")
        estimator = SMOOTHINGS.get(self.smoothing)
        if estimator is None:
            raise ConfigError(f"unknown smoothing {self.smoothing!r}; choose one of: {', '.join(SMOOTHINGS)}")
        if estimator is KneserNey:
            if self.discount is not None and not isinstance(self.discount, (list, tuple)):
                raise ConfigError("kneser-ney takes discount as three numbers (D1, D2, D3)")
            return KneserNey(self.discount)
        if estimator is AbsoluteDiscounting:
            return AbsoluteDiscounting(self.discount)
        if estimator is Lidstone:
            return Lidstone(self.k)
        if estimator is StupidBackoff:
            return StupidBackoff(self.backoff)
        return estimator()

    def make_tokenizer(self, train):
        level = self.level or getattr(train, "level", "word")
        if level == "word":
            return WordTokenizer(min_count=self.min_count)
        if level == "char":
            return CharTokenizer(min_count=self.min_count)
        raise ConfigError(f"unknown level {level!r}; use 'word' or 'char'")

    # ---- fitting -------------------------------------------------------------------------

    def fit(self, train, valid=None, **budget) -> NGramLM:
        """Count every n-gram of `train` (one pass; budgets do not apply) and smooth."""
        unknown = set(budget) - BUDGET_KEYS
        if unknown:
            raise ConfigError(f"unknown fit option(s): {', '.join(sorted(unknown))}")
        smoothing = self.make_smoothing()
        if isinstance(train, str):
            raise LangmodelsError("fit takes a list of lines or a Corpus split, not one string")
        if not any(line.strip() for line in train):
            raise LangmodelsError("the training text is empty")
        start = time.perf_counter()
        mode = split_mode(train, "lines")
        self.tokenizer = tokenizer = self.make_tokenizer(train)
        if mode == "stream":
            tokenizer.fit([split_text(train)])
            flat = self._stream_ids(train)
            lengths, eos = np.array([flat.size]), None
        else:
            flat, lengths = tokenizer.fit_encode_lines(list(train))
            eos = tokenizer.vocab.eos_id
        vocab = tokenizer.vocab
        counts = NGramCounts.from_lines(flat, lengths, self.order, len(vocab), vocab.bos_id, eos)
        support = np.ones(len(vocab), dtype=bool)
        support[[vocab.bos_id, vocab.pad_id, vocab.mask_id]] = False
        self.tables_ = BackoffTables.from_counts(counts, smoothing, support)
        self.counts_ = [table.count for table in counts.orders]
        self.mode_ = mode
        self.discounts_ = {str(n): [float(x) for x in d] for n, d in getattr(smoothing, "used_discounts_", {}).items()}
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _check_tables(self) -> BackoffTables:
        if getattr(self, "tables_", None) is None:
            raise NotFittedError(f"{self.name} is not fitted yet: call fit() or load a checkpoint")
        return self.tables_

    # ---- the two primitives ------------------------------------------------------------

    def next_logprobs(self, context_ids) -> np.ndarray:
        history = np.concatenate([[self.tokenizer.vocab.bos_id], np.asarray(context_ids, dtype=np.int64)])
        return self.logprobs_after(history)

    def logprobs_after(self, history) -> np.ndarray:
        """log P(. | history) where history is read as is (no implied <s>; empty = unigram)."""
        dist = self._check_tables().next_logprobs(np.asarray(history, dtype=np.int64))
        if not self.is_normalised:
            # Stupid-backoff scores renormalised so they can be sampled and ranked.
            dist = dist - np.logaddexp.reduce(dist[np.isfinite(dist)])
        return dist

    def score(self, word: str, context=None) -> float:
        """P(word | context) with nltk.lm's reading of the context: the tokens as given, no
        implied start of line (pass '<s>' for one), so an empty context gives the unigram."""
        return float(np.exp(self.logscore(word, context) * np.log(2)))

    def logscore(self, word: str, context=None) -> float:
        """log2 P(word | context), read as in `score` (base 2, as nltk.lm)."""
        vocab = self._check_fitted().vocab
        context = context.split() if isinstance(context, str) else list(context or [])
        return float(self.logprobs_after(vocab.ids(context))[vocab[word]] / np.log(2))

    def score_ids(self, batch) -> list[np.ndarray]:
        """Log P per token and end-of-line (raw log-scores for stupid backoff)."""
        lines = [np.asarray(ids, dtype=np.int64) for ids in batch]
        if not lines:
            return []
        lengths = np.array([len(ids) for ids in lines], dtype=np.int64)
        scores = self.score_lines(np.concatenate(lines), lengths)
        return np.split(scores, np.cumsum(lengths + 1)[:-1])

    def score_lines(self, flat, lengths, *, progress=None) -> np.ndarray:
        tables = self._check_tables()
        vocab = self.tokenizer.vocab
        tokens, position = NGramCounts.pad(np.asarray(flat, dtype=np.int64), lengths, vocab.bos_id, vocab.eos_id)
        return tables.score_positions(tokens, position)

    def score_stream(self, ids) -> np.ndarray:
        tables = self._check_tables()
        ids = np.asarray(ids, dtype=np.int64)
        tokens, position = NGramCounts.pad(ids, np.array([ids.size]), self.tokenizer.vocab.bos_id, None)
        return tables.score_positions(tokens, position)

    # ---- views -------------------------------------------------------------------------

    def graph(self, *, max_contexts: int | None = None):
        """The transition graph (networkx DiGraph): contexts -> next contexts, edge probability."""
        from .graph import transition_graph

        return transition_graph(self, max_contexts=max_contexts)

    def to_dot(self, path=None, *, max_contexts: int | None = 50) -> str:
        """Graphviz DOT text of `graph()` (the 50 most frequent contexts by default); written to path if given."""
        from .graph import to_dot

        text = to_dot(self.graph(max_contexts=max_contexts))
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_arpa(self, path) -> None:
        """Write the model as an ARPA back-off file (KenLM and SRILM read it)."""
        from .arpa import write_arpa

        write_arpa(self, path)

    # ---- checkpoints ---------------------------------------------------------------------

    def fitted_facts(self) -> dict:
        return {"mode": self.mode_, "discounts": self.discounts_}

    def state_files(self) -> dict[str, bytes]:
        tables = self._check_tables()
        arrays = {
            "support": tables.support,
            "scalars": np.array([tables.unseen_context_logbackoff], dtype=np.float64),
        }
        for n, (table, count) in enumerate(zip(tables.orders, self.counts_), start=1):
            arrays[f"keys_{n}"] = table.keys
            arrays[f"logprob_{n}"] = table.logprob
            arrays[f"logbackoff_{n}"] = table.logbackoff
            arrays[f"is_context_{n}"] = table.is_context
            arrays[f"count_{n}"] = count
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return {TABLES_FILE: buffer.getvalue()}

    def restore_state(self, files: dict[str, bytes], fitted: dict) -> None:
        try:
            with np.load(io.BytesIO(files[TABLES_FILE]), allow_pickle=False) as arrays:
                orders, counts = [], []
                for n in range(1, self.order + 1):
                    fields = (arrays[f"{field}_{n}"] for field in ("keys", "logprob", "logbackoff", "is_context"))
                    orders.append(OrderTable(*fields))
                    counts.append(arrays[f"count_{n}"])
                support = arrays["support"]
                (unseen,) = arrays["scalars"]
        except (KeyError, ValueError, OSError) as error:
            raise CheckpointError(f"{TABLES_FILE} does not hold {self.name} tables ({error})") from None
        vocab = self.tokenizer.vocab
        if len(support) != len(vocab):
            raise CheckpointError(f"{TABLES_FILE} and tokenizer.json disagree on the vocabulary size")
        self.tables_ = BackoffTables(
            orders,
            len(vocab),
            support,
            bos_id=vocab.bos_id,
            lower=self.make_smoothing().lower,
            unseen_context_logbackoff=float(unseen),
        )
        self.counts_ = counts
        self.mode_ = fitted.get("mode", "lines")
        self.discounts_ = fitted.get("discounts", {})


class BigramLM(NGramLM):
    """A 2-gram model: the word graph, P(w | previous word)."""

    def __init__(self, smoothing: str = "kneser-ney", *, k: float = 0.5, discount=None, backoff: float = 0.4,
                 level: str | None = None, min_count: int = 1):
        super().__init__(2, smoothing, k=k, discount=discount, backoff=backoff, level=level, min_count=min_count)


class TrigramLM(NGramLM):
    """A 3-gram model: P(w | previous two words)."""

    def __init__(self, smoothing: str = "kneser-ney", *, k: float = 0.5, discount=None, backoff: float = 0.4,
                 level: str | None = None, min_count: int = 1):
        super().__init__(3, smoothing, k=k, discount=discount, backoff=backoff, level=level, min_count=min_count)
