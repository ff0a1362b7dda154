"""NGramLM: count-based graph models of any order with every classic smoothing."""

from __future__ import annotations

import io
import itertools
import os
import time
from pathlib import Path

import numpy as np

from ..base import LanguageModel, NotFittedError
from ..checkpoint import write_atomic
from ..corpora import split_mode, split_text
from ..errors import CheckpointError, ConfigError, LangmodelsError
from ..options import NGRAM, check_path, check_settings
from ..token_ids import fit_token_ids
from ..tokenizers import CharTokenizer, Vocabulary, WordTokenizer
from .counting import NGramCounts
from .estimate import estimate
from .external_sort import ScratchFolder, parse_memory
from .probing import SCHEME as INDEX_SCHEME
from .smoothing import SMOOTHINGS, AbsoluteDiscounting, KneserNey, Lidstone, Smoothing, StupidBackoff
from .tables import BackoffTables, OrderTable, array_file

TABLES_FILE = "weights.npz"
BUDGET_KEYS = {"max_steps", "max_tokens", "max_seconds"}


class NGramLM(LanguageModel):
    """An n-gram model: P(w | previous order-1 tokens), smoothed.

    smoothing: 'mle', 'uniform', 'laplace', 'lidstone' (k), 'absolute' (discount),
    'witten-bell', 'kneser-ney' (interpolated modified KN; discount = (D1, D2, D3) to fix them)
    or 'stupid-backoff' (backoff factor; unnormalised: no perplexity).
    level: 'word', 'char' or 'bpe' (bpe_vocab_size subword pieces); by default the training
    split's own level.

    Estimation runs within a memory limit, spilling sorted blocks of n-grams to disk as KenLM's
    lmplz does (estimate.py): memory: '2G', '500M', '50%' (of the memory available) or bytes;
    None: DEFAULT_MEMORY_FRACTION (half) of the memory available when fit starts. Fitting and
    saving stay within `memory` plus a constant of about 50 MiB (the interpreter, the imports, the
    vocabulary: docs/design.md section 9, measured by benchmarks/ngram_scale.py). tmp_dir: where
    the spilled blocks go (default: the system's temporary folder). prune: lmplz's --prune, one
    count threshold per order ('0,1,1' or [0, 1, 1]; non-decreasing, the first 0, the last
    repeated for the higher orders): n-grams of order >= 2 whose count is at or below it are
    dropped. limit_vocab: lmplz's --limit_vocab_file, a file of whitespace-separated words or a
    list of words: n-grams holding any other word are dropped and the model's vocabulary is
    those words (the rest read as <unk>).

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
        memory: str | int | None = None,
        tmp_dir: str | None = None,
        prune: str | list[int] | None = None,
        limit_vocab: str | list[str] | None = None,
        bpe_vocab_size: int = 4096,
    ):
        self.order = order
        self.smoothing = smoothing
        self.k = k
        self.discount = discount
        self.backoff = backoff
        self.level = level
        self.min_count = min_count
        self.memory = memory
        self.tmp_dir = tmp_dir
        self.prune = prune
        self.limit_vocab = limit_vocab
        self.bpe_vocab_size = bpe_vocab_size
        self.tokenizer = None
        check_settings({"order": order, "min_count": min_count, "bpe_vocab_size": bpe_vocab_size}, NGRAM)

    # ---- configuration -------------------------------------------------------------------

    @property
    def name(self) -> str:
        limits = []
        if self.prune is not None:
            try:
                thresholds = self.prune_thresholds()
                limits += ["pruned " + " ".join(map(str, thresholds))] if any(thresholds) else []
            except ConfigError:
                limits.append(f"pruned {self.prune!r}")
        if self.limit_vocab is not None:
            limits.append("limited vocabulary")
        return f"{self.smoothing} {self.order}-gram" + (f" ({', '.join(limits)})" if limits else "")

    def prune_thresholds(self) -> list[int]:
        """lmplz's --prune read as one count threshold per order (the last one repeated)."""
        value = self.prune
        if value is None:
            return [0] * self.order
        if isinstance(value, str):
            parts = value.replace(",", " ").split()
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = [value]
        thresholds = []
        for part in parts:
            try:
                number = float(part)
            except (TypeError, ValueError):
                number = float("nan")
            if isinstance(part, bool) or not number.is_integer() or number < 0:
                raise ConfigError(f"prune takes whole-number count thresholds >= 0, one per order, got {value!r}")
            thresholds.append(int(number))
        if not thresholds:
            raise ConfigError(f"prune takes one count threshold per order, e.g. '0,1,1', got {value!r}")
        if len(thresholds) > self.order:
            raise ConfigError(f"prune gives {len(thresholds)} thresholds but the model has order {self.order}")
        if any(b < a for a, b in itertools.pairwise(thresholds)):
            raise ConfigError(f"prune thresholds must be non-decreasing (as lmplz's), got {value!r}")
        if thresholds[0] != 0:
            raise ConfigError(f"prune cannot drop unigrams (as lmplz): its first threshold must be 0, got {value!r}")
        return thresholds + [thresholds[-1]] * (self.order - len(thresholds))

    def limit_words(self) -> set[str] | None:
        """The words of limit_vocab (lmplz's --limit_vocab_file: whitespace-separated), or None."""
        value = self.limit_vocab
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            try:
                return set(Path(value).read_text(encoding="utf-8").split())
            except (FileNotFoundError, IsADirectoryError):
                raise ConfigError(f"limit_vocab: no word list file at {value}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"limit_vocab: {value} is not UTF-8 text") from None
        if isinstance(value, (list, tuple, set)) and all(isinstance(word, str) for word in value):
            return set(value)
        raise ConfigError(f"limit_vocab takes a file of words or a list of words, got {value!r}")

    @property
    def is_normalised(self) -> bool:
        return SMOOTHINGS.get(self.smoothing, Smoothing).normalised

    def make_smoothing(self) -> Smoothing:
        """The estimator named by `smoothing`, with its own hyper-parameter, after checking both."""
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ConfigError(f"order must be a whole number >= 1, got {self.order!r}")
        parse_memory(self.memory)
        self.prune_thresholds()
        if self.tmp_dir is not None and not isinstance(self.tmp_dir, (str, os.PathLike)):
            raise ConfigError(f"tmp_dir must be a folder path, got {self.tmp_dir!r}")
        estimator = SMOOTHINGS.get(self.smoothing) if isinstance(self.smoothing, str) else None
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
        """Words, characters, or byte-level BPE pieces (level='bpe': the open-vocabulary n-gram
        of subword units; `bpe_vocab_size` pieces, 4096 by default as the neural families)."""
        level = self.level or getattr(train, "level", "word")
        if level == "word":
            return WordTokenizer(min_count=self.min_count)
        if level == "char":
            return CharTokenizer(min_count=self.min_count)
        if level == "bpe":
            from ..tokenizers import BPETokenizer

            return BPETokenizer(vocab_size=self.bpe_vocab_size)
        raise ConfigError(f"unknown level {level!r}; use 'word', 'char' or 'bpe'")

    # ---- fitting -------------------------------------------------------------------------

    def fit(self, train, valid=None, **budget) -> NGramLM:
        """Count every n-gram of `train` (one pass; budgets do not apply) and smooth, within the
        memory limit `memory` (estimate.py); the tables are memory-mapped .npy files."""
        unknown = set(budget) - BUDGET_KEYS
        if unknown:
            raise ConfigError(f"unknown fit option(s): {', '.join(sorted(unknown))}")
        smoothing = self.make_smoothing()
        memory = parse_memory(self.memory)
        prune = self.prune_thresholds()
        words = self.limit_words()
        if isinstance(train, str):
            raise LangmodelsError("fit takes a list of lines or a Corpus split, not one string")
        if not any(line.strip() for line in train):
            raise LangmodelsError("the training text is empty")
        start = time.perf_counter()
        mode = split_mode(train, "lines")
        self.tokenizer = tokenizer = self.make_tokenizer(train)
        separator, final = None, True
        if mode == "stream" and tokenizer.level not in ("word", "char"):
            tokenizer.fit([split_text(train)])
            flat = self._stream_ids(train)  # subword pieces may span a newline: the text is encoded whole
            offsets, eos = np.array([0, flat.size]), None
        else:  # contract C-2: the ids, memory-mapped from the id cache, read a block at a time
            ids = fit_token_ids(train, tokenizer)  # tokenizer.fit(train), then its ids: one pass
            flat, offsets, eos = ids.ids, ids.offsets, tokenizer.vocab.eos_id
            if mode == "stream":  # one stream, the lines joined as base.py's _stream_ids joins them
                eos = None
                if tokenizer.level == "word":
                    separator = tokenizer.vocab.eos_id
                else:
                    separator, final = tokenizer.vocab["\n"], ids.final_newline
        vocab = tokenizer.vocab
        support = np.ones(len(vocab), dtype=bool)
        support[[vocab.bos_id, vocab.pad_id, vocab.mask_id]] = False
        allowed = None
        if words is not None:
            if tokenizer.level not in ("word", "char"):
                raise ConfigError("limit_vocab works on word or character models (subword pieces depend on each other)")
            allowed = np.zeros(len(vocab), dtype=bool)
            allowed[[vocab[word] for word in words if word in vocab]] = True
        folder = ScratchFolder(self.tmp_dir, "langmodels-ngram-tables")  # dead fits' folders removed first
        try:
            result = estimate(flat, offsets, folder.path, order=self.order, vocab_size=len(vocab),
                              bos_id=vocab.bos_id, eos_id=eos, smoothing=smoothing, support=support, memory=memory,
                              tmp_dir=self.tmp_dir, prune=prune, allowed=allowed, separator=separator, final=final,
                              threads=min(os.cpu_count() or 1, 2))
        except BaseException:
            folder.cleanup()
            raise
        if result.kept_words is not None:  # the model's vocabulary is the allowed words (and the specials)
            kept = type(vocab)(vocab.tokens[i] for i in result.kept_words.tolist())
            tokenizer._load_state({"vocab": kept.to_dict()})  # as a checkpoint's vocabulary is restored
            vocab = tokenizer.vocab
        self.tables_, self.counts_ = self.load_tables(folder.path, result.vocab_size, smoothing)
        self.tables_.build_memory = memory // 4  # the hash indexes are built (at save, or first use) within the limit
        self._tables_folder = folder  # removed with the model (the tables are memory-mapped from it)
        self.estimation_ = {"memory": memory, "blocks": result.blocks, "spilled_bytes": result.spilled_bytes}
        self.mode_ = mode
        used = getattr(smoothing, "used_discounts_", None) or getattr(smoothing, "used_discount_", {})
        self.discounts_ = {str(n): [float(x) for x in np.atleast_1d(d)] for n, d in used.items()}
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def load_tables(self, folder: Path, vocab_size: int, smoothing: Smoothing):
        """Contract C-3's tables from `folder`, memory-mapped; the hash indexes are built there
        on first use (tables.py)."""
        return BackoffTables.load(folder, self.order, vocab_size, bos_id=self.tokenizer.vocab.bos_id,
                                  lower=smoothing.lower, index_folder=folder)

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

    def tokens_logprobs(self, tokens: list[str]) -> np.ndarray:
        """nltk.lm's reading of a context given as a list of tokens (`score`, `logscore`): the
        tokens as given, no implied start of line (pass '<s>' for one), so [] gives the unigram."""
        return self.logprobs_after(self._check_fitted().vocab.ids(tokens))

    def ngram_lengths(self, flat, lengths) -> np.ndarray:
        """Per token and end of line: the length of the longest n-gram of the tables that ends
        there (<s> counts; 1 is the unigram), KenLM query's ngram_length."""
        tokens, position = NGramCounts.pad(np.asarray(flat, dtype=np.int64), lengths, self.tokenizer.vocab.bos_id,
                                           self.line_end_id())
        found = np.ones(tokens.size, dtype=np.int64)
        for n, ids in enumerate(self._check_tables().gram_ids(tokens, position)[1:], start=2):
            found[ids >= 0] = n
        return found[position > 0]  # the <s> of each line is context, not scored

    def score_ids(self, batch) -> list[np.ndarray]:
        """Log P per token and end-of-line (raw log-scores for stupid backoff)."""
        lines = [np.asarray(ids, dtype=np.int64) for ids in batch]
        if not lines:
            return []
        lengths = np.array([len(ids) for ids in lines], dtype=np.int64)
        scores = self.score_lines(np.concatenate(lines), lengths)
        return np.split(scores, np.cumsum(lengths + 1)[:-1])

    def score_lines(self, flat, lengths, *, progress=None) -> np.ndarray:
        return self._check_tables().score_lines(np.asarray(flat), lengths, self.tokenizer.vocab.eos_id)

    def score_stream(self, ids) -> np.ndarray:
        return self._check_tables().score_stream(np.asarray(ids))

    # ---- views -------------------------------------------------------------------------

    def graph(self, *, max_contexts: int | None = None):
        """The transition graph (networkx DiGraph): contexts -> next contexts, edge probability."""
        from .graph import transition_graph

        return transition_graph(self, max_contexts=max_contexts)

    def to_dot(self, path=None, *, max_contexts: int | None = 50) -> str:
        """Graphviz DOT text of `graph()` (the 50 most frequent contexts by default); written to path if given."""
        from .graph import to_dot

        if path is not None:
            check_path(path, "to_dot's file")
        text = to_dot(self.graph(max_contexts=max_contexts))
        if path is not None:
            write_atomic(path, text.encode("utf-8"))
        return text

    def to_arpa(self, path) -> None:
        """Write the model as an ARPA back-off file (KenLM and SRILM read it)."""
        from .arpa import write_arpa

        check_path(path, "to_arpa's file")
        write_arpa(self, path)

    @classmethod
    def from_tables(cls, tables: BackoffTables, tokenizer, *, counts=None, smoothing: str = "kneser-ney",
                    mode: str = "lines") -> NGramLM:
        """A fitted model made of existing tables (an ARPA file's, a folder of C-3 .npy files)."""
        model = cls(order=tables.order, smoothing=smoothing)
        model.tokenizer = tokenizer
        model.tables_ = tables
        model.counts_ = counts if counts is not None else [np.zeros(len(t.keys), dtype=np.int64) for t in tables.orders]
        model.mode_ = mode
        model.discounts_ = {}
        return model

    # ---- checkpoints ---------------------------------------------------------------------

    def fitted_facts(self) -> dict:
        return {"mode": self.mode_, "discounts": self.discounts_, "index_scheme": INDEX_SCHEME}

    def state_files(self) -> dict[str, bytes | Path]:
        """Contract C-3's arrays and each order's hash index, one .npy file each: a file the
        array is already mapped from is handed over as its path (linked, not rewritten)."""
        tables = self._check_tables()
        tables.build_indexes()
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
            if n > 1:
                arrays[f"index_{n}"] = tables.index_slots(n)
        files = {}
        for name, values in arrays.items():
            source = tables.sources.get(name)
            if source is not None and Path(source).is_file():
                files[array_file(name)] = Path(source)
            else:
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(values), allow_pickle=False)
                files[array_file(name)] = buffer.getvalue()
        return files

    def restore_state(self, files: dict[str, bytes | Path], fitted: dict) -> None:
        """The tables memory-mapped from the checkpoint's .npy files (read_checkpoint checked
        them); a checkpoint of the earlier single-file layout (weights.npz) is read into memory."""
        vocab = self.tokenizer.vocab
        lower = self.make_smoothing().lower
        if TABLES_FILE in files:
            self.tables_, self.counts_ = self._restore_npz(files[TABLES_FILE], len(vocab), lower)
        else:
            if fitted.get("index_scheme") != INDEX_SCHEME:  # hashed another way: rebuilt when first used
                files = {name: data for name, data in files.items() if not name.startswith("index_")}
            self.tables_, self.counts_ = BackoffTables.load(None, self.order, len(vocab), bos_id=vocab.bos_id,
                                                            lower=lower, files=files)
        self.mode_ = fitted.get("mode", "lines")
        self.discounts_ = fitted.get("discounts", {})

    def _restore_npz(self, data: bytes, vocab_size: int, lower: str):
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                orders, counts = [], []
                for n in range(1, self.order + 1):
                    fields = (arrays[f"{field}_{n}"] for field in ("keys", "logprob", "logbackoff", "is_context"))
                    orders.append(OrderTable(*fields))
                    counts.append(arrays[f"count_{n}"])
                support = arrays["support"]
                (unseen,) = arrays["scalars"]
        except (KeyError, ValueError, OSError) as error:
            raise CheckpointError(f"{TABLES_FILE} does not hold {self.name} tables ({error})") from None
        if len(support) != vocab_size:
            raise CheckpointError(f"{TABLES_FILE} and tokenizer.json disagree on the vocabulary size")
        tables = BackoffTables(orders, vocab_size, support, bos_id=self.tokenizer.vocab.bos_id, lower=lower,
                               unseen_context_logbackoff=float(unseen))
        return tables, counts


class BigramLM(NGramLM):
    """A 2-gram model: the word graph, P(w | previous word)."""

    def __init__(self, smoothing: str = "kneser-ney", *, k: float = 0.5, discount=None, backoff: float = 0.4,
                 level: str | None = None, min_count: int = 1, memory=None, tmp_dir=None, prune=None,
                 limit_vocab=None, bpe_vocab_size: int = 4096):
        super().__init__(2, smoothing, k=k, discount=discount, backoff=backoff, level=level, min_count=min_count,
                         memory=memory, tmp_dir=tmp_dir, prune=prune, limit_vocab=limit_vocab,
                         bpe_vocab_size=bpe_vocab_size)


class TrigramLM(NGramLM):
    """A 3-gram model: P(w | previous two words)."""

    def __init__(self, smoothing: str = "kneser-ney", *, k: float = 0.5, discount=None, backoff: float = 0.4,
                 level: str | None = None, min_count: int = 1, memory=None, tmp_dir=None, prune=None,
                 limit_vocab=None, bpe_vocab_size: int = 4096):
        super().__init__(3, smoothing, k=k, discount=discount, backoff=backoff, level=level, min_count=min_count,
                         memory=memory, tmp_dir=tmp_dir, prune=prune, limit_vocab=limit_vocab,
                         bpe_vocab_size=bpe_vocab_size)


def read_arpa(path) -> ArpaLM:
    """Read an ARPA file (from KenLM, SRILM or `write_arpa`) as a model that scores like the others."""
    from .arpa import read_tables

    tables, vocab = read_tables(path, Vocabulary)
    tokenizer = WordTokenizer()
    tokenizer.vocab = vocab
    model = ArpaLM.from_tables(tables, tokenizer)
    model.source = str(path)
    return model


class ArpaLM(NGramLM):
    """A back-off model read from an ARPA file: `ArpaLM.read("model.arpa")` or `read_arpa`."""

    def __init__(self, order: int = 3, source: str = "", smoothing: str = "kneser-ney"):
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
