"""The comparison report: REPORT.md, results.csv, results.json, samples.md and plots/*.png.

Rendered only from the stored results of the runs (and the config that orders and labels them),
never from a clock or the machine at rendering time, so a re-run with everything cached writes the
same bytes. Every sentence under a table is computed from the numbers in it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import write_atomic
from . import plots
from .references import references_for

# Columns of results.csv, one row per run. The ones measured in seconds (or bytes of memory)
# change from one training to the next; the others are fixed by the config and the seeds.
CSV_COLUMNS = [
    "run_id", "corpus", "model", "group", "kind", "model_name", "seed", "causal", "pseudo", "mode",
    "test_lines", "size", "size_unit", "train_steps", "train_tokens", "n_tokens", "n_words", "n_chars",
    "nll", "perplexity", "word_perplexity", "bits_per_char", "n_unk", "n_zero_prob",
    "train_seconds", "train_tokens_per_second", "eval_seconds", "eval_tokens_per_second", "peak_rss_bytes",
    "settings", "budget", "key",
]
MEASURED_COLUMNS = ("train_steps", "train_tokens", "train_seconds", "train_tokens_per_second", "eval_seconds",
                    "eval_tokens_per_second", "peak_rss_bytes")
LN2 = math.log(2)
DASH = "–"


# ---- gathering runs into table entries --------------------------------------------------------


def models_of(entries: list, corpus: str) -> list:
    """The entries of one corpus that are models of their own (not points of a sweep)."""
    return [e for e in entries if e.corpus == corpus and not e.is_sweep]


@dataclass
class Entry:
    """One model on one corpus: its runs over the seeds."""

    corpus: str
    model: str
    group: str
    results: list = field(default_factory=list)
    probes: list = field(default_factory=list)

    @property
    def first(self) -> dict:
        return self.results[0]

    @property
    def is_sweep(self) -> bool:
        return bool(self.first["sweep"])

    @property
    def ranked(self) -> bool:
        """True perplexities are ranked; pseudo-perplexities and unnormalised scores are not,
        nor a model scored on part of the test split."""
        r = self.first
        return bool(r["normalised"] and r["causal"] and r["test"] is not None and not r["test_lines"])

    @property
    def infinite(self) -> bool:
        return any(r["test"] is not None and r["test"]["n_zero_prob"] for r in self.results)

    def test_values(self, key: str) -> list[float] | None:
        values = [r["test"][key] if r["test"] else None for r in self.results]
        return None if any(v is None for v in values) else values

    def values(self, *path: str) -> list | None:
        out = []
        for r in self.results:
            value = r
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            if value is None:
                return None
            out.append(value)
        return out

    def mean(self, key: str) -> float:
        values = self.test_values(key)
        if values is None:
            return math.inf if self.infinite else math.nan
        return statistics.fmean(values)

    def spread(self, key: str) -> float | None:
        """The sample standard deviation over seeds (None with one seed)."""
        values = self.test_values(key)
        return statistics.stdev(values) if values is not None and len(values) > 1 else None


def gather(finished) -> list[Entry]:
    """Entries in config order: (corpus, model label) over seeds."""
    entries: dict[tuple[str, str], Entry] = {}
    for run, result, probe in finished:
        key = (run.spec.corpus, run.spec.model)
        entry = entries.setdefault(key, Entry(run.spec.corpus, run.spec.model, run.spec.group))
        entry.results.append(result)
        entry.probes.append(probe)
    return list(entries.values())


# ---- formatting -------------------------------------------------------------------------------


def auto_digits(value: float) -> int:
    """Decimals for a perplexity-like figure: more for small values, none wasted on large ones."""
    return 3 if abs(value) < 10 else 2 if abs(value) < 1000 else 0


def fmt_number(value: float | None, digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if math.isinf(value):
        return "∞"
    return f"{value:,.{auto_digits(value) if digits is None else digits}f}"


def fmt_stat(entry: Entry, key: str, digits: int | None = None) -> str:
    """Mean over seeds, with ± the sample standard deviation when there are several."""
    if not entry.first["normalised"]:
        return "no perplexity (unnormalised)"
    mean, spread = entry.mean(key), entry.spread(key)
    if math.isinf(mean):
        zero = max(r["test"]["n_zero_prob"] for r in entry.results if r["test"])
        return f"∞ ({zero:,} tokens with probability 0)"
    if digits is None and math.isfinite(mean):
        digits = auto_digits(mean)  # the spread to the mean's decimals
    text = fmt_number(mean, digits)
    return text if spread is None else f"{text} ± {fmt_number(spread, digits)}"


def fmt_count(value) -> str:
    if value is None:
        return DASH
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e4:
        return f"{value / 1e3:.0f} k"
    return f"{value:,.0f}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:,.0f}" if seconds >= 100 else f"{seconds:.1f}"


def fmt_memory(results: list[dict]) -> str:
    """The largest peak over the seeds, and how far it rose above the resident size at the run's start."""
    worst = max(results, key=lambda r: r["memory"]["peak_rss_bytes"] or 0)["memory"]
    if worst["peak_rss_bytes"] is None:
        return DASH
    text = f"{worst['peak_rss_bytes'] / 2**20:,.0f}"
    if worst["start_rss_bytes"] is not None:
        text += f" (+{max(worst['peak_rss_bytes'] - worst['start_rss_bytes'], 0) / 2**20:,.0f})"
    return text


def mean_of(values) -> float | None:
    values = [v for v in values or [] if v is not None]
    return statistics.fmean(values) if values else None


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> str:
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def code(text: str) -> str:
    """Markdown inline code that survives backticks in the text (Brown writes quotes as ``)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def show_token(token: str) -> str:
    return code(token.replace("\n", "⏎").replace(" ", "␣") if len(token) == 1 else token)


def show_text(text: str) -> str:
    return code(text.replace("\n", "⏎"))


def primary_metric(level: str) -> tuple[str, str]:
    """The axis a corpus is read on: word perplexity for words, bits per character for characters."""
    return ("bits_per_char", "bits/char") if level == "char" else ("word_perplexity", "word perplexity")


# ---- the summary table ------------------------------------------------------------------------

SUMMARY_HEADER = [
    "rank", "model", "word perplexity", "bits/char", "perplexity per own token",
    "pseudo word perplexity (masked LM, not ranked)", "size", "train s", "train tok/s", "eval tok/s",
    "peak MiB (+ during run)",
]


def ranking(entries: list[Entry]) -> list[Entry]:
    """Ranked entries, lowest mean word perplexity first (infinite last; ties keep config order)."""
    return sorted((e for e in entries if e.ranked), key=lambda e: e.mean("word_perplexity"))


def summary_rows(entries: list[Entry]) -> list[list[str]]:
    ranked = ranking(entries)
    others = [e for e in entries if not e.ranked]
    best = ranked[0] if ranked and math.isfinite(ranked[0].mean("word_perplexity")) else None
    rows = []
    for rank, entry in [(i, e) for i, e in enumerate(ranked, start=1)] + [(None, e) for e in others]:
        first = entry.first
        size = f"{fmt_count(first['size'])} {first['size_unit']}" if first["size"] is not None else DASH
        cells = [fmt_stat(entry, "word_perplexity"), fmt_stat(entry, "bits_per_char", 4),
                 fmt_stat(entry, "perplexity"), DASH]
        if not first["normalised"]:
            cells = ["unnormalised scores: no perplexity", DASH, DASH, DASH]
        elif not entry.ranked:
            subset = f", first {first['test_lines']:,} test lines" if first["test_lines"] else ""
            label = "pseudo" if first["test"]["pseudo"] else "partial test"
            cells = [DASH, DASH, DASH, f"{fmt_stat(entry, 'word_perplexity')} ({label}{subset})"]
        if entry is best:
            cells[0], cells[1] = f"**{cells[0]}**", f"**{cells[1]}**"
        rows.append([
            str(rank) if rank else DASH, f"{entry.model} ({first['model_name']})", *cells, size,
            fmt_seconds(mean_of(entry.values("train", "seconds"))),
            fmt_count(mean_of(entry.values("train", "tokens_per_second"))),
            fmt_count(mean_of([r["test"]["tokens_per_second"] if r["test"] else None for r in entry.results])),
            fmt_memory(entry.results),
        ])
    return rows


def summary_sentence(corpus: str, level: str, entries: list[Entry]) -> str:
    """One sentence computed from the table: who leads on the corpus's own axis (bits/char for
    characters, word perplexity for words; the ranking is the same), by how much, and who is last."""
    metric, label = primary_metric(level)
    other, other_label = ("word_perplexity", "word perplexity") if level == "char" else ("bits_per_char", "bits/char")
    digits = 4 if metric == "bits_per_char" else None
    ranked = [e for e in ranking(entries) if math.isfinite(e.mean(metric))]
    if not ranked:
        return f"No model has a finite perplexity on {corpus}."
    best = ranked[0]
    value = best.mean(metric)
    lead = (f"On {corpus}, {best.model} has the lowest {label}, {fmt_number(value, digits)} "
            f"({other_label} {fmt_number(best.mean(other), 4 if digits is None else None)})")
    if len(ranked) == 1:
        return lead + ", the only finite one."
    second, worst = ranked[1], ranked[-1]
    gap = 100 * (second.mean(metric) - value) / second.mean(metric)
    sentence = f"{lead}, {gap:.1f} % below the runner-up {second.model} ({fmt_number(second.mean(metric), digits)})"
    spreads = [s for s in (best.spread(metric), second.spread(metric)) if s is not None]
    if spreads:
        verdict = "larger" if second.mean(metric) - value > 2 * max(spreads) else "not larger"
        sentence += f", a margin {verdict} than twice the seeds' standard deviation"
    if worst is not second:
        ratio = worst.mean(metric) / value
        sentence += f"; the highest is {worst.model} at {fmt_number(worst.mean(metric), digits)}, {ratio:.2g}x the best"
    infinite = len(ranking(entries)) - len(ranked)
    if infinite:
        sentence += f"; {infinite} model(s) give probability zero to some test token (infinite perplexity)"
    return sentence + "."


def unk_sentence(entries: list[Entry]) -> str | None:
    """How much of the test the models read as <unk> (a low perplexity over many <unk> is cheap)."""
    shares: dict[str, list[str]] = {}
    for entry in entries:
        test = entry.first["test"]
        if test and test["n_tokens"] and test["n_unk"]:
            shares.setdefault(f"{100 * test['n_unk'] / test['n_tokens']:.1f} %", []).append(entry.model)
    if not shares:
        return None
    parts = [f"{share} ({', '.join(models)})" for share, models in shares.items()]
    return f"Test tokens read as `<unk>`: {'; '.join(parts)}."


def references_table(references) -> str:
    rows = []
    for ref in references:
        if ref.figure == "nats_per_char":  # bits = nats / ln 2
            quoted, bits = f"{ref.value:g} nats/char", fmt_number(ref.value / LN2, 4)
        elif ref.figure == "bits_per_char":
            quoted, bits = f"{ref.value:g} bits/char", fmt_number(ref.value, 4)
        else:
            quoted, bits = f"{ref.value:g} word perplexity", DASH
        rows.append([ref.label, quoted, bits, ref.source, ref.note])
    return markdown_table(["external reference (not measured here, not ranked)", "published figure",
                           "as bits/char", "source", "setting"], rows, "lrrll")


# ---- sections ---------------------------------------------------------------------------------


def corpora_section(config, runs) -> str:
    data = {}
    for run in runs:
        data.setdefault(run.spec.corpus, run.corpus)
    rows = []
    for spec in config.corpora:
        corpus = data[spec.label]
        sizes = []
        for name, split in (("train", corpus.train), ("valid", corpus.valid), ("test", corpus.test)):
            if split is None:
                sizes.append("= test (no early stopping)" if name == "valid" else DASH)
                continue
            text = split.text()
            unit = f"{len(text):,} chars" if corpus.level == "char" else f"{len(text.split()):,} words"
            sizes.append(f"{len(split):,} lines, {unit}")
        slices = ", ".join(f"{split} first {n:,} lines" for split, n in spec.slices.items() if n) or "whole splits"
        rows.append([spec.label, corpus.corpus.name, f"{corpus.level}, `{corpus.mode}`", *sizes, slices])
    table = markdown_table(["corpus", "source", "level, mode", "train", "valid", "test", "slices"], rows, "lllrrrl")
    legend = ("Word perplexity = exp(NLL / (words + one end-of-line per line)); bits/char = NLL / (characters "
              "with newlines x ln 2); perplexity per own token divides by the model's own tokens (DESIGN.md 3). "
              "`lines` scores each line on its own and predicts its end; `stream` scores the text as one sequence.")
    return f"{table}\n\n{legend}"


def models_section(config, entries: list[Entry]) -> str:
    seen, rows = set(), []
    for run in config.runs:
        if run.group in seen:
            continue
        seen.add(run.group)
        variants = [r for r in config.runs if r.group == run.group]
        per_corpus = {}
        for r in variants:
            per_corpus.setdefault(r.corpus, r)
        by_budget = {label: ", ".join(f"{k}={v:g}" for k, v in r.budget.items()) or "one pass"
                     for label, r in per_corpus.items()}
        budgets = (next(iter(by_budget.values())) if len(set(by_budget.values())) == 1
                   else "; ".join(f"{label}: {text}" for label, text in by_budget.items()))
        seeds = sorted({r.seed for r in variants if r.seed is not None})
        sweep = ", ".join(config.sweeps.get(run.group, [])) or DASH
        by_corpus = {label: ", ".join(f"{k}={v}" for k, v in sorted(r.params.items())
                                      if k != "seed" and k not in r.sweep) or DASH
                     for label, r in per_corpus.items()}
        shown = (next(iter(by_corpus.values())) if len(set(by_corpus.values())) == 1
                 else "; ".join(f"{label}: {text}" for label, text in by_corpus.items()))
        rows.append([run.group, f"`{run.kind}`", shown, budgets,
                     ", ".join(map(str, seeds)) or "none (deterministic)", sweep])
    return markdown_table(["model", "kind", "settings (besides the family's defaults)", "budget", "seeds", "sweep"],
                          rows, "llllll")


def sweep_section(config, entries: list[Entry], corpora_levels: dict) -> list[str]:
    out = []
    for group, keys in config.sweeps.items():
        for corpus, level in corpora_levels.items():
            chosen = [e for e in entries if e.group == group and e.corpus == corpus]
            if not chosen:
                continue
            metric, label = primary_metric(level)
            x_key, series_keys = plots.sweep_axes(keys, [e.first["sweep"] for e in chosen])
            xs = sorted({e.first["sweep"][x_key] for e in chosen})
            table: dict[tuple, dict] = {}
            for e in chosen:
                series = tuple(e.first["sweep"][k] for k in series_keys)
                table.setdefault(series, {})[e.first["sweep"][x_key]] = e
            rows = []
            for series, by_x in table.items():
                name = ", ".join(map(str, series)) or group
                rows.append([name] + [fmt_stat(by_x[x], metric, 4 if level == "char" else None) if x in by_x
                                      else DASH for x in xs])
            out += [f"**{group} on {corpus}**: test {label} by {x_key}\n",
                    markdown_table([", ".join(series_keys) or "model"] + [f"{x_key} {x}" for x in xs], rows,
                                   "l" + "r" * len(xs)), ""]
    return out


def novelty_rows(entries: list[Entry]) -> list[list[str]]:
    rows = []
    for entry in entries:
        totals = {"lines": 0, "in_train": 0, "in_test": 0, "new": 0}
        for probe in entry.probes:
            for sample in probe["samples"]:
                for key in totals:
                    totals[key] += sample["novelty"][key]
        n = totals["lines"]
        shares = [f"{totals[k]} ({100 * totals[k] / n:.0f} %)" if n else DASH for k in ("in_train", "in_test", "new")]
        rows.append([entry.model, str(sum(len(p["samples"]) for p in entry.probes)), str(n), *shares])
    return rows


def autocomplete_table(entries: list[Entry]) -> str | None:
    prompts = [item["prompt"] for item in entries[0].probes[0]["autocomplete"]] if entries else []
    if not prompts:
        return None
    rows = []
    for entry in entries:
        cells = []
        for item in entry.probes[0]["autocomplete"]:
            cells.append(", ".join(f"{show_token(token)} {p:.3f}" for token, p in item["top"]))
        rows.append([entry.model] + cells)
    return markdown_table(["model"] + [f"after {show_text(p)}" for p in prompts], rows, "l" + "l" * len(prompts))


def environment_section(config, manifest, entries: list[Entry]) -> list[str]:
    environments = [r["environment"] for e in entries for r in e.results]

    def distinct(key):
        values = sorted({str(env.get(key)) for env in environments if env.get(key) is not None})
        return ", ".join(values) or DASH

    threads = sorted({str(r["settings"].get("threads")) for e in entries for r in e.results
                      if "threads" in r["settings"]})
    dates = sorted(env["date"] for env in environments)
    seeds = sorted({r["seed"] for e in entries for r in e.results if r["seed"] is not None})
    train = sum(r["train"]["seconds"] for e in entries for r in e.results)
    scoring = sum(r["test"]["seconds"] for e in entries for r in e.results if r["test"])
    probing = sum(sum(p["seconds"].values()) for e in entries for p in e.probes)
    rows = [
        ["CPU", f"{distinct('cpu')}; {distinct('cpu_count')} logical CPUs, {distinct('affinity')} usable"],
        ["torch threads (as set by each model's `threads`)",
         f"{distinct('torch_threads')} (settings: {', '.join(threads) or DASH})"],
        ["Python / numpy / torch", f"{distinct('python')} / {distinct('numpy')} / {distinct('torch')}"],
        ["langmodels, commit", f"{distinct('langmodels')}, {distinct('commit')}"],
        ["platform", distinct("platform")],
        ["runs trained", f"{dates[0]} to {dates[-1]}" if dates else DASH],
        ["seeds", ", ".join(map(str, seeds)) or DASH],
        ["time measured in the runs",
         f"training {train:,.0f} s, test scoring {scoring:,.0f} s, samples/autocomplete/positions {probing:,.0f} s"],
    ]
    command = f"langmodels bench {manifest.get('config')} --out {manifest.get('out')}"
    reproduce = (f"Reproduce: `{command}` (for reports/default: `make report`). Finished runs are cached in "
                 "`runs/` (git-ignored) by a hash of their settings, budget, seed, corpus text, library version "
                 "and source code, so a repeated command only does what is missing. This report is rendered "
                 "from those stored results alone: the dates, commit and machine above are the ones recorded "
                 "when each run was trained, and re-running with everything cached writes the same bytes.")
    return [markdown_table(["", ""], rows, "ll"), "", reproduce]


# ---- the files ----------------------------------------------------------------------------------


def csv_rows(entries: list[Entry]) -> list[dict]:
    rows = []
    for entry in entries:
        for r in entry.results:
            test = r["test"] or {}
            train = r["train"]
            rows.append({
                "run_id": r["run_id"], "corpus": r["corpus"], "model": r["model"], "group": r["group"],
                "kind": r["kind"], "model_name": r["model_name"], "seed": r["seed"], "causal": r["causal"],
                "pseudo": test.get("pseudo"), "mode": test.get("mode"), "test_lines": r["test_lines"],
                "size": r["size"], "size_unit": r["size_unit"], "train_steps": train["steps"],
                "train_tokens": train["tokens"], "n_tokens": test.get("n_tokens"), "n_words": test.get("n_words"),
                "n_chars": test.get("n_chars"), "nll": test.get("nll", None),
                "perplexity": test.get("perplexity"), "word_perplexity": test.get("word_perplexity"),
                "bits_per_char": test.get("bits_per_char"), "n_unk": test.get("n_unk"),
                "n_zero_prob": test.get("n_zero_prob"), "train_seconds": train["seconds"],
                "train_tokens_per_second": train["tokens_per_second"], "eval_seconds": test.get("seconds"),
                "eval_tokens_per_second": test.get("tokens_per_second"),
                "peak_rss_bytes": r["memory"]["peak_rss_bytes"],
                "settings": json.dumps(r["settings"], sort_keys=True),
                "budget": json.dumps(r["budget"], sort_keys=True), "key": r["key"],
            })
    return rows


def results_csv(entries: list[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(entries):
        # repr keeps every float exact; an infinite perplexity is stored as null in JSON, inf here
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def results_json(config, entries: list[Entry]) -> str:
    document = {
        "benchmark": {"name": config.name, "description": config.description, "config_sha256": config.sha256},
        "runs": [{**r, "probe": p} for e in entries for r, p in zip(e.results, e.probes)],
        "summary": [
            {"corpus": e.corpus, "model": e.model, "ranked": e.ranked, "seeds": len(e.results),
             **{f"{key}_mean": _finite(e.mean(key)) for key in ("nll", "perplexity", "word_perplexity",
                                                                "bits_per_char")},
             **{f"{key}_std": e.spread(key) for key in ("word_perplexity", "bits_per_char")}}
            for e in entries
        ],
        "references": [ref.__dict__ for ref in config.references],
    }
    return json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def samples_markdown(config, entries: list[Entry]) -> str:
    out = [f"# Samples: {config.name}\n",
           ("Seeded: sample i of a prompt uses the seed listed; the same checkpoint gives the same text. Each "
            "generated line is marked `in train` (a verbatim training line), `in test` or `new`; for character "
            "models a cut-off last line is not judged. Newlines in character samples are kept.\n")]
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label)
        if not chosen:
            continue
        out.append(f"## {corpus.label}\n")
        for entry in chosen:
            out.append(f"### {entry.model} ({entry.first['model_name']})\n")
            for result, probe in zip(entry.results, entry.probes):
                if len(entry.results) > 1:
                    out.append(f"Trained with seed {result['seed']}:\n")
                for sample in probe["samples"]:
                    n = sample["novelty"]
                    verdict = ", ".join(f"{n[k]} {k.replace('_', ' ')}" for k in ("in_train", "in_test", "new") if n[k])
                    head = (f"- prompt {show_text(sample['prompt'])}, temperature {sample['temperature']:g}, "
                            f"seed {sample['seed']} ({verdict or 'no complete line'}):")
                    if probe["level"] == "char":
                        out.append(head + "\n\n```text\n" + sample["text"].replace("```", "ʼʼʼ") + "\n```\n")
                    else:
                        out.append(f"{head} {code(sample['text'])}")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def build_report(config, manifest, runs, entries: list[Entry], missing: list[str], figures: dict) -> str:
    levels = {}
    for run in runs:
        levels.setdefault(run.spec.corpus, run.corpus.level)
    parts = [f"# Benchmark report: {config.name}\n"]
    if config.description:
        parts.append(config.description.strip() + "\n")
    parts.append(
        "Every figure is measured in the runs listed, on the test split, except the rows marked external, "
        "which are quoted from publications and never ranked. Tables are sorted by word perplexity (lower is "
        "better); the masked LM's pseudo-perplexity has its own column and no rank.\n")
    if missing:
        parts.append(f"**Incomplete**: {len(missing)} configured run(s) have no result yet: "
                     + ", ".join(f"`{m}`" for m in missing) + ". Run the command under Environment to finish them.\n")
    parts += ["## Corpora\n", corpora_section(config, runs), "", "## Models\n", models_section(config, entries), ""]
    parts.append("## Results\n")
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label)
        if not chosen:
            continue
        level = levels[corpus.label]
        parts += [f"### {corpus.label}\n", markdown_table(SUMMARY_HEADER, summary_rows(chosen), "rlrrrrrrrrr"), "",
                  summary_sentence(corpus.label, level, chosen), ""]
        unk = unk_sentence(chosen)
        if unk:
            parts += [unk, ""]
        references = [ref for ref in config.references if ref.corpus == corpus.label]
        if references:
            parts += [references_table(references), ""]
    parts += [
        ("Size: parameters of a neural model, stored n-grams of an n-gram model. Train tok/s: training tokens "
         "(with repeats) per second of fit; eval tok/s: test tokens per second of scoring; peak MiB: the "
         "process's peak resident memory while the run trained and scored (it includes the corpora and "
         "libraries already loaded)."), ""]
    for name in ("quality", "learning_curves", "loss_by_position"):
        if name in figures:
            parts += [f"![{figures[name]}](plots/{name}.png)", ""]
    sweeps = sweep_section(config, entries, levels)
    if sweeps:
        parts += ["## Sweeps\n", *sweeps]
        parts += [f"![{group} sweep](plots/sweep-{group}.png)\n" for group in config.sweeps
                  if f"sweep-{group}" in figures]
    parts += ["## Samples\n",
              (f"From fixed prompts at temperatures {', '.join(f'{t:g}' for t in config.measure.temperatures)} with "
               f"seeds {', '.join(map(str, config.measure.sample_seeds))}; all of them are in "
               "[samples.md](samples.md). As in makemore, each generated line is sorted by whether it appears "
               "verbatim in the training text (copied), else in the test text, else is new (novelty).\n")]
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label)
        if not chosen:
            continue
        parts += [f"**{corpus.label}**\n", markdown_table(
            ["model", "samples", "lines judged", "copied from train", "in test only", "new"], novelty_rows(chosen),
            "lrrrrr"), ""]
        first_prompt = chosen[0].probes[0]["samples"][0]["prompt"] if chosen[0].probes[0]["samples"] else None
        shown = []
        for entry in chosen:
            for sample in entry.probes[0]["samples"]:
                if sample["prompt"] == first_prompt and sample["seed"] == config.measure.sample_seeds[0]:
                    shown.append([entry.model, f"{sample['temperature']:g}", show_text(sample["text"])])
        if shown:
            seed = config.measure.sample_seeds[0]
            intro = f"First sample of each model from {show_text(first_prompt)} (seed {seed}):\n"
            parts += [intro, markdown_table(["model", "T", "sample"], shown, "lrl"), ""]
    parts.append("## Autocomplete\n")
    parts.append(f"The {config.measure.top_k} most probable next tokens and their probabilities (`top_next`); "
                 "␣ is a space, ⏎ a newline. The masked LM answers for a mask at the end of the line.\n")
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label)
        table = autocomplete_table(chosen)
        if table:
            parts += [f"**{corpus.label}**\n", table, ""]
    notes = sorted({f"- {r['run_id']}: {note}" for e in entries for r in e.results for note in r["notes"]}
                   | {f"- {r['run_id']} (samples): {note}" for e in entries for r, p in zip(e.results, e.probes)
                      for note in p["notes"]})
    if notes:
        parts += ["## Notes the models gave\n", *notes, ""]
    parts += ["## Environment\n", *environment_section(config, manifest, entries), ""]
    return "\n".join(parts)


def write_report(out: Path, config, manifest: dict, runs, finished) -> list[str]:
    """Write every report file from the finished runs; returns the names written."""
    config = dataclasses.replace(config, references=references_for(config))  # the published anchors too
    entries = gather(finished)
    done = {run.spec.run_id for run, _, _ in finished}
    missing = [run.spec.run_id for run in runs if run.spec.run_id not in done]
    levels = {}
    for run in runs:
        levels.setdefault(run.spec.corpus, run.corpus.level)
    figures = plots.write_plots(out / "plots", config, entries, levels)
    files = {
        "results.csv": results_csv(entries),
        "results.json": results_json(config, entries),
        "samples.md": samples_markdown(config, entries),
        "REPORT.md": build_report(config, manifest, runs, entries, missing, figures),  # last: it names the others
    }
    for name, text in files.items():
        write_atomic(out / name, text.encode("utf-8"))
    return list(files) + [f"plots/{name}.png" for name in figures]
