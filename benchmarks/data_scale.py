"""The data layer at scale: tokenizing a corpus of 100M words once into the id cache, and reusing it.

Not a test: it prints figures and ratios measured in this run and writes them to
reports/data/scale.json. The corpus is synthetic (benchmarks/synthetic.py: sentences sampled from
an interpolated trigram of Brown train, seed 0), written once to a plain text file and read as a
user's file (``corpora.load(PATH).split("all")``, a split that streams its file).

Each stage runs in a fresh child process, on one thread, so that its peak RSS
(VmHWM, the high-water mark of its own memory) is its own; CPU time from resource.getrusage:

    vocab     the vocabulary pass: WordTokenizer.fit over the file's blocks;
    ids       token_ids() into an empty cache: read, tokenize, write ids.npy + offsets.npy
              (a tqdm bar in MB/s on stderr); words/s by wall clock and by CPU time, and the peak
              RSS beyond what the process held before the call (the ids go to the file, not to
              memory); the fastest of --repeat runs (the highest peak of them);
    reuse     token_ids() again in a new process: the entry found, checksummed and mapped; the
              tokenizer's encode_block is watched and must not be called;
    hf        the peer: Hugging Face `tokenizers` (Rust) with the same vocabulary as a WordLevel
              model and a WhitespaceSplit pre-tokenizer, on one thread (RAYON_NUM_THREADS=1),
              encoding the same blocks line by line and writing the same uint16 ids; its ids are
              checked equal to ours by sha256;
    lists     the path before issue 12, on the first --lists-words words: the lines as a Python
              list, then WordTokenizer.encode_lines (int64 ids in memory).

    python benchmarks/data_scale.py [--words 100M] [--corpus PATH] [--work DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
TARGET_WORDS_PER_SECOND = 5_000_000
TARGET_EXTRA_RSS = 1 << 30
DEFAULT_WORK = Path("/tmp/langmodels-data-scale")


def _status(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_now() -> int:
    """Resident set size of this process now, bytes."""
    return _status("VmRSS")


def peak_rss() -> int:
    """Peak resident set size of this process so far, bytes: VmHWM, the high-water mark of this
    program's own memory. (getrusage's ru_maxrss would not do: Linux carries the parent's peak
    over into a child across fork and exec.)"""
    return _status("VmHWM")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds of a block, and the RSS before it and the peak after it."""

    def __enter__(self):
        self.rss_before, self.peak_before = rss_now(), peak_rss()
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu
        self.peak_after = peak_rss()

    def figures(self, words: int) -> dict:
        return {
            "seconds": round(self.wall, 3), "cpu_seconds": round(self.cpu, 3),
            "words_per_second": round(words / self.wall), "words_per_cpu_second": round(words / self.cpu),
            "rss_before_bytes": self.rss_before, "peak_rss_bytes": self.peak_after,
            # An upper bound of what the block itself added: its peak can be no higher than the
            # process's, and the process held rss_before when it started.
            "peak_rss_beyond_start_bytes": max(0, self.peak_after - self.rss_before),
        }


# ----------------------------------------------------------------------------------------------
# The stages, each in its own process


def _split(corpus):
    from langmodels import corpora

    start = time.perf_counter()
    split = corpora.load(str(corpus)).split("all")
    return split, time.perf_counter() - start


def stage_vocab(corpus, work):
    from langmodels.tokenizers import WordTokenizer, save_tokenizer

    split, load_seconds = _split(corpus)
    words = json.loads((work / "corpus.json").read_text())["words"]
    with Clock() as clock:
        tokenizer = WordTokenizer().fit(split)
    save_tokenizer(tokenizer, work / "tokenizer.json")
    return {"load_seconds": round(load_seconds, 3), "vocab_size": len(tokenizer.vocab), **clock.figures(words)}


def stage_ids(corpus, work):
    from langmodels.token_ids import token_ids
    from langmodels.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(work / "tokenizer.json")
    calls = []
    encode = tokenizer.encode_block

    def counted(block, dtype):
        calls.append(len(block))
        return encode(block, dtype)

    tokenizer.encode_block = counted
    split, load_seconds = _split(corpus)
    words = json.loads((work / "corpus.json").read_text())["words"]
    with Clock() as clock:
        ids = token_ids(split, tokenizer, progress=True)
    meta = json.loads((ids.path / "meta.json").read_text())
    return {
        "load_seconds": round(load_seconds, 3), "tokenized_blocks": len(calls), "n_tokens": ids.n_tokens,
        "n_lines": ids.n_lines, "dtype": str(ids.ids.dtype), "ids_bytes": int(ids.ids.nbytes),
        "ids_sha256": meta["ids_sha256"], "entry": str(ids.path), **clock.figures(words),
    }


def stage_hf(corpus, work):
    import numpy as np
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    from langmodels.tokenizers import block_lines, load_tokenizer

    ours = load_tokenizer(work / "tokenizer.json")
    peer = Tokenizer(WordLevel({token: i for i, token in enumerate(ours.vocab.tokens)}, unk_token="<unk>"))
    peer.pre_tokenizer = WhitespaceSplit()
    encode = getattr(peer, "encode_batch_fast", peer.encode_batch)
    split, _ = _split(corpus)
    words = json.loads((work / "corpus.json").read_text())["words"]
    digest, n_tokens = hashlib.sha256(), 0
    with Clock() as clock, open(work / "hf-ids.bin", "wb") as out:
        for block in split.blocks():
            encodings = encode(block_lines(block), add_special_tokens=False)
            ids = np.fromiter(chain.from_iterable([e.ids for e in encodings]), dtype=np.uint16)
            data = ids.tobytes()
            out.write(data)
            digest.update(data)
            n_tokens += len(ids)
    (work / "hf-ids.bin").unlink()
    return {"n_tokens": n_tokens, "ids_sha256": digest.hexdigest(), "tokenizers_version": _version("tokenizers"),
            **clock.figures(words)}


def stage_lists(corpus, work, n_words):
    from langmodels.tokenizers import block_lines, load_tokenizer

    tokenizer = load_tokenizer(work / "tokenizer.json")
    split, _ = _split(corpus)
    with Clock() as clock:
        lines, words = [], 0
        for block in split.blocks():
            part = block_lines(block)
            lines += part
            words += len(block.split())
            if words >= n_words:
                break
        flat, _ = tokenizer.encode_lines(lines)
    return {"words": words, "lines": len(lines), "n_tokens": int(flat.size), **clock.figures(words)}


def _version(package):
    from importlib.metadata import version

    return version(package)


STAGES = {"vocab": stage_vocab, "ids": stage_ids, "reuse": stage_ids, "hf": stage_hf}


def run_stage(stage, corpus, work, extra=()):
    """One stage in a fresh process on one thread; its JSON result (stderr passes through)."""
    env = {**os.environ, **ONE_THREAD, "LANGMODELS_CACHE": str(work / "cache")}
    command = [sys.executable, __file__, "--child", stage, "--corpus", str(corpus), "--work", str(work), *extra]
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# The run


def make_corpus(n_words, work, corpus):
    """The synthetic corpus (made once: reused while its figures file says it is the one asked
    for) and its figures."""
    figures_file = work / "corpus.json"
    generator = hashlib.sha256((Path(__file__).parent / "synthetic.py").read_bytes()).hexdigest()
    if corpus.exists() and figures_file.exists():
        figures = json.loads(figures_file.read_text())
        if (figures.get("requested_words") == n_words and figures.get("bytes") == corpus.stat().st_size
                and figures.get("generator_sha256") == generator):
            return figures
    from synthetic import write_corpus

    print(f"writing a synthetic corpus of {n_words:,} words to {corpus}", file=sys.stderr)
    figures = write_corpus(n_words, corpus, seed=0)
    figures["requested_words"] = n_words
    figures["generator_sha256"] = generator  # synthetic.py's own bytes: a changed generator, a new corpus
    figures_file.write_text(json.dumps(figures, indent=1))
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", default="100M", help="size of the synthetic corpus (default 100M)")
    parser.add_argument("--lists-words", default="10M", help="words for the list-of-lines stage (default 10M)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder: corpus and cache")
    parser.add_argument("--corpus", type=Path, default=None, help="(default: WORK/synthetic-WORDS.txt)")
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "data" / "scale.json")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the ids stage, the fastest kept (default 3)")
    parser.add_argument("--skip", default="", help="stages to leave out, comma-separated (hf, lists)")
    parser.add_argument("--child", choices=[*STAGES, "lists"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic import parse_count

    if args.child:
        extra = (parse_count(args.lists_words),) if args.child == "lists" else ()
        stage = stage_lists if args.child == "lists" else STAGES[args.child]
        print(json.dumps(stage(args.corpus, args.work, *extra)))
        return 0

    n_words = parse_count(args.words)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus or work / f"synthetic-{args.words}.txt"
    figures = make_corpus(n_words, work, corpus)
    shutil.rmtree(work / "cache", ignore_errors=True)  # the ids stage starts from an empty cache
    skip = set(filter(None, args.skip.split(",")))
    load_before = os.getloadavg()
    result = {
        "corpus": {**figures, "how": "benchmarks/synthetic.py: sentences sampled from an interpolated MLE trigram "
                   "(Jelinek-Mercer, weights 0.75/0.2/0.05) of Brown train, seed 0"},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average_before": load_before},
        "targets": {"words_per_second": TARGET_WORDS_PER_SECOND, "peak_rss_beyond_ids_bytes": TARGET_EXTRA_RSS},
    }
    for stage in ("vocab", "ids", "reuse", "hf", "lists"):
        if stage in skip:
            continue
        print(f"stage {stage} ...", file=sys.stderr)
        extra = ("--lists-words", args.lists_words) if stage == "lists" else ()
        if stage == "ids":  # best of --repeat runs, each into an empty cache (the machine is shared)
            runs = []
            for _ in range(args.repeat):
                shutil.rmtree(work / "cache", ignore_errors=True)
                runs.append(run_stage(stage, corpus, work, extra))
                print(f"  {json.dumps(runs[-1])}", file=sys.stderr)
            result[stage] = {**min(runs, key=lambda r: r["seconds"]), "runs": [
                {key: r[key] for key in ("seconds", "cpu_seconds", "peak_rss_beyond_start_bytes")} for r in runs]}
            result[stage]["peak_rss_beyond_start_bytes"] = max(r["peak_rss_beyond_start_bytes"] for r in runs)
            continue
        result[stage] = run_stage(stage, corpus, work, extra)
        print(f"  {json.dumps(result[stage])}", file=sys.stderr)
    result["machine"]["load_average_after"] = os.getloadavg()

    ids, reuse = result["ids"], result["reuse"]
    checks = {
        "every word has an id": ids["n_tokens"] == figures["words"],
        "every line has its offsets": ids["n_lines"] == figures["lines"],
        "reuse tokenized nothing": reuse["tokenized_blocks"] == 0 and reuse["entry"] == ids["entry"],
    }
    if "hf" in result:
        checks["hf ids equal ours"] = result["hf"]["ids_sha256"] == ids["ids_sha256"]
        result["ratios"] = {"ids_vs_hf_wall": round(result["hf"]["seconds"] / ids["seconds"], 2),
                            "ids_vs_hf_cpu": round(result["hf"]["cpu_seconds"] / ids["cpu_seconds"], 2)}
    result["checks"] = checks
    result["verdict"] = {
        "words_per_second_wall": ids["words_per_second"] >= TARGET_WORDS_PER_SECOND,
        "words_per_cpu_second": ids["words_per_cpu_second"] >= TARGET_WORDS_PER_SECOND,
        "peak_rss_beyond_start_under_1GB": ids["peak_rss_beyond_start_bytes"] < TARGET_EXTRA_RSS,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")

    def mb(n):
        return f"{n / 1e6:,.0f} MB"

    print(f"corpus: {figures['words']:,} words, {figures['lines']:,} lines, {mb(figures['bytes'])} ({corpus})")
    for stage in ("vocab", "ids", "reuse", "hf", "lists"):
        if stage in result:
            r = result[stage]
            print(f"{stage:6} {r['seconds']:8.2f} s wall {r['cpu_seconds']:8.2f} s CPU  "
                  f"{r['words_per_second'] / 1e6:6.2f}M words/s ({r['words_per_cpu_second'] / 1e6:.2f}M per CPU s)  "
                  f"peak RSS {mb(r['peak_rss_bytes'])}, beyond start {mb(r['peak_rss_beyond_start_bytes'])}")
    print(f"ids: {mb(ids['ids_bytes'])} of {ids['dtype']}; checks {checks}; verdict {result['verdict']}")
    print(f"load average before {load_before}, after {result['machine']['load_average_after']}; "
          f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
