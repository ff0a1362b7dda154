"""The contract every language model shares, and everything derived from its two primitives.

A model is a probability distribution over the next token given a context. Each family
implements two primitives on token ids (natural-log probabilities):

* ``next_logprobs(context_ids)`` -> array (V,): the distribution of the token after
  start-of-line + context_ids; its logsumexp is 0.
* ``score_ids([ids, ...])`` -> one array per line of len(ids) + 1 entries: entry i is
  log P(ids[i] | start, ids[:i]) and the last is log P(end-of-line | start, ids).

Everything a user calls (logprob, perplexity, evaluate, top_next, generate, save/load and the
nltk.lm-style aliases score/logscore) is written once here on top of them.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import read_checkpoint, write_checkpoint
from .corpora import split_blocks, split_mode, split_text
from .errors import CheckpointError, LangmodelsError
from .metrics import Evaluation, TextCounts
from .options import RUN, check_budget, check_context, check_lines, check_path, check_seed, check_text
from .sampling import check_sampling_options, sample_next
from .token_ids import token_ids
from .tokenizers import Tokenizer, tokenizer_from_dict

TOKENIZER_FILE = "tokenizer.json"
METRICS_FILE = "metrics.json"


class LangmodelsWarning(UserWarning):
    """A note to the user: something was adjusted rather than refused (the CLI prints it)."""


# Packages whose frames a note skips, so Python shows it at the user's line, never inside the
# library or a decorator of torch's (next_logprobs runs under torch.no_grad()).
INTERNAL_PACKAGES = ("langmodels", "torch", "numpy", "contextlib", "functools")


def note(message: str) -> None:
    """Warn the user (LangmodelsWarning), attributed to the first caller outside the library."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: note's caller
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in INTERNAL_PACKAGES:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, LangmodelsWarning, stacklevel=level)


#: seconds of scoring before its progress bar shows (tqdm's delay): a quick score prints nothing.
SCORING_BAR_DELAY = 2.0


def scoring_bar(iterable=None, *, name: str, progress: bool | None, **options) -> tqdm:
    """tqdm over a scoring loop of model `name`, on stderr once it has run SCORING_BAR_DELAY
    seconds; progress False: never, None: on a terminal only (tqdm's disable=None)."""
    return tqdm(iterable, desc=f"scoring {name}", disable=True if progress is False else None,
                delay=SCORING_BAR_DELAY, leave=False, **options)


class NotFittedError(LangmodelsError):
    """The model has no learned state yet."""


def check_generation_options(max_tokens, temperature, top_k, top_p) -> None:
    """Refuse a length or sampling option that does not make sense, naming it."""
    check_sampling_options(temperature, top_k, top_p)
    RUN["max_tokens"].check(max_tokens)


def check_num(num) -> None:
    RUN["num"].check(num)


def checked_fit(fit):
    """A family's `fit` with what every family's fit shares checked first, in one line each: the
    training text (and valid text) is a Corpus split or a list of str lines, and each budget given
    is in range (options.BUDGET: max_steps=0, 2.5 or -1 and max_seconds=nan are refused, whether or
    not the family trains in steps). LanguageModel wraps every subclass's own fit with it."""

    @functools.wraps(fit)
    def checked(self, train, valid=None, *args, **kwargs):
        check_lines(train, "fit")
        if valid is not None:
            check_lines(valid, "fit's valid text", empty_ok=False)
        check_budget(kwargs)
        return fit(self, train, valid, *args, **kwargs)

    return checked


def most_probable(logprobs: np.ndarray, tokens, k: int) -> list[tuple[str, float]]:
    """The k most probable tokens of a distribution (fewer if fewer are possible), with
    probabilities. `tokens`: a Tokenizer, whose `token_text` labels them as text (a BPE piece
    'Ġthe' reads ' the'), or a bare vocabulary, whose token strings label them."""
    label = getattr(tokens, "token_text", None) or tokens.token
    best = np.argsort(-logprobs, kind="stable")[: min(k, int(np.count_nonzero(np.isfinite(logprobs))))]
    return [(label(int(i)), float(np.exp(logprobs[i]))) for i in best]


def literal_unk_count(blocks) -> int:
    """How many whitespace words of a text are the string '<unk>' itself (Brown's rare words,
    mapped before the text was written): read as <unk>, they are not unknown to the model."""
    word = re.compile(r"(?<!\S)<unk>(?!\S)")
    return sum(len(word.findall(block)) for block in blocks)


class LanguageModel(ABC):
    """A next-token distribution with one interface for every family."""

    #: False for the masked encoder, whose scores are pseudo-likelihoods.
    is_causal: ClassVar[bool] = True
    #: False for scores that are not probabilities (stupid backoff): no perplexity then.
    is_normalised: bool = True
    #: how many lines `score_lines` hands to `score_ids` at once.
    score_batch_lines: ClassVar[int] = 64

    _registry: ClassVar[dict[str, type[LanguageModel]]] = {}

    tokenizer: Tokenizer | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "fit" in vars(cls) and not hasattr(cls.fit, "__wrapped__"):
            cls.fit = checked_fit(cls.fit)
        if not inspect.isabstract(cls):
            LanguageModel._registry[cls.__name__] = cls

    # ---- the two primitives, and fitting -------------------------------------------------

    @abstractmethod
    def fit(self, train, valid=None, **budget) -> LanguageModel:
        """Learn from a Corpus split or a list of lines; return self."""

    @abstractmethod
    def next_logprobs(self, context_ids: Sequence[int]) -> np.ndarray:
        """log P(next token | start, context_ids) for every id of the vocabulary, shape (V,)."""

    @abstractmethod
    def score_ids(self, batch: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Per line, log P of each token and of the end-of-line after it (len(ids) + 1 entries)."""

    def score_lines(self, flat: np.ndarray, lengths: np.ndarray, *, progress: bool | None = None) -> np.ndarray:
        """`score_ids` over many lines given as one flat id array and per-line lengths.

        Returns the lines' score arrays concatenated (len(flat) + len(lengths) entries). Calls
        `score_ids` in batches of `score_batch_lines` behind a progress bar; families that score
        any number of lines in one array operation override this.
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])  # line i is flat[starts[i]:starts[i + 1]]
        out = starts + np.arange(len(starts))  # and its len + 1 scores out[i]:out[i + 1]
        scored = np.zeros(int(out[-1]))
        by_length = np.argsort(lengths, kind="stable")  # batches of similar lengths pad little
        step = self.score_batch_lines
        for begin in scoring_bar(range(0, len(lengths), step), name=self.name, progress=progress, unit="batch"):
            chosen = by_length[begin : begin + step]
            batch = [np.asarray(flat[starts[i] : starts[i + 1]], dtype=np.int64) for i in chosen]
            for i, scores in zip(chosen, self.score_ids(batch)):
                scored[out[i] : out[i + 1]] = scores
        return scored

    def score_stream(self, ids: np.ndarray) -> np.ndarray:
        """log P of each token of one continuous sequence (no end marker), shape (len(ids),).

        A bounded-context model scores each token with all the context it can use; families
        whose context is shorter than the stream override this with windowed scoring.
        """
        return self.score_ids([ids])[0][:-1]

    # ---- parameters (the scikit-learn habit) ---------------------------------------------

    def get_params(self) -> dict:
        """The constructor's keyword arguments, enough to rebuild an unfitted copy."""
        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    @property
    def name(self) -> str:
        """A short human label, e.g. 'kneser-ney 3-gram'."""
        return type(self).__name__

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _check_fitted(self) -> Tokenizer:
        if self.tokenizer is None:
            raise NotFittedError(f"{self.name} is not fitted yet: call fit() or load a checkpoint")
        return self.tokenizer

    def _check_normalised(self, what: str) -> None:
        if not self.is_normalised:
            raise LangmodelsError(
                f"{self.name} gives unnormalised scores, not probabilities; {what} is undefined for it"
            )

    # ---- text in, ids out ------------------------------------------------------------------

    def encode_context(self, context: str | Sequence[str] | None, what: str = "text") -> list[int]:
        """Ids of a text (read by the model's tokenizer) or of a sequence of tokens; unknown
        tokens become <unk>, with one note that calls the text `what` ('prompt', 'context', 'text')."""
        tokenizer = self._check_fitted()
        check_context(context, what)
        if context is None or context == "":
            return []
        if isinstance(context, str):
            ids = list(tokenizer.encode(context))
            tokens = tokenizer.tokenize(context) if tokenizer.level != "subword" else []
        else:
            tokens = list(context)
            ids = [tokenizer.vocab[token] for token in tokens]
        unk = tokenizer.vocab.unk_id
        unknown = [tok for tok, i in zip(tokens, ids) if i == unk and tok != tokenizer.vocab.token(unk)]
        if unknown:
            shown = ", ".join(repr(tok) for tok in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            note(f"{len(unknown)} {what} token(s) not in the vocabulary, read as <unk>: {shown}")
        return ids

    def token_id(self, token: str) -> int:
        """The id of a token given as the vocabulary spells it or as the text it stands for (a BPE
        piece 'Ġthe' or ' the'); <unk>'s id for anything else."""
        tokenizer = self._check_fitted()
        check_text(token, "a token")
        if token in tokenizer.vocab:
            return tokenizer.vocab[token]
        ids = tokenizer.encode(token) if token else []
        return ids[0] if len(ids) == 1 else tokenizer.vocab.unk_id

    def line_end_id(self) -> int:
        """The token that ends a line: </s>, or for a model trained on one character or subword
        stream, which never saw </s>, the newline it learned in its place (docs/design.md 2)."""
        tokenizer = self._check_fitted()
        if getattr(self, "mode_", None) == "stream" and tokenizer.level != "word":
            newline = tokenizer.encode("\n")
            if len(newline) == 1 and newline[0] != tokenizer.vocab.unk_id:
                return int(newline[0])
        return tokenizer.vocab.eos_id

    def line_logprobs(self, flat: np.ndarray, lengths: np.ndarray, *, progress: bool | None = None) -> np.ndarray:
        """`score_lines`, each line ended by `line_end_id()`: len(flat) + len(lengths) entries.

        A stream model's lines are scored with its newline appended as their last token; the
        </s> after it, which such a model gives no probability, is left out.
        """
        end = self.line_end_id()
        if end == self.tokenizer.vocab.eos_id:
            return self.score_lines(flat, lengths, progress=progress)
        lengths = np.asarray(lengths, dtype=np.int64)
        ended = np.insert(np.asarray(flat, dtype=np.int64), np.cumsum(lengths), end)
        scored = self.score_lines(ended, lengths + 1, progress=progress)
        return np.delete(scored, np.cumsum(lengths + 2) - 1)

    def _stream_ids(self, texts) -> np.ndarray:
        """One continuous id sequence for `stream` mode: words with </s> after each line, or the
        exact text for character and subword tokenizers (newlines are ordinary characters)."""
        tokenizer = self._check_fitted()
        if tokenizer.level == "word":
            return token_ids(texts, tokenizer).with_line_ends(tokenizer.vocab.eos_id)
        if tokenizer.level == "char":  # the lines' characters with their newlines put back
            ids = token_ids(texts, tokenizer)
            return ids.with_line_ends(tokenizer.vocab["\n"], final=ids.final_newline)
        # Subword pieces may join a newline to the spaces around it: the text is encoded whole.
        return np.asarray(tokenizer.encode(split_text(texts)), dtype=np.int64)

    def ngram_lengths(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Per token and end of line of `line_logprobs`: the length of the n-gram the prediction
        reads, the token itself and <s> included (KenLM query's ngram_length column). Here every
        token of the history, up to the model's context (a masked model reads the whole line, <s>
        to </s>); n-gram models say which n-gram they found."""
        scored = np.asarray(lengths, dtype=np.int64) + 1  # a line's tokens and its end
        if self.is_causal:
            starts = np.cumsum(scored) - scored
            position = np.arange(int(scored.sum())) - np.repeat(starts, scored) + 1  # from <s> = 0
        else:
            position = np.repeat(scored, scored)  # every position sees <s> .. </s>
        window = getattr(self, "context_size", None)
        return position + 1 if window is None else np.minimum(position + 1, window + 1)

    # ---- derived scores --------------------------------------------------------------------

    def logprob(self, text: str) -> float:
        """Natural-log probability of one line, its end-of-line included (for a model trained on
        a character stream, the newline it learned as the end of a line)."""
        self._check_normalised("a log-probability")
        check_text(text, "logprob's line")
        ids = np.asarray(self.encode_context(text), dtype=np.int64)
        return float(np.sum(self.line_logprobs(ids, np.array([ids.size]), progress=False)))

    def perplexity(self, texts) -> float:
        """Perplexity per token of a text, a list of lines or a Corpus split."""
        if isinstance(texts, str):
            texts = texts.splitlines() or [texts]
        check_lines(texts, "perplexity", empty_ok=False)
        evaluation = self.evaluate(texts)
        self.note_unknown(texts, evaluation.n_unk)
        return evaluation.perplexity

    def evaluate(self, texts, *, mode: str | None = None, progress: bool | None = None) -> Evaluation:
        """Score a split (or any list of lines) and return every normalisation of its NLL.

        mode: 'lines' scores each line from start-of-line and predicts its end-of-line; 'stream'
        scores the text as one sequence carrying context across lines. The default is the
        split's own mode ('lines' for a plain list).
        """
        tokenizer = self._check_fitted()
        self._check_normalised("perplexity")
        check_lines(texts, "evaluate", empty_ok=False)
        mode = mode or split_mode(texts, "lines")
        if mode not in ("lines", "stream"):
            raise LangmodelsError(f"unknown evaluation mode {mode!r}; use 'lines' or 'stream'")
        start = time.perf_counter()
        if mode == "stream":
            targets = self._stream_ids(texts)
            logprobs = self.score_stream(targets)
        else:
            ids = token_ids(texts, tokenizer, progress=progress)  # cached: tokenized once per text
            targets, lengths = ids.ids, ids.lengths  # the </s> targets are never <unk>
            logprobs = self.line_logprobs(targets, lengths, progress=progress)
        seconds = time.perf_counter() - start
        return self.evaluation_of(texts, mode, targets, logprobs, seconds)

    def note_unknown(self, texts, unknown: int) -> None:
        """One note for a call that returns a bare number (`perplexity`): how many of the text's
        `unknown` <unk> tokens the vocabulary lacked (a literal '<unk>' in the text is not counted:
        it is the token it spells). `evaluate` says it in its result, as n_unk."""
        tokenizer = self._check_fitted()
        if unknown and tokenizer.tokens_are_words:
            unknown -= literal_unk_count(split_blocks(texts))
        if unknown > 0:
            name = getattr(texts, "name", "")
            noun = "token" if unknown == 1 else "tokens"
            tokens = f"{name} {noun}" if name else f"{noun} of the text"
            note(f"{unknown:,} {tokens} {'are' if unknown > 1 else 'is'} not in the vocabulary; read as <unk>")

    def evaluation_of(self, texts, mode: str, targets: np.ndarray, logprobs: np.ndarray, seconds: float) -> Evaluation:
        """The Evaluation of `texts` scored in `mode`: the target ids and their log-probabilities
        (however they were computed: a mixture's may come from its parts' scores) and the time.
        The text's words, characters and bytes are counted block by block, never held whole."""
        zero = int(np.count_nonzero(np.isneginf(logprobs)))
        if zero:
            note(f"{zero} of {logprobs.size} tokens have probability zero under {self.name}: perplexity is infinite")
        return Evaluation.from_nll(
            math.inf if zero else -float(np.sum(logprobs)),
            n_tokens=int(logprobs.size),
            counts=TextCounts.of_blocks(split_blocks(texts)),
            seconds=seconds,
            model=self.name,
            corpus=getattr(texts, "corpus", ""),
            split=getattr(texts, "name", ""),
            mode=mode,
            n_unk=int(np.count_nonzero(targets == self.tokenizer.vocab.unk_id)),
            n_zero_prob=zero,
            pseudo=not self.is_causal,
        )

    def top_next(self, context: str | Sequence[str] = "", k: int = 5) -> list[tuple[str, float]]:
        """The k most probable next tokens after `context`, with their probabilities."""
        tokenizer = self._check_fitted()
        RUN["k"].check(k)
        return most_probable(self.next_logprobs(self.encode_context(context, "context")), tokenizer, k)

    def generate(
        self,
        prompt: str = "",
        max_tokens: int = 50,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        num: int | None = None,
    ) -> str | list[str]:
        """Sample a continuation of `prompt` (stops at end-of-line); returns prompt + continuation.

        temperature 0 always takes the most probable token (greedy; ties to the lowest id).
        num: a list of `num` samples instead of one str, sample i drawn with seed `seed + i` (the
        CLI's `--seed S --num N`); without a seed, each is random.
        """
        self._check_fitted()
        check_text(prompt, "prompt")
        check_generation_options(max_tokens, temperature, top_k, top_p)
        check_seed(seed)
        if num is not None:
            check_num(num)
        seeds = [seed] if num is None else [None if seed is None else seed + i for i in range(num)]
        samples = [self.draw_sample(prompt, max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                    rng=np.random.default_rng(s)) for s in seeds]
        return samples[0] if num is None else samples

    def draw_sample(self, prompt: str, max_tokens: int, *, temperature: float, top_k: int | None,
                    top_p: float | None, rng: np.random.Generator) -> str:
        """One sample of `generate` (options already checked): token by token from the left."""
        tokenizer = self._check_fitted()
        generated: list[int] = []
        distributions = self.next_logprobs_incremental(self.encode_context(prompt, "prompt"))
        for step in range(max_tokens):
            logprobs = next(distributions) if step == 0 else distributions.send(generated[-1])
            token = sample_next(logprobs, rng, temperature, top_k, top_p)
            if token == tokenizer.vocab.eos_id:
                break
            generated.append(token)
        return join_sample(tokenizer, prompt, generated)

    def next_logprobs_incremental(self, context_ids: Sequence[int]):
        """Yields next_logprobs(context_ids); send(token) appends the token and yields the next
        distribution. Families with a cache (GPT's keys and values) override this."""
        sequence = list(context_ids)
        while True:
            token = yield self.next_logprobs(sequence)
            sequence.append(int(token))

    # ---- nltk.lm names ---------------------------------------------------------------------

    def score(self, word: str, context: str | Sequence[str] | None = None) -> float:
        """P(word | context), as nltk.lm's `score`. A context given as text is read by the
        model's own tokenizer after the start of a line, as `top_next` and `generate` read it; a
        list of tokens (or None) is read as nltk.lm reads it (`context_logprobs`)."""
        check_text(word, "score's word")
        return float(np.exp(self.context_logprobs(context)[self.token_id(word)]))

    def logscore(self, word: str, context: str | Sequence[str] | None = None) -> float:
        """log2 P(word | context), as nltk.lm's `logscore` (base 2, as there); context as in `score`."""
        check_text(word, "logscore's word")
        return float(self.context_logprobs(context)[self.token_id(word)] / math.log(2))

    def context_logprobs(self, context: str | Sequence[str] | None) -> np.ndarray:
        """The next-token distribution of `score`: after start-of-line + the text's tokens for a
        str, after the tokens as given for a list (`tokens_logprobs`)."""
        check_context(context)
        if isinstance(context, str):
            return self.next_logprobs(self.encode_context(context, "context"))
        return self.tokens_logprobs(list(context or []))

    def tokens_logprobs(self, tokens: list[str]) -> np.ndarray:
        """The distribution after a list of tokens, nltk.lm's reading of a context. A model that
        always starts from start-of-line (every neural family) reads it after one; the n-gram
        models read it without (pass '<s>' for one), as nltk.lm does."""
        return self.next_logprobs(self.encode_context(tokens, "context"))

    # ---- checkpoints -----------------------------------------------------------------------

    def state_files(self) -> dict[str, bytes]:
        """The learned state as named files (safetensors or npz bytes; never pickle)."""
        raise NotImplementedError

    def restore_state(self, files: dict[str, bytes], fitted: dict) -> None:
        """Rebuild the learned state from `state_files()` output and the saved `fitted` facts."""
        raise NotImplementedError

    def fitted_facts(self) -> dict:
        """JSON-safe facts learned in fit that are not arrays (e.g. the training mode)."""
        return {}

    def checkpoint_contents(self, extra_files: dict[str, bytes] | None = None) -> tuple[dict, dict[str, bytes]]:
        """(config, files) of this model's checkpoint: tokenizer.json, metrics.json and the model's
        state, plus `extra_files` (e.g. a trainer's optimizer state, checksummed alike)."""
        tokenizer = self._check_fitted()
        files = {**self.state_files(), **(extra_files or {})}
        files[TOKENIZER_FILE] = json.dumps(tokenizer.to_dict()).encode("utf-8")
        files[METRICS_FILE] = json.dumps(getattr(self, "metrics_", None) or {}, indent=2).encode("utf-8")
        config = {
            "class": type(self).__name__,
            "library_version": __version__,
            "params": self.get_params(),
            "fitted": self.fitted_facts(),
        }
        return config, files

    def save(self, path, *, extra_files: dict[str, bytes] | None = None) -> None:
        """Write a checkpoint folder: config.json and `checkpoint_contents()`' files, atomically."""
        check_path(path, "save's folder")
        write_checkpoint(path, *self.checkpoint_contents(extra_files))

    save_pretrained = save

    @classmethod
    def load(cls, path) -> LanguageModel:
        """Read a checkpoint folder written by `save`, checking every file's checksum; or
        `hf:NAME_OR_PATH`, a Hugging Face model (hf.py)."""
        check_path(path, "load's folder")
        if isinstance(path, str) and path.startswith("hf:"):
            from .hf import load_hf

            return load_hf(path[3:], expected=cls)
        config, files = read_checkpoint(path)
        return cls.from_checkpoint(config, files, where=str(path))

    @classmethod
    def from_checkpoint(cls, config: dict, files: dict[str, bytes], where: str) -> LanguageModel:
        """The model a checkpoint's config and (already checksummed) files describe; `where`
        names the checkpoint in errors."""
        if config.get("class") not in LanguageModel._registry:
            import langmodels.hf  # registers HFCausalLM, HFMaskedLM (transformers itself stays unimported)
            import langmodels.neural  # noqa: F401  (registers the neural classes, imported lazily)
        model_class = LanguageModel._registry.get(config.get("class"))
        if model_class is None or (cls is not LanguageModel and not issubclass(model_class, cls)):
            raise CheckpointError(f"{where}: checkpoint class {config.get('class')!r} is not a {cls.__name__}")
        if model_class.from_checkpoint.__func__ is not LanguageModel.from_checkpoint.__func__:
            return model_class.from_checkpoint(config, files, where)  # a layout of its own (hf.py)
        files = dict(files)
        try:
            model = model_class(**config["params"])
            model.tokenizer = tokenizer_from_dict(json.loads(files.pop(TOKENIZER_FILE)))
            model.metrics_ = json.loads(files.pop(METRICS_FILE, b"{}")) or None
            model.restore_state(files, config.get("fitted") or {})
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: checkpoint does not fit {config.get('class')} ({error})") from None
        return model

    from_pretrained = load


def join_sample(tokenizer: Tokenizer, prompt: str, generated: list[int]) -> str:
    """prompt + the text of the generated ids, decoded as one sequence so that byte-level pieces
    of one character join up (`decode_sample`: a character cut short at the end is left out)."""
    continuation = tokenizer.decode_sample(generated)
    separator = " " if tokenizer.level == "word" and prompt and continuation else ""
    return prompt + separator + continuation


def load(path) -> LanguageModel:
    """Load any checkpoint folder written by this library."""
    return LanguageModel.load(path)
