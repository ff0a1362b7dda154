"""How good and how varied each run's samples are (issue 18), from the finished runs.

Two jobs, cached like the runs (keyed by what they read; a repeated `bench` redoes nothing):

    runs/samples-<corpus>-<model>-<key>.json   one run's samples: `per_setting` seeded samples
        (seeds 0..n-1, from the start of a line) at each of [measure]'s sample settings, and the
        figures that need no judge (sample_metrics.py). Keyed by the run's key, the settings,
        the sample length and this code; made from the run's checkpoint once its run finished.
    runs/judged-<corpus>-<key>.json            the judge's word perplexity of every run's samples
        on one corpus, and the test text's row: the figures of as many "samples" cut from the
        test split (sample_metrics.reference_samples), judged alike. The judge is the finished
        run with the lowest test word perplexity on the corpus (causal, normalised, scored on the
        whole test split: never a pseudo-perplexity or an unnormalised score), so judging waits
        for every run of the corpus; keyed by the judge's key and every samples file's key.

Masked LMs are not sampled here: their Gibbs sampling fixes a sample's length up front and costs
a pass per token per sweep (bert.py), so neither the length nor the cost compares. Both are files,
not folders, in runs/: a run folder stays exactly as its run left it.

Cost: 20 samples at each of the 5 default settings of the 15 runs benchmarks/default.toml samples
(its models, trained for 150 steps instead of 60 s) took 18.7 s in all on a busy 2-core machine,
checkpoint loads included (0.6-2.1 s a Brown run, 0.2-3.4 s a Tiny Shakespeare run; the mixtures
most), and judging both corpora under 1 s: within the 30 s `make report` may spend on it. The
samples are drawn on one torch thread (sample_metrics.one_torch_thread): on two, the Brown MLP's
took 217 s instead of 1.5 s on that machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import sample_metrics
from ..checkpoint import write_atomic
from ..errors import LangmodelsError
from ..sample_metrics import draw_samples, reference_samples, sample_figures, sample_lines

SAMPLES_FORMAT = 1
JUDGED_FORMAT = 1
CSV_FIGURES = ("judge_word_perplexity", "distinct_1", "distinct_2", "distinct_3", "self_bleu", "repetition", "zipf",
               "mean_length")  # results.csv's sample_* columns, at the default setting


def _code() -> str:
    """sha256 of the code that draws and scores samples (this module and sample_metrics.py)."""
    digest = hashlib.sha256()
    for path in (Path(__file__), Path(sample_metrics.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


# The next four are runner.py's cache helpers again: runner imports this module, not the reverse.


def _digest(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")[:80]


def _stored(path: Path, key: str) -> dict | None:
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("key") == key else None


def _write(path: Path, value: dict) -> None:
    write_atomic(path, (json.dumps(value, indent=1, sort_keys=True, allow_nan=False) + "\n").encode("utf-8"))


def default_setting(spec) -> int:
    """The index of the setting the summary reads: T = 1 without truncation, else the first."""
    return next((i for i, s in enumerate(spec.settings) if s.temperature == 1 and s.untruncated), 0)


def max_tokens(spec, corpus) -> int:
    lengths = sample_metrics.SAMPLE_MAX_TOKENS
    return spec.max_tokens or lengths.get(corpus.level, lengths["word"])


def is_sampled(run) -> bool:
    """Runs in the summary whose model samples left to right (not sweep points, not masked LMs)."""
    return run.spec.in_summary and run.spec.model_class.is_causal


# ---- one run's samples --------------------------------------------------------------------------


@dataclass
class RunSamples:
    run: object  # runner.Run
    key: str
    path: Path

    def stored(self) -> dict | None:
        return _stored(self.path, self.key)


def plan(config, runs, out: Path) -> list[RunSamples]:
    """Key the samples of every run that is sampled (nothing is drawn or written)."""
    spec = config.sample_quality
    if not spec.per_setting:
        return []
    code = _code()
    jobs = []
    for run in [run for run in runs if is_sampled(run)]:
        key = _digest({"format": SAMPLES_FORMAT, "code": code, "run": run.key, "per_setting": spec.per_setting,
                       "max_tokens": max_tokens(spec, run.corpus),
                       "settings": [dataclasses.asdict(s) for s in spec.settings]})
        seed = "" if run.spec.seed is None else f"-s{run.spec.seed}"
        name = f"samples-{_slug(run.spec.corpus)}-{_slug(run.spec.model)}{seed}-{key[:12]}.json"
        jobs.append(RunSamples(run, key, out / "runs" / name))
    return jobs


def draw(model, corpus, spec) -> list[dict]:
    """Every setting's samples and their judge-free figures."""
    length = max_tokens(spec, corpus)
    out = []
    for setting in spec.settings:
        texts = draw_samples(model, spec.per_setting, temperature=setting.temperature, top_k=setting.top_k,
                             top_p=setting.top_p, max_tokens=length, seed=0)
        out.append({"setting": setting.label, **dataclasses.asdict(setting), "texts": texts,
                    "figures": sample_figures([sample_lines(text, corpus.level) for text in texts])})
    return out


def execute_samples(job: RunSamples, spec, say, force: bool) -> dict:
    """Draw one finished run's samples unless they are stored; {'status', 'work_seconds'}."""
    if not force and job.stored() is not None:
        return {"status": "cached", "work_seconds": 0.0}
    run = job.run
    result = run.stored_result()
    if result is None or not run.has_checkpoint():
        return {"status": "missing", "work_seconds": 0.0}
    start = time.perf_counter()
    model = run.load_model(result)
    with warnings.catch_warnings(record=True) as caught:  # a note per sample would repeat itself
        warnings.simplefilter("always")
        settings = draw(model, run.corpus, spec)
    notes = sorted({" ".join(str(w.message).split()) for w in caught if issubclass(w.category, UserWarning)})
    seconds = time.perf_counter() - start
    say(f"{run.spec.run_id}: {spec.per_setting} samples at each of {len(spec.settings)} settings in {seconds:.1f} s "
        "(the checkpoint loaded, the samples drawn and scored)")
    for message in notes:
        say(f"{run.spec.run_id}: note: {message}")
    _write(job.path, {"key": job.key, "run_id": run.spec.run_id, "corpus": run.spec.corpus, "model": run.spec.model,
                      "group": run.spec.group, "seed": run.spec.seed, "level": run.corpus.level,
                      "max_tokens": max_tokens(spec, run.corpus), "settings": settings, "notes": notes,
                      "seconds": seconds})
    return {"status": "sampled", "work_seconds": seconds}


# ---- judging a corpus -----------------------------------------------------------------------------


def judge_of(runs) -> tuple[object, dict] | None:
    """(run, result) with the lowest test word perplexity among finished runs that may judge:
    in the summary, causal and normalised, scored on the whole test split, finite, with a
    checkpoint; ties keep config order. None when there is none."""
    best = None
    for run in runs:
        result = run.stored_result()
        if result is None or not run.spec.in_summary or run.spec.test_lines:
            continue
        test = result.get("test") or {}
        value = test.get("word_perplexity")
        if not (result["causal"] and result["normalised"] and value is not None and math.isfinite(value)):
            continue
        if (best is None or value < best[1]["test"]["word_perplexity"]) and run.has_checkpoint():
            best = (run, result)
    return best


@dataclass
class Judging:
    corpus: str
    data: object  # slices.CorpusData
    judge: object  # runner.Run
    judge_result: dict
    samples: list  # [(RunSamples, stored)] of the corpus, in config order
    key: str
    path: Path

    def stored(self) -> dict | None:
        return _stored(self.path, self.key)


def plan_judging(config, runs, jobs: list[RunSamples], out: Path) -> list[Judging]:
    """One Judging per corpus with stored samples and a judge (reads the stored results)."""
    spec = config.sample_quality
    planned = []
    for corpus in dict.fromkeys(run.spec.corpus for run in runs):
        here = [(job, job.stored()) for job in jobs if job.run.spec.corpus == corpus]
        here = [(job, stored) for job, stored in here if stored is not None]
        chosen = judge_of([run for run in runs if run.spec.corpus == corpus])
        if not here or chosen is None:
            continue
        data = here[0][0].run.corpus
        key = _digest({"format": JUDGED_FORMAT, "code": _code(), "judge": chosen[0].key, "mode": data.mode,
                       "samples": [job.key for job, _ in here], "test": data.sha256["test"],
                       "reference": [spec.per_setting, max_tokens(spec, data), sample_metrics.REFERENCE_SEED]})
        planned.append(Judging(corpus, data, chosen[0], chosen[1], here, key,
                               out / "runs" / f"judged-{_slug(corpus)}-{key[:12]}.json"))
    return planned


def execute_judging(job: Judging, spec, say, force: bool) -> dict:
    """Judge every stored sample set of one corpus, and the test text's row, unless stored."""
    if not force and job.stored() is not None:
        return {"status": "cached", "work_seconds": 0.0}
    start = time.perf_counter()
    judge = job.judge.load_model(job.judge_result)
    level, mode = job.data.level, job.data.mode
    runs = {}
    for samples, stored in job.samples:
        runs[stored["run_id"]] = [
            sample_metrics.judge_perplexity(judge, [line for text in s["texts"] for line in sample_lines(text, level)],
                                            mode)
            for s in stored["settings"]]
    reference = reference_samples(job.data.test, spec.per_setting, level, max_tokens(spec, job.data))
    figures = sample_figures(reference, judge, mode)
    seconds = time.perf_counter() - start
    say(f"{job.corpus}: {len(job.samples)} run(s)' samples judged by {job.judge.spec.run_id}, the lowest test word "
        f"perplexity ({job.judge_result['test']['word_perplexity']:.2f}), in {seconds:.1f} s")
    _write(job.path, {"key": job.key, "corpus": job.corpus, "mode": mode,
                      "judge": {"run_id": job.judge.spec.run_id, "model": job.judge.spec.model,
                                "model_name": job.judge_result["model_name"],
                                "word_perplexity": job.judge_result["test"]["word_perplexity"]},
                      "reference": {"samples": reference, "figures": figures}, "runs": runs, "seconds": seconds})
    return {"status": "judged", "work_seconds": seconds}


# ---- what the runner calls ------------------------------------------------------------------------


def run_all(config, runs, chosen, forced: set, out: Path, stream) -> tuple[float, list[str]]:
    """Sample the chosen runs, then judge each corpus of theirs; (work seconds, failures)."""
    spec = config.sample_quality

    def say(message: str) -> None:
        print(f"[samples] {message}", file=stream, flush=True)

    jobs = plan(config, runs, out)
    ids = {run.spec.run_id for run in chosen}
    work, failures, cached = 0.0, [], 0

    def attempt(execute, job, forced_key, what: str) -> None:
        """One sampling or judging job; a failure is recorded and the rest go on."""
        nonlocal work, cached
        try:
            outcome = execute(job, spec, say, forced_key in forced)
        except LangmodelsError as error:
            failures.append(f"{what}: {error}")
            say(f"{what} failed: {error}")
            return
        work += outcome["work_seconds"]
        cached += outcome["status"] == "cached"

    for job in [job for job in jobs if job.run.spec.run_id in ids]:
        attempt(execute_samples, job, job.run.key, f"samples of {job.run.spec.run_id}")
    corpora = {run.spec.corpus for run in chosen}
    for job in [job for job in plan_judging(config, runs, jobs, out) if job.corpus in corpora]:
        attempt(execute_judging, job, job.judge.key, f"judging the samples on {job.corpus}")
    if cached:
        say(f"{cached} cached")
    return work, failures


def gather(config, runs, out: Path) -> list[dict]:
    """What the report shows, per corpus in config order, from the stored files only: {corpus,
    level, settings (labels), temperatures, untruncated (no top-p or top-k), default (index),
    per_setting, max_tokens, judge, reference, rows}; each row is one run's {run_id, model, group,
    seed, texts and figures: one list and one dict per setting (judge_word_perplexity None where
    there is no judging)}."""
    spec = config.sample_quality
    jobs = plan(config, runs, out)
    judged = {job.corpus: job.stored() for job in plan_judging(config, runs, jobs, out)}
    sections = []
    for corpus in dict.fromkeys(run.spec.corpus for run in runs):
        rows = []
        verdict = judged.get(corpus)
        here = [job for job in jobs if job.run.spec.corpus == corpus]
        for job in here:
            stored = job.stored()
            if stored is None:
                continue
            scores = (verdict or {}).get("runs", {}).get(stored["run_id"]) or [None] * len(stored["settings"])
            rows.append({"run_id": stored["run_id"], "model": stored["model"], "group": stored["group"],
                         "seed": stored["seed"], "texts": [s["texts"] for s in stored["settings"]],
                         "figures": [{**s["figures"], "judge_word_perplexity": score}
                                     for s, score in zip(stored["settings"], scores)]})
        if rows:
            data = here[0].run.corpus
            sections.append({"corpus": corpus, "level": data.level, "settings": [s.label for s in spec.settings],
                             "temperatures": [s.temperature for s in spec.settings],
                             "untruncated": [s.untruncated for s in spec.settings],
                             "default": default_setting(spec), "per_setting": spec.per_setting,
                             "max_tokens": max_tokens(spec, data), "judge": verdict["judge"] if verdict else None,
                             "reference": verdict["reference"]["figures"] if verdict else None, "rows": rows})
    return sections


def csv_figures(sections: list[dict]) -> dict[str, dict]:
    """{run_id: {sample_<figure>: value}} at the default setting, for results.csv."""
    out = {}
    for section in sections:
        for row in section["rows"]:
            figures = row["figures"][section["default"]]
            out[row["run_id"]] = {f"sample_{name}": figures.get(name) for name in CSV_FIGURES}
    return out
