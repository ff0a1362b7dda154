"""How fast the n-gram family is, side by side with its peers (KenLM and nltk.lm), in one run.

Not a test: it prints figures and ratios, every one measured in this run. The one exception is
KenLM's lmplz when no binary is found: its quoted reference times are then printed, labelled
"quoted, not measured here".

    a. Brown train (800k words), modified Kneser-Ney order 5: fit wall time (best of 3) and
       peak memory (peak RSS of fresh child processes), against lmplz on the same text; our
       ARPA export against lmplz's own ARPA-writing stage (its "=== 5/5 Writing ARPA model ==="
       to its exit, timed from its progress messages); saving and loading our checkpoint.
    b. Scoring the whole Brown test set with KN orders 3 and 5, against the `kenlm` module
       reading our own ARPA export of the same model (and checking the two agree), the rounds
       interleaved (ours, kenlm, ours, ...) so both see the same machine; ours both as fitted
       and loaded back from its checkpoint (memory-mapped).
    c. nltk.lm on 5,000 Brown training lines and 300 test lines, order 3: Laplace and
       Kneser-Ney, fit and scoring.

    python benchmarks/ngram_speed.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # measure this checkout, installed or not

from langmodels import NGramLM, corpora  # noqa: E402
from langmodels.ngram.arpa import write_arpa  # noqa: E402

LN10 = math.log(10.0)

# Targets from the issue; the table says whether each measured figure meets its target.
TARGET_FIT_SECONDS = 2.5
TARGET_FIT_MEMORY_BYTES = 1024**3
TARGET_SCORING_TOKENS_PER_SECOND = 1_000_000
TARGET_NLTK_FIT_RATIO = 30
TARGET_NLTK_LAPLACE_SCORING_RATIO = 20
TARGET_NLTK_KN_SCORING_RATIO = 1000

# lmplz -o 5 on Brown train, quoted from the issue: printed only when no lmplz binary is found.
QUOTED_LMPLZ_SECONDS = {"-S 1G": 2.3, "default memory": 4.5}
LMPLZ_FALLBACK_PATH = Path("/opt/kenlm-build/bin/lmplz")
TEAM_LMPLZ_FILE = Path("/tmp/team/LMPLZ_PATH")

NLTK_TRAIN_LINES = 5_000
NLTK_TEST_LINES = 300
NLTK_KN_TEST_LINES = 20  # nltk's Kneser-Ney takes seconds per line: timed on a few, per token


# ---- small tools ---------------------------------------------------------------------------


def best_seconds(action, repeats: int):
    """Shortest wall time of `action()` over `repeats` runs, and the last run's result.

    Timed the way the timeit documentation advises, for every tool alike: the best of several
    runs (slower runs measure other processes on this shared machine, not the code; medians
    here swung by 1.5x between runs), with the garbage collector paused while a run is timed,
    so that a collection walking nltk's millions of live objects does not land on whichever
    call happens to allocate next.
    """
    times, result = [], None
    gc.collect()
    for _ in range(repeats):
        result = None
        gc.disable()
        try:
            start = time.perf_counter()
            result = action()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times), result


# A small Python process that starts the measured command and reports that child's own rusage.
# Measuring through it, not directly from this process, matters: Linux carries a process's peak
# RSS across fork and exec into the child's ru_maxrss, so a child forked from this (large)
# process would report at least this process's size. Forked from the launcher, it starts small.
LAUNCHER = """
import json, os, subprocess, sys, time
command, report = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
child = subprocess.Popen(command)
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as out:
    json.dump({"seconds": seconds, "maxrss": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, out)
"""


def run_measured(command: list[str], *, stdin=None, stdout=None, env=None) -> dict:
    """Run a command in a fresh process; its wall time and peak RSS (that process's ru_maxrss)."""
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as errors:
        report = Path(folder) / "rusage.json"
        subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(command), str(report)],
                       stdin=stdin, stdout=stdout, stderr=errors, env=env, check=False)
        measured = json.loads(report.read_text()) if report.exists() else {"exit": "no report"}
        if measured["exit"] != 0:
            errors.seek(0)
            tail = errors.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{command[0]} exited with {measured['exit']}: " + " | ".join(tail))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux, bytes on macOS
    return {"seconds": measured["seconds"], "peak_rss_bytes": measured["maxrss"] * scale}


@contextlib.contextmanager
def quiet_stderr():
    """Silence a C++ library's own messages on file descriptor 2 (kenlm's loading progress bar)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def print_section(title: str, rows: list[tuple[str, str, str]]) -> None:
    """A two-column table with a note column."""
    print(f"\n{title}\n{'-' * len(title)}")
    width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>{value_width}}  {note}".rstrip())


def machine() -> dict:
    import nltk

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nltk": nltk.__version__,
    }


# ---- a. fitting Brown, and lmplz on the same text -----------------------------------------

CHILD_BASELINE = "from langmodels import corpora, NGramLM; c = corpora.load('brown')"
CHILD_FIT = CHILD_BASELINE + "; NGramLM(order={order}, smoothing='kneser-ney').fit(c.train)"
CHILD_TRACEMALLOC = (
    "import json, tracemalloc; " + CHILD_BASELINE + "; tracemalloc.start(); "
    "NGramLM(order={order}, smoothing='kneser-ney').fit(c.train); "
    "print(json.dumps(tracemalloc.get_traced_memory()[1]))"
)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore"
    return env


def measure_fit_memory(order: int) -> dict:
    """Peak RSS of a fresh child that only loads Brown, of one that loads and fits, and the
    tracemalloc peak (Python objects and numpy arrays) of the fit alone."""
    env = child_env()
    baseline = run_measured([sys.executable, "-c", CHILD_BASELINE], env=env)
    fitted = run_measured([sys.executable, "-c", CHILD_FIT.format(order=order)], env=env)
    traced = subprocess.run(
        [sys.executable, "-c", CHILD_TRACEMALLOC.format(order=order)],
        env=env, capture_output=True, text=True, check=True,
    )
    return {
        "baseline_peak_rss_bytes": baseline["peak_rss_bytes"],
        "fit_peak_rss_bytes": fitted["peak_rss_bytes"],
        "fit_minus_baseline_bytes": fitted["peak_rss_bytes"] - baseline["peak_rss_bytes"],
        "tracemalloc_fit_peak_bytes": int(json.loads(traced.stdout.strip().splitlines()[-1])),
    }


def find_lmplz() -> str | None:
    """KenLM's lmplz: $LMPLZ, else on PATH, else the path in /tmp/team/LMPLZ_PATH, else the
    cache's build folder (where benchmarks/ngram_scale.py builds it), else the usual one."""
    from langmodels.corpora import cache_dir

    candidates = [os.environ.get("LMPLZ"), shutil.which("lmplz")]
    if TEAM_LMPLZ_FILE.is_file():
        candidates.append(TEAM_LMPLZ_FILE.read_text().strip())
    for tools in (cache_dir() / "tools", Path.home() / ".cache" / "langmodels" / "tools"):
        candidates += [str(path) for path in sorted(tools.glob("kenlm-*/build/bin/lmplz"))]
    candidates.append(str(LMPLZ_FALLBACK_PATH))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def unk_stand_in(lines) -> str:
    """An ordinary word not in the text, to stand for the corpus's literal <unk>: lmplz reserves
    <unk> for its own unknown word and refuses to count it as text."""
    words = {word for line in lines for word in line.split()}
    stand_in, suffix = "UNKWORD", 0
    while stand_in in words:
        suffix += 1
        stand_in = f"UNKWORD{suffix}"
    return stand_in


def rename_unk(lines, stand_in: str) -> list[str]:
    pattern = re.compile(r"(?<!\S)<unk>(?!\S)")
    return [pattern.sub(stand_in, line) for line in lines]


def run_lmplz(lmplz: str, text_path: Path, order: int, memory: str | None, folder: Path, repeats: int) -> dict:
    """Median wall time and peak RSS of `lmplz -o N [-S memory] --discount_fallback`."""
    arpa = folder / f"lmplz-{order}{'-S' + memory if memory else ''}.arpa"
    command = [lmplz, "-o", str(order), "--discount_fallback", "-T", str(folder) + os.sep]
    if memory:
        command += ["-S", memory]
    runs = []
    for _ in range(repeats):
        with open(text_path, "rb") as text, open(arpa, "wb") as out:
            runs.append(run_measured(command, stdin=text, stdout=out))
    return {
        "command": " ".join([Path(lmplz).name, *command[1:]]) + " < train.txt > model.arpa",
        "seconds": min(run["seconds"] for run in runs),
        "peak_rss_bytes": max(run["peak_rss_bytes"] for run in runs),
        "arpa": arpa,
        "repeats": repeats,
    }


def lmplz_stage_seconds(lmplz: str, text_path: Path, order: int, memory: str, folder: Path, repeats: int) -> dict:
    """Seconds lmplz spends in each of its stages, timed from its progress messages on stderr
    ("=== k/5 ... ===" starts stage k; the last ends at exit): best of `repeats` per stage."""
    command = [lmplz, "-o", str(order), "--discount_fallback", "-T", str(folder) + os.sep, "-S", memory]
    best: dict[str, float] = {}
    names: dict[str, str] = {}
    for _ in range(repeats):
        marks = []
        with open(text_path, "rb") as text, open(folder / "lmplz-stages.arpa", "wb") as out:
            start = time.perf_counter()
            child = subprocess.Popen(command, stdin=text, stdout=out, stderr=subprocess.PIPE, text=True)
            for line in child.stderr:
                found = re.match(r"=== (\d)/(\d) (.*) ===", line.strip())
                if found:
                    marks.append((found.group(1), found.group(3), time.perf_counter()))
            child.wait()
            end = time.perf_counter()
        if child.returncode != 0:
            raise RuntimeError(f"lmplz exited with {child.returncode}")
        bounds = [mark[2] for mark in marks[1:]] + [end]
        for (stage, name, begin), stop in zip(marks, bounds):
            best[stage] = min(best.get(stage, math.inf), stop - begin)
            names[stage] = name
        best["total"] = min(best.get("total", math.inf), end - start)
    return {"seconds": best, "names": names, "repeats": repeats}


def kenlm_sentence_log10(model, lines) -> np.ndarray:
    return np.array([model.score(line, bos=True, eos=True) for line in lines])


def section_fit(brown, repeats: int, folder: Path) -> dict:
    order = 5
    fit_seconds, lm = best_seconds(lambda: NGramLM(order=order, smoothing="kneser-ney").fit(brown.train), repeats)
    arpa_path = folder / "ours-5.arpa"
    arpa_seconds, _ = best_seconds(lambda: write_arpa(lm, arpa_path), repeats)
    save_seconds, _ = best_seconds(lambda: lm.save(folder / "ours-5.ckpt"), repeats)
    from langmodels import load

    load_seconds, _ = best_seconds(lambda: load(folder / "ours-5.ckpt"), repeats)
    checkpoint_bytes = sum(path.stat().st_size for path in (folder / "ours-5.ckpt").iterdir())
    result = {
        "order": order,
        "train_words": sum(len(line.split()) for line in brown.train),
        "repeats": repeats,
        "fit_seconds": fit_seconds,
        "write_arpa_seconds": arpa_seconds,
        "arpa_bytes": arpa_path.stat().st_size,
        "save_seconds": save_seconds,
        "load_seconds": load_seconds,
        "checkpoint_bytes": checkpoint_bytes,
        "memory": measure_fit_memory(order),
        "lmplz": None,
        "_model": lm,
        "_arpa": arpa_path,
    }
    lmplz = find_lmplz()
    if lmplz is None:
        result["lmplz"] = {"found": False, "quoted_seconds": QUOTED_LMPLZ_SECONDS}
        return result
    stand_in = unk_stand_in(brown.train)
    text_path = folder / "brown-train.txt"
    text_path.write_text("\n".join(rename_unk(brown.train, stand_in)) + "\n", encoding="utf-8")
    # lmplz's ARPA-writing stage and our write_arpa, taking turns round after round.
    stages = None
    writes = []
    for _ in range(repeats):
        arpa_path.unlink()  # as lmplz's output file, emptied by open() before its clock starts
        writes.append(best_seconds(lambda: write_arpa(lm, arpa_path), 1)[0])
        one = lmplz_stage_seconds(lmplz, text_path, order, "1G", folder, 1)
        if stages is None:
            stages = one
        else:
            stages["seconds"] = {k: min(v, one["seconds"].get(k, v)) for k, v in stages["seconds"].items()}
    stages["repeats"] = repeats
    result["write_arpa_seconds_interleaved"] = min(writes)
    runs = {
        "-S 1G": run_lmplz(lmplz, text_path, order, "1G", folder, repeats),
        # Once: by default lmplz claims 80 % of physical memory for sorting, which is slow to set up.
        "default memory": run_lmplz(lmplz, text_path, order, None, folder, 1),
    }
    # Cross-check: lmplz's own model scores the test set like ours (same renaming there).
    import kenlm

    test = rename_unk(brown.test, stand_in)
    with quiet_stderr():
        lmplz_model = kenlm.Model(str(runs["-S 1G"]["arpa"]))
    total_log10 = float(kenlm_sentence_log10(lmplz_model, test).sum())
    n_tokens = sum(len(line.split()) + 1 for line in test)
    ours = lm.evaluate(brown.test, progress=False)
    result["lmplz"] = {
        "found": True,
        "path": lmplz,
        "unk_renamed_to": stand_in,
        "runs": {
            name: {key: value for key, value in run.items() if key != "arpa"} for name, run in runs.items()
        },
        "test_perplexity_lmplz_model": 10 ** (-total_log10 / n_tokens),
        "test_perplexity_ours": ours.perplexity,
        "stages": stages,
        "writing_arpa_seconds": stages["seconds"].get("5"),
        "arpa_bytes": runs["-S 1G"]["arpa"].stat().st_size,
    }
    return result


def print_fit(fit: dict) -> None:
    memory = fit["memory"]
    rows = [
        ("train words", f"{fit['train_words']:,}", ""),
        (f"our fit, KN order {fit['order']} (best of {fit['repeats']})", f"{fit['fit_seconds']:.2f} s",
         f"target < {TARGET_FIT_SECONDS} s: {verdict(fit['fit_seconds'] < TARGET_FIT_SECONDS)}"),
        ("our write_arpa of that model", f"{fit['write_arpa_seconds']:.2f} s", "(lmplz's time includes writing ARPA)"),
        ("our fit + write_arpa", f"{fit['fit_seconds'] + fit['write_arpa_seconds']:.2f} s", ""),
        ("our save (checkpoint of .npy tables)", f"{fit['save_seconds']:.2f} s",
         f"{mib(fit['checkpoint_bytes'])} on disk"),
        ("our load of that checkpoint (memory-mapped)", f"{fit['load_seconds'] * 1e3:.1f} ms", ""),
        ("peak RSS, child that loads Brown", mib(memory["baseline_peak_rss_bytes"]), "baseline"),
        ("peak RSS, child that loads + fits", mib(memory["fit_peak_rss_bytes"]), ""),
        ("  difference (the fit)", mib(memory["fit_minus_baseline_bytes"]),
         f"target < 1 GB: {verdict(memory['fit_peak_rss_bytes'] < TARGET_FIT_MEMORY_BYTES)} (whole process)"),
        ("tracemalloc peak during the fit", mib(memory["tracemalloc_fit_peak_bytes"]), "Python objects + numpy arrays"),
    ]
    lmplz = fit["lmplz"]
    if lmplz["found"]:
        with_arpa = fit["fit_seconds"] + fit["write_arpa_seconds"]
        for name, run in lmplz["runs"].items():
            note = (f"lmplz / our fit = {run['seconds'] / fit['fit_seconds']:.2f}x, / our fit + ARPA = "
                    f"{run['seconds'] / with_arpa:.2f}x; peak RSS {mib(run['peak_rss_bytes'])}")
            runs = f"best of {run['repeats']}" if run["repeats"] > 1 else "1 run"
            rows.append((f"lmplz -o 5 {name} ({runs})", f"{run['seconds']:.2f} s", note))
        writing = lmplz["writing_arpa_seconds"]
        if writing:
            ours_writing = fit["write_arpa_seconds_interleaved"]
            rows.append(("lmplz stage 5/5, writing ARPA", f"{writing:.2f} s",
                         (f"{mib(lmplz['arpa_bytes'])}; lmplz / our write_arpa ({ours_writing:.2f} s, taking turns) "
                          f"= {writing / ours_writing:.2f}x "
                          f"(ours {mib(fit['arpa_bytes'])}), best of {lmplz['stages']['repeats']}, from its stderr")))
        rows.append(("test perplexity, lmplz's own model", f"{lmplz['test_perplexity_lmplz_model']:.4f}",
                     f"read by the kenlm module; <unk> renamed {lmplz['unk_renamed_to']}"))
        rows.append(("test perplexity, ours", f"{lmplz['test_perplexity_ours']:.4f}", ""))
    else:
        for name, seconds in lmplz["quoted_seconds"].items():
            note = f"QUOTED, NOT MEASURED HERE (no lmplz binary); lmplz / our fit = {seconds / fit['fit_seconds']:.2f}x"
            rows.append((f"lmplz -o 5 {name}", f"{seconds:.1f} s", note))
    print_section("a. Fitting Brown train, modified Kneser-Ney order 5", rows)
    if lmplz["found"]:
        print("  lmplz command: " + lmplz["runs"]["-S 1G"]["command"])


# ---- b. scoring the Brown test set ---------------------------------------------------------


def our_sentence_log10(lm, lines) -> np.ndarray:
    flat, lengths = lm.tokenizer.encode_lines(list(lines))
    per_line = np.split(flat, np.cumsum(lengths)[:-1])
    return np.array([float(scores.sum()) / LN10 for scores in lm.score_ids(per_line)])


def section_scoring(brown, repeats: int, folder: Path, model_5=None, arpa_5=None) -> dict:
    import kenlm

    test = list(brown.test)
    results = {}
    for order in (3, 5):
        if order == 5 and model_5 is not None:
            lm, arpa = model_5, arpa_5
        else:
            lm = NGramLM(order=order, smoothing="kneser-ney").fit(brown.train)
            arpa = write_arpa(lm, folder / f"ours-{order}.arpa")
        lm.save(folder / f"ours-{order}.scoring")
        from langmodels import load

        mapped = load(folder / f"ours-{order}.scoring")
        start = time.perf_counter()
        with quiet_stderr():
            model = kenlm.Model(str(arpa))
        load_seconds = time.perf_counter() - start
        lm.evaluate(brown.test, progress=False)  # first use: the ids cached, the hash indexes built
        mapped.evaluate(brown.test, progress=False)
        flat, lengths = lm.tokenizer.encode_lines(test)
        timed = interleaved_best({
            "ours": (lambda lm=lm: lm.evaluate(brown.test, progress=False), 1),
            "ours_mapped": (lambda m=mapped: m.evaluate(brown.test, progress=False), 1),
            "ours_score_lines": (lambda lm=lm, f=flat, n=lengths: lm.score_lines(f, n), 1),
            "kenlm": (lambda m=model: kenlm_sentence_log10(m, test), 1),
        }, 2 * repeats + 1)
        evaluation = timed["ours"][1]
        n_tokens = evaluation.n_tokens
        kenlm_seconds, theirs = timed["kenlm"]
        ours = our_sentence_log10(lm, test)
        difference = np.abs(ours - theirs)
        results[str(order)] = {
            "n_tokens": n_tokens,
            "perplexity": evaluation.perplexity,
            "evaluate_seconds": timed["ours"][0],
            "evaluate_tokens_per_second": n_tokens / timed["ours"][0],
            "scoring_seconds_reported": evaluation.seconds,
            "scoring_tokens_per_second_reported": n_tokens / evaluation.seconds,
            "score_lines_seconds": timed["ours_score_lines"][0],
            "score_lines_tokens_per_second": n_tokens / timed["ours_score_lines"][0],
            "mapped_evaluate_seconds": timed["ours_mapped"][0],
            "mapped_evaluate_tokens_per_second": n_tokens / timed["ours_mapped"][0],
            "mapped_perplexity": timed["ours_mapped"][1].perplexity,
            "kenlm_load_seconds": load_seconds,
            "kenlm_seconds": kenlm_seconds,
            "kenlm_tokens_per_second": n_tokens / kenlm_seconds,
            "kenlm_perplexity": 10 ** (-float(theirs.sum()) / n_tokens),
            "max_abs_log10_difference_per_sentence": float(difference.max()),
            "total_log10_ours": float(ours.sum()),
            "total_log10_kenlm": float(theirs.sum()),
        }
    return {"repeats": repeats, "orders": results}


def print_scoring(scoring: dict) -> None:
    rows = []
    for order, r in scoring["orders"].items():
        ok = r["evaluate_tokens_per_second"] >= TARGET_SCORING_TOKENS_PER_SECOND
        rows += [
            (f"KN order {order}: our evaluate(c.test), wall", f"{r['evaluate_tokens_per_second']:,.0f} tok/s",
             f"{r['evaluate_seconds']:.3f} s for {r['n_tokens']:,} tokens; target >= 1,000,000: {verdict(ok)}"),
            ("  Evaluation.tokens_per_second (scoring only)", f"{r['scoring_tokens_per_second_reported']:,.0f} tok/s",
             "excludes the word/char counting of the text"),
            ("  our score_lines (ids in, log-probs out)", f"{r['score_lines_tokens_per_second']:,.0f} tok/s",
             f"ours / kenlm = {r['score_lines_tokens_per_second'] / r['kenlm_tokens_per_second']:.2f}x"),
            ("  our evaluate, model loaded memory-mapped", f"{r['mapped_evaluate_tokens_per_second']:,.0f} tok/s",
             (f"ours / kenlm = {r['mapped_evaluate_tokens_per_second'] / r['kenlm_tokens_per_second']:.2f}x; "
              f"perplexity {r['mapped_perplexity']:.4f}")),
            ("  kenlm module on our ARPA, score() per line", f"{r['kenlm_tokens_per_second']:,.0f} tok/s",
             (f"ours / kenlm = {r['evaluate_tokens_per_second'] / r['kenlm_tokens_per_second']:.2f}x "
              f"(kenlm load {r['kenlm_load_seconds']:.2f} s not counted)")),
            ("  perplexity ours / kenlm", f"{r['perplexity']:.4f} / {r['kenlm_perplexity']:.4f}",
             f"max |log10 difference| per sentence {r['max_abs_log10_difference_per_sentence']:.2e}"),
        ]
    print_section(f"b. Scoring the whole Brown test set (best of {scoring['repeats']} interleaved rounds)", rows)


# ---- c. nltk.lm on a small slice -----------------------------------------------------------


def nltk_fit(model_class, train_lines):
    from nltk.lm.preprocessing import padded_everygram_pipeline

    ngrams, vocab = padded_everygram_pipeline(3, [line.split() for line in train_lines])
    model = model_class(3)
    model.fit(ngrams, vocab)
    return model


def nltk_test_ngrams(lines) -> list[tuple]:
    """nltk's convention: each sentence padded with n-1 <s> and n-1 </s>, every trigram scored."""
    from nltk.lm.preprocessing import pad_both_ends
    from nltk.util import ngrams

    return [gram for line in lines for gram in ngrams(pad_both_ends(line.split(), n=3), 3)]


def nltk_score(model, lines):
    """Per-trigram logscore (what nltk's perplexity() does), the padding included: a timed action."""
    grams = nltk_test_ngrams(lines)
    return grams, np.array([model.logscore(gram[-1], gram[:-1]) for gram in grams])


def nltk_scoring_figures(seconds: float, result, lines) -> dict:
    grams, log2 = result
    infinite = int(np.count_nonzero(np.isneginf(log2)))
    return {
        "n_lines": len(lines),
        "n_ngrams": len(grams),
        "seconds": seconds,
        "tokens_per_second": len(grams) / seconds,
        "perplexity": math.inf if infinite else float(2 ** (-log2.mean())),
        "n_zero_probability": infinite,
    }


def ours_scoring_figures(seconds: float, evaluation, lines) -> dict:
    return {
        "n_lines": len(lines),
        "n_tokens": evaluation.n_tokens,
        "seconds": seconds,
        "tokens_per_second": evaluation.n_tokens / seconds,
        "perplexity": evaluation.perplexity,
    }


def interleaved_best(actions: dict, rounds: int) -> dict:
    """{name: (best seconds, last result)} for {name: (action, runs per round)}, the actions
    taking turns round after round: on a shared machine whose speed drifts by 1.5x over a
    minute, each side then sees the same conditions and their ratio stays put."""
    times: dict = {name: [] for name in actions}
    results: dict = {}
    for _ in range(rounds):
        for name, (action, runs) in actions.items():
            seconds, results[name] = best_seconds(action, runs)
            times[name].append(seconds)
    return {name: (min(times[name]), results[name]) for name in actions}


def section_nltk(brown, repeats: int, kn_lines: int) -> dict:
    from nltk.lm import KneserNeyInterpolated, Laplace

    train = list(brown.train[:NLTK_TRAIN_LINES])
    test = list(brown.test[:NLTK_TEST_LINES])
    result = {"train_lines": len(train), "test_lines": len(test), "order": 3, "repeats": repeats}
    for key, nltk_class in (("laplace", Laplace), ("kneser-ney", KneserNeyInterpolated)):
        fits = interleaved_best({
            "ours": (lambda s=key: NGramLM(3, s).fit(train), 2),
            "nltk": (lambda cls=nltk_class: nltk_fit(cls, train), 1),
        }, repeats)
        (ours_fit, ours), (nltk_fit_seconds, nltk_model) = fits["ours"], fits["nltk"]
        # nltk's Kneser-Ney takes seconds per line: scored once, on a few lines.
        scored_lines, rounds = (test, 2 * repeats + 1) if key == "laplace" else (test[:kn_lines], 1)
        scoring = interleaved_best({
            "ours": (lambda m=ours, lines=scored_lines: m.evaluate(lines, progress=False), 3),
            "nltk": (lambda m=nltk_model, lines=scored_lines: nltk_score(m, lines), 1),
        }, rounds)
        full_seconds, full = best_seconds(lambda m=ours: m.evaluate(test, progress=False), 5 * repeats)
        entry = {
            "ours_fit_seconds": ours_fit,
            "nltk_fit_seconds": nltk_fit_seconds,
            "fit_ratio": nltk_fit_seconds / ours_fit,
            "nltk_scoring": nltk_scoring_figures(*scoring["nltk"], scored_lines),
            "ours_scoring_same_lines": ours_scoring_figures(*scoring["ours"], scored_lines),
            "ours_scoring": ours_scoring_figures(full_seconds, full, test),
        }
        # The same lines scored to a perplexity by each: the ratio of their wall times.
        entry["scoring_ratio"] = entry["nltk_scoring"]["seconds"] / entry["ours_scoring_same_lines"]["seconds"]
        result[key] = entry
        del ours, nltk_model, fits, scoring
    return result


def print_nltk(nltk_results: dict) -> None:
    rows = []
    targets = {"laplace": TARGET_NLTK_LAPLACE_SCORING_RATIO, "kneser-ney": TARGET_NLTK_KN_SCORING_RATIO}
    for key, label in (("laplace", "Laplace"), ("kneser-ney", "Kneser-Ney")):
        r = nltk_results[key]
        nltk_s, ours_s, same = r["nltk_scoring"], r["ours_scoring"], r["ours_scoring_same_lines"]
        nltk_ppl = "inf" if math.isinf(nltk_s["perplexity"]) else f"{nltk_s['perplexity']:.2f}"
        same_lines_note = f"on the same {nltk_s['n_lines']} lines"
        if nltk_s["n_zero_probability"]:
            same_lines_note += f"; nltk gave {nltk_s['n_zero_probability']} trigrams probability 0"
        extrapolated = ", 1 run" if nltk_s["n_lines"] < ours_s["n_lines"] else ""
        rows += [
            (f"{label}: nltk fit", f"{r['nltk_fit_seconds']:.2f} s", ""),
            (f"{label}: our fit", f"{r['ours_fit_seconds']:.3f} s",
             (f"nltk / ours = {r['fit_ratio']:.0f}x; target >= {TARGET_NLTK_FIT_RATIO}x: "
              f"{verdict(r['fit_ratio'] >= TARGET_NLTK_FIT_RATIO)}")),
            (f"{label}: nltk scoring", f"{nltk_s['tokens_per_second']:,.1f} tok/s",
             (f"{nltk_s['n_ngrams']:,} trigrams of {nltk_s['n_lines']} lines in {nltk_s['seconds']:.2f} s"
              f"{extrapolated}")),
            (f"{label}: our scoring", f"{same['tokens_per_second']:,.0f} tok/s",
             (f"the same {same['n_lines']} lines in {same['seconds'] * 1e3:.2f} ms; nltk time / ours = "
              f"{r['scoring_ratio']:,.0f}x; target >= {targets[key]:,}x: "
              f"{verdict(r['scoring_ratio'] >= targets[key])}")),
            (f"{label}: perplexity nltk / ours", f"{nltk_ppl} / {same['perplexity']:.2f}", same_lines_note),
        ]
        if nltk_s["n_lines"] != ours_s["n_lines"]:
            rows.append((f"{label}: ours on all {ours_s['n_lines']} lines", f"{ours_s['tokens_per_second']:,.0f} tok/s",
                         f"perplexity {ours_s['perplexity']:.2f}"))
    title = (f"c. nltk.lm side by side: order 3, first {nltk_results['train_lines']:,} Brown train lines, "
             f"first {nltk_results['test_lines']} test lines")
    print_section(title, rows)
    print("  Perplexities differ by convention: nltk pads each sentence with two </s> and predicts both,\n"
          "  counts <s>, </s> and <UNK> in its vocabulary, and its Kneser-Ney is not the modified\n"
          "  3-discount one; ours predicts one </s> per line over a vocabulary without <s>.")


# ---- all together --------------------------------------------------------------------------


def nltk_in_fresh_process(quick: bool, folder: Path) -> dict:
    """Section c in a process of its own, both libraries side by side in it. In this one, the
    gigabytes sections a and b allocated and freed leave the allocator's heap in a state that
    slowed our millisecond-long calls by up to 1.6x (measured: 1.41 ms fresh, 2.20 ms here)."""
    target = folder / "nltk.json"
    command = [sys.executable, __file__, "--nltk-only", "--json", str(target), *(["--quick"] if quick else [])]
    subprocess.run(command, check=True)
    return json.loads(target.read_text(encoding="utf-8"))["nltk"]


def run_nltk_only(quick: bool) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"nltk": section_nltk(corpora.load("brown"), 1 if quick else 3, 5 if quick else NLTK_KN_TEST_LINES)}


def run(quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    started = time.perf_counter()
    brown = corpora.load("brown")
    figures = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "machine": machine()}
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="ngram-speed-") as folder:
        warnings.simplefilter("ignore")
        folder = Path(folder)
        fit = section_fit(brown, repeats, folder)
        model_5, arpa_5 = fit.pop("_model", None), fit.pop("_arpa", None)
        print_fit(fit)
        figures["fit"] = fit
        figures["scoring"] = section_scoring(brown, repeats, folder, model_5, arpa_5)
        print_scoring(figures["scoring"])
        del model_5
        figures["nltk"] = nltk_in_fresh_process(quick, folder)
    print_nltk(figures["nltk"])
    figures["total_seconds"] = time.perf_counter() - started
    about = figures["machine"]
    print(f"\nAll figures measured in this run ({figures['total_seconds']:.0f} s, {'--quick' if quick else 'full'}); "
          f"{about['cpu_count']} CPUs, Python {about['python']}, numpy {about['numpy']}.")
    return figures


def write_json(figures: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition instead of three; nltk KN on 5 lines")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every measured figure as JSON")
    parser.add_argument("--nltk-only", action="store_true", help=argparse.SUPPRESS)  # section c, for run()
    args = parser.parse_args(argv)
    figures = run_nltk_only(args.quick) if args.nltk_only else run(args.quick)
    if args.json:
        write_json(figures, args.json)


if __name__ == "__main__":
    main()
