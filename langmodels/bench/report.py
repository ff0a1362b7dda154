"""The comparison report: REPORT.md, results.csv, results.json, samples.md and plots/*.png.

Rendered only from the stored results of the runs (and the config that orders and labels them),
never from a clock or the machine at rendering time, so a re-run with everything cached writes the
same bytes. Every sentence under a table is computed from the numbers in it. This module puts the
report together: results.py gathers and ranks the runs, sections.py writes each section,
plots.py draws the figures and exports.py writes the other files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..checkpoint import write_atomic
from . import plots
from .exports import results_csv, results_json, samples_markdown
from .markdown import markdown_table, show_text
from .measure import watched_lines
from .overtake import overtakes as find_overtakes
from .references import references_for
from .results import Entry, gather, models_of
from .sample_quality import csv_figures
from .scaling import scaling_curves
from .sections import (
    MIXTURE_LEGEND,
    SUMMARY_HEADER,
    autocomplete_table,
    corpora_section,
    environment_section,
    finetune_section,
    inside_files,
    inside_plot,
    inside_section,
    mixture_sentences,
    models_section,
    neural_verdict,
    novelty_rows,
    overtake_section,
    references_table,
    sample_quality_section,
    scaling_section,
    summary_rows,
    summary_sentence,
    sweep_section,
    unk_sentence,
)


def build_report(config, manifest, runs, entries: list[Entry], missing: list[str], figures: dict,
                 curves=(), *, corpora: dict | None = None, finetunes=(), inside=(), sample_quality=(),
                 overtakes=()) -> str:
    """REPORT.md. corpora: every configured corpus's CorpusData by label; finetunes: (spec, stored
    result) of the finished fine-tunes; inside: (folder, stored) of the stored Inside figures;
    overtakes: overtake.overtakes' corpora."""
    levels = {label: data.level for label, data in (corpora or {}).items()}
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
    parts += ["## Corpora\n", corpora_section(config, runs, corpora), "", "## Models\n",
              models_section(config, entries), ""]
    parts.append("## Results\n")
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label)
        if not chosen:
            continue
        level = levels[corpus.label]
        parts += [f"### {corpus.label}\n", markdown_table(SUMMARY_HEADER, summary_rows(chosen), "rlrrrrrrrrrr"), "",
                  summary_sentence(corpus.label, level, chosen), ""]
        for sentence in (neural_verdict(chosen, level), unk_sentence(chosen)):
            if sentence:
                parts += [sentence, ""]
        for sentence in mixture_sentences(chosen, level):
            parts += [sentence, ""]
        references = [ref for ref in config.references if ref.corpus == corpus.label]
        if references:
            parts += [references_table(references), ""]
    parts += [
        ("Size: parameters of a neural model, stored n-grams of an n-gram model. Train tok/s: training tokens "
         "(with repeats) per second of fit; eval tok/s: test tokens per second of scoring; peak MiB: the "
         "process's peak resident memory while the run trained and scored (it includes the corpora and "
         "libraries already loaded).") + (" " + MIXTURE_LEGEND if any(e.first.get("mixture") for e in entries)
                                          else ""), ""]
    for name in ("quality", "learning_curves", "loss_by_position"):
        if name in figures:
            parts += [f"![{figures[name]}](plots/{name}.png)", ""]
    if overtakes:
        parts += ["## Compute to overtake\n", *overtake_section(overtakes, figures)]
    sweeps = sweep_section(config, entries, levels)
    if sweeps:
        parts += ["## Sweeps\n", *sweeps]
        parts += [f"![{group} sweep](plots/sweep-{group}.png)\n" for group in config.sweeps
                  if f"sweep-{group}" in figures]
    if curves:
        parts += ["## Scaling curves\n", *scaling_section(curves, figures)]
    if finetunes:
        parts += ["## Fine-tuning\n", *finetune_section(finetunes, levels)]
    if config.inside is not None:
        parts += ["## Inside the models\n", *inside_section(config.inside, inside)]
    parts += ["## Samples\n",
              (f"From fixed prompts at temperatures {', '.join(f'{t:g}' for t in config.measure.temperatures)} with "
               f"seeds {', '.join(map(str, config.measure.sample_seeds))}; all of them are in "
               "[samples.md](samples.md). As in makemore, each generated line is sorted by whether it appears "
               "verbatim in the training text (copied), else in the test text, else is new (novelty).\n")]
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label, best_of_sweeps=False)
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
    if sample_quality:
        parts += ["## Sample quality\n", *sample_quality_section(sample_quality, figures)]
    parts.append("## Autocomplete\n")
    parts.append(f"The {config.measure.top_k} most probable next tokens and their probabilities (`top_next`); "
                 "␣ is a space, ⏎ a newline. The masked LM answers for a mask at the end of the line.\n")
    for corpus in config.corpora:
        chosen = models_of(entries, corpus.label, best_of_sweeps=False)
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


def write_report(out: Path, config, manifest: dict, runs, finished, *, corpora: dict | None = None, finetunes=(),
                 inside=(), missing_jobs=(), sample_quality=()) -> list[str]:
    """Write every report file from the finished runs (and the stored fine-tunes and Inside
    figures: see build_report; sample_quality: sample_quality.gather's sections); returns the
    names written."""
    config = dataclasses.replace(config, references=references_for(config))  # the published anchors too
    entries = gather(finished)
    done = {run.spec.run_id for run, _, _ in finished}
    missing = [run.spec.run_id for run in runs if run.spec.run_id not in done] + list(missing_jobs)
    levels = {}
    for run in runs:
        levels.setdefault(run.spec.corpus, run.corpus.level)
    curves = scaling_curves(config.scaling, entries)
    races = find_overtakes(entries, levels, {label: held_out_text(data) for label, data in (corpora or {}).items()})
    figures = plots.write_plots(out / "plots", config, entries, levels, curves, sample_quality=sample_quality,
                                overtakes=races)
    files = {
        "results.csv": results_csv(entries, csv_figures(sample_quality)),
        "results.json": results_json(config, entries, curves, finetunes, sample_quality),
        "samples.md": samples_markdown(config, entries, sample_quality),
        # last: it names the others
        "REPORT.md": build_report(config, manifest, runs, entries, missing, figures, curves, corpora=corpora,
                                  finetunes=finetunes, inside=inside, sample_quality=sample_quality,
                                  overtakes=races),
    }
    copied = []
    for (model, name), stored in inside_files(inside).items():  # drawn from checkpoints, stored with the runs
        copied.append(f"plots/{inside_plot(model, name)}")
        write_atomic(out / copied[-1], stored.read_bytes())
    for name, text in files.items():
        write_atomic(out / name, text.encode("utf-8"))
    return list(files) + [f"plots/{name}.png" for name in figures] + copied


def held_out_text(data) -> str:
    """What a corpus's learning curves are validated on (measure.train_and_test), in words."""
    if data.valid is not None:
        return f"the valid split's first {len(data.valid):,} lines" if data.spec.slices["valid"] else "the valid split"
    watched = watched_lines(data.test)
    return (f"the first {len(watched):,} lines of the test text, watched without early stopping (this corpus's "
            "valid split is its test text)")
