"""Benchmark configs: a TOML file (read with tomllib) of corpora x models x budgets x seeds.

    name = "default"                      # the benchmark's identity: an output folder holds one
    seeds = [0]                           # seeds of every model that takes one (n-grams take none)

    [[corpus]]
    name = "brown"                        # a shipped corpus, or a path relative to this file
    valid_lines = 2000                    # optional slices: the first N lines of a split
    prompts = ["The jury"]                # samples start from these ...
    complete = ["He said that the"]       # ... and the autocomplete table reads these

    [[model]]
    name = "gpt"                          # the label in tables, run folders and --only
    kind = "gpt"                          # bigram trigram ngram mlp lstm gpt bert, or package.module:Class
    settings = { n_layer = 2, threads = 2 }   # constructor keywords (a neural model's Config fields)
    budget = { max_seconds = 90 }         # max_steps, max_tokens or max_seconds (neural models)
    [model.per_corpus.shakespeare]        # optional: settings, budget, sweep or test_lines for one corpus
    settings = { context = 128 }

A corpus may also have a `label` (default: its name or file stem), a `level` (word or char),
`sample_tokens` (per sample), and `position_lines` / `position_max` (the loss-by-position curve
reads the lines among the first position_lines test lines that reach position_max). A model may
also have `corpora = [...]` (the labels it runs on; all by default), `seeds`, a
`sweep = { order = [1, 2, 3], smoothing = ["laplace", "kneser-ney"] }` (one run per combination,
reported as a sweep rather than in the summary table, and not sampled) and, for a model whose
scores are not ranked (the masked LM's pseudo-perplexity), `test_lines`: score only the first N
test lines (per_corpus may set it too). `[measure]` sets the sampling temperatures and seeds and
the autocomplete width; `[[reference]]` rows quote published figures (corpus, label, source, note
and one of word_perplexity, bits_per_char, nats_per_char), shown as external and never ranked;
the shipped corpora's own anchors are added by references.py.

Everything is checked here, before any corpus is read or any output written: a wrong key is named
with the valid ones, a wrong value with what it must be.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import corpora
from ..errors import ConfigError
from ..families import BUDGET_KEYS, build_model, model_class_named, model_parameters, takes_budget

SPLIT_SLICES = ("train_lines", "valid_lines", "test_lines")
REFERENCE_FIGURES = ("word_perplexity", "bits_per_char", "nats_per_char")
# Sample lengths and the reach of the loss-by-position curve, by corpus level, unless the config says.
SAMPLE_TOKENS = {"word": 30, "char": 150}
POSITION_MAX = {"word": 20, "char": 40}  # a quarter of Brown's and a third of Tiny Shakespeare's lines reach it
POSITION_LINES = 1000


@dataclass(frozen=True)
class CorpusSpec:
    label: str
    source: str  # a shipped name or an absolute path
    level: str | None
    slices: dict  # split -> first N lines, or None for the whole split
    prompts: tuple[str, ...]
    complete: tuple[str, ...]
    sample_tokens: int | None
    position_lines: int
    position_max: int | None


@dataclass(frozen=True)
class Measure:
    temperatures: tuple[float, ...] = (0.8, 1.0)
    sample_seeds: tuple[int, ...] = (0, 1)
    top_k: int = 5


@dataclass(frozen=True)
class Reference:
    corpus: str
    label: str
    source: str
    note: str
    figure: str  # one of REFERENCE_FIGURES
    value: float


@dataclass
class RunSpec:
    """One (corpus, model, seed) run, with every setting resolved."""

    corpus: str
    model: str  # the label: the config's model name, plus the swept values
    group: str  # the config's model name
    kind: str
    model_class: type
    params: dict  # constructor keywords, the seed included where the family takes one
    budget: dict
    seed: int | None
    sweep: dict  # the swept settings of this run ({} outside a sweep)
    test_lines: int | None = None

    @property
    def run_id(self) -> str:
        return f"{self.corpus}/{self.model}" + ("" if self.seed is None else f"/seed{self.seed}")

    @property
    def in_summary(self) -> bool:
        return not self.sweep


@dataclass
class BenchConfig:
    name: str
    description: str
    path: Path
    sha256: str
    corpora: list[CorpusSpec]
    runs: list[RunSpec]
    measure: Measure
    references: list[Reference] = field(default_factory=list)
    sweeps: dict = field(default_factory=dict)  # model name -> swept keys, in order

    def corpus(self, label: str) -> CorpusSpec:
        return next(spec for spec in self.corpora if spec.label == label)


# ---- reading ------------------------------------------------------------------------------------


def load_config(path) -> BenchConfig:
    """Read and check a benchmark config; ConfigError (one line, naming the problem) otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such benchmark config") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a benchmark config") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 (invalid byte at offset {error.start})") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None  # the message gives line and column
    return _Reader(path).config(table, hashlib.sha256(data).hexdigest())


def _did_you_mean(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Checks one config table by table; every message starts with the file and the place."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str):
        raise ConfigError(f"{self.path}: {where}: {message}")

    def keys(self, table, where: str, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
        if not isinstance(table, dict):
            self.fail(where, f"must be a table, got {type(table).__name__}")
        for key in table:
            if key not in valid:
                self.fail(where, f"unknown key {key!r}{_did_you_mean(key, valid)}; valid keys: {', '.join(valid)}")
        for key in required:
            if key not in table:
                self.fail(where, f"missing key {key!r}")

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"must be a non-empty string, got {value!r}")
        return value

    def count(self, value, where: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(where, f"must be a whole number >= {minimum}, got {value!r}")
        return value

    def positive(self, value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
            self.fail(where, f"must be a number > 0, got {value!r}")
        return float(value)

    def listing(self, value, where: str, item, *, empty: bool = False) -> tuple:
        if not isinstance(value, list) or (not value and not empty):
            self.fail(where, f"must be a {'' if empty else 'non-empty '}list, got {value!r}")
        return tuple(item(element, f"{where}[{i}]") for i, element in enumerate(value))

    def string(self, value, where: str) -> str:
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {value!r}")
        return value

    # ---- the whole file -------------------------------------------------------------------------

    def config(self, table: dict, sha256: str) -> BenchConfig:
        self.keys(table, "top level", ("name", "description", "seeds", "corpus", "model", "measure", "reference"),
                  required=("name", "corpus", "model"))
        name = self.text(table["name"], "name")
        seeds = self.listing(table.get("seeds", [0]), "seeds", lambda v, w: self.count(v, w, 0))
        corpus_tables = table["corpus"]
        if not isinstance(corpus_tables, list) or not corpus_tables:
            self.fail("corpus", "must be one or more [[corpus]] tables")
        corpus_specs = [self.corpus(entry, i) for i, entry in enumerate(corpus_tables)]
        labels = [spec.label for spec in corpus_specs]
        duplicate = next((label for label in labels if labels.count(label) > 1), None)
        if duplicate:
            self.fail("corpus", f"two corpora are labelled {duplicate!r}; give one a different `label`")
        model_tables = table["model"]
        if not isinstance(model_tables, list) or not model_tables:
            self.fail("model", "must be one or more [[model]] tables")
        runs, sweeps, names = [], {}, set()
        for i, entry in enumerate(model_tables):
            model_runs, swept = self.model(entry, i, labels, seeds)
            group = model_runs[0].group
            if group in names:
                self.fail(f"model[{i}]", f"two models are named {group!r}; names must differ")
            names.add(group)
            runs.extend(model_runs)
            if swept:
                sweeps[group] = swept
        # Corpus by corpus, in config order, then models in config order.
        runs.sort(key=lambda run: labels.index(run.corpus))
        references = [self.reference(entry, i, labels) for i, entry in enumerate(table.get("reference", []))]
        return BenchConfig(
            name=name, description=table.get("description", ""), path=self.path, sha256=sha256,
            corpora=corpus_specs, runs=runs, measure=self.measure(table.get("measure", {})),
            references=references, sweeps=sweeps,
        )

    # ---- [[corpus]] -------------------------------------------------------------------------------

    def corpus(self, entry, index: int) -> CorpusSpec:
        where = f"corpus[{index}]"
        valid = ("name", "label", "level", *SPLIT_SLICES, "prompts", "complete", "sample_tokens",
                 "position_lines", "position_max")
        self.keys(entry, where, valid, required=("name",))
        source = self.text(entry["name"], f"{where}.name")
        if source not in corpora.available():
            path = (self.path.parent / source).resolve()
            if not path.exists():
                looks_like_name = "/" not in source and "." not in source
                hint = f"shipped corpora: {', '.join(corpora.available())}, or a path relative to {self.path.name}"
                self.fail(f"{where}.name", f"unknown corpus {source!r}; {hint}" if looks_like_name
                          else f"{path}: no such file or folder")
            label_default = path.stem
            source = str(path)
        else:
            label_default = source
        level = entry.get("level")
        if level is not None and level not in corpora.LEVELS:
            self.fail(f"{where}.level", f"must be one of {', '.join(corpora.LEVELS)}, got {level!r}")

        def optional_count(key: str) -> int | None:
            return self.count(entry[key], f"{where}.{key}") if key in entry else None

        return CorpusSpec(
            label=self.text(entry.get("label", label_default), f"{where}.label"),
            source=source,
            level=level,
            slices={split: optional_count(key) for split, key in zip(corpora.SPLITS, SPLIT_SLICES)},
            prompts=self.listing(entry.get("prompts", [""]), f"{where}.prompts", self.string),
            complete=self.listing(entry.get("complete", []), f"{where}.complete", self.string, empty=True),
            sample_tokens=optional_count("sample_tokens"),
            position_lines=self.count(entry.get("position_lines", POSITION_LINES), f"{where}.position_lines"),
            position_max=optional_count("position_max"),
        )

    # ---- [[model]] --------------------------------------------------------------------------------

    def model(self, entry, index: int, corpus_labels: list[str], seeds: tuple) -> tuple[list[RunSpec], list]:
        where = f"model[{index}]"
        valid = ("name", "kind", "settings", "budget", "seeds", "corpora", "sweep", "per_corpus", "test_lines")
        self.keys(entry, where, valid, required=("name", "kind"))
        name = self.text(entry["name"], f"{where}.name")
        where = f"model {name!r}"
        kind = self.text(entry["kind"], f"{where}.kind")
        try:
            model_class = model_class_named(kind)
        except ConfigError as error:
            self.fail(f"{where}.kind", str(error))
        parameters = model_parameters(model_class)
        on = self.listing(entry.get("corpora", corpus_labels), f"{where}.corpora", self.string)
        for label in on:
            if label not in corpus_labels:
                self.fail(f"{where}.corpora", f"no corpus labelled {label!r}; corpora: {', '.join(corpus_labels)}")
        if "seeds" in entry:
            seeds = self.listing(entry["seeds"], f"{where}.seeds", lambda v, w: self.count(v, w, 0))
        if "seed" not in parameters:
            seeds = (None,)  # a deterministic family (n-gram counting): one run
        per_corpus = entry.get("per_corpus", {})
        self.keys(per_corpus, f"{where}.per_corpus", tuple(corpus_labels))
        runs, swept_keys = [], []
        for label in on:
            override = per_corpus.get(label, {})
            self.keys(override, f"{where}.per_corpus.{label}", ("settings", "budget", "sweep", "test_lines"))
            test_lines = self.test_lines(override, f"{where}.per_corpus.{label}", model_class) or self.test_lines(
                entry, where, model_class)
            settings = {**self.settings(entry.get("settings", {}), f"{where}.settings", parameters),
                        **self.settings(override.get("settings", {}), f"{where}.per_corpus.{label}.settings",
                                        parameters)}
            budget_where = f"{where}.per_corpus.{label}.budget" if "budget" in override else f"{where}.budget"
            budget = self.budget(override.get("budget", entry.get("budget")), budget_where, model_class, kind)
            sweep_where = f"{where}.per_corpus.{label}.sweep" if "sweep" in override else f"{where}.sweep"
            sweep = self.sweep(override.get("sweep", entry.get("sweep", {})), sweep_where, parameters, settings)
            swept_keys = swept_keys or list(sweep)
            for values in itertools.product(*sweep.values()):
                swept = dict(zip(sweep, values))
                label_of_run = name + (f"[{','.join(f'{k}={v}' for k, v in swept.items())}]" if swept else "")
                for seed in seeds:
                    params = {**settings, **swept}
                    if seed is not None:
                        params["seed"] = seed
                    try:
                        build_model(model_class, params)  # the family's own checks, before any work
                    except ConfigError as error:
                        self.fail(where, str(error))
                    runs.append(RunSpec(corpus=label, model=label_of_run, group=name, kind=kind,
                                        model_class=model_class, params=params, budget=budget, seed=seed,
                                        sweep=swept, test_lines=test_lines))
        if not runs:
            self.fail(where, "runs on no corpus")
        return runs, swept_keys

    def test_lines(self, table, where: str, model_class) -> int | None:
        if "test_lines" not in table:
            return None
        if model_class.is_causal:
            self.fail(f"{where}.test_lines", "only a model whose scores are not ranked (is_causal False: "
                      "pseudo-perplexity) may be scored on part of the test split; ranked models all "
                      "read the whole of it")
        return self.count(table["test_lines"], f"{where}.test_lines")

    def settings(self, table, where: str, parameters: dict) -> dict:
        self.keys(table, where, tuple(parameters))
        if "seed" in table:
            self.fail(f"{where}.seed", "set seeds with `seeds = [...]` (top level or per model), not in settings")
        for key, value in table.items():
            self.setting_value(value, f"{where}.{key}", parameters[key].default)
        return dict(table)

    def setting_value(self, value, where: str, default) -> None:
        """A value of the type of the keyword's default (int accepted for a float); a keyword
        whose default is None is checked by the family itself (build_model)."""
        if default is None:
            return
        if isinstance(default, bool):
            ok, wanted = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, wanted = isinstance(value, int) and not isinstance(value, bool), "a whole number"
        elif isinstance(default, float):
            ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, wanted = isinstance(value, str), "a string"
        else:
            return
        if not ok:
            self.fail(where, f"must be {wanted}, got {value!r}")

    def budget(self, table, where: str, model_class, kind: str) -> dict:
        if not takes_budget(model_class):
            if table:
                self.fail(where, f"{kind} takes no training budget (its fit is one pass over the text)")
            return {}
        if not table:
            self.fail(where, f"{kind} needs a training budget: one or more of {', '.join(BUDGET_KEYS)}")
        self.keys(table, where, BUDGET_KEYS)
        budget = {}
        for key, value in table.items():
            if key == "max_seconds":
                budget[key] = self.positive(value, f"{where}.{key}")
            else:
                budget[key] = self.count(value, f"{where}.{key}")
        return budget

    def sweep(self, table, where: str, parameters: dict, settings: dict) -> dict:
        self.keys(table, where, tuple(parameters))
        sweep = {}
        for key, values in table.items():
            if key == "seed":
                self.fail(f"{where}.seed", "sweep seeds with `seeds = [...]`")
            if key in settings:
                self.fail(f"{where}.{key}", f"{key} is both swept and set in settings; keep one")
            checked = self.listing(values, f"{where}.{key}", lambda v, w: v)
            for i, value in enumerate(checked):
                self.setting_value(value, f"{where}.{key}[{i}]", parameters[key].default)
            sweep[key] = list(checked)
        return sweep

    # ---- [measure] and [[reference]] -------------------------------------------------------------

    def measure(self, table) -> Measure:
        self.keys(table, "measure", ("temperatures", "sample_seeds", "top_k"))
        defaults = Measure()
        return Measure(
            temperatures=self.listing(table.get("temperatures", list(defaults.temperatures)),
                                      "measure.temperatures", self.positive),
            sample_seeds=self.listing(table.get("sample_seeds", list(defaults.sample_seeds)),
                                      "measure.sample_seeds", lambda v, w: self.count(v, w, 0)),
            top_k=self.count(table.get("top_k", defaults.top_k), "measure.top_k"),
        )

    def reference(self, entry, index: int, corpus_labels: list[str]) -> Reference:
        where = f"reference[{index}]"
        self.keys(entry, where, ("corpus", "label", "source", "note", *REFERENCE_FIGURES),
                  required=("corpus", "label", "source"))
        corpus = self.text(entry["corpus"], f"{where}.corpus")
        if corpus not in corpus_labels:
            self.fail(f"{where}.corpus", f"no corpus labelled {corpus!r}; corpora: {', '.join(corpus_labels)}")
        figures = [key for key in REFERENCE_FIGURES if key in entry]
        if len(figures) != 1:
            self.fail(where, f"give exactly one figure of: {', '.join(REFERENCE_FIGURES)}")
        return Reference(
            corpus=corpus, label=self.text(entry["label"], f"{where}.label"),
            source=self.text(entry["source"], f"{where}.source"), note=self.string(entry.get("note", ""), where),
            figure=figures[0], value=self.positive(entry[figures[0]], f"{where}.{figures[0]}"),
        )
