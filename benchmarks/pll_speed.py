"""How fast the masked LM scores text by pseudo-log-likelihood, this checkout against a peer.

Not a test: every figure is measured in this run. The model is the default report's masked LM on
Brown (benchmarks/default.toml's `bert` settings: 2 layers, 4 heads, 128 wide, context 64, the full
softmax over Brown's 14,114 words), trained a few steps: scoring costs the same whatever the
weights. `evaluate` scores the first N lines of Brown's test split (every token, </s> included,
one masked copy per token: Salazar et al. 2020). Each side runs in a process of its own with the
same checkpoint and thread count; the two take turns for several rounds and each keeps its best
round, so a busy moment on a shared machine hurts neither alone. Both wall-clock and CPU seconds
are kept: on a loaded machine the CPU seconds say more about the work done.

Target (issue 14): at least 10x the 329 tokens/s the issue measured, i.e. 3,290 tokens/s, with
the pseudo-likelihood unchanged: the peer's total must equal ours to 1e-6 (relative).

    python benchmarks/pll_speed.py [--peer DIR] [--lines N] [--rounds R] [--threads T] [--json PATH]

--peer: another checkout of langmodels (say, the main branch's worktree) to compare with.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # measure this checkout, installed or not

from langmodels import corpora  # noqa: E402
from langmodels.neural.bert import MaskedLM  # noqa: E402

ISSUE_TOKENS_PER_SECOND = 329  # issue 14: `evaluate` of a masked LM on Brown test
TARGET_RATIO = 10

# One measurement, run in a fresh process with the checkout to measure first on its path:
# argv = checkout, checkpoint, lines, threads. Prints one JSON object.
SCORE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import langmodels
from langmodels import corpora
torch.set_num_threads(int(sys.argv[4]))
model = langmodels.load(sys.argv[2])
lines = list(corpora.load("brown").test)[: int(sys.argv[3])]
model.evaluate(lines[:20], progress=False)  # first calls (allocations, thread pools) outside the timing
wall, cpu = time.perf_counter(), time.process_time()
evaluation = model.evaluate(lines, progress=False)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"tokens": evaluation.n_tokens, "nll": evaluation.nll, "seconds": wall, "cpu_seconds": cpu,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "module": langmodels.__file__}))
"""


def default_bert_settings() -> dict:
    """The settings of the default report's masked LM on Brown (benchmarks/default.toml)."""
    config = tomllib.loads((ROOT / "benchmarks" / "default.toml").read_text())
    (bert,) = [model for model in config["model"] if model["name"] == "bert"]
    return dict(bert["settings"])


def measure(checkout: Path, checkpoint: Path, lines: int, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", SCORE, str(checkout), str(checkpoint), str(lines), str(threads)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(peer: Path | None, lines: int, rounds: int, threads: int, steps: int = 20) -> dict:
    settings = default_bert_settings()
    sides = {"ours": ROOT, **({"peer": peer.resolve()} if peer else {})}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "bert"
        MaskedLM(**settings).fit(corpora.load("brown").train, max_steps=steps, progress=False).save(checkpoint)
        runs = {side: [] for side in sides}
        for _ in range(rounds):
            for side, checkout in sides.items():
                runs[side].append(measure(checkout, checkpoint, lines, threads))
    figures = {"settings": settings, "lines": lines, "rounds": rounds, "threads": threads,
               "issue_tokens_per_second": ISSUE_TOKENS_PER_SECOND,
               "target_tokens_per_second": TARGET_RATIO * ISSUE_TOKENS_PER_SECOND}
    for side, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        figures[side] = {
            "tokens": best["tokens"], "nll": best["nll"], "module": best["module"],
            "seconds": best["seconds"], "tokens_per_second": best["tokens"] / best["seconds"],
            "cpu_seconds": min(r["cpu_seconds"] for r in results),
            "tokens_per_cpu_second": best["tokens"] / min(r["cpu_seconds"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "all_seconds": [r["seconds"] for r in results],
        }
    ours = figures["ours"]
    ours["ratio_to_issue"] = ours["tokens_per_second"] / ISSUE_TOKENS_PER_SECOND
    if "peer" in figures:
        peer_figures = figures["peer"]
        figures["speedup_over_peer"] = ours["tokens_per_second"] / peer_figures["tokens_per_second"]
        figures["cpu_speedup_over_peer"] = ours["tokens_per_cpu_second"] / peer_figures["tokens_per_cpu_second"]
        figures["nll_relative_difference"] = abs(ours["nll"] - peer_figures["nll"]) / abs(peer_figures["nll"])
    return figures


def report(figures: dict) -> None:
    target = figures["target_tokens_per_second"]
    rows = []
    for side in ("ours", "peer"):
        if side in figures:
            f = figures[side]
            rows += [(f"{side}: tokens/s (wall, best of {figures['rounds']})", f"{f['tokens_per_second']:,.0f}",
                      f"target >= {target:,} ({TARGET_RATIO} x issue 14's {ISSUE_TOKENS_PER_SECOND})"
                      if side == "ours" else ""),
                     (f"{side}: tokens per CPU second", f"{f['tokens_per_cpu_second']:,.0f}", ""),
                     (f"{side}: peak RSS", f"{f['peak_rss_mb']:,.0f} MB", "")]
    if "peer" in figures:
        rows += [("speed-up over the peer (wall)", f"{figures['speedup_over_peer']:.2f}x", ""),
                 ("speed-up over the peer (CPU)", f"{figures['cpu_speedup_over_peer']:.2f}x", ""),
                 ("PLL total, relative difference", f"{figures['nll_relative_difference']:.1e}", "target <= 1e-6")]
    width = max(len(r[0]) for r in rows)
    print(f"{figures['ours']['tokens']:,} tokens ({figures['lines']:,} Brown test lines), {figures['threads']} threads")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", type=Path, help="another langmodels checkout to measure side by side")
    parser.add_argument("--lines", type=int, default=1000, help="Brown test lines scored (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each side keeps its best")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the report's)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.peer, args.lines, args.rounds, args.threads)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
