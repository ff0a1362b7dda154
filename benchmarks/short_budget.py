"""What a 20-second `langmodels train lstm|gpt --corpus brown` learns with default settings.

Not a test: every figure is measured in this run. Issue 14 holds a 20-second LSTM and a
20-second GPT on Brown to a valid perplexity below the unigram model's. Two kinds of runs, each
through the real command line in a process of its own:

    budget  `train MODEL --corpus brown --max-seconds 20`: the command's wall-clock seconds, the
            steps it trained, the valid perplexity it printed (on the part of valid its budget
            let it score) and, from `evaluate --split valid`, the whole valid split's;
    steps   `train MODEL --corpus brown --max-steps N`: learning per step, whatever the machine's
            load (the whole valid split is scored at the end), with the CPU seconds it took.

On a shared machine the wall-clock runs depend on the load (a run on 2 cores under a load of 10
gets about a fifth of them): the step runs separate what the model learns per step from how many
steps the machine allowed. --peer runs the same commands with another checkout (the main
branch's, say) in turns with this one. The unigram model's perplexities (Laplace, as the default
report's n-gram sweep) are the reference.

    python benchmarks/short_budget.py [--peer DIR] [--seconds S] [--steps 20 40 80] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # measure this checkout, installed or not

from langmodels import NGramLM, corpora  # noqa: E402

MODELS = ("lstm", "gpt")


def command(checkout: Path, *args) -> tuple[subprocess.CompletedProcess, float, float]:
    """`python -m langmodels ARGS` with `checkout` first on the path: (result, wall s, CPU s)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "langmodels", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=checkout, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"langmodels {' '.join(map(str, args))} failed: {done.stderr.strip()[-2000:]}")
    return done, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def trained(checkout: Path, folder: Path, model: str, budget: list) -> dict:
    """Train with `budget` (CLI options), then score the whole valid split."""
    _, wall, cpu = command(checkout, "train", model, "--corpus", "brown", "--out", folder, "--quiet", *budget)
    metrics = json.loads((folder / "metrics.json").read_text())
    curve = json.loads((folder / "curve.json").read_text())
    done, _, _ = command(checkout, "evaluate", folder, "--corpus", "brown", "--split", "valid", "--json")
    whole = json.loads(done.stdout)
    return {"command_seconds": wall, "command_cpu_seconds": cpu, "steps": curve[-1]["step"] if curve else 0,
            "tokens": curve[-1]["tokens"] if curve else 0, "printed_valid_perplexity": metrics["perplexity"],
            "printed_valid_split": metrics["split"], "valid_perplexity": whole["perplexity"]}


def run(peer: Path | None, seconds: float, steps: list[int]) -> dict:
    brown = corpora.load("brown")
    unigram = NGramLM(order=1, smoothing="laplace").fit(brown.train)
    figures = {"seconds": seconds, "load_average_at_start": os.getloadavg(), "cpus": os.cpu_count(),
               "unigram": {"valid_perplexity": unigram.evaluate(brown.valid).perplexity,
                           "test_perplexity": unigram.evaluate(brown.test).perplexity}}
    sides = {"ours": ROOT, **({"peer": peer.resolve()} if peer else {})}
    with tempfile.TemporaryDirectory() as folder:
        for model in MODELS:
            for side, checkout in sides.items():  # in turns, so that both see the same load
                out = Path(folder) / f"{side}-{model}-budget"
                figures.setdefault(side, {}).setdefault(model, {})["budget"] = trained(
                    checkout, out, model, ["--max-seconds", seconds])
            for n in steps:
                for side, checkout in sides.items():
                    out = Path(folder) / f"{side}-{model}-{n}"
                    figures[side][model].setdefault("steps", {})[n] = trained(checkout, out, model, ["--max-steps", n])
    figures["load_average_at_end"] = os.getloadavg()
    return figures


def report(figures: dict) -> None:
    unigram = figures["unigram"]
    print(f"unigram (Laplace): valid {unigram['valid_perplexity']:.1f}, test {unigram['test_perplexity']:.1f}; "
          f"load average {figures['load_average_at_start'][0]:.1f} at the start on {figures['cpus']} CPUs")
    for side in ("ours", "peer"):
        for model, runs in figures.get(side, {}).items():
            budget = runs["budget"]
            print(f"{side} {model}: --max-seconds {figures['seconds']:g}: {budget['command_seconds']:.1f} s wall "
                  f"({budget['command_cpu_seconds']:.1f} CPU s), {budget['steps']} steps, valid perplexity "
                  f"{budget['valid_perplexity']:.1f} (printed {budget['printed_valid_perplexity']:.1f} on "
                  f"{budget['printed_valid_split']})")
            for n, result in runs.get("steps", {}).items():
                print(f"{side} {model}: --max-steps {n}: valid perplexity {result['valid_perplexity']:.1f}, "
                      f"{result['tokens']:,} tokens, command {result['command_cpu_seconds']:.1f} CPU s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", type=Path, help="another langmodels checkout to run side by side")
    parser.add_argument("--seconds", type=float, default=20.0, help="the wall-clock budget (default 20)")
    parser.add_argument("--steps", type=int, nargs="*", default=[20, 40, 80], help="step budgets (default 20 40 80)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.peer, args.seconds, args.steps)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
