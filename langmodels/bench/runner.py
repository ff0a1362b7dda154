"""`langmodels bench CONFIG --out DIR`: run what is missing, keep what is finished, write the report.

The output folder holds one benchmark: `bench.json` names it (a different benchmark is refused,
never overwritten) and `runs/` caches the finished runs, one folder each:

    runs/<corpus>-<model>-<seed>-<key>/result.json       training and test figures
    runs/<corpus>-<model>-<seed>-<key>/model/            the checkpoint (model.save; not for sweep points)
    runs/<corpus>-<model>-<seed>-<key>/probe-<key>.json  samples, autocomplete, loss by position
    runs/finetune-<name>-<key>/result.json, model/       a fine-tune's figures and checkpoint
    runs/inside-<corpus>-<model>-<key>/                  a run's Inside figures (PNG) and inside.json
    runs/samples-<corpus>-<model>-<key>.json, judged-<corpus>-<key>.json   the samples' quality (sample_quality.py)

<key> is the sha256 of everything the run's figures depend on: the family, its resolved settings,
budget and seed, the exact corpus texts (sha256 of each split), the library version and the
source code that trains and scores (code_fingerprint). A run
folder is assembled under a temporary name and renamed into place, so a Ctrl-C or kill -9 at any
moment leaves every finished run intact and no half-written one. Probes are keyed apart from
training, so changing prompts or temperatures loads the checkpoints instead of retraining.
What is made from finished runs is keyed by their keys: a mixture row (no checkpoint of its own:
it is rebuilt from its components' and its stored weights) runs after its components, and the
fine-tunes and Inside figures after every run, each redone only when its runs or settings change.
Before anything is written, each run still to train is checked against the machine's available
memory (memory.py): a run that would not fit stops the benchmark with one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..base import LanguageModel
from ..checkpoint import naming, replace_folder, tidy_folder, write_atomic
from ..errors import ConfigError, LangmodelsError
from ..families import build_model
from ..options import check_path
from . import finetune, inside, mixtures, sample_quality
from .config import BenchConfig, FinetuneSpec, RunSpec, load_config
from .launch import fit_on_processes
from .measure import no_probe, probe, train_and_test, watched_lines
from .memory import check_memory
from .slices import CorpusData, load_corpus

MANIFEST = "bench.json"
MANIFEST_FORMAT = "langmodels-bench"
RUNS = "runs"
RESULT = "result.json"
CHECKPOINT = "model"
RUN_FORMAT = 1  # bump when a stored result's meaning changes: every cached run is redone
PROBE_FORMAT = 1
FINETUNE_FORMAT = 1
INSIDE_FORMAT = 1
INSIDE = "inside.json"  # an Inside folder's numbers (its PNGs beside it)
LOCK = ".lock"  # in runs/, like everything that changes from one invocation to the next
STAGING = ".staging-"
TIMING = "last-invocation.json"


# Library files that do not shape a run's figures (the command line and the harness's own
# bookkeeping and reporting): editing them keeps the cache. Every other source file is hashed
# into each run's key, so a run is redone when the code that trained or scored it changed.
# The modules of the jobs made from finished runs (mixture rows, fine-tunes, the Inside figures)
# are hashed into their own jobs' keys only: editing how mixtures are fitted redoes the mixtures,
# not the runs they mix.
DERIVED = ("bench/mixtures.py", "bench/finetune.py", "bench/inside.py", "bench/sample_quality.py",
           "sample_metrics.py")
REPORTING = ("bench/report.py", "bench/results.py", "bench/sections.py", "bench/markdown.py", "bench/exports.py",
             "bench/plots.py", "bench/overtake.py", "bench/references.py", "bench/scaling.py")
NOT_MEASURING = {"__main__.py", "cli.py", "families.py", "bench/__init__.py", "bench/config.py",
                 "bench/runner.py", "bench/memory.py", *REPORTING, *DERIVED}


def code_fingerprint() -> str:
    """sha256 over the library's source files that train, score and probe models."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name not in NOT_MEASURING:
            digest.update(name.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _file_sha256(path: str | None) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def _digest(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")[:80]


def _write_json(path: Path, value) -> None:
    write_atomic(path, (json.dumps(value, indent=1, sort_keys=True, allow_nan=False) + "\n").encode("utf-8"))


def _read_json(path: Path):
    """A stored JSON file, or None when it is missing or unreadable (it is then redone)."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _stored(path: Path, key: str) -> dict | None:
    """A stored JSON object made under `key`, or None (missing, unreadable, or made from other inputs)."""
    value = _read_json(path)
    return value if isinstance(value, dict) and value.get("key") == key else None


def store_folder(folder: Path, write) -> None:
    """Have write(staging) fill a folder under a temporary name, then rename it into place: a
    Ctrl-C or kill -9 at any moment leaves the folder whole or absent."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f"{STAGING}{folder.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        write(staging)
        replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass
class Run:
    """A configured run with its cache keys and folder (and, for a mixture, its components' runs)."""

    spec: RunSpec
    corpus: CorpusData
    key: str
    material: dict
    probe_key: str
    folder: Path
    components: list[Run] = field(default_factory=list)

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT

    @property
    def probe_path(self) -> Path:
        return self.folder / f"probe-{self.probe_key[:16]}.json"

    def stored_result(self) -> dict | None:
        return _stored(self.result_path, self.key)

    def stored_probe(self) -> dict | None:
        return _stored(self.probe_path, self.probe_key)

    def has_checkpoint(self) -> bool:
        """Its fitted model can be loaded: its checkpoint, or for a mixture its components'."""
        if self.components:
            return all(c.stored_result() is not None and c.has_checkpoint() for c in self.components)
        return (self.folder / CHECKPOINT).is_dir()

    def load_model(self, result: dict | None = None) -> LanguageModel:
        """The run's fitted model from its checkpoint; a mixture is rebuilt from its components'
        checkpoints and the weights in its stored `result`."""
        if self.components:
            return mixtures.rebuild(self.component_models(), result["mixture"], self.spec.params)
        return LanguageModel.load(self.folder / CHECKPOINT)

    def component_models(self) -> list[LanguageModel]:
        """A mixture's components, loaded from their finished runs."""
        missing = [c.spec.run_id for c in self.components if c.stored_result() is None or not c.has_checkpoint()]
        if missing:
            raise LangmodelsError(f"mixture component run(s) {', '.join(missing)} not finished (or without a "
                                  "checkpoint): nothing to mix")
        return [c.load_model() for c in self.components]


# ---- the output folder ------------------------------------------------------------------------


def check_output(out: Path, config: BenchConfig, *, ours: tuple[str, ...] = ()) -> dict | None:
    """Refuse an --out that is not this benchmark's folder; its manifest if it has one. Writes
    nothing. `ours`: entries this invocation made itself, which do not make the folder foreign."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if not out.is_dir() or not any(path.name not in ours for path in out.iterdir()):
        return None
    manifest = _read_json(out / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigError(f"--out {out} is not empty and holds no benchmark ({MANIFEST} missing); "
                          "refusing to write into it: choose an empty or new folder")
    if manifest.get("name") != config.name:
        raise ConfigError(f"--out {out} holds the results of benchmark {manifest.get('name')!r} "
                          f"({manifest.get('config')}), not {config.name!r}; refusing to mix them: "
                          "choose another --out")
    return manifest


@contextlib.contextmanager
def locked(out: Path):
    """One bench at a time per output folder (a second one would race on the same runs). The
    lock is the kernel's (flock), so a lock file its holder left by dying is no lock: the next
    bench takes it. The file holds its holder's pid, for the message."""
    path = out / RUNS / LOCK
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise ConfigError(f"another `langmodels bench`{f' (pid {holder})' if holder.isdigit() else ''} is "
                              f"writing to {out}; wait for it to finish") from None
        try:
            with contextlib.suppress(OSError):  # the pid is for the message only: a full disk may refuse it
                handle.truncate(0)
                handle.write(str(os.getpid()))
                handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tidy_runs(runs: Path) -> None:
    """After a crash, under the lock: put back a run folder caught between its two renames, drop
    half-built ones and the temporaries of killed writers in runs/ and beside the report
    (checkpoint.tidy_folder; no other bench writes here now, so every one is stale)."""
    tidy_folder(runs, exclusive=True)
    tidy_folder(runs.parent, exclusive=True)
    for staging in runs.glob(STAGING + "*"):
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def no_bare_lock_left(out: Path, created: bool):
    """A first invocation that fails before its manifest is written (a full disk) takes its
    bookkeeping (runs/ with the lock) away again, and `out` if it made it."""
    try:
        yield
    except BaseException:
        if not (out / MANIFEST).exists() and holds_no_run(out / RUNS):
            shutil.rmtree(out / RUNS, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()
        raise


def holds_no_run(runs: Path) -> bool:
    """runs/ holds only bookkeeping (the lock, .gitignore, temporaries: names starting with a dot),
    as a first invocation that stopped before writing the manifest (a full disk) leaves it."""
    try:
        return all(entry.name.startswith(".") for entry in os.scandir(runs))
    except OSError:
        return not runs.exists()


# ---- progress ---------------------------------------------------------------------------------


class Progress:
    """One line per step on stderr: which run, how far through the list, and the time left,
    estimated from the runs' time budgets and the runs finished so far."""

    BUDGET_MARGIN = 1.2  # scoring and probes after a max_seconds budget
    QUIET_SECONDS = 3.0  # a run's stages are announced only once it has taken this long

    def __init__(self, runs: list[Run], stream=None):
        self.total = len(runs)
        self.stream = stream or sys.stderr
        self.durations: dict[str, list[float]] = {}

    def estimate(self, run: Run) -> float | None:
        seconds = run.spec.budget.get("max_seconds")
        if seconds is not None:
            return seconds * self.BUDGET_MARGIN
        same = self.durations.get(run.spec.kind) or [d for ds in self.durations.values() for d in ds]
        return sum(same) / len(same) if same else None

    def left(self, pending: list[Run]) -> str:
        estimates = [self.estimate(run) for run in pending]
        known = sum(e for e in estimates if e is not None)
        if not pending:
            return "nothing left"
        if any(e is None for e in estimates):
            return f"at least {_duration(known)} left" if known else "time left: known after the first run"
        return f"about {_duration(known)} left"

    def say(self, index: int, run: Run, message: str) -> None:
        print(f"[{index:>{len(str(self.total))}}/{self.total}] {run.spec.run_id}: {message}",
              file=self.stream, flush=True)

    def done(self, run: Run, seconds: float) -> None:
        self.durations.setdefault(run.spec.kind, []).append(seconds)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


# ---- running ----------------------------------------------------------------------------------


def load_corpora(config: BenchConfig) -> dict[str, CorpusData]:
    """Every configured corpus, loaded and cut to its slices once, by label."""
    return {spec.label: load_corpus(spec) for spec in config.corpora}


def plan(config: BenchConfig, out: Path, data: dict[str, CorpusData] | None = None) -> list[Run]:
    """Load the corpora (unless given) and key every run of the config (nothing is trained or written)."""
    data = load_corpora(config) if data is None else data
    code = code_fingerprint()
    by_id: dict[str, Run] = {}
    for spec in sorted(config.runs, key=lambda spec: bool(spec.components)):  # a mixture's components first
        corpus = data[spec.corpus]
        components = [by_id[run_id] for run_id in spec.components]
        if components:  # the runs it mixes (their keys hold the code), the EM settings, valid and test
            material = {
                "format": RUN_FORMAT,
                "langmodels": __version__,
                "kind": spec.kind,
                "mixing": _file_sha256(mixtures.__file__),
                "params": spec.params,
                "seed": spec.seed,
                "components": [component.key for component in components],
                "corpus": corpus.key(),
            }
        else:
            material = {
                "format": RUN_FORMAT,
                "langmodels": __version__,
                "code": code,
                "kind": spec.kind,
                "class": f"{spec.model_class.__module__}.{spec.model_class.__qualname__}",
                "class_source": _file_sha256(inspect.getsourcefile(spec.model_class)),  # a family of your own too
                "params": build_model(spec.model_class, spec.params).get_params(),  # a changed default: a new run
                "budget": spec.budget,
                "seed": spec.seed,
                "corpus": corpus.key(spec.test_lines, spec.train_fraction),
            }
            if spec.nproc > 1:  # a global batch of nproc x batch_size rows: another run
                material["nproc"] = spec.nproc
        key = _digest(material)
        c = corpus.spec
        probe_material = {
            "format": PROBE_FORMAT, "run": key, "measure": config.measure.__dict__, "prompts": c.prompts,
            "complete": c.complete, "sample_tokens": c.sample_tokens, "position_lines": c.position_lines,
            "position_max": c.position_max, "probed": spec.in_summary,
        }
        seed = "" if spec.seed is None else f"-s{spec.seed}"
        folder = out / RUNS / f"{_slug(spec.corpus)}-{_slug(spec.model)}{seed}-{key[:12]}"
        by_id[spec.run_id] = Run(spec, corpus, key, material, _digest(probe_material), folder, components)
    return [by_id[spec.run_id] for spec in config.runs]


def select(runs: list[Run], only: list[str] | None) -> list[Run]:
    """The runs --only names (a model, a corpus or a run id, each may be repeated); all without it."""
    if not only:
        return runs
    names = set()
    for run in runs:
        names.update((run.spec.group, run.spec.model, run.spec.corpus, run.spec.run_id))
    unknown = [name for name in only if name not in names]
    if unknown:
        valid = sorted({run.spec.group for run in runs} | {run.spec.corpus for run in runs})
        raise ConfigError(f"--only {unknown[0]!r} names no run of this benchmark; names: {', '.join(valid)} "
                          "(or a run id such as " + runs[0].spec.run_id + ")")
    return [run for run in runs if {run.spec.group, run.spec.model, run.spec.corpus, run.spec.run_id} & set(only)]


def with_components(chosen: list[Run]) -> list[Run]:
    """The chosen runs with the components of their mixtures, the mixtures last: a mixture's
    components are finished (or found in the cache) before it is mixed."""
    ids = {run.spec.run_id for run in chosen}
    needed = [c for run in chosen for c in run.components if c.spec.run_id not in ids]
    unique = list({c.spec.run_id: c for c in needed}.values())
    return sorted(unique + chosen, key=lambda run: bool(run.components))


def execute(run: Run, config: BenchConfig, progress: Progress, index: int, force: bool) -> dict:
    """Train or load one run, probe it, store both; returns {'result', 'probe', 'work_seconds'}."""
    result = None if force else run.stored_result()
    if result is not None:
        stored = run.stored_probe()
        if stored is not None:
            progress.say(index, run, "cached")
            return {"status": "cached", "result": result, "probe": stored, "work_seconds": 0.0}
    if result is not None and not run.spec.in_summary:
        progress.say(index, run, "cached")
        _write_json(run.probe_path, {"key": run.probe_key, **no_probe(run.corpus)})
        return {"status": "cached", "result": result, "probe": no_probe(run.corpus), "work_seconds": 0.0}
    if result is not None and run.has_checkpoint():
        progress.say(index, run, "cached; probing its checkpoint (samples, autocomplete, loss by position)")
        start = time.perf_counter()
        model = run.load_model(result)
        probed = probe(model, run.corpus, config.measure)
        work = time.perf_counter() - start
        _write_json(run.probe_path, {"key": run.probe_key, **probed})
        return {"status": "probed", "result": result, "probe": probed, "work_seconds": work}

    start = time.perf_counter()

    def stage(text: str) -> None:  # the long parts of a run only: quick runs stay one line
        if time.perf_counter() - start > Progress.QUIET_SECONDS:
            progress.say(index, run, text)

    if run.components:
        progress.say(index, run, f"mixing {', '.join(c.spec.run_id for c in run.components)}")
        valid = run.corpus.valid
        measured, model = mixtures.mix_and_test(run.component_models(), [c.spec.group for c in run.components],
                                                valid, run.corpus.test, run.spec.params, stage)
        settings = dict(run.spec.params)
    else:
        budget = ", ".join(f"{k}={v:g}" for k, v in run.spec.budget.items()) or "one pass"
        progress.say(index, run, f"training ({budget})")
        model = build_model(run.spec.model_class, run.spec.params)
        fit = None
        if run.spec.nproc > 1:
            progress.say(index, run, f"training on {run.spec.nproc} processes (torchrun)")

            def fit(train, valid, **budget):
                fit_on_processes(model, run.spec.nproc, run.corpus.spec, run.spec.train_fraction, valid, budget,
                                 run.folder.parent, prefix=STAGING)  # tidy_runs drops it after a crash
        measured = train_and_test(model, run.corpus.train_split(run.spec.train_fraction), run.corpus.valid,
                                  run.corpus.test_split(run.spec.test_lines), run.spec.budget, stage,
                                  count_train=run.spec.train_fraction is not None, fit=fit,
                                  watch=watched_lines(run.corpus.test) if run.corpus.valid is None else None)
        settings = model.get_params()
    probed = probe(model, run.corpus, config.measure, stage) if run.spec.in_summary else no_probe(run.corpus)
    work = time.perf_counter() - start
    result = {"format": RUN_FORMAT, "key": run.key, "material": run.material, "run_id": run.spec.run_id,
              "corpus": run.spec.corpus, "model": run.spec.model, "group": run.spec.group, "kind": run.spec.kind,
              "seed": run.spec.seed, "sweep": run.spec.sweep, "budget": run.spec.budget,
              "test_lines": run.spec.test_lines, "train_fraction": run.spec.train_fraction,
              "settings": settings, **measured}

    def write(staging: Path) -> None:
        # A sweep point is only a table cell: no checkpoint (an n-gram's is 70 MB); nor a mixture,
        # rebuilt from its components' checkpoints and its stored weights.
        if run.spec.in_summary and not run.components:
            with contextlib.suppress(NotImplementedError):  # a family without state_files: none either
                model.save(staging / CHECKPOINT)
        _write_json(staging / run.probe_path.name, {"key": run.probe_key, **probed})
        _write_json(staging / RESULT, result)

    store_folder(run.folder, write)
    progress.done(run, work)
    return {"status": "trained", "result": result, "probe": probed, "work_seconds": work}


# ---- jobs made from finished runs: fine-tunes and the Inside figures ---------------------------


@dataclass
class Finetune:
    """A configured fine-tune with its cache key (the pretrained run's key, the target corpus's
    texts, the settings, budget and test slices) and its folder, runs/finetune-<name>-<key>/."""

    spec: FinetuneSpec
    source: Run
    target: CorpusData
    key: str
    material: dict
    folder: Path

    @property
    def label(self) -> str:
        return f"finetune {self.spec.name!r}"

    def stored_result(self) -> dict | None:
        return _stored(self.folder / RESULT, self.key)


@dataclass
class InsideFigures:
    """The Inside figures of one run, keyed like a probe (the run's key and the [inside] settings
    they read), in runs/inside-<corpus>-<model>-<key>/: redone only when those change."""

    run: Run
    figures: tuple[str, ...]
    key: str
    folder: Path

    @property
    def label(self) -> str:
        return f"inside {self.run.spec.run_id}"

    def stored(self) -> dict | None:
        return _stored(self.folder / INSIDE, self.key)


def plan_jobs(config: BenchConfig, runs: list[Run], data: dict[str, CorpusData], out: Path
              ) -> tuple[list[Finetune], list[InsideFigures]]:
    """Key the config's fine-tunes and Inside figures (nothing is trained or written)."""
    by_id = {run.spec.run_id: run for run in runs}
    finetunes = []
    for spec in config.finetunes:
        source, target = by_id[spec.source_run], data[spec.target]
        if source.corpus.level != target.level:
            raise ConfigError(f"{config.path}: finetune {spec.name!r}: {spec.source!r} is read as "
                              f"{source.corpus.level}s and {spec.target!r} as {target.level}s, but fine-tuning keeps "
                              "the tokenizer: give the two corpora the same `level`")
        material = {"format": FINETUNE_FORMAT, "code": _file_sha256(finetune.__file__), "source": source.key,
                    "settings": spec.settings, "budget": spec.budget, "test_lines": spec.test_lines,
                    "target": target.key(spec.test_lines)}
        key = _digest(material)
        finetunes.append(Finetune(spec, source, target, key, material,
                                  out / RUNS / f"finetune-{_slug(spec.name)}-{key[:12]}"))
    figures = []
    if config.inside is not None:
        for run_id, chosen in inside.subjects(config.inside, config.runs).items():
            run = by_id[run_id]
            key = _digest({"format": INSIDE_FORMAT, "code": _file_sha256(inside.__file__), "run": run.key,
                           "reads": inside.reads(config.inside, chosen)})
            folder = out / RUNS / f"inside-{_slug(run.spec.corpus)}-{_slug(run.spec.model)}-{key[:12]}"
            figures.append(InsideFigures(run, chosen, key, folder))
    return finetunes, figures


def _pretrained(run: Run, what: str) -> LanguageModel:
    if run.stored_result() is None or not run.has_checkpoint():
        raise LangmodelsError(f"{what} needs the finished run {run.spec.run_id} and its checkpoint, which are missing")
    return run.load_model()


def execute_finetune(job: Finetune, stream, force: bool) -> dict:
    """Fine-tune one finished run unless its result is cached; returns {'status', 'result', 'work_seconds'}."""
    def say(message: str) -> None:
        print(f"[finetune] {job.spec.name}: {message}", file=stream, flush=True)

    result = None if force else job.stored_result()
    if result is not None:
        say("cached")
        return {"status": "cached", "result": result, "work_seconds": 0.0}
    start = time.perf_counter()
    pretrained = _pretrained(job.source, f"fine-tune {job.spec.name!r}")
    measured, model = finetune.finetune_and_test(
        pretrained, job.spec.settings, job.spec.budget, job.target,
        job.source.corpus.test_split(job.spec.test_lines), job.target.test_split(job.spec.test_lines), say)
    result = {"format": FINETUNE_FORMAT, "key": job.key, "material": job.material, "name": job.spec.name,
              "model": job.spec.model, "from": job.spec.source, "onto": job.spec.target,
              "source_run": job.spec.source_run, "budget": job.spec.budget, "test_lines": job.spec.test_lines,
              **measured}

    def write(staging: Path) -> None:
        model.save(staging / CHECKPOINT)
        _write_json(staging / RESULT, result)

    store_folder(job.folder, write)
    return {"status": "trained", "result": result, "work_seconds": time.perf_counter() - start}


def execute_inside(job: InsideFigures, spec, stream, force: bool) -> dict:
    """Draw one run's Inside figures from its checkpoint unless they are cached."""
    def say(message: str) -> None:
        print(f"[inside] {job.run.spec.run_id}: {message}", file=stream, flush=True)

    stored = None if force else job.stored()
    if stored is not None:
        say("cached")
        return {"status": "cached", "result": stored, "work_seconds": 0.0}
    say(f"drawing {', '.join(job.figures)} from its checkpoint")
    start = time.perf_counter()
    model = _pretrained(job.run, "the Inside figures")
    stored = {}

    def write(staging: Path) -> None:
        drawn = inside.draw(model, job.figures, spec, staging)
        stored.update({"key": job.key, "run_id": job.run.spec.run_id, "corpus": job.run.spec.corpus,
                       "model": job.run.spec.model, **drawn})
        _write_json(staging / INSIDE, stored)

    store_folder(job.folder, write)
    return {"status": "probed", "result": stored, "work_seconds": time.perf_counter() - start}


def _summary_line(result: dict) -> str:
    test = result.get("test")
    if not result.get("normalised"):
        figure = "unnormalised scores: no perplexity"
    elif test is None or test.get("word_perplexity") is None:
        figure = "infinite perplexity"
    else:
        pseudo = "pseudo " if test.get("pseudo") else ""
        figure = f"{pseudo}word perplexity {test['word_perplexity']:.2f}, {pseudo}bits/char {test['bits_per_char']:.4f}"
    return f"{figure} (trained {result['train']['seconds']:.1f} s)"


def run_benchmark(config_path, out, *, only: list[str] | None = None, force: bool = False, stream=None) -> dict:
    """Everything `langmodels bench` does; returns the timing summary it prints."""
    started = time.perf_counter()
    stream = stream or sys.stderr
    config = load_config(config_path)
    check_path(out, "the report folder")
    out = Path(out)
    leftover = (RUNS,) if holds_no_run(out / RUNS) else ()  # an earlier first invocation's bookkeeping
    check_output(out, config, ours=leftover)
    data = load_corpora(config)
    runs = plan(config, out, data)
    finetunes, figures = plan_jobs(config, runs, data, out)
    named = select(runs, only)
    forced = {run.key for run in named} if force else set()  # not the components a named mixture needs
    chosen = with_components(named)
    check_memory([run for run in chosen if run.key in forced or run.stored_result() is None])  # before any writing
    created = not out.exists()
    with naming(out / RUNS):
        (out / RUNS).mkdir(parents=True, exist_ok=True)
    with no_bare_lock_left(out, created), locked(out):
        manifest = check_output(out, config, ours=(RUNS,))  # again, now that no other bench can be writing
        if manifest is None:
            manifest = {"format": MANIFEST_FORMAT, "name": config.name, "config": str(config_path), "out": str(out)}
            _write_json(out / MANIFEST, manifest)
        write_atomic(out / RUNS / ".gitignore",
                     b"# the run cache (checkpoints, the lock, the last invocation's timing): langmodels bench\n*\n")
        tidy_runs(out / RUNS)
        progress = Progress(chosen, stream)
        model_work = 0.0
        counts = {"trained": 0, "probed": 0, "cached": 0}
        failures: list[str] = []
        to_train = {run.key for run in chosen if run.key in forced or run.stored_result() is None}
        for index, run in enumerate(chosen, start=1):
            pending = [r for r in chosen[index - 1:] if r.key in to_train]
            if pending:
                progress.say(index, run, progress.left(pending))
            try:
                outcome = execute(run, config, progress, index, run.key in forced)
            except LangmodelsError as error:  # a diverged run, say: the others still run and are reported
                failures.append(f"{run.spec.run_id}: {error}")
                progress.say(index, run, f"failed: {error}")
                continue
            model_work += outcome["work_seconds"]
            counts[outcome["status"]] += 1
            if outcome["status"] == "trained":
                progress.say(index, run, _summary_line(outcome["result"]))
        # Then what is made from finished runs, for the runs chosen: the samples' quality (judged
        # once every run of a corpus is done), fine-tunes, the Inside figures.
        sampling, sample_failures = sample_quality.run_all(config, runs, chosen, forced, out, stream)
        model_work += sampling
        failures += sample_failures
        ids = {run.spec.run_id for run in chosen}
        jobs = [job for job in finetunes if job.source.spec.run_id in ids]
        jobs += [job for job in figures if job.run.spec.run_id in ids]
        for job in jobs:
            try:
                if isinstance(job, Finetune):
                    outcome = execute_finetune(job, stream, job.source.key in forced)
                else:
                    outcome = execute_inside(job, config.inside, stream, job.run.key in forced)
            except LangmodelsError as error:
                failures.append(f"{job.label}: {error}")
                print(f"[{job.label}] failed: {error}", file=stream, flush=True)
                continue
            model_work += outcome["work_seconds"]
            counts[outcome["status"]] += 1
        from .report import write_report  # matplotlib is imported only to write the report

        finished = []
        for run in runs:
            result, stored = run.stored_result(), run.stored_probe()
            if result is not None and stored is not None:
                finished.append((run, result, stored))
        tuned = [(job.spec, job.stored_result()) for job in finetunes]
        drawn = [(job, job.stored()) for job in figures]
        missing_jobs = [job.spec.name for job, (_, result) in zip(finetunes, tuned) if result is None]
        missing_jobs += [f"inside {job.run.spec.run_id}" for job, stored in drawn if stored is None]
        render_start = time.perf_counter()
        written = write_report(out, config, manifest, runs, finished, corpora=data,
                               finetunes=[(spec, result) for spec, result in tuned if result is not None],
                               inside=[(job.folder, stored) for job, stored in drawn if stored is not None],
                               missing_jobs=missing_jobs, sample_quality=sample_quality.gather(config, runs, out))
        render = time.perf_counter() - render_start
        total = time.perf_counter() - started
        timing = {
            "wall_seconds": total, "model_seconds": model_work, "report_seconds": render,
            "harness_seconds": total - model_work, "harness_share": (total - model_work) / total if total else 0.0,
            "runs": len(chosen) + len(jobs), **counts,
            "missing": len(runs) - len(finished) + len(missing_jobs),
        }
        _write_json(out / RUNS / TIMING, timing)
    print(f"wrote {', '.join(written)} to {out} in {total:.1f} s: {counts['trained']} run(s) trained, "
          f"{counts['probed']} probed from their checkpoints, {counts['cached']} cached, {timing['missing']} not run; "
          f"the models' own work {model_work:.1f} s, "
          f"the harness {total - model_work:.1f} s ({100 * timing['harness_share']:.1f} %)", file=stream, flush=True)
    if failures:
        raise LangmodelsError(f"{len(failures)} run(s) failed and are missing from the report: {'; '.join(failures)}")
    return timing
