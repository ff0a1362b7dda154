"""N-gram estimation at scale, side by side with KenLM's lmplz under the same memory limit.

Not a test: it prints figures measured in this run and keeps them in reports/ngram/scale.json.

For each corpus size (15M and 100M words; 1B more with --huge) it makes the corpus with
benchmarks/synthetic.py (sentences sampled from a trigram model of Brown train; cached under
cache_dir()/scale, made once per size and seed), then runs, each in a fresh process:

    ours:  NGramLM(order=5, smoothing="kneser-ney", memory=M).fit(corpus) then .save(folder)
    lmplz: lmplz -o 5 -S M -T tmp/ --discount_fallback < corpus > model.arpa

and prints wall time, peak RSS (ru_maxrss of that child, read by a small launcher process so the
benchmark's own size never counts) and the perplexity of Brown test under each model (ours by
loading the saved checkpoint; lmplz's ARPA read by the `kenlm` module). Brown test words the
synthetic corpus never produced are written as <unk> for both, so both read the same tokens.

For ours it also records the peak disk taken by the id cache, the spilled blocks, the tables and
the checkpoint together (sampled every second), and issue 13's memory bound: the limit, the
constant (the peak RSS of the same child on the corpus's first 1000 lines: interpreter, imports,
vocabulary) and whether peak RSS <= limit + constant. Results of sizes this run does not measure
are kept in the --out file, each with its date, so a --huge run and a default run share it.

lmplz is found as $LMPLZ, on PATH, in /tmp/team/LMPLZ_PATH, or in the cache's build folder; else
it is built there from the `kenlm` source distribution on the package index (pip download, then
cmake and make; needs cmake, a C++ compiler and boost's program_options, system, thread and test,
zlib, bz2 and lzma development files). If it cannot be built the benchmark says so and measures
ours alone.

The literal word <unk> of Brown (and so of the synthetic text) is one lmplz refuses to read; for
lmplz it is renamed to a word found nowhere in the text, in its copy of the corpus and of Brown
test, so both tools count the same text.

    python benchmarks/ngram_scale.py [--sizes 15M,100M] [--huge] [--memory 4G | --memory 2G,4G] [--order 5]
                                     [--out reports/ngram/scale.json] [--no-lmplz] [--seed 0] [--rounds 1]

With --rounds N the two tools take turns N times per size (ours, lmplz, ours, lmplz, ...) and the
median of each one's times is the figure; every round's time is kept. On this project's virtual
machine a run's time moves by up to 40 % with the state of the machine's memory (how much of it the
host took back), for lmplz as for ours, so a ratio from one run each is a coin toss at 15M words.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from ngram_speed import (  # noqa: E402
    child_env,
    find_lmplz,
    mib,
    quiet_stderr,
    run_measured,
    unk_stand_in,
    write_json,
)

from langmodels import NGramLM, corpora  # noqa: E402
from langmodels.corpora import cache_dir  # noqa: E402

DEFAULT_SIZES = "15M,100M"
HUGE_SIZE = "1B"
DEFAULT_MEMORY = "4G"
HUGE_MEMORY = "8G"
UNK = "<unk>"

# The fit-and-save child: the public API only; memory= only where the constructor takes it.
CHILD_FIT = """
import inspect, json, sys, time
from langmodels import NGramLM, corpora
corpus_path, out, order, memory, report = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
options = {"order": order, "smoothing": "kneser-ney"}
if "memory" in inspect.signature(NGramLM.__init__).parameters:
    options["memory"] = memory
train = corpora.load(corpus_path).split("all")
start = time.perf_counter()
model = NGramLM(**options).fit(train)
fitted = time.perf_counter()
model.save(out)
saved = time.perf_counter()
with open(report, "w") as handle:
    json.dump({"fit_seconds": fitted - start, "save_seconds": saved - fitted}, handle)
"""


# ---- lmplz: find it or build it --------------------------------------------------------------


def tools_dir() -> Path:
    return cache_dir() / "tools"


def build_lmplz() -> tuple[str | None, str]:
    """Build lmplz from the kenlm source distribution into the cache; (path or None, what happened)."""
    folder = tools_dir()
    folder.mkdir(parents=True, exist_ok=True)
    missing = [tool for tool in ("cmake", "make", "c++") if shutil.which(tool) is None]
    if missing:
        return None, f"cannot build lmplz: {', '.join(missing)} not found"
    archives = sorted(folder.glob("kenlm-*.tar.gz"))
    if not archives:
        # --no-binary kenlm (not :all:) so the build tools themselves may come as wheels.
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "kenlm", "--no-build-isolation",
             "kenlm", "-d", str(folder)], capture_output=True, text=True, check=False)
        archives = sorted(folder.glob("kenlm-*.tar.gz"))
        if not archives:
            return None, ("cannot build lmplz: pip could not download the kenlm sources: "
                          + download.stderr.strip()[-300:])
    archive = archives[-1]
    source = folder / archive.name[: -len(".tar.gz")]
    if not source.is_dir():
        subprocess.run(["tar", "xzf", str(archive), "-C", str(folder)], check=True)
    build = source / "build"
    build.mkdir(exist_ok=True)
    steps = [["cmake", "..", "-DCMAKE_BUILD_TYPE=Release"], ["make", f"-j{os.cpu_count() or 1}", "lmplz"]]
    for step in steps:
        print(f"building lmplz: {' '.join(step)} (in {build})", flush=True)
        done = subprocess.run(step, cwd=build, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            return None, (f"cannot build lmplz ({' '.join(step)} failed; cmake and the boost development "
                          f"packages are needed): " + " | ".join(tail))
    binary = build / "bin" / "lmplz"
    return (str(binary), f"built from {archive.name}") if binary.is_file() else (None, "lmplz build left no binary")


# ---- corpora ---------------------------------------------------------------------------------


def make_corpus(words: int, seed: int, folder: Path) -> tuple[Path, dict]:
    """The synthetic corpus of `words` words (made once, kept in the cache with its figures)."""
    from synthetic import write_corpus

    path = folder / f"synthetic-{words}-seed{seed}.txt"
    about = path.with_suffix(".json")
    if path.is_file() and about.is_file():
        return path, json.loads(about.read_text())
    figures = write_corpus(words, path, seed=seed)
    write_json(figures, about)
    return path, figures


def renamed_copy(path: Path, stand_in: str) -> Path:
    """The corpus with the word <unk> renamed to `stand_in`, for lmplz (made once)."""
    target = path.with_name(path.stem + "-lmplz.txt")
    if target.is_file():
        return target
    pattern = re.compile(rb"(?<!\S)<unk>(?!\S)")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(path, "rb") as source, open(temporary, "wb") as out:
        out.writelines(pattern.sub(stand_in.encode(), line) for line in source)
    os.replace(temporary, target)
    return target


def corpus_stand_in(path: Path, brown) -> str:
    """A word found neither in the corpus nor in Brown: the name <unk> takes for lmplz."""
    stand_in = unk_stand_in(list(brown.train) + list(brown.test))  # the text is sampled from Brown's words
    with open(path, "rb") as source:
        while block := source.read(1 << 24):
            if stand_in.encode() in block:
                raise RuntimeError(f"the corpus holds {stand_in!r}: choose another stand-in for <unk>")
    return stand_in


# ---- the runs ----------------------------------------------------------------------------------


def disk_bytes(roots: list[Path]) -> int:
    """Bytes the files under `roots` take on disk (allocated blocks, so sparse files count as written)."""
    total = 0
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_blocks * 512
                except OSError:
                    pass  # removed meanwhile
    return total


class DiskWatch:
    """The peak of disk_bytes(roots) while a child runs, sampled every `interval` seconds."""

    def __init__(self, roots: list[Path], interval: float = 1.0):
        self.roots, self.interval, self.peak = roots, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, disk_bytes(self.roots))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, disk_bytes(self.roots))


def run_ours(corpus: Path, out: Path, order: int, memory: str) -> dict:
    if out.exists():
        shutil.rmtree(out)
    report = out.with_name(out.name + "-split.json")
    # A fresh cache: the text is tokenized within the timed fit, as lmplz reads it within its run.
    fresh = out.with_name(out.name + "-cache")
    shutil.rmtree(fresh, ignore_errors=True)
    # Its temporary files (spilled blocks, the tables before they are saved) go beside the checkpoint,
    # so that the disk they take is measured with the checkpoint's and the id cache's.
    spill = out.with_name(out.name + "-tmp")
    spill.mkdir(parents=True, exist_ok=True)
    env = {**child_env(), "LANGMODELS_CACHE": str(fresh), "TMPDIR": str(spill)}
    try:
        with DiskWatch([fresh, spill, out]) as disk:
            measured = run_measured([sys.executable, "-c", CHILD_FIT, str(corpus), str(out), str(order), memory,
                                     str(report)], env=env)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(spill, ignore_errors=True)
    measured["peak_disk_bytes"] = disk.peak  # id cache + spilled blocks + tables + checkpoint, at most at once
    measured.update(json.loads(report.read_text()))  # the child's own split: fit, then save
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    accepts_memory = "memory" in inspect.signature(NGramLM.__init__).parameters
    return {**measured, "checkpoint_bytes": size, "memory_passed": memory if accepts_memory else None,
            "command": f"NGramLM(order={order}, smoothing='kneser-ney'"
                       + (f", memory='{memory}'" if accepts_memory else "") + ").fit(corpus).save(folder)"}


def run_lmplz(lmplz: str, corpus: Path, arpa: Path, order: int, memory: str, tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    command = [lmplz, "-o", str(order), "-S", memory, "-T", str(tmp) + os.sep, "--discount_fallback"]
    with open(corpus, "rb") as text, open(arpa, "wb") as out:
        measured = run_measured(command, stdin=text, stdout=out)
    return {**measured, "arpa_bytes": arpa.stat().st_size,
            "command": " ".join([Path(lmplz).name, *command[1:]]) + " < corpus.txt > model.arpa"}


TINY_LINES = 1000  # the corpus's first lines: the run that measures the fixed part of peak RSS


def fixed_rss(corpus: Path, work: Path, order: int, memory: str) -> int:
    """The constant of the memory bound: the peak RSS of the same fit-and-save child on the
    corpus's first TINY_LINES lines (~22k words), where the estimation's own arrays are a few MB,
    so what remains is the interpreter, the imports, the vocabulary and the fixed buffers."""
    tiny = work / f"tiny-{corpus.stem}.txt"
    with open(corpus, "rb") as source, open(tiny, "wb") as out:
        out.writelines(line for _, line in zip(range(TINY_LINES), source))
    try:
        return run_ours(tiny, work / "tiny-model", order, memory)["peak_rss_bytes"]
    finally:
        shutil.rmtree(work / "tiny-model", ignore_errors=True)
        tiny.unlink(missing_ok=True)


def memory_bound(peak: int, memory: str, constant: int) -> dict:
    """Issue 13's bound: peak RSS <= the limit plus the stated constant."""
    from langmodels.ngram.external_sort import parse_memory

    limit = parse_memory(memory)
    return {"limit_bytes": limit, "constant_bytes": constant, "peak_rss_bytes": peak,
            "within": peak <= limit + constant}


def closed_test(model, brown) -> tuple[list[str], int]:
    """Brown test with every word outside the model's vocabulary written as <unk>, so both tools
    read the same tokens (ours reads an unknown word as <unk>, the `kenlm` module as its own
    <unk>, which is not the corpus's word <unk>); and how many words were replaced."""
    vocab = model.tokenizer.vocab
    replaced, lines = 0, []
    for line in brown.test:
        words = line.split()
        kept = [word if word in vocab else UNK for word in words]
        replaced += sum(a != b for a, b in zip(words, kept))
        lines.append(" ".join(kept))
    return lines, replaced


def perplexity_ours(checkpoint: Path, brown) -> tuple[dict, list[str]]:
    from langmodels import load

    start = time.perf_counter()
    model = load(checkpoint)
    load_seconds = time.perf_counter() - start
    lines, replaced = closed_test(model, brown)
    evaluation = model.evaluate(lines, progress=False)
    return {"perplexity": evaluation.perplexity, "n_tokens": evaluation.n_tokens, "load_seconds": load_seconds,
            "test_words_outside_vocabulary": replaced}, lines


def available_memory() -> int:
    """Bytes of memory available now (Linux /proc/meminfo), or 0 if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def perplexity_lmplz(arpa: Path, lines: list[str], stand_in: str) -> dict:
    import kenlm

    # The kenlm module builds its hash tables from the ARPA text in memory (about the ARPA's size):
    # a model larger than half the memory available is not loaded (the 1B-word one, here).
    available = available_memory()
    if available and arpa.stat().st_size > available // 2:
        size = arpa.stat().st_size / 2**30
        return {"perplexity": math.nan,
                "skipped": f"(the {size:.1f} GiB ARPA not loaded: {available / 2**30:.1f} GiB available)"}

    pattern = re.compile(r"(?<!\S)<unk>(?!\S)")
    lines = [pattern.sub(stand_in, line) for line in lines]
    start = time.perf_counter()
    with quiet_stderr():
        model = kenlm.Model(str(arpa))
    load_seconds = time.perf_counter() - start
    total = sum(model.score(line, bos=True, eos=True) for line in lines)
    n_tokens = sum(len(line.split()) + 1 for line in lines)
    oov = sum(1 for line in lines for word in line.split() if word not in model)
    return {"perplexity": 10 ** (-total / n_tokens), "n_tokens": n_tokens, "kenlm_load_seconds": load_seconds,
            "test_words_not_in_model": oov}


def summarised(rounds: list[dict]) -> dict:
    """One tool's figures over its rounds: the first round's (perplexity, sizes), with the median
    of each timing, the largest peak RSS and disk, and every round's seconds."""
    first = dict(rounds[0])
    for key in ("seconds", "fit_seconds", "save_seconds"):
        if key in first:
            first[key] = statistics.median(r[key] for r in rounds)
    for key in ("peak_rss_bytes", "peak_disk_bytes"):
        if key in first:
            first[key] = max(r[key] for r in rounds)
    first["rounds_seconds"] = [r["seconds"] for r in rounds]
    return first


def run_size(label: str, words: int, args, lmplz: str | None, brown, work: Path) -> dict:
    print(f"\n== {label} words: making the corpus ==", flush=True)
    corpus, figures = make_corpus(words, args.seed, work)
    result = {"label": label, "corpus": {k: figures.get(k) for k in ("words", "lines", "bytes", "sha256")},
              "memory": args.memory, "order": args.order, "rounds": args.rounds}
    models = Path(tempfile.mkdtemp(prefix=f"scale-{label}-", dir=work))
    ours_rounds, theirs_rounds = [], []
    try:
        text = stand_in = None
        if lmplz is not None:
            stand_in = corpus_stand_in(corpus, brown)
            text = renamed_copy(corpus, stand_in)
        for round_ in range(args.rounds):  # the tools take turns, so both meet the machine's moods
            print(f"== {label}: ours (fit + save), round {round_ + 1} of {args.rounds} ==", flush=True)
            ours = run_ours(corpus, models / "ours", args.order, args.memory)
            if round_ == 0:
                scored, test_lines = perplexity_ours(models / "ours", brown)
                ours.update(scored)
            shutil.rmtree(models / "ours")
            ours_rounds.append(ours)
            print(f"   {ours['seconds']:.1f} s (fit {ours['fit_seconds']:.1f} s, save {ours['save_seconds']:.1f} s), "
                  f"peak RSS {mib(ours['peak_rss_bytes'])}", flush=True)
            if lmplz is not None:
                print(f"== {label}: lmplz, round {round_ + 1} of {args.rounds} ==", flush=True)
                theirs = run_lmplz(lmplz, text, models / "lmplz.arpa", args.order, args.memory, models / "tmp")
                if round_ == 0:
                    theirs.update(perplexity_lmplz(models / "lmplz.arpa", test_lines, stand_in))
                    theirs["unk_renamed_to"] = stand_in
                (models / "lmplz.arpa").unlink()
                theirs_rounds.append(theirs)
                print(f"   {theirs['seconds']:.1f} s, peak RSS {mib(theirs['peak_rss_bytes'])}", flush=True)
        ours = result["ours"] = summarised(ours_rounds)
        bound = memory_bound(ours["peak_rss_bytes"], args.memory, fixed_rss(corpus, models, args.order, args.memory))
        result["memory_bound"] = bound
        print(f"   ours, median of {args.rounds}: {ours['seconds']:.1f} s (fit {ours['fit_seconds']:.1f} s, save "
              f"{ours['save_seconds']:.1f} s), peak RSS {mib(ours['peak_rss_bytes'])}, Brown test perplexity "
              f"{ours['perplexity']:.4f}, checkpoint {mib(ours['checkpoint_bytes'])} loaded in "
              f"{ours['load_seconds'] * 1e3:.0f} ms, peak disk {mib(ours['peak_disk_bytes'])}\n"
              f"   memory bound: peak RSS {mib(bound['peak_rss_bytes'])} <= limit {mib(bound['limit_bytes'])} + "
              f"constant {mib(bound['constant_bytes'])}: {'yes' if bound['within'] else 'NO'}", flush=True)
        if theirs_rounds:
            theirs = result["lmplz"] = summarised(theirs_rounds)
            print(f"   lmplz, median of {args.rounds}: {theirs['seconds']:.1f} s, peak RSS "
                  f"{mib(theirs['peak_rss_bytes'])}, Brown test perplexity {theirs['perplexity']:.4f} "
                  f"{theirs.get('skipped', '')}", flush=True)
            result["ratios"] = {
                "lmplz_seconds_over_ours": theirs["seconds"] / ours["seconds"],
                "ours_peak_rss_over_lmplz": ours["peak_rss_bytes"] / theirs["peak_rss_bytes"],
                "perplexity_relative_difference": abs(ours["perplexity"] - theirs["perplexity"]) / theirs["perplexity"],
            }
    finally:
        shutil.rmtree(models, ignore_errors=True)
    return result


def print_table(results: list[dict]) -> None:
    print("\nKN-5 fit (to a saved model) side by side, same memory limit, same machine, this run")
    header = f"{'words':>8}  {'ours':>9}  {'ours RSS':>10}  {'lmplz':>9}  {'lmplz RSS':>10}  {'lmplz/ours':>10}  " \
             f"{'ppl ours':>10}  {'ppl lmplz':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        ours, theirs = r["ours"], r.get("lmplz")
        row = f"{r['label']:>8}  {ours['seconds']:>8.1f}s  {mib(ours['peak_rss_bytes']):>10}  "
        if theirs:
            row += (f"{theirs['seconds']:>8.1f}s  {mib(theirs['peak_rss_bytes']):>10}  "
                    f"{theirs['seconds'] / ours['seconds']:>9.2f}x  {ours['perplexity']:>10.4f}  "
                    f"{theirs['perplexity']:>10.4f}")
        else:
            row += f"{'-':>9}  {'-':>10}  {'-':>10}  {ours['perplexity']:>10.4f}  {'-':>10}"
        print(row)


def kept_results(figures: dict, path: Path) -> dict:
    """`figures` plus the results already in `path` for the (size, memory) pairs this run did
    not measure (each keeps its own date), so a --huge run and a default run share one file."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return figures
    done = {(r["label"], r["memory"]) for r in figures["results"]}
    kept = [{**r, "date": r.get("date", earlier.get("date"))} for r in earlier.get("results", [])
            if (r["label"], r["memory"]) not in done]
    # Other top-level entries of the file (a stopped --huge run's record, notes) are kept as they are.
    return {**earlier, **figures, "results": [{**r, "date": figures["date"]} for r in figures["results"]] + kept}


def parse_words(text: str) -> int:
    from synthetic import parse_count

    return parse_count(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"corpus sizes in words (default {DEFAULT_SIZES})")
    parser.add_argument("--huge", action="store_true", help=f"also {HUGE_SIZE} words, with memory {HUGE_MEMORY}")
    parser.add_argument("--memory", default=DEFAULT_MEMORY,
                        help="the memory limit of both tools (lmplz -S); several, comma-separated, run each size "
                             "at each")
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-lmplz", action="store_true", help="measure ours alone")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each tool per size, taking turns; the median time is reported (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "ngram" / "scale.json")
    args = parser.parse_args(argv)
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    if args.huge:
        sizes.append(HUGE_SIZE)
    lmplz, how = None, "not used (--no-lmplz)"
    if not args.no_lmplz:
        lmplz = find_lmplz()
        how = f"found at {lmplz}" if lmplz else ""
        if lmplz is None:
            lmplz, how = build_lmplz()
        if lmplz is None:
            print(f"lmplz: {how}; measuring ours alone", flush=True)
    print(f"lmplz: {how}", flush=True)
    work = cache_dir() / "scale"
    work.mkdir(parents=True, exist_ok=True)
    brown = corpora.load("brown")
    started = time.perf_counter()
    results = []
    memories = [memory.strip() for memory in args.memory.split(",") if memory.strip()]
    for label, memory in [(label, memory) for label in sizes for memory in memories]:
        size_args = argparse.Namespace(**vars(args))
        size_args.memory = HUGE_MEMORY if label == HUGE_SIZE and args.huge else memory
        if label == HUGE_SIZE and memory != memories[0]:
            continue  # the billion words once, at HUGE_MEMORY
        results.append(run_size(label, parse_words(label), size_args, lmplz, brown, work))
        print_table(results)
        figures = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "lmplz": how,
                   "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                               "python": platform.python_version()},
                   "results": results, "seconds": time.perf_counter() - started}
        write_json(kept_results(figures, args.out), args.out)  # after every size: a long run keeps what it measured
    print(f"\nwritten {args.out} ({time.perf_counter() - started:.0f} s)")
    if not math.isfinite(sum(r["ours"]["perplexity"] for r in results)):
        print("note: a perplexity is infinite")


if __name__ == "__main__":
    main()
