"""Every number a user sets, with its type, range and meaning: the one table the model configs
(neural/core.py's NeuralConfig, NGramLM), the command line (cli.py's argparse types and --set) and
the benchmark configs (through families.build_model) check values against, so a range is stated
once and refused the same way everywhere, in one line, before any reading, allocation or training.

A whole number is a Python int (not a bool, not 2.5); a number is an int or a float, finite (not
nan, not inf). Maxima, where a value is not bounded by memory alone (neural/memory.py estimates
that), and why:

* order <= MAX_ORDER (32): an n-gram model keeps a table per order and an MLP an embedding
  window per position, so cost grows with the order (Tiny Shakespeare's characters: order 16 in
  2.3 s and 0.65 GB, order 32 in 9.3 s and 1.6 GB, perplexity unchanged from 16 to 32: beyond a
  few words or ten characters nearly every n-gram of a corpus is seen once). KenLM's lmplz is
  built for order 6 by default (KENLM_MAX_ORDER).
* n_layer <= MAX_LAYERS (1024): the deepest transformer trained so far (DeepNet, Wang et al.
  2022) has 1,000 layers; the memory estimate builds the model's shapes, which takes about 2 s
  at this depth.
* n_embd, hidden, n_head, n_segments, bpe_vocab_size, context <= MAX_WIDTH (2**28): the cap
  keeps every weight's element count inside torch's int64 arithmetic (the widest, an MLP's
  31 x 2**28 by 2**28 hidden layer, is 2.2e18 < 2**63), so the memory estimate can build any
  model's shapes; memory (neural/memory.py) refuses far smaller sizes first.
* threads <= os.cpu_count(): torch starts one OpenMP thread each; 10,000 of them never finish
  starting on a small machine.
* seed <= SEED_MAX (2**63 - 1): the seeds torch.manual_seed, numpy and TOML's integers all hold.
  Seeds derived from it (the trainer's dropout seed per step) are reduced modulo 2**64, so every
  seed in range trains; a larger one is refused rather than silently folded onto another.
* lr <= 1 and lr x weight_decay < 1: an AdamW step moves each weight by about lr, and its decoupled
  decay multiplies each weight by 1 - lr x weight_decay (Loshchilov & Hutter 2019), which at 1 or
  more zeroes or flips every weight at each step.
* num, max_tokens (generation), samples <= MAX_SAMPLES (1,000,000): a guard against a mistyped
  count (a million samples or tokens is hours of sampling on a CPU).
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ConfigError, InputError

INT64_MAX = 2**63 - 1
SEED_MAX = INT64_MAX
PROJECTION_SEED_MAX = 2**32 - 1  # scikit-learn's random_state (numpy's RandomState) takes 32 bits
MAX_ORDER = 32
MAX_LAYERS = 1024
MAX_WIDTH = 2**28
MAX_SAMPLES = 1_000_000


def shown(value) -> str:
    """A value as a one-line message quotes it, cut short (an int of thousands of digits, which
    Python will not even convert to text, is given by its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {value.bit_length():,}-bit number"
    return reprlib.repr(value)


def cpu_count() -> int:
    """The most torch threads a setting may ask for: the machine's processors."""
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Option:
    """One setting's type and range. `high` may be a function (a machine-dependent maximum);
    `low_open`/`high_open` exclude the bound itself."""

    name: str
    whole: bool  # a whole number (int), else a finite number (int or float)
    low: float | None = None
    high: float | Callable[[], float] | None = None
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""
    why: str = ""  # why the maximum, said when a value is refused

    def upper(self) -> float | None:
        return self.high() if callable(self.high) else self.high

    def describe(self) -> str:
        """What the option takes, as an error message says it: 'a whole number from 1 to 1,024'."""
        kind = "a whole number" if self.whole else "a number"
        high = self.upper()
        if high == INT64_MAX:
            high = None  # every whole number is held to int64; said only when it is the issue
        if self.low is not None and high is not None:
            if self.whole and not self.low_open and not self.high_open:
                return f"{kind} from {self.low:,} to {high:,}"
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high:g}"
        return kind

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if not self.whole and not math.isfinite(value):
            return False
        if self.whole and not -INT64_MAX - 1 <= value <= INT64_MAX:
            return False
        high = self.upper()
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return high is None or (value < high if self.high_open else value <= high)

    def check(self, value, where: str | None = None):
        """The value, or ConfigError: '<where> must be <describe()>, got <value>'."""
        if not self.accepts(value):
            too_big = isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX
            said = "a whole number that fits in 64 bits" if too_big else self.describe()
            why = f" ({self.why})" if self.why else ""
            raise ConfigError(f"{where or self.name} must be {said}{why}, got {shown(value)}")
        return value

    def parse(self, text: str, where: str | None = None):
        """The value written as `text` (the command line's), checked."""
        try:
            value = int(text) if self.whole else float(text)
        except ValueError:
            raise ConfigError(f"{where or self.name} must be {self.describe()}, got {shown(text)}") from None
        return self.check(value, where)


def whole(name, low=None, high=INT64_MAX, meaning="", why="") -> Option:
    return Option(name, True, low, high, meaning=meaning, why=why)


def number(name, low=None, high=None, *, low_open=False, high_open=False, meaning="") -> Option:
    return Option(name, False, low, high, low_open, high_open, meaning)


def _table(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


WHY_ORDER = "each order adds a table, and beyond about ten nearly every n-gram of a corpus is seen once"
WHY_COUNT = "a guard against a mistyped count"
SEED = whole("seed", 0, SEED_MAX, "random seed; runs with the same seed repeat")
# threads as a saved setting (a checkpoint from a larger machine still loads), and as one this
# machine can run, checked before training.
THREADS = whole("threads", 0, meaning="torch threads (0: torch's default)")
THREADS_HERE = whole("threads", 0, cpu_count, "torch threads (0: torch's default)", "this machine's processors")

# The neural families' settings (neural/core.py's NeuralConfig and each family's Config), by field.
# (The masked model's three masking probabilities are checked together, by bert.check_masking.)
NEURAL = _table(
    whole("bpe_vocab_size", 1, MAX_WIDTH, "BPE pieces, specials included"),
    whole("min_count", 1, meaning="fewest occurrences of a token kept in the vocabulary"),
    whole("context", 1, MAX_WIDTH, "tokens of context"),
    whole("batch_size", 1, meaning="rows per training step"),
    Option("lr", False, 0, 1, low_open=True, meaning="peak learning rate of AdamW",
           why="an AdamW step moves each weight by about lr"),
    whole("warmup_steps", 0, meaning="fewest warm-up steps"),
    number("warmup_fraction", 0, 1, high_open=True, meaning="warm-up as a share of the budget"),
    number("weight_decay", 0, meaning="AdamW's decoupled weight decay"),
    number("grad_clip", 0, low_open=True, meaning="gradient norm clip"),
    whole("eval_every", 0, meaning="steps between validations (0: ten per budget)"),
    whole("patience", 0, meaning="validations without improvement before early stopping (0: never)"),
    SEED,
    THREADS,
    number("dropout", 0, 1, high_open=True, meaning="dropout probability in training"),
    whole("order", 2, MAX_ORDER, "n of the n-gram an MLP reads (order - 1 tokens of context)",
          "each order adds n_embd inputs to the hidden layer; Bengio et al. 2003 used up to 6"),
    whole("n_embd", 1, MAX_WIDTH, "embedding width"),
    whole("hidden", 1, MAX_WIDTH, "hidden units per layer"),
    whole("n_layer", 1, MAX_LAYERS, "layers", "deeper than any transformer trained so far"),
    whole("n_head", 1, MAX_WIDTH, "attention heads (n_embd must be divisible by n_head)"),
    whole("n_segments", 1, MAX_WIDTH, "segment embeddings"),
    whole("gibbs_sweeps", 1, MAX_SAMPLES, "passes over the generated positions when a masked model generates",
          WHY_COUNT),
    whole("pll_batch_tokens", 1, meaning="tokens per forward pass when scoring masked copies"),
)

# NGramLM's counted settings (the smoothing's own numbers, k, discount and backoff, are checked by
# each estimator in ngram/smoothing.py).
NGRAM = _table(
    whole("order", 1, MAX_ORDER, "n of the n-gram", WHY_ORDER),
    whole("min_count", 1, meaning="fewest occurrences of a token kept in the vocabulary"),
    whole("bpe_vocab_size", 1, MAX_WIDTH, "BPE pieces, specials included"),
)

# Training budgets (every family's fit; the n-gram models count in one pass and use none).
BUDGET = _table(
    whole("max_steps", 1, meaning="optimiser steps"),
    whole("max_tokens", 1, meaning="training tokens"),
    number("max_seconds", 0, low_open=True, meaning="wall-clock seconds"),
)

# Sampling, scoring and the commands' other counts.
RUN = _table(
    number("temperature", 0, meaning="divides the log-probabilities (0: the most probable token)"),
    whole("top_k", 1, meaning="sample among the k most probable tokens"),
    number("top_p", 0, 1, low_open=True, meaning="nucleus: the fewest tokens whose probability reaches p"),
    whole("max_tokens", 0, MAX_SAMPLES, "tokens per sample at most", WHY_COUNT),
    whole("num", 1, MAX_SAMPLES, "samples", WHY_COUNT),
    whole("samples", 0, MAX_SAMPLES, "samples per temperature", WHY_COUNT),
    whole("k", 1, meaning="how many tokens"),
    whole("lines", 1, meaning="lines to score"),
    whole("depth", 1, meaning="levels of successors"),
    whole("max_contexts", 1, meaning="contexts kept in a transition graph, the most frequent"),
    whole("n_tokens", 1, meaning="most probable next tokens shown"),
    whole("checkpoint_every", 0, meaning="steps between training-state writes (0: only on Ctrl-C)"),
    SEED,
    whole("projection seed", 0, PROJECTION_SEED_MAX, "seed of the 2-D projection"),
)


# A Hugging Face model's own counted settings (hf.py); the training settings it shares with the
# neural families by name (lr, batch_size, seed, ...) keep NEURAL's ranges. A window holds at
# least a start token and one token to predict (a masked model: [CLS] and [SEP] around it).
HF = _table(
    whole("context", 2, MAX_WIDTH, "tokens a window holds (None: the model's own maximum)"),
    whole("batch_tokens", 1, meaning="tokens per forward pass when scoring"),
    whole("stride", 1, meaning="tokens each scoring window advances (None: half the context)"),
)


def check_decay(lr, weight_decay) -> None:
    """lr x weight_decay < 1 (both already in range): AdamW's decoupled decay multiplies each
    weight by 1 - lr x weight_decay at every step (Loshchilov & Hutter 2019)."""
    if lr * weight_decay >= 1:
        raise ConfigError(f"lr x weight_decay must be < 1, got {lr!r} x {weight_decay!r}: AdamW "
                          "multiplies each weight by 1 - lr x weight_decay at every step")


def check_settings(values: dict, table: dict[str, Option]) -> None:
    """ConfigError naming the first of `values` outside its range in `table`; names the table
    does not hold are left to the caller."""
    for name, value in values.items():
        if name in table:
            table[name].check(value)


def check_budget(budget: dict) -> None:
    """Each training budget given (not None) a whole number >= 1 of steps or tokens, or a finite
    number of seconds > 0; ConfigError for an unknown budget keyword is the family's own."""
    for name, value in budget.items():
        if name in BUDGET and value is not None:
            BUDGET[name].check(value)


def check_seed(seed, name: str = "seed") -> None:
    """None (random) or a seed in [0, SEED_MAX]."""
    if seed is not None:
        SEED.check(seed, name)


def check_lines(texts, what: str, *, empty_ok: bool = True) -> None:
    """A text as the models take it: a Corpus split or a sequence (list, tuple) of str lines.
    InputError for one str (`what` says which argument), None, a number or lines that are not
    str; and, unless empty_ok, for no lines at all."""
    if isinstance(texts, (str, bytes)):
        raise InputError(f"{what} takes a list of lines or a Corpus split, not one string")
    if not isinstance(texts, Sequence):
        raise InputError(f"{what} takes a list of lines or a Corpus split, got {type(texts).__name__}")
    if isinstance(texts, (list, tuple)):  # a Split holds str lines by construction
        i = next((i for i, line in enumerate(texts) if not isinstance(line, str)), None)
        if i is not None:
            raise InputError(f"{what}: every line must be a str; line {i} is {shown(texts[i])}")
    if not empty_ok and len(texts) == 0:
        raise InputError(f"{what}: the text has no lines; nothing to score")


def check_text(value, what: str, *, none_ok: bool = False) -> None:
    """A str argument (a word, a line, a prompt); None too where `none_ok`."""
    if value is None and none_ok:
        return
    if not isinstance(value, str):
        raise InputError(f"{what} must be text (a str), got {type(value).__name__} {shown(value)}")


def check_context(context, what: str = "context") -> None:
    """A context as score, logscore and top_next take it: None, text, or a sequence of token strs."""
    if context is None or isinstance(context, str):
        return
    if not isinstance(context, Sequence) or not all(isinstance(token, str) for token in context):
        raise InputError(f"{what} must be text, a list of token strings or None, got {shown(context)}")


def check_tokens(tokens, what: str) -> list[str]:
    """A list (or tuple) of token or word strs as a list; InputError for one str, None or a non-str entry."""
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        raise InputError(f"{what} must be a list of words (strs), got {shown(tokens)}")
    i = next((i for i, token in enumerate(tokens) if not isinstance(token, str)), None)
    if i is not None:
        raise InputError(f"{what}: every word must be a str; entry {i} is {shown(tokens[i])}")
    return list(tokens)


def check_path(path, what: str = "path") -> None:
    """A folder or file path: a non-empty str or os.PathLike."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise InputError(f"{what} must be a non-empty file or folder path, got {shown(path)}")
