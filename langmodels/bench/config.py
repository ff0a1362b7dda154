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
                                          # (imported: see "A config is code" below)
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
the autocomplete width, and the sample-quality sweep (sample_quality.py): `samples_per_setting`
seeded samples (0: none) of `sample_max_tokens` tokens (default by level: 40 words, 64
characters) at each of `sample_settings` (default T = 0.5, 0.7, 1.0, 1.3 and T = 1.0 with
top-p 0.9), e.g. `sample_settings = [{ temperature = 0.7 }, { temperature = 1.0, top_p = 0.9 }]`;
`[[reference]]` rows quote published figures (corpus, label, source, note
and one of word_perplexity, bits_per_char, nats_per_char), shown as external and never ranked;
the shipped corpora's own anchors are added by references.py.

Scaling curves (Kaplan et al. 2020). A sweep may also vary `train_fraction` (numbers in (0, 1]):
the run trains on the shortest run of whole lines from the start of the training split holding
that share of its characters (the test split is unchanged). A model entry with a sweep may be
marked `scaling = "parameters"` (it sweeps size settings such as n_layer and n_embd, not
train_fraction) or `scaling = "data"` (it sweeps train_fraction alone); its budget must count
steps or tokens (`max_tokens` is the fair one: every point reads the same number of tokens), not
seconds alone. The report then fits L = a x^-alpha + c to its test loss against non-embedding
parameters or training-set tokens (scaling.py) and draws both on log-log axes:

    [[model]]
    name = "gpt-size"
    kind = "gpt"
    scaling = "parameters"
    settings = { n_head = 4, context = 64, threads = 1 }
    budget = { max_tokens = 1_000_000 }
    sweep = { n_layer = [2, 4], n_embd = [32, 64, 128] }

Mixtures (Jelinek & Mercer 1980; Bengio et al. 2003, sec. 4). A model entry of kind "mixture"
interpolates other models of the same config on the same corpus and seed, its weights fitted by
EM on the corpus's valid split (on a corpus whose valid split is its test text, by 2-fold
cross-fitting on the test text: mixtures.py); it is ranked with the others. Its components must
be causal, normalised and not swept, and not mixtures themselves; `settings` may set EM's `tol`
and `max_iter`:

    [[model]]
    name = "lstm+kn5"
    kind = "mixture"
    components = ["lstm", "kn5"]
    corpora = ["brown"]                   # default: every corpus all its components run on

Fine-tuning. A `[[finetune]]` table continues training a finished neural run on another
corpus's training split (`fit(..., resume_from=checkpoint)`: the vocabulary and architecture are
kept) and reports perplexity on both corpora's test splits before and after (finetune.py). A
corpus marked `finetune_only = true` is loaded for fine-tuning alone: no model runs on it.

    [[corpus]]
    name = "shakespeare"
    label = "shakespeare-words"
    level = "word"
    finetune_only = true

    [[finetune]]
    name = "gpt: brown -> shakespeare"    # optional (default "model: from -> onto")
    model = "gpt"                         # a causal neural model of this config ...
    from = "brown"                        # ... the corpus its run was trained on ...
    onto = "shakespeare-words"            # ... and the one it is fine-tuned on
    budget = { max_seconds = 30 }
    settings = { lr = 1e-3 }              # training settings only (lr, batch_size, dropout, ...)
    test_lines = 1000                     # optional: score the first N lines of each test split
    seed = 0                              # optional: which seed's run (default: the model's first)

Inside the models. An `[inside]` table draws, from the checkpoints of one corpus's runs, the
bigram's transition graphs around `word`, the transformers' attention maps of `sentence`, a PCA
map of `words` and the analogy accuracy of each neural model, and the GPT's next-token
distribution after `context` under temperature, top-k and top-p (inside.py). A figure whose key
or model is missing is left out:

    [inside]
    corpus = "brown"
    word = "the"                          # with depth = 2 and k = 4 successors per state
    sentence = "the jury said that the city"
    words = ["man", "woman", "king", "queen"]
    context = "He said that the"          # temperatures = [0.5, 1, 2], top_k = 5, top_p = 0.9,
                                          # samples = 2 per temperature of sample_tokens = 20

A config is code. A `kind = "package.module:Class"` imports that module, and importing runs its
top-level code: run a config only if you would run its author's Python. The module is looked up
before anything is imported (plugins.py), only in an installed package or in a folder the config
lists, relative to itself, under `plugins`; never in the current folder, never in the standard
library; and the class must be a LanguageModel subclass:

    plugins = ["my_models"]               # top level: folders holding your own model modules
    [[model]]
    name = "mine"
    kind = "cache_lm:CacheLM"             # my_models/cache_lm.py, class CacheLM(LanguageModel)

Everything is checked here, before any corpus is read or any output written: a wrong key is named
with the valid ones, a wrong value with what it must be.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import corpora
from ..errors import ConfigError
from ..families import BUDGET_KEYS, build_model, model_class_named, model_parameters, takes_budget
from ..mixture import InterpolatedLM
from ..options import INT64_MAX, check_path, shown

SPLIT_SLICES = ("train_lines", "valid_lines", "test_lines")
# Swept by the harness itself, not passed to the model's constructor.
HARNESS_SWEEP_KEYS = ("train_fraction",)
SCALING_AXES = ("parameters", "data")
MIXTURE = "mixture"  # the kind of a model entry that interpolates others of the config
EM_SETTINGS = ("tol", "max_iter")  # what a mixture's `settings` may set (InterpolatedLM's EM)
REFERENCE_FIGURES = ("word_perplexity", "bits_per_char", "nats_per_char")
# Sample lengths and the reach of the loss-by-position curve, by corpus level, unless the config says.
SAMPLE_TOKENS = {"word": 30, "char": 150}
POSITION_MAX = {"word": 20, "char": 40}  # a quarter of Brown's and a third of Tiny Shakespeare's lines reach it
POSITION_LINES = 1000
SAMPLE_QUALITY_KEYS = ("sample_settings", "samples_per_setting", "sample_max_tokens")  # in [measure]


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
    finetune_only: bool = False  # loaded for [[finetune]] alone: no model runs on it


@dataclass(frozen=True)
class Measure:
    temperatures: tuple[float, ...] = (0.8, 1.0)
    sample_seeds: tuple[int, ...] = (0, 1)
    top_k: int = 5


@dataclass(frozen=True)
class SampleSetting:
    """One way of sampling for the sample-quality sweep."""

    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None

    @property
    def label(self) -> str:
        parts = [f"T={self.temperature:g}"]
        parts += [f"top-p={self.top_p:g}"] if self.top_p is not None else []
        parts += [f"top-k={self.top_k}"] if self.top_k is not None else []
        return ", ".join(parts)

    @property
    def untruncated(self) -> bool:
        return self.top_p is None and self.top_k is None


@dataclass(frozen=True)
class SampleQuality:
    """[measure]'s sample-quality sweep: `per_setting` seeded samples (seeds 0..n-1) of
    `max_tokens` tokens (None: by the corpus's level) at each setting. 20 samples at 5 settings:
    about 20 s more for benchmarks/default.toml (sample_quality.py says how it was measured)."""

    settings: tuple[SampleSetting, ...] = (SampleSetting(0.5), SampleSetting(0.7), SampleSetting(1.0),
                                           SampleSetting(1.3), SampleSetting(1.0, top_p=0.9))
    per_setting: int = 20
    max_tokens: int | None = None


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
    train_fraction: float | None = None  # train on this leading share of the training split
    scaling: str | None = None  # "parameters" or "data": a point of a scaling curve
    components: tuple[str, ...] = ()  # a mixture's component runs (run ids); () for a model of its own
    nproc: int = 1  # processes that train it: `launch = { nproc = N }` runs torchrun (bench/launch.py)

    @property
    def run_id(self) -> str:
        return f"{self.corpus}/{self.model}" + ("" if self.seed is None else f"/seed{self.seed}")

    @property
    def in_summary(self) -> bool:
        return not self.sweep


@dataclass(frozen=True)
class FinetuneSpec:
    """One [[finetune]]: a finished neural run trained further on another corpus."""

    name: str
    model: str  # the config's model name
    source: str  # the corpus label its run was trained on (the config's `from`)
    target: str  # the corpus label it is fine-tuned on (`onto`)
    source_run: str  # the run id of the pretrained run
    model_class: type
    settings: dict  # training settings that replace the pretrained model's
    budget: dict
    test_lines: int | None  # the before/after table scores the first N lines of each test split


@dataclass(frozen=True)
class InsideSpec:
    """The [inside] table: which figures to draw from one corpus's checkpoints, and of what."""

    corpus: str
    word: str | None = None  # the bigram's transition graphs start here
    depth: int = 2
    k: int = 4
    sentence: str | None = None  # the transformers' attention maps read it
    words: tuple[str, ...] = ()  # the neural models' embedding maps place them
    context: str | None = None  # the GPT's next-token distribution follows it
    temperatures: tuple[float, ...] = (0.5, 1.0, 2.0)
    top_k: int = 5
    top_p: float = 0.9
    samples: int = 2  # per temperature
    sample_tokens: int = 20


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
    scaling: dict = field(default_factory=dict)  # model name -> "parameters" or "data"
    finetunes: list[FinetuneSpec] = field(default_factory=list)
    inside: InsideSpec | None = None
    sample_quality: SampleQuality = field(default_factory=SampleQuality)

    def corpus(self, label: str) -> CorpusSpec:
        return next(spec for spec in self.corpora if spec.label == label)


# ---- reading ------------------------------------------------------------------------------------


def load_config(path) -> BenchConfig:
    """Read and check a benchmark config; ConfigError (one line, naming the problem) otherwise."""
    check_path(path, "the benchmark config")
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
        self.plugins: tuple[Path, ...] = ()  # the config's plugin folders, where a kind's module may be

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
        if value > INT64_MAX:  # TOML reads any integer; seeds and counts go to numpy and torch as int64
            self.fail(where, f"must be a whole number that fits in 64 bits, got {shown(value)}")
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

    def flag(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"must be true or false, got {value!r}")
        return value

    # ---- the whole file -------------------------------------------------------------------------

    def config(self, table: dict, sha256: str) -> BenchConfig:
        self.keys(table, "top level", ("name", "description", "seeds", "corpus", "model", "measure", "reference",
                                       "finetune", "inside", "plugins"),
                  required=("name", "corpus", "model"))
        name = self.text(table["name"], "name")
        self.plugins = self.listing(table.get("plugins", []), "plugins", self.plugin_folder, empty=True)
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
        finetune_only = {spec.label for spec in corpus_specs if spec.finetune_only}
        runnable = [label for label in labels if label not in finetune_only]
        runs, sweeps, scaling, names, mixtures = [], {}, {}, [], []
        for i, entry in enumerate(model_tables):
            if isinstance(entry, dict) and entry.get("kind") == MIXTURE:
                mixtures.append((i, entry))  # read once every model it may name is known
                continue
            model_runs, swept = self.model(entry, i, runnable, seeds, finetune_only)
            group = self.unique_name(model_runs[0].group, names, f"model[{i}]")
            names.append(group)
            runs.extend(model_runs)
            if swept:
                sweeps[group] = swept
            if model_runs[0].scaling:
                scaling[group] = model_runs[0].scaling
        mixture_names = {entry.get("name") for _, entry in mixtures}
        for i, entry in mixtures:
            mixture_runs = self.mixture(entry, i, runs, runnable, finetune_only, mixture_names)
            names.append(self.unique_name(mixture_runs[0].group, names, f"model[{i}]"))
            runs.extend(mixture_runs)
        # Corpus by corpus, in config order, then models in config order (mixtures after the others).
        runs.sort(key=lambda run: labels.index(run.corpus))
        references = [self.reference(entry, i, labels) for i, entry in enumerate(table.get("reference", []))]
        finetunes = self.finetunes(table.get("finetune", []), runs, runnable, finetune_only)
        return BenchConfig(
            name=name, description=table.get("description", ""), path=self.path, sha256=sha256,
            corpora=corpus_specs, runs=runs, measure=self.measure(table.get("measure", {})),
            references=references, sweeps=sweeps, scaling=scaling, finetunes=finetunes,
            inside=self.inside(table["inside"], runnable, finetune_only) if "inside" in table else None,
            sample_quality=self.sample_quality(table.get("measure", {})),
        )

    def plugin_folder(self, value, where: str) -> Path:
        """A `plugins` entry: a folder, relative to this config, a kind's module may come from."""
        folder = (self.path.parent / self.text(value, where)).resolve()
        if not folder.is_dir():
            self.fail(where, f"{folder}: no such folder (plugins are folders of model modules, relative to "
                      f"{self.path.name})")
        return folder

    def unique_name(self, name: str, names: list[str], where: str) -> str:
        if name in names:
            self.fail(where, f"two models are named {name!r}; names must differ")
        return name

    # ---- [[corpus]] -------------------------------------------------------------------------------

    def corpus(self, entry, index: int) -> CorpusSpec:
        where = f"corpus[{index}]"
        valid = ("name", "label", "level", *SPLIT_SLICES, "prompts", "complete", "sample_tokens",
                 "position_lines", "position_max", "finetune_only")
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
            finetune_only=self.flag(entry.get("finetune_only", False), f"{where}.finetune_only"),
        )

    # ---- [[model]] --------------------------------------------------------------------------------

    def on_corpora(self, entry: dict, where: str, runnable: list[str], finetune_only: set,
                   default: list[str] | None = None) -> tuple[str, ...]:
        """The labels of a model's `corpora` (default: every corpus a model may run on)."""
        on = self.listing(entry.get("corpora", runnable if default is None else default), f"{where}.corpora",
                          self.string)
        for label in on:
            if label in finetune_only:
                self.fail(f"{where}.corpora", f"corpus {label!r} is finetune_only: no model runs on it "
                          "(drop it from corpora, or drop finetune_only from the corpus)")
            if label not in runnable:
                self.fail(f"{where}.corpora", f"no corpus labelled {label!r}; corpora: {', '.join(runnable)}")
        return on

    def model(self, entry, index: int, corpus_labels: list[str], seeds: tuple,
              finetune_only: set = frozenset()) -> tuple[list[RunSpec], list]:
        where = f"model[{index}]"
        valid = ("name", "kind", "settings", "budget", "seeds", "corpora", "sweep", "per_corpus", "test_lines",
                 "scaling", "launch")
        self.keys(entry, where, valid, required=("name", "kind"))
        name = self.text(entry["name"], f"{where}.name")
        where = f"model {name!r}"
        kind = self.text(entry["kind"], f"{where}.kind")
        try:
            model_class = model_class_named(kind, self.plugins)
        except ConfigError as error:
            self.fail(f"{where}.kind", str(error))
        parameters = model_parameters(model_class)
        on = self.on_corpora(entry, where, corpus_labels, finetune_only)
        if "seeds" in entry:
            seeds = self.listing(entry["seeds"], f"{where}.seeds", lambda v, w: self.count(v, w, 0))
        if "seed" not in parameters:
            seeds = (None,)  # a deterministic family (n-gram counting): one run
        scaling = entry.get("scaling")
        if scaling is not None and scaling not in SCALING_AXES:
            self.fail(f"{where}.scaling", f"must be one of {', '.join(map(repr, SCALING_AXES))}, got {scaling!r}")
        nproc = self.launch(entry.get("launch", {}), f"{where}.launch", model_class)
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
            if scaling is not None:
                self.scaling(scaling, sweep, budget, f"{where}.scaling", kind)
            swept_keys = swept_keys or list(sweep)
            for values in itertools.product(*sweep.values()):
                swept = dict(zip(sweep, values))
                label_of_run = name + (f"[{','.join(f'{k}={v}' for k, v in swept.items())}]" if swept else "")
                for seed in seeds:
                    params = {**settings, **{k: v for k, v in swept.items() if k not in HARNESS_SWEEP_KEYS}}
                    if seed is not None:
                        params["seed"] = seed
                    try:
                        build_model(model_class, params)  # the family's own checks, before any work
                    except ConfigError as error:
                        self.fail(where, str(error))
                    runs.append(RunSpec(corpus=label, model=label_of_run, group=name, kind=kind,
                                        model_class=model_class, params=params, budget=budget, seed=seed,
                                        sweep=swept, test_lines=test_lines,
                                        train_fraction=swept.get("train_fraction"), scaling=scaling, nproc=nproc))
        if not runs:
            self.fail(where, "runs on no corpus")
        return runs, swept_keys

    def launch(self, table, where: str, model_class) -> int:
        """`launch = { nproc = N }`: N processes train the model under torchrun (neural models only)."""
        if not isinstance(table, dict):
            self.fail(where, f"must be a table such as {{ nproc = 2 }}, got {table!r}")
        self.keys(table, where, ("nproc",))
        nproc = self.count(table.get("nproc", 1), f"{where}.nproc")
        if nproc > 1 and "device" not in model_parameters(model_class):
            self.fail(where, "only the neural models train on several processes")
        return nproc

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
        self.keys(table, where, (*parameters, *HARNESS_SWEEP_KEYS))
        sweep = {}
        for key, values in table.items():
            if key == "seed":
                self.fail(f"{where}.seed", "sweep seeds with `seeds = [...]`")
            if key in settings:
                self.fail(f"{where}.{key}", f"{key} is both swept and set in settings; keep one")
            if key == "train_fraction":
                checked = self.listing(values, f"{where}.{key}", self.fraction)
            else:
                checked = self.listing(values, f"{where}.{key}", lambda v, w: v)
                for i, value in enumerate(checked):
                    self.setting_value(value, f"{where}.{key}[{i}]", parameters[key].default)
            sweep[key] = list(checked)
        return sweep

    def fraction(self, value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            self.fail(where, f"must be a number in (0, 1], got {value!r}")
        return value

    def scaling(self, axis: str, sweep: dict, budget: dict, where: str, kind: str) -> None:
        """A scaling curve's points differ in the one thing its axis names, under one recipe."""
        if not budget:
            self.fail(where, f"{kind} takes no training budget; scaling curves are for trained (neural) models")
        if set(budget) == {"max_seconds"}:
            self.fail(where, "a scaling curve needs a budget in max_tokens (or max_steps): with max_seconds alone "
                      "a larger model reads fewer tokens and the points are not comparable")
        if axis == "data" and list(sweep) != ["train_fraction"]:
            self.fail(where, f"scaling = 'data' sweeps train_fraction alone, not {', '.join(sweep) or 'nothing'}")
        if axis == "parameters" and (not sweep or "train_fraction" in sweep):
            self.fail(where, "scaling = 'parameters' sweeps size settings (n_layer, n_embd, ...) and not "
                      "train_fraction, e.g. sweep = { n_embd = [32, 64, 128] }")

    # ---- mixtures ---------------------------------------------------------------------------------

    def mixture(self, entry, index: int, runs: list[RunSpec], runnable: list[str], finetune_only: set,
                mixture_names: set) -> list[RunSpec]:
        """The runs of a kind = "mixture" entry: one per corpus and seed, naming its component runs."""
        where = f"model[{index}]"
        self.keys(entry, where, ("name", "kind", "components", "corpora", "settings"),
                  required=("name", "kind", "components"))
        name = self.text(entry["name"], f"{where}.name")
        where = f"model {name!r}"
        components = self.listing(entry["components"], f"{where}.components", self.text)
        if len(components) < 2 or len(set(components)) < len(components):
            self.fail(f"{where}.components", f"must name two or more different models, got {list(components)!r}")
        own = [run for run in runs if not run.components]
        models = list(dict.fromkeys(run.group for run in own))
        for component in components:
            if component in mixture_names:
                self.fail(f"{where}.components", f"{component!r} is itself a mixture; name its components instead")
            if component not in models:
                self.fail(f"{where}.components", f"no model named {component!r}{_did_you_mean(component, models)}; "
                          f"models: {', '.join(models)}")
        parameters = {key: model_parameters(InterpolatedLM)[key] for key in EM_SETTINGS}
        settings = self.settings(entry.get("settings", {}), f"{where}.settings", parameters)
        if "tol" in settings and not settings["tol"] >= 0:
            self.fail(f"{where}.settings.tol", f"must be a number >= 0, got {settings['tol']!r}")
        if "max_iter" in settings:
            self.count(settings["max_iter"], f"{where}.settings.max_iter")
        shared = [label for label in runnable
                  if all(any(r.group == c and r.corpus == label for r in own) for c in components)]
        on = self.on_corpora(entry, where, runnable, finetune_only, default=shared)
        if not on:
            self.fail(where, f"its components {', '.join(components)} share no corpus")
        specs = []
        for label in on:
            by_component = {c: self.component_runs(c, label, own, f"{where}.components") for c in components}
            seeded = {c: tuple(sorted(by_seed)) for c, by_seed in by_component.items() if None not in by_seed}
            if len(set(seeded.values())) > 1:
                listed = "; ".join(f"{c}: {list(seeds)}" for c, seeds in seeded.items())
                self.fail(f"{where}.components", f"components run with different seeds on {label!r} ({listed}); "
                          "a mixture mixes runs of one seed: give them the same `seeds`")
            for seed in next(iter(seeded.values()), (None,)):
                chosen = tuple(by_seed.get(seed, by_seed.get(None)).run_id for by_seed in by_component.values())
                specs.append(RunSpec(corpus=label, model=name, group=name, kind=MIXTURE, model_class=InterpolatedLM,
                                     params=settings, budget={}, seed=seed, sweep={}, components=chosen))
        return specs

    def component_runs(self, component: str, label: str, own: list[RunSpec], where: str) -> dict:
        """{seed: run} of one mixture component on one corpus, after checking it can be mixed."""
        mine = [run for run in own if run.group == component and run.corpus == label]
        if not mine:
            self.fail(where, f"{component!r} does not run on corpus {label!r}")
        first = mine[0]
        if first.sweep:
            self.fail(where, f"{component!r} is a sweep on {label!r} ({len(mine)} runs); a mixture needs one model "
                      "per component: name a model without a sweep")
        if not first.model_class.is_causal:
            self.fail(where, f"{component!r} is a masked LM: its pseudo-likelihoods are not next-token "
                      "probabilities; a mixture needs causal models")
        if not build_model(first.model_class, first.params).is_normalised:
            self.fail(where, f"{component!r} gives unnormalised scores (stupid backoff): there are no "
                      "probabilities to mix")
        return {run.seed: run for run in mine}

    # ---- [[finetune]] -----------------------------------------------------------------------------

    def finetunes(self, tables, runs: list[RunSpec], runnable: list[str], finetune_only: set) -> list[FinetuneSpec]:
        if not isinstance(tables, list):
            self.fail("finetune", "must be [[finetune]] tables")
        specs = [self.finetune(entry, i, runs, runnable, finetune_only) for i, entry in enumerate(tables)]
        names = [spec.name for spec in specs]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate:
            self.fail("finetune", f"two fine-tunes are named {duplicate!r}; give one a different `name`")
        for label in sorted(finetune_only - {spec.target for spec in specs}):
            self.fail("corpus", f"corpus {label!r} is finetune_only but no [[finetune]] is onto it; "
                      "drop finetune_only or add a [[finetune]] with onto = " + repr(label))
        return specs

    def finetune(self, entry, index: int, runs: list[RunSpec], runnable: list[str],
                 finetune_only: set) -> FinetuneSpec:
        where = f"finetune[{index}]"
        self.keys(entry, where, ("name", "model", "from", "onto", "budget", "settings", "seed", "test_lines"),
                  required=("model", "from", "onto", "budget"))
        model = self.text(entry["model"], f"{where}.model")
        corpora_named = f"corpora: {', '.join(runnable + sorted(finetune_only))}"
        for key in ("from", "onto"):
            label = self.text(entry[key], f"{where}.{key}")
            if label not in runnable and label not in finetune_only:
                self.fail(f"{where}.{key}", f"no corpus labelled {label!r}{_did_you_mean(label, runnable)}; "
                          f"{corpora_named}")
        source, target = entry["from"], entry["onto"]
        if source == target:
            self.fail(f"{where}.onto", f"is the corpus it is fine-tuned from ({source!r}); name another corpus")
        own = [run for run in runs if run.group == model and not run.components]
        if not own:
            models = list(dict.fromkeys(run.group for run in runs if not run.components))
            self.fail(f"{where}.model", f"no model named {model!r}{_did_you_mean(model, models)} (mixtures cannot "
                      f"be fine-tuned); models: {', '.join(models)}")
        mine = [run for run in own if run.corpus == source]
        if not mine:
            self.fail(f"{where}.from", f"model {model!r} does not run on corpus {source!r}")
        first = mine[0]
        training = getattr(getattr(first.model_class, "Config", None), "TRAINING_SETTINGS", None)
        if training is None:
            self.fail(f"{where}.model", f"{model!r} ({first.kind}) is not a neural model; only neural models can "
                      "be fine-tuned")
        if not first.model_class.is_causal:
            self.fail(f"{where}.model", f"{model!r} is a masked LM: its pseudo-perplexity costs a pass per token; "
                      "fine-tune a causal model")
        if first.sweep:
            self.fail(f"{where}.model", f"{model!r} is a sweep on {source!r}; fine-tune a model without a sweep")
        seeds = [run.seed for run in mine]
        seed = self.count(entry["seed"], f"{where}.seed", 0) if "seed" in entry else seeds[0]
        if seed not in seeds:
            self.fail(f"{where}.seed", f"{model!r} on {source!r} has no run with seed {seed} (seeds: {seeds})")
        parameters = model_parameters(first.model_class)
        settings_where = f"{where}.settings"
        settings = entry.get("settings", {})
        self.keys(settings, settings_where, tuple(key for key in training if key != "seed"))
        for key, value in settings.items():
            self.setting_value(value, f"{settings_where}.{key}", parameters[key].default)
        try:
            build_model(first.model_class, settings)
        except ConfigError as error:
            self.fail(settings_where, str(error))
        return FinetuneSpec(
            name=self.text(entry.get("name", f"{model}: {source} -> {target}"), f"{where}.name"),
            model=model, source=source, target=target,
            source_run=next(run.run_id for run in mine if run.seed == seed), model_class=first.model_class,
            settings=dict(settings), budget=self.budget(entry["budget"], f"{where}.budget", first.model_class,
                                                        first.kind),
            test_lines=self.count(entry["test_lines"], f"{where}.test_lines") if "test_lines" in entry else None,
        )

    # ---- [inside] ---------------------------------------------------------------------------------

    def inside(self, table, runnable: list[str], finetune_only: set) -> InsideSpec:
        where = "inside"
        fields = ("corpus", "word", "depth", "k", "sentence", "words", "context", "temperatures", "top_k", "top_p",
                  "samples", "sample_tokens")
        self.keys(table, where, fields, required=("corpus",))
        corpus = self.text(table["corpus"], f"{where}.corpus")
        if corpus in finetune_only or corpus not in runnable:
            self.fail(f"{where}.corpus", f"no corpus labelled {corpus!r} that models run on; "
                      f"corpora: {', '.join(runnable)}")
        defaults = InsideSpec(corpus)
        chosen = {"corpus": corpus}
        for key in ("word", "sentence", "context"):
            if key in table:
                chosen[key] = self.text(table[key], f"{where}.{key}")
        for key in ("depth", "k", "top_k", "sample_tokens"):
            if key in table:
                chosen[key] = self.count(table[key], f"{where}.{key}")
        if "samples" in table:
            chosen["samples"] = self.count(table["samples"], f"{where}.samples", 0)
        if "words" in table:
            words = self.listing(table["words"], f"{where}.words", self.text)
            if len(set(words)) < 2:
                self.fail(f"{where}.words", f"a map needs two or more different words, got {list(words)!r}")
            chosen["words"] = words
        if "temperatures" in table:
            chosen["temperatures"] = self.listing(table["temperatures"], f"{where}.temperatures", self.positive)
        if "top_p" in table:
            top_p = self.positive(table["top_p"], f"{where}.top_p")
            if top_p > 1:
                self.fail(f"{where}.top_p", f"must be a number in (0, 1], got {table['top_p']!r}")
            chosen["top_p"] = top_p
        return dataclasses.replace(defaults, **chosen)

    # ---- [measure] and [[reference]] -------------------------------------------------------------

    def measure(self, table) -> Measure:
        self.keys(table, "measure", ("temperatures", "sample_seeds", "top_k", *SAMPLE_QUALITY_KEYS))
        defaults = Measure()
        return Measure(
            temperatures=self.listing(table.get("temperatures", list(defaults.temperatures)),
                                      "measure.temperatures", self.positive),
            sample_seeds=self.listing(table.get("sample_seeds", list(defaults.sample_seeds)),
                                      "measure.sample_seeds", lambda v, w: self.count(v, w, 0)),
            top_k=self.count(table.get("top_k", defaults.top_k), "measure.top_k"),
        )

    def sample_quality(self, table) -> SampleQuality:
        """The sample-quality keys of [measure] (the others are Measure's)."""
        defaults = SampleQuality()
        chosen = {}
        if "samples_per_setting" in table:
            chosen["per_setting"] = self.count(table["samples_per_setting"], "measure.samples_per_setting", 0)
        if "sample_max_tokens" in table:
            chosen["max_tokens"] = self.count(table["sample_max_tokens"], "measure.sample_max_tokens")
        if "sample_settings" in table:
            chosen["settings"] = self.listing(table["sample_settings"], "measure.sample_settings", self.sample_setting)
        return dataclasses.replace(defaults, **chosen)

    def sample_setting(self, entry, where: str) -> SampleSetting:
        self.keys(entry, where, ("temperature", "top_p", "top_k"), required=("temperature",))
        top_p = self.positive(entry["top_p"], f"{where}.top_p") if "top_p" in entry else None
        if top_p is not None and top_p > 1:
            self.fail(f"{where}.top_p", f"must be a number in (0, 1], got {entry['top_p']!r}")
        return SampleSetting(temperature=self.positive(entry["temperature"], f"{where}.temperature"), top_p=top_p,
                             top_k=self.count(entry["top_k"], f"{where}.top_k") if "top_k" in entry else None)

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
