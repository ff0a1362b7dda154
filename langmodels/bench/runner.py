"""`langmodels bench CONFIG --out DIR`: run what is missing, keep what is finished, write the report.

The output folder holds one benchmark: `bench.json` names it (a different benchmark is refused,
never overwritten) and `runs/` caches the finished runs, one folder each:

    runs/<corpus>-<model>-<seed>-<key>/result.json       training and test figures
    runs/<corpus>-<model>-<seed>-<key>/model/            the checkpoint (model.save; not for sweep points)
    runs/<corpus>-<model>-<seed>-<key>/probe-<key>.json  samples, autocomplete, loss by position

<key> is the sha256 of everything the run's figures depend on: the family, its resolved settings,
budget and seed, the exact corpus texts (sha256 of each split), the library version and the
source code that trains and scores (code_fingerprint). A run
folder is assembled under a temporary name and renamed into place, so a Ctrl-C or kill -9 at any
moment leaves every finished run intact and no half-written one. Probes are keyed apart from
training, so changing prompts or temperatures loads the checkpoints instead of retraining.
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
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..base import LanguageModel
from ..checkpoint import RETIRED, replace_folder, write_atomic
from ..errors import ConfigError, LangmodelsError
from ..families import build_model
from .config import BenchConfig, RunSpec, load_config
from .measure import no_probe, probe, train_and_test
from .slices import CorpusData, load_corpus

MANIFEST = "bench.json"
MANIFEST_FORMAT = "langmodels-bench"
RUNS = "runs"
RESULT = "result.json"
CHECKPOINT = "model"
RUN_FORMAT = 1  # bump when a stored result's meaning changes: every cached run is redone
PROBE_FORMAT = 1
LOCK = ".lock"  # in runs/, like everything that changes from one invocation to the next
STAGING = ".staging-"
TIMING = "last-invocation.json"


# Library files that do not shape a run's figures (the command line and the harness's own
# bookkeeping and reporting): editing them keeps the cache. Every other source file is hashed
# into each run's key, so a run is redone when the code that trained or scored it changed.
NOT_MEASURING = {"__main__.py", "cli.py", "families.py", "bench/__init__.py", "bench/config.py",
                 "bench/runner.py", "bench/report.py", "bench/plots.py", "bench/references.py"}


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


@dataclass
class Run:
    """A configured run with its cache keys and folder."""

    spec: RunSpec
    corpus: CorpusData
    key: str
    material: dict
    probe_key: str
    folder: Path

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT

    @property
    def probe_path(self) -> Path:
        return self.folder / f"probe-{self.probe_key[:16]}.json"

    def stored_result(self) -> dict | None:
        result = _read_json(self.result_path)
        if isinstance(result, dict) and result.get("key") == self.key:
            return result
        return None

    def stored_probe(self) -> dict | None:
        stored = _read_json(self.probe_path)
        if isinstance(stored, dict) and stored.get("key") == self.probe_key:
            return stored
        return None


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
    """One bench at a time per output folder (a second one would race on the same runs)."""
    with open(out / RUNS / LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another `langmodels bench` is writing to {out}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tidy_runs(runs: Path) -> None:
    """After a crash: put back a run folder caught between its two renames, drop half-built ones."""
    for retired in runs.glob(RETIRED + "*"):
        final = runs / retired.name[len(RETIRED):].rsplit(".", 1)[0]
        if final.exists():
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(retired, final)
    for staging in runs.glob(STAGING + "*"):
        shutil.rmtree(staging, ignore_errors=True)


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


def plan(config: BenchConfig, out: Path) -> list[Run]:
    """Load the corpora and key every run of the config (nothing is trained or written)."""
    data = {spec.label: load_corpus(spec) for spec in config.corpora}
    code = code_fingerprint()
    runs = []
    for spec in config.runs:
        corpus = data[spec.corpus]
        model = build_model(spec.model_class, spec.params)
        material = {
            "format": RUN_FORMAT,
            "langmodels": __version__,
            "code": code,
            "kind": spec.kind,
            "class": f"{spec.model_class.__module__}.{spec.model_class.__qualname__}",
            "class_source": _file_sha256(inspect.getsourcefile(spec.model_class)),  # a family of your own too
            "params": model.get_params(),  # defaults included: a changed default is a new run
            "budget": spec.budget,
            "seed": spec.seed,
            "corpus": corpus.key(spec.test_lines),
        }
        key = _digest(material)
        c = corpus.spec
        probe_material = {
            "format": PROBE_FORMAT, "run": key, "measure": config.measure.__dict__, "prompts": c.prompts,
            "complete": c.complete, "sample_tokens": c.sample_tokens, "position_lines": c.position_lines,
            "position_max": c.position_max, "probed": spec.in_summary,
        }
        seed = "" if spec.seed is None else f"-s{spec.seed}"
        folder = out / RUNS / f"{_slug(spec.corpus)}-{_slug(spec.model)}{seed}-{key[:12]}"
        runs.append(Run(spec, corpus, key, material, _digest(probe_material), folder))
    return runs


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
    if result is not None and (run.folder / CHECKPOINT).is_dir():
        progress.say(index, run, "cached; probing its checkpoint (samples, autocomplete, loss by position)")
        start = time.perf_counter()
        model = LanguageModel.load(run.folder / CHECKPOINT)
        probed = probe(model, run.corpus, config.measure)
        work = time.perf_counter() - start
        _write_json(run.probe_path, {"key": run.probe_key, **probed})
        return {"status": "probed", "result": result, "probe": probed, "work_seconds": work}

    budget = ", ".join(f"{k}={v:g}" for k, v in run.spec.budget.items()) or "one pass"
    progress.say(index, run, f"training ({budget})")
    start = time.perf_counter()
    model = build_model(run.spec.model_class, run.spec.params)

    def stage(text: str) -> None:  # the long parts of a run only: quick runs stay one line
        if time.perf_counter() - start > Progress.QUIET_SECONDS:
            progress.say(index, run, text)

    measured = train_and_test(model, run.corpus.train, run.corpus.valid, run.corpus.test_split(run.spec.test_lines),
                              run.spec.budget, stage)
    probed = probe(model, run.corpus, config.measure, stage) if run.spec.in_summary else no_probe(run.corpus)
    work = time.perf_counter() - start
    result = {"format": RUN_FORMAT, "key": run.key, "material": run.material, "run_id": run.spec.run_id,
              "corpus": run.spec.corpus, "model": run.spec.model, "group": run.spec.group, "kind": run.spec.kind,
              "seed": run.spec.seed, "sweep": run.spec.sweep, "budget": run.spec.budget,
              "test_lines": run.spec.test_lines, "settings": model.get_params(), **measured}
    # Assembled under a temporary name, renamed into place: a run folder is whole or absent.
    runs = run.folder.parent
    runs.mkdir(parents=True, exist_ok=True)
    staging = runs / f"{STAGING}{run.folder.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        if run.spec.in_summary:  # a sweep point is only a table cell: no checkpoint (an n-gram's is 70 MB)
            with contextlib.suppress(NotImplementedError):  # a family without state_files: none either
                model.save(staging / CHECKPOINT)
        _write_json(staging / run.probe_path.name, {"key": run.probe_key, **probed})
        _write_json(staging / RESULT, result)
        replace_folder(staging, run.folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress.done(run, work)
    return {"status": "trained", "result": result, "probe": probed, "work_seconds": work}


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
    out = Path(out)
    check_output(out, config)
    runs = plan(config, out)
    chosen = select(runs, only)
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    with locked(out):
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
        to_train = {run.key for run in chosen if force or run.stored_result() is None}
        for index, run in enumerate(chosen, start=1):
            pending = [r for r in chosen[index - 1:] if r.key in to_train]
            if pending:
                progress.say(index, run, progress.left(pending))
            try:
                outcome = execute(run, config, progress, index, force)
            except LangmodelsError as error:  # a diverged run, say: the others still run and are reported
                failures.append(f"{run.spec.run_id}: {error}")
                progress.say(index, run, f"failed: {error}")
                continue
            model_work += outcome["work_seconds"]
            counts[outcome["status"]] += 1
            if outcome["status"] == "trained":
                progress.say(index, run, _summary_line(outcome["result"]))
        from .report import write_report  # matplotlib is imported only to write the report

        finished = []
        for run in runs:
            result, stored = run.stored_result(), run.stored_probe()
            if result is not None and stored is not None:
                finished.append((run, result, stored))
        render_start = time.perf_counter()
        written = write_report(out, config, manifest, runs, finished)
        render = time.perf_counter() - render_start
        total = time.perf_counter() - started
        timing = {
            "wall_seconds": total, "model_seconds": model_work, "report_seconds": render,
            "harness_seconds": total - model_work, "harness_share": (total - model_work) / total if total else 0.0,
            "runs": len(chosen), **counts,
            "missing": len(runs) - len(finished),
        }
        _write_json(out / RUNS / TIMING, timing)
    print(f"wrote {', '.join(written)} to {out} in {total:.1f} s: {counts['trained']} run(s) trained, "
          f"{counts['probed']} probed from their checkpoints, {counts['cached']} cached, {timing['missing']} not run; "
          f"the models' own work {model_work:.1f} s, "
          f"the harness {total - model_work:.1f} s ({100 * timing['harness_share']:.1f} %)", file=stream, flush=True)
    if failures:
        raise LangmodelsError(f"{len(failures)} run(s) failed and are missing from the report: {'; '.join(failures)}")
    return timing
