"""ARPA export side by side with lmplz's writing stage, on the same text, taking turns.

Not a test: it prints figures measured in this run and keeps them in reports/ngram/arpa_speed.json.
Per round: our write_arpa of a KN-5 model of the text (streamed from its tables, which after
`save` are memory-mapped .npy files, by two forked workers: its CPU time counts theirs), then
one lmplz run on the same text whose stage "=== 5/5 Writing ARPA model ===" is timed from its
progress messages (ngram_speed.py's lmplz_stage_seconds). Best of --rounds for each; the ratio
lmplz / ours is the figure (>= 1: ours writes at least as fast). Brown train by default; --corpus
PATH for another text.

    python benchmarks/ngram_arpa_speed.py [--corpus PATH] [--rounds 5] [--memory 1G]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (ROOT, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from ngram_speed import find_lmplz, lmplz_stage_seconds, rename_unk, unk_stand_in, write_json  # noqa: E402

from langmodels import NGramLM, corpora, load  # noqa: E402
from langmodels.ngram import write_arpa  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the ARPA writer's forked workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="brown", help="a corpus name or path (default brown: its train split)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory", default="1G", help="both tools' memory limit")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "ngram" / "arpa_speed.json")
    args = parser.parse_args(argv)
    lmplz = find_lmplz()
    if lmplz is None:
        sys.exit("lmplz not found ($LMPLZ, PATH, or benchmarks/ngram_scale.py builds it)")
    corpus = corpora.load(args.corpus)
    train = corpus.train if args.corpus == "brown" else corpus.split("all")
    with tempfile.TemporaryDirectory(prefix="arpa-speed-") as folder:
        folder = Path(folder)
        NGramLM(order=5, smoothing="kneser-ney", memory=args.memory).fit(train).save(folder / "ours")
        model = load(folder / "ours")  # the tables memory-mapped, as after any fit of a large text
        text = folder / "train.txt"
        stand_in = unk_stand_in(list(train))
        text.write_text("\n".join(rename_unk(list(train), stand_in)) + "\n", encoding="utf-8")
        ours, theirs, cpu = [], [], []
        for round_ in range(args.rounds):
            arpa = folder / "ours.arpa"
            arpa.unlink(missing_ok=True)
            start, clock = time.perf_counter(), cpu_seconds()
            write_arpa(model, arpa)
            ours.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - clock)
            ours_bytes = arpa.stat().st_size
            arpa.unlink()
            stages = lmplz_stage_seconds(lmplz, text, 5, args.memory, folder, 1)
            theirs.append(stages["seconds"]["5"])
            lmplz_bytes = (folder / "lmplz-stages.arpa").stat().st_size
            print(f"round {round_ + 1}: ours {ours[-1]:.3f} s (cpu {cpu[-1]:.3f} s), lmplz stage 5 {theirs[-1]:.3f} s",
                  flush=True)
    figures = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "corpus": args.corpus, "order": 5, "rounds": args.rounds,
        "ours_write_arpa_seconds": min(ours), "ours_write_arpa_cpu_seconds": min(cpu),
        "lmplz_writing_stage_seconds": min(theirs), "lmplz_over_ours": min(theirs) / min(ours),
        "median_lmplz_over_ours": statistics.median(theirs) / statistics.median(ours),
        "rounds_ours_faster": sum(a < b for a, b in zip(ours, theirs)),
        "ours_arpa_bytes": ours_bytes, "lmplz_arpa_bytes": lmplz_bytes,
        "all_rounds": {"ours": ours, "lmplz": theirs},
    }
    print(f"best of {args.rounds}: ours {min(ours):.3f} s ({ours_bytes / 2**20:.0f} MiB), lmplz writing "
          f"{min(theirs):.3f} s ({lmplz_bytes / 2**20:.0f} MiB): lmplz / ours = {figures['lmplz_over_ours']:.2f}x "
          f"(medians: {figures['median_lmplz_over_ours']:.2f}x; ours faster in {figures['rounds_ours_faster']} of "
          f"{args.rounds} rounds)")
    write_json(figures, args.out)


if __name__ == "__main__":
    main()
