"""The report's files besides REPORT.md: results.csv (one row per run), results.json (every stored
figure, the summary over seeds, the scaling fits, the fine-tunes and the samples' quality) and
samples.md (every sample the probes drew)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math

from .markdown import code, show_text
from .results import Entry, models_of, sample_row_labels
from .sample_quality import CSV_FIGURES as SAMPLE_FIGURES
from .scaling import KAPLAN_ALPHA

# Columns of results.csv, one row per run. The ones measured in seconds (or bytes of memory)
# change from one training to the next; the others are fixed by the config and the seeds.
CSV_COLUMNS = [
    "run_id", "corpus", "model", "group", "kind", "model_name", "seed", "causal", "pseudo", "mode",
    "test_lines", "size", "size_unit", "train_steps", "train_tokens", "n_tokens", "n_words", "n_chars", "n_bytes",
    "nll", "perplexity", "word_perplexity", "bits_per_char", "bits_per_byte", "n_unk", "n_zero_prob",
    "train_seconds", "train_tokens_per_second", "eval_seconds", "eval_tokens_per_second", "peak_rss_bytes",
    "settings", "budget", "key",
    *(f"sample_{name}" for name in SAMPLE_FIGURES),  # the samples' quality at T = 1 (sample_quality.py)
]
MEASURED_COLUMNS = ("train_steps", "train_tokens", "train_seconds", "train_tokens_per_second", "eval_seconds",
                    "eval_tokens_per_second", "peak_rss_bytes")


def csv_rows(entries: list[Entry], samples: dict | None = None) -> list[dict]:
    """One row per run; samples: {run_id: {sample_<figure>: value}} (sample_quality.csv_figures)."""
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
                "n_chars": test.get("n_chars"), "n_bytes": test.get("n_bytes"), "nll": test.get("nll", None),
                "perplexity": test.get("perplexity"), "word_perplexity": test.get("word_perplexity"),
                "bits_per_char": test.get("bits_per_char"), "bits_per_byte": test.get("bits_per_byte"),
                "n_unk": test.get("n_unk"),
                "n_zero_prob": test.get("n_zero_prob"), "train_seconds": train["seconds"],
                "train_tokens_per_second": train["tokens_per_second"], "eval_seconds": test.get("seconds"),
                "eval_tokens_per_second": test.get("tokens_per_second"),
                "peak_rss_bytes": r["memory"]["peak_rss_bytes"],
                "settings": json.dumps(r["settings"], sort_keys=True),
                "budget": json.dumps(r["budget"], sort_keys=True), "key": r["key"],
                **(samples or {}).get(r["run_id"], {}),
            })
    return rows


def results_csv(entries: list[Entry], samples: dict | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(entries, samples):
        # repr keeps every float exact; an infinite perplexity is stored as null in JSON, inf here
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def results_json(config, entries: list[Entry], curves=(), finetunes=(), sample_quality=()) -> str:
    document = {
        "benchmark": {"name": config.name, "description": config.description, "config_sha256": config.sha256},
        "runs": [{**r, "probe": p} for e in entries for r, p in zip(e.results, e.probes)],
        "summary": [
            {"corpus": e.corpus, "model": e.model, "ranked": e.ranked, "seeds": len(e.results),
             **{f"{key}_mean": _finite(e.mean(key)) for key in ("nll", "perplexity", "word_perplexity",
                                                                "bits_per_char", "bits_per_byte")},
             **{f"{key}_std": e.spread(key) for key in ("word_perplexity", "bits_per_char", "bits_per_byte")}}
            for e in entries
        ],
        "references": [ref.__dict__ for ref in config.references],
    }
    if curves:
        document["scaling"] = [
            {"axis": c.axis, "model": c.group, "corpus": c.corpus, "budget": c.budget,
             "points": [dataclasses.asdict(p) for p in c.points],
             "fit": dataclasses.asdict(c.fit) if c.fit else None,
             "pure_power_law": dataclasses.asdict(c.pure) if c.pure else None,
             "kaplan_alpha": KAPLAN_ALPHA[c.axis]}
            for c in curves
        ]
    if finetunes:
        document["finetunes"] = [result for _, result in finetunes]
    if sample_quality:
        document["sample_quality"] = list(sample_quality)
    return json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def samples_markdown(config, entries: list[Entry], sample_quality=()) -> str:
    out = [f"# Samples: {config.name}\n",
           ("Seeded: sample i of a prompt uses the seed listed; the same checkpoint gives the same text. Each "
            "generated line is marked `in train` (a verbatim training line), `in test` or `new`; for character "
            "models a cut-off last line is not judged. Newlines in character samples are kept.\n")]
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label, best_of_sweeps=False)
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
    for section in sample_quality:  # what the Sample quality tables score, at their setting
        default = section["default"]
        out.append(f"## {section['corpus']}: the samples scored in Sample quality ({section['settings'][default]}, "
                   f"from the start of a line, seeds 0-{section['per_setting'] - 1})\n")
        for label, row in zip(sample_row_labels(section), section["rows"]):
            out.append(f"### {label}\n")
            texts = row["texts"][default]
            if section["level"] == "char":
                out += ["```text\n" + text.replace("```", "ʼʼʼ") + "\n```\n" for text in texts]
            else:
                out += [f"- {code(text) if text else '(an empty line)'}" for text in texts] + [""]
    return "\n".join(out).rstrip() + "\n"
