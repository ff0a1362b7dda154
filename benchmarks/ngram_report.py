"""The n-gram figures `make report` writes under reports/ngram/ (until the full harness exists).

Every normalised smoothing at every order on both shipped corpora, fitted on train and scored on
test, the Kneser-Ney rows set against KenLM's quoted reference perplexities, stupid backoff's
autocompletions, seeded samples, and the speed comparison of benchmarks/ngram_speed.py (run in
its own process so its timings are not disturbed by this one's memory).

    python benchmarks/ngram_report.py [--out reports/ngram] [--quick]

Writes REPORT.md, results.csv, speed.json and plots/perplexity_by_order.png, each atomically.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # report on this checkout, installed or not

from langmodels import NGramLM, corpora  # noqa: E402
from langmodels.errors import LangmodelsError  # noqa: E402

SMOOTHINGS = ["mle", "uniform", "laplace", "lidstone", "absolute", "witten-bell", "kneser-ney"]
UNNORMALISED = "stupid-backoff"
ORDERS = {"brown": [1, 2, 3, 4, 5], "shakespeare": [1, 2, 3, 4, 5, 6, 7]}

# Quoted from the issue: perplexities of KenLM lmplz models on the same splits (Brown with the
# corpus's <unk> as an ordinary word; Shakespeare characters scored as one stream). Not measured
# here; the report prints our measured value beside each, and their relative difference.
KENLM_REFERENCE = {
    "brown": {2: 154.4633, 3: 147.7010, 4: 146.9905, 5: 146.7425},
    "shakespeare": {5: 4.764, 7: 4.556},
}

PROMPTS = {"brown": "He said that the", "shakespeare": "ROMEO:\nWhat is th"}
SAMPLE_ORDERS = [3, 5]
SAMPLE_SEEDS = [0, 1, 2]
# 30 tokens is a sentence of words but half a line of characters, so characters get more.
SAMPLE_TOKENS = {"word": 30, "char": 120}

CSV_COLUMNS = [
    "corpus", "level", "mode", "split", "smoothing", "order", "n_tokens", "n_words", "n_chars",
    "nll", "perplexity", "word_perplexity", "bits_per_char", "n_zero_prob", "n_unk",
    "fit_seconds", "score_seconds", "tokens_per_second", "notes",
]


# ---- measuring -----------------------------------------------------------------------------


def warning_notes(caught) -> list[str]:
    return sorted({f"{w.category.__name__}: {w.message}" for w in caught})


def measure(corpus, smoothing: str, order: int) -> tuple[dict, NGramLM]:
    """Fit on train and evaluate on test; one row of results.csv."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        lm = NGramLM(order=order, smoothing=smoothing).fit(corpus.train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ev = lm.evaluate(corpus.test, progress=False)
        score_seconds = time.perf_counter() - start
    row = {
        "corpus": corpus.name, "level": corpus.level, "mode": ev.mode, "split": "test",
        "smoothing": smoothing, "order": order, "n_tokens": ev.n_tokens, "n_words": ev.n_words,
        "n_chars": ev.n_chars, "nll": ev.nll, "perplexity": ev.perplexity,
        "word_perplexity": ev.word_perplexity, "bits_per_char": ev.bits_per_char,
        "n_zero_prob": ev.n_zero_prob, "n_unk": ev.n_unk, "fit_seconds": fit_seconds,
        "score_seconds": score_seconds, "tokens_per_second": ev.n_tokens / score_seconds,
        "notes": " | ".join(warning_notes(caught)),
    }
    return row, lm


def novelty(sample: str, corpus, level: str) -> str:
    """Whether a sample is copied from train, from test, or new (makemore's novelty labels)."""
    if level == "word":
        train_lines, test_lines = set(corpus.train), set(corpus.test)
        return "in train" if sample in train_lines else "in test" if sample in test_lines else "new"
    return "in train" if sample in corpus.text("train") else "in test" if sample in corpus.text("test") else "new"


def samples_of(lm: NGramLM, corpus) -> list[dict]:
    out = []
    for seed in SAMPLE_SEEDS:
        text = lm.generate(max_tokens=SAMPLE_TOKENS[corpus.level], seed=seed)
        out.append({"seed": seed, "text": text, "novelty": novelty(text, corpus, corpus.level)})
    return out


def stupid_backoff_entry(corpus, order: int, kn: NGramLM) -> dict:
    """Stupid backoff has no perplexity: confirm evaluate refuses, and show autocompletions."""
    start = time.perf_counter()
    lm = NGramLM(order=order, smoothing=UNNORMALISED).fit(corpus.train)
    fit_seconds = time.perf_counter() - start
    try:
        lm.evaluate(corpus.test, progress=False)
        refusal = "evaluate() did NOT refuse: a library bug"
    except LangmodelsError as error:
        refusal = str(error)
    prompt = PROMPTS[corpus.name]
    return {
        "corpus": corpus.name, "order": order, "fit_seconds": fit_seconds, "refusal": refusal,
        "prompt": prompt, "top_next": lm.top_next(prompt, k=5), "kn_top_next": kn.top_next(prompt, k=5),
    }


def run_grid(corpus_names, orders_of, log) -> tuple[list[dict], dict, list[dict]]:
    rows, samples, backoff = [], {}, []
    for name in corpus_names:
        corpus = corpora.load(name)
        models = {}
        for order in orders_of[name]:
            for smoothing in SMOOTHINGS:
                row, lm = measure(corpus, smoothing, order)
                rows.append(row)
                log(f"  {name:<11} {smoothing:<11} order {order}: perplexity {fmt_ppl(row)}, "
                    f"fit {row['fit_seconds']:.2f} s, {row['tokens_per_second']:,.0f} tok/s")
                if smoothing == "kneser-ney":
                    models[order] = lm
        for order in SAMPLE_ORDERS:
            if order in models:
                samples[(name, order)] = samples_of(models[order], corpus)
        top = max(orders_of[name])
        backoff.append(stupid_backoff_entry(corpus, top, models[top]))
        models.clear()
    return rows, samples, backoff


def run_speed(quick: bool, log) -> dict:
    """benchmarks/ngram_speed.py in its own process; its JSON figures."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "speed.json"
        command = [sys.executable, str(Path(__file__).with_name("ngram_speed.py")), "--json", str(target)]
        if quick:
            command.append("--quick")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        log(completed.stdout.rstrip())
        if completed.returncode != 0:
            raise RuntimeError(f"ngram_speed.py failed:\n{completed.stderr[-2000:]}")
        figures = json.loads(target.read_text(encoding="utf-8"))
    figures["stdout"] = completed.stdout
    return figures


# ---- formatting ----------------------------------------------------------------------------


def fmt_ppl(row: dict) -> str:
    if math.isinf(row["perplexity"]):
        return f"inf ({row['n_zero_prob']:,} zero-probability tokens)"
    return f"{row['perplexity']:.4f}" if row["perplexity"] < 100 else f"{row['perplexity']:.2f}"


def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def pivot(rows: list[dict], corpus: str, cell) -> str:
    orders = sorted({r["order"] for r in rows if r["corpus"] == corpus})
    index = {(r["smoothing"], r["order"]): r for r in rows if r["corpus"] == corpus}
    body = [[s] + [cell(index[(s, n)]) if (s, n) in index else "" for n in orders] for s in SMOOTHINGS]
    return markdown_table(["smoothing"] + [f"order {n}" for n in orders], body)


def kenlm_comparison(rows: list[dict]) -> str:
    body = []
    index = {(r["corpus"], r["order"]): r for r in rows if r["smoothing"] == "kneser-ney"}
    for corpus, references in KENLM_REFERENCE.items():
        for order, reference in references.items():
            row = index.get((corpus, order))
            if row is None:
                continue
            ours = row["perplexity"]
            digits = 4 if reference > 10 else 3
            relative = (ours - reference) / reference
            body.append([corpus, order, f"{reference:.{digits}f}", f"{ours:.4f}", f"{relative:+.2e}"])
    return markdown_table(
        ["corpus", "order", "KenLM lmplz (reference, quoted)", "ours (measured)", "relative difference"], body
    )


def detail_table(rows: list[dict]) -> str:
    body = [
        [r["corpus"], r["smoothing"], r["order"], fmt_ppl(r), f"{r['word_perplexity']:.2f}",
         f"{r['bits_per_char']:.4f}", f"{r['fit_seconds']:.2f}", f"{r['tokens_per_second']:,.0f}"]
        for r in rows
    ]
    return markdown_table(
        ["corpus", "smoothing", "order", "perplexity", "word perplexity", "bits/char", "fit s", "scoring tok/s"],
        body, "llrrrrrr",
    )


def speed_section(speed: dict) -> str:
    fit, scoring, nl = speed["fit"], speed["scoring"], speed["nltk"]
    memory = fit["memory"]

    def mib(n_bytes):
        return f"{n_bytes / 2**20:,.0f} MiB"

    command = f"benchmarks/ngram_speed.py{' --quick' if speed['quick'] else ''}"
    out = [
        (f"Measured by `{command}` in its own process ({speed['total_seconds']:.0f} s). "
         f"Timings are the best of {fit['repeats']} runs unless noted.\n")
    ]
    rows = [
        ["our fit, modified KN order 5 (Brown train, 800k words)", f"{fit['fit_seconds']:.2f} s", "< 2.5 s"],
        ["our `write_arpa` of that model", f"{fit['write_arpa_seconds']:.2f} s", ""],
        ["peak RSS, fresh process that loads Brown (baseline)", mib(memory["baseline_peak_rss_bytes"]), ""],
        ["peak RSS, fresh process that loads Brown and fits", mib(memory["fit_peak_rss_bytes"]), "< 1 GB"],
        ["difference (the fit)", mib(memory["fit_minus_baseline_bytes"]), ""],
        ["tracemalloc peak during the fit (Python + numpy)", mib(memory["tracemalloc_fit_peak_bytes"]), ""],
    ]
    lmplz = fit["lmplz"]
    if lmplz["found"]:
        for name, run in lmplz["runs"].items():
            figure = (f"{run['seconds']:.2f} s ({run['seconds'] / fit['fit_seconds']:.2f}x our fit; "
                      f"peak RSS {mib(run['peak_rss_bytes'])})")
            runs = f"best of {run['repeats']}" if run["repeats"] > 1 else "1 run"
            label = f"KenLM `lmplz -o 5 --discount_fallback`, {name} (measured, {runs}; reads text, writes ARPA)"
            rows.append([label, figure, ""])
        rows.append(["test perplexity of lmplz's own model / ours",
                     f"{lmplz['test_perplexity_lmplz_model']:.4f} / {lmplz['test_perplexity_ours']:.4f}", ""])
    else:
        for name, seconds in lmplz["quoted_seconds"].items():
            rows.append([f"KenLM `lmplz -o 5 {name}` (quoted, not measured here)", f"{seconds:.1f} s", ""])
    out.append(markdown_table(["fitting", "figure", "target"], rows, "lrr"))
    rows = []
    for order, r in scoring["orders"].items():
        ratio = r["evaluate_tokens_per_second"] / r["kenlm_tokens_per_second"]
        rows.append([
            f"KN {order}", f"{r['evaluate_tokens_per_second']:,.0f}", f"{r['scoring_tokens_per_second_reported']:,.0f}",
            f"{r['kenlm_tokens_per_second']:,.0f}", f"{ratio:.2f}x",
            f"{r['perplexity']:.4f} / {r['kenlm_perplexity']:.4f}", f"{r['max_abs_log10_difference_per_sentence']:.1e}",
        ])
    out.append("\nScoring the whole Brown test set (171,297 tokens), target >= 1,000,000 tokens/s. KenLM here is the "
               "`kenlm` Python module reading our own ARPA export of the same model, `score(line, bos=True, eos=True)` "
               "per line (its load time is not counted).\n")
    out.append(markdown_table(
        ["model", "ours: evaluate() tok/s (wall)", "ours: scoring only tok/s", "kenlm tok/s", "ours / kenlm",
         "perplexity ours / kenlm", "max abs log10 diff per sentence"], rows))
    rows = []
    targets = {"laplace": 20, "kneser-ney": 1000}
    for key, label in (("laplace", "Laplace"), ("kneser-ney", "Kneser-Ney")):
        r = nl[key]
        theirs = r["nltk_scoring"]
        extrapolated = theirs["n_lines"] < r["ours_scoring"]["n_lines"]
        nltk_ppl = "inf" if math.isinf(theirs["perplexity"]) else f"{theirs['perplexity']:.2f}"
        if theirs["n_zero_probability"]:
            nltk_ppl += f" ({theirs['n_zero_probability']} trigrams with probability 0)"
        same = r["ours_scoring_same_lines"]
        nltk_time = f"{theirs['seconds'] * 1e3:,.1f} ms ({theirs['tokens_per_second']:,.0f} trigrams/s)"
        if extrapolated:
            nltk_time += f", 1 run on {theirs['n_lines']} lines"
        rows.append([
            label, f"{r['nltk_fit_seconds']:.2f} s / {r['ours_fit_seconds']:.3f} s", f"{r['fit_ratio']:.0f}x (>= 30x)",
            nltk_time, f"{same['seconds'] * 1e3:,.2f} ms ({same['tokens_per_second']:,.0f} tok/s)",
            f"{r['scoring_ratio']:,.0f}x (>= {targets[key]:,}x)",
            f"{nltk_ppl} / {same['perplexity']:.2f} (same {theirs['n_lines']} lines)",
        ])
    out.append(
        f"\nnltk.lm side by side: order 3, fitted on the first {nl['train_lines']:,} Brown training lines, "
        f"scored on the first {nl['test_lines']} test lines (nltk's Kneser-Ney takes seconds per line, so both "
        "score fewer lines there). The scoring ratio is nltk's wall time over ours for the same lines, from text "
        "to perplexity. The two libraries take turns round after round and each keeps its best time (timeit's "
        "advice on a shared machine). Perplexities differ by convention: nltk pads "
        "each sentence with two `</s>` and predicts both, counts `<s>`, `</s>` and `<UNK>` in its vocabulary, and "
        "its Kneser-Ney is not the modified 3-discount one.\n"
    )
    out.append(markdown_table(
        ["smoothing", "fit nltk / ours", "fit ratio (target)", "nltk scoring", "our scoring",
         "scoring ratio (target)", "perplexity nltk / ours"], rows))
    return "\n".join(out)


def samples_section(samples: dict) -> str:
    out = []
    for (corpus, order), entries in samples.items():
        level = "char" if corpus == "shakespeare" else "word"
        call = f"generate(max_tokens={SAMPLE_TOKENS[level]}, seed=i)"
        out.append(f"\n**{corpus}, kneser-ney order {order}** (`{call}`)\n")
        for entry in entries:
            text = entry["text"].replace("\n", "⏎") if level == "char" else entry["text"]
            out.append(f"- seed {entry['seed']} ({entry['novelty']}): `{text}`")
    return "\n".join(out)


def backoff_section(entries: list[dict]) -> str:
    out = []
    for e in entries:
        prompt = e["prompt"].replace("\n", "⏎")
        out.append(f"\n**{e['corpus']}, stupid-backoff order {e['order']}**: unnormalised: no perplexity "
                   f"(fit {e['fit_seconds']:.2f} s; `evaluate` says: \"{e['refusal']}\"). "
                   f"Top 5 next tokens after `{prompt}`, its renormalised scores beside Kneser-Ney's probabilities:\n")
        rows = [
            [f"`{a[0]!r}`", f"{a[1]:.4f}", f"`{b[0]!r}`", f"{b[1]:.4f}"]
            for a, b in zip(e["top_next"], e["kn_top_next"])
        ]
        out.append(markdown_table(["stupid-backoff", "score", f"kneser-ney {e['order']}", "P"], rows, "lrlr"))
    return "\n".join(out)


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def warnings_section(rows: list[dict]) -> list[str]:
    """Distinct warnings with the orders they came at; MLE's zero-probability notes are in the tables."""
    grouped: dict[tuple[str, str, str], list[int]] = {}
    for r in rows:
        for note in filter(None, r["notes"].split(" | ")):
            if "have probability zero" not in note:
                grouped.setdefault((r["corpus"], r["smoothing"], note), []).append(r["order"])
    return [
        f"- {c} {s}, order{'s' if len(orders) > 1 else ''} {', '.join(map(str, orders))}: {note}"
        for (c, s, note), orders in grouped.items()
    ]


def build_report(rows, samples, backoff, speed, about, started_at, seconds, quick) -> str:
    brown_tokens = next((r["n_tokens"] for r in rows if r["corpus"] == "brown"), 0)
    shakespeare_tokens = next((r["n_tokens"] for r in rows if r["corpus"] == "shakespeare"), 0)
    command = f"python benchmarks/ngram_report.py{' --quick' if quick else ''}"
    header = [
        "# N-gram language models: every smoothing and order, on both corpora\n",
        (f"Generated {started_at} by `{command}` (what `make report` runs) in {seconds:.0f} s, "
         "including `python benchmarks/ngram_speed.py --json ...`.\n"),
        (f"Machine: {about['cpu_count']} CPUs, {about['platform']}, Python {about['python']}, "
         f"numpy {about['numpy']}; load average {about['load_average']} at the end (other work on a shared "
         "machine makes timings noisier).\n"),
        ("Every figure below is measured in this run, except the KenLM reference perplexities, which are "
         "quoted from lmplz runs and labelled so.\n"),
    ]
    setup = [
        "## Setup\n",
        ("- **brown**: words, `lines` mode (each line scored on its own, its `</s>` predicted); train 800,001 "
         f"words, test {brown_tokens:,} tokens (words + one `</s>` per line); the corpus's `<unk>` is an "
         "ordinary word."),
        ("- **shakespeare**: characters, `stream` mode (the text is one sequence, newlines included). Test is "
         f"nanoGPT's val part, the last 10 % of characters ({shakespeare_tokens:,}), which is also `valid`: "
         "nanoGPT has no test split."),
        ("- Each model is fitted on train and scored on test. Perplexity is per token of the model's own "
         "tokenisation; word perplexity per whitespace word + one end-of-line per line; bits per character "
         "over every character including newlines (docs/design.md section 3)."),
        (f"- lidstone k = {NGramLM().k}; absolute and kneser-ney discounts are estimated per order from "
         "count-of-counts (with the fallback values where those are undefined, listed under Warnings).\n"),
    ]
    tables = ["## Perplexity on test\n"]
    for corpus in ORDERS:
        if any(r["corpus"] == corpus for r in rows):
            tables += [f"### {corpus}\n", pivot(rows, corpus, fmt_ppl), ""]
            if corpus == "shakespeare":
                tables += ["Bits per character:\n", pivot(rows, corpus, lambda r: f"{r['bits_per_char']:.4f}"), ""]
    tables += [
        ("- mle and uniform give probability zero to test events never seen in training, so their perplexity "
         "is infinite from order 2 on; the number of such tokens is shown instead."),
        ("- At order 1 every predictable token of train is seen, so discounting the same amount from every "
         "count and spreading it uniformly gives back the MLE (absolute, kneser-ney), and Witten-Bell equals "
         "Laplace; where those columns agree exactly, that is why.\n"),
        "![perplexity by order](plots/perplexity_by_order.png)\n",
    ]
    kenlm = [
        "## Kneser-Ney against KenLM\n",
        ("The reference column is quoted from KenLM lmplz runs on the same splits (from the issue), not "
         "measured here.\n"),
        kenlm_comparison(rows),
        "",
    ]
    sample_intro = ("Seeded, so the same checkout gives the same text. Each is marked as a copy of a training "
                    "line (for characters: a substring of the training text), of the test text, or new. "
                    "Character samples show newlines as ⏎.")
    parts = header + setup + tables + kenlm
    parts += ["## Stupid backoff\n", backoff_section(backoff), ""]
    parts += ["## Samples\n", sample_intro, samples_section(samples), ""]
    if speed is not None:
        parts += ["## Speed\n", speed_section(speed), ""]
    notes = warnings_section(rows)
    if notes:
        parts += ["## Warnings raised while fitting and scoring\n", *notes, ""]
    parts += [
        "## Every row\n", "<details><summary>all runs (also in results.csv)</summary>\n", detail_table(rows),
        "\n</details>\n", "## Commands\n", "```", "make report", "# which runs",
        "python benchmarks/ngram_report.py   # this report; --quick for orders <= 3",
        "python benchmarks/ngram_speed.py --json speed.json   # the speed section alone", "```", "",
    ]
    return "\n".join(parts)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpus_names = [c for c in ORDERS if any(r["corpus"] == c for r in rows)]
    figure, axes = plt.subplots(1, len(corpus_names), figsize=(6.5 * len(corpus_names), 5.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    style = {name: (colours[i % len(colours)], "os^vDP*"[i % 7]) for i, name in enumerate(SMOOTHINGS)}
    infinite = {r["smoothing"] for r in rows if not math.isfinite(r["perplexity"])}
    for ax, corpus in zip(axes[0], corpus_names):
        for smoothing in SMOOTHINGS:
            finite = [(r["order"], r["perplexity"]) for r in rows
                      if r["corpus"] == corpus and r["smoothing"] == smoothing and math.isfinite(r["perplexity"])]
            label = smoothing + (" (infinite points not drawn)" if smoothing in infinite else "")
            colour, marker = style[smoothing]
            if finite:
                ax.plot(*zip(*finite), color=colour, marker=marker, markerfacecolor="none", label=label)
        references = KENLM_REFERENCE.get(corpus, {})
        if references:
            ax.plot(list(references), list(references.values()), "kx", markersize=10, mew=2,
                    label="KenLM lmplz kneser-ney (quoted reference)")
        level = "words" if corpus == "brown" else "characters"
        ax.set_title(f"{corpus} ({level}), test split")
        ax.set_xlabel("order")
        ax.set_ylabel(f"perplexity per {level[:-1]} (log scale)")
        ax.set_yscale("log")
        ax.set_xticks(ORDERS[corpus])
        ax.grid(True, which="both", alpha=0.3)
    # One legend for both panels, below them, so it hides no point.
    handles, labels = {}, []
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    figure.legend([handles[label] for label in labels], labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.13, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def write_atomic(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def results_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (repr(value) if isinstance(value, float) else value) for key, value in row.items()})
    return buffer.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "ngram", help="output folder")
    parser.add_argument("--quick", action="store_true", help="orders up to 3 and the speed benchmark's --quick")
    parser.add_argument("--no-speed", action="store_true", help="skip benchmarks/ngram_speed.py")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    orders = {name: [n for n in ns if n <= 3] for name, ns in ORDERS.items()} if args.quick else ORDERS
    log("Fitting and scoring every smoothing and order:")
    rows, samples, backoff = run_grid(list(ORDERS), orders, log)
    speed = None
    if not args.no_speed:
        log("\nSpeed comparison (benchmarks/ngram_speed.py):")
        speed = run_speed(args.quick, log)
    about = machine()
    seconds = time.perf_counter() - started
    csv_text = results_csv(rows)
    plot(rows, args.out / "plots" / "perplexity_by_order.png")
    write_atomic(args.out / "results.csv", csv_text)
    if speed is not None:
        figures = {key: value for key, value in speed.items() if key != "stdout"}
        write_atomic(args.out / "speed.json", json.dumps(figures, indent=2) + "\n")
    report = build_report(rows, samples, backoff, speed, about, started_at, seconds, args.quick)
    write_atomic(args.out / "REPORT.md", report)
    log(f"\nWrote {args.out}/REPORT.md, results.csv, plots/perplexity_by_order.png in {seconds:.0f} s.")


if __name__ == "__main__":
    main()
