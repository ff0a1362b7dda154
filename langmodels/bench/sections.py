"""The sections of REPORT.md, each computed from the stored results: the summary table per corpus
and the sentences under it, the corpora and models, sweeps, scaling curves, samples and their
quality, autocomplete, mixtures, fine-tuning, the Inside figures and the environment. report.py
puts them in order; every sentence here is computed from the numbers in its table.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from ..metrics import LN2
from ..standard_corpora import identify_split
from .markdown import (
    DASH,
    fmt_count,
    fmt_memory,
    fmt_number,
    fmt_seconds,
    fmt_stat,
    listing_and,
    markdown_table,
    show_text,
    show_token,
)
from .results import (
    Entry,
    is_count_based,
    is_trained_neural,
    mean_of,
    metric_of,
    other_metric,
    primary_metric,
    ranking,
    sample_row_labels,
    sweep_axes,
)
from .scaling import AXIS_SYMBOL, KAPLAN_ALPHA, min_points

# ---- the summary table ------------------------------------------------------------------------

SUMMARY_HEADER = [
    "rank", "model", "word perplexity", "bits/char", "bits/byte", "perplexity per own token",
    "pseudo word perplexity (masked LM, not ranked)", "size", "train s", "train tok/s", "eval tok/s",
    "peak MiB (+ during run)",
]



def summary_rows(entries: list[Entry]) -> list[list[str]]:
    ranked = ranking(entries)
    others = [e for e in entries if not e.ranked]
    best = ranked[0] if ranked and math.isfinite(ranked[0].mean("word_perplexity")) else None
    rows = []
    for rank, entry in [(i, e) for i, e in enumerate(ranked, start=1)] + [(None, e) for e in others]:
        first = entry.first
        size = f"{fmt_count(first['size'])} {first['size_unit']}" if first["size"] is not None else DASH
        cells = [fmt_stat(entry, "word_perplexity"), fmt_stat(entry, "bits_per_char", 4),
                 fmt_stat(entry, "bits_per_byte", 4), fmt_stat(entry, "perplexity"), DASH]
        if not first["normalised"]:
            cells = ["unnormalised scores: no perplexity", DASH, DASH, DASH, DASH]
        elif not entry.ranked:
            subset = f", first {first['test_lines']:,} test lines" if first["test_lines"] else ""
            label = "pseudo" if first["test"]["pseudo"] else "partial test"
            cells = [DASH, DASH, DASH, DASH, f"{fmt_stat(entry, 'word_perplexity')} ({label}{subset})"]
        if entry is best:
            cells[0], cells[1] = f"**{cells[0]}**", f"**{cells[1]}**"
        rows.append([
            str(rank) if rank else DASH, f"{entry.label} ({first['model_name']})", *cells, size,
            fmt_seconds(mean_of(entry.values("train", "seconds"))),
            fmt_count(mean_of(entry.values("train", "tokens_per_second"))),
            fmt_count(mean_of([r["test"]["tokens_per_second"] if r["test"] else None for r in entry.results])),
            fmt_memory(entry.results),
        ])
    return rows


def summary_sentence(corpus: str, level: str, entries: list[Entry]) -> str:
    """One sentence computed from the table: who leads on the corpus's own axis (bits/char for
    characters, word perplexity for words; the ranking is the same), by how much, and who is last."""
    axis, other = primary_metric(level), other_metric(level)
    metric, label, digits = axis.key, axis.label, axis.digits
    ranked = [e for e in ranking(entries) if math.isfinite(e.mean(metric))]
    if not ranked:
        return f"No model has a finite perplexity on {corpus}."
    best = ranked[0]
    value = best.mean(metric)
    lead = (f"On {corpus}, {best.label} has the lowest {label}, {fmt_number(value, digits)} "
            f"({other.label} {fmt_number(best.mean(other.key), other.digits)})")
    if len(ranked) == 1:
        return lead + ", the only finite one."
    second, worst = ranked[1], ranked[-1]
    gap = 100 * (second.mean(metric) - value) / second.mean(metric)
    sentence = f"{lead}, {gap:.1f} % below the runner-up {second.label} ({fmt_number(second.mean(metric), digits)})"
    spreads = [s for s in (best.spread(metric), second.spread(metric)) if s is not None]
    if spreads:
        verdict = "larger" if second.mean(metric) - value > 2 * max(spreads) else "not larger"
        sentence += f", a margin {verdict} than twice the seeds' standard deviation"
    if worst is not second:
        ratio = worst.mean(metric) / value
        sentence += f"; the highest is {worst.label} at {fmt_number(worst.mean(metric), digits)}, {ratio:.2g}x the best"
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
            shares.setdefault(f"{100 * test['n_unk'] / test['n_tokens']:.1f} %", []).append(entry.label)
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


def corpora_section(config, runs, corpora: dict | None = None) -> str:
    data = dict(corpora or {})  # every configured corpus, those no model runs on (fine-tuning) too
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
            figures = split.figures()  # streamed, not the split's text held whole
            unit = f"{figures['chars']:,} chars" if corpus.level == "char" else f"{figures['words']:,} words"
            sizes.append(f"{len(split):,} lines, {unit}")
        slices = ", ".join(f"{split} first {n:,} lines" for split, n in spec.slices.items() if n) or "whole splits"
        slices += "; for fine-tuning only" if spec.finetune_only else ""
        source = corpus.corpus.name
        standard = identify_split(corpus.corpus.test)
        if standard is not None and standard.split == "test":  # recognised by its bytes, not its name
            source += f" (test file: {standard.description}, `{standard.corpus}`)"
        rows.append([spec.label, source, f"{corpus.level}, `{corpus.mode}`", *sizes, slices])
    table = markdown_table(["corpus", "source", "level, mode", "train", "valid", "test", "slices"], rows, "lllrrrl")
    legend = ("Word perplexity = exp(NLL / (words + one end-of-line per line)); bits/char = NLL / (characters "
              "with newlines x ln 2); bits/byte = NLL / (UTF-8 bytes x ln 2), lm-evaluation-harness's, equal to "
              "bits/char on ASCII text; perplexity per own token divides by the model's own tokens (docs/design.md 3). "
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
        if run.components:  # a mixture: what it mixes, and how its weights are fitted
            mixed = " + ".join(component.split("/")[1] for component in run.components)
            shown = f"mixes {mixed}" + ("" if shown == DASH else f"; EM {shown}")
            budgets = "none: EM weights"
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
            axis = primary_metric(level)
            x_key, series_keys = sweep_axes(keys, [e.first["sweep"] for e in chosen])
            xs = sorted({e.first["sweep"][x_key] for e in chosen})
            table: dict[tuple, dict] = {}
            for e in chosen:
                series = tuple(e.first["sweep"][k] for k in series_keys)
                table.setdefault(series, {})[e.first["sweep"][x_key]] = e
            rows = []
            for series, by_x in table.items():
                name = ", ".join(map(str, series)) or group
                rows.append([name] + [fmt_stat(by_x[x], axis.key, axis.digits) if x in by_x
                                      else DASH for x in xs])
            out += [f"**{group} on {corpus}**: test {axis.label} by {x_key}\n",
                    markdown_table([", ".join(series_keys) or "model"] + [f"{x_key} {x}" for x in xs], rows,
                                   "l" + "r" * len(xs)), ""]
    return out


# ---- scaling curves ----------------------------------------------------------------------------

NOT_COMPARABLE = "small-scale, characters, CPU budget — not comparable in scale"
KAPLAN_RANGE = {"parameters": "768 to 1.5e9 non-embedding parameters", "data": "2.2e7 to 2.3e10 tokens"}


def fmt_budget(budget: dict) -> str:
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v:g}" for k, v in budget.items())


def fmt_alpha(fit) -> str:
    if fit is None:
        return DASH
    return f"{fit.alpha:.3f}" + ("" if fit.alpha_se is None else f" ± {fit.alpha_se:.3f}")


def exponent_rows(curves) -> list[list[str]]:
    rows = []
    for curve in curves:
        symbol = AXIS_SYMBOL[curve.axis]
        kaplan = f"α_{symbol} = {KAPLAN_ALPHA[curve.axis]} (c = 0; {KAPLAN_RANGE[curve.axis]})"
        for fit, irreducible in ((curve.fit, True), (curve.pure, False)):
            form = f"a {symbol}^-α + c" if irreducible else f"a {symbol}^-α (c = 0)"
            if fit is None:
                rows.append([curve.label, form, str(len(curve.points)), f"needs {min_points(irreducible)} points",
                             DASH, DASH, DASH, DASH, kaplan])
                continue
            floor = f"{fit.c:.3f}" + (" (at its bound)" if "c" in fit.at_bound else "") if irreducible else "0"
            rows.append([curve.label, form, str(fit.points), fmt_alpha(fit), f"{fit.a:.4g}", floor,
                         fmt_number(fit.r2, 4), f"{fit.rms:.4f}", kaplan])
    return rows


def scaling_points_table(curve) -> str:
    rows = []
    for point in curve.points:
        epochs = point.tokens / point.data if point.data else None
        predicted = curve.fit or curve.pure
        rows.append([point.model, fmt_count(point.parameters), fmt_count(point.data) if point.data else "whole split",
                     fmt_count(point.tokens), DASH if epochs is None else f"{epochs:.2f}", f"{point.loss:.4f}",
                     DASH if predicted is None else f"{float(predicted(point.x(curve.axis))):.4f}"])
    fitted = "a x^-α + c" if curve.fit else "c = 0" if curve.pure else "none"
    return markdown_table(["run", "N (non-embedding parameters)", "D (training-set tokens)", "tokens trained on",
                           "epochs", "test loss (nats/token)", f"fit ({fitted})"], rows, "lrrrrrr")


def scaling_sentence(curve) -> str:
    """What the curve says, from its numbers: the loss range and the exponent beside Kaplan et al.'s."""
    symbol = AXIS_SYMBOL[curve.axis]
    x, loss = curve.x, curve.loss
    span = f"{x[-1] / x[0]:.3g}x" if x[0] > 0 else "?"
    sentence = (f"{curve.label}: over {len(x)} points spanning {span} in {symbol} ({fmt_count(x[0])} to "
                f"{fmt_count(x[-1])}), the test loss goes from {loss[0]:.4f} to {loss[-1]:.4f} nats per token")
    best = curve.fit or curve.pure
    if best is None:
        return sentence + f"; too few points to fit a power law (at least {min_points(False)} needed)."
    kaplan = KAPLAN_ALPHA[curve.axis]
    sentence += (f"; the fit {best.form.replace('x', symbol)} gives α_{symbol} = {fmt_alpha(best)}"
                 f" (R² of ln L {fmt_number(best.r2, 4)}), {best.alpha / kaplan:.2g}x Kaplan et al.'s {kaplan}")
    if curve.pure is not None and best is not curve.pure:
        sentence += f"; with c = 0, their form, α_{symbol} = {fmt_alpha(curve.pure)}"
    return sentence + "."


def scaling_section(curves, figures: dict) -> list[str]:
    budgets = sorted({fmt_budget(c.budget) for c in curves})
    out = [
        ("Test loss (nats per token of the test split) against model size N and training-set size D, on "
         "log-log axes, with L = a x^-α + c (c >= 0) and the pure power law (c = 0, the form of Kaplan et al. "
         "2020, eqs. 1.1-1.2) fitted by least squares on ln L (langmodels/bench/scaling.py; ± is the standard "
         "error). N counts **non-embedding parameters**, as Kaplan et al. do: the token and position embeddings "
         "and the output layer over the vocabulary (tied to the token embedding) are left out. D is the "
         "training text's size in the model's own tokens (characters for a character model): the leading share "
         "of the training split that `train_fraction` keeps; a parameter sweep reads the whole split. Every "
         f"point of a curve has one recipe and one budget ({'; '.join(budgets)}): losses at a fixed number of "
         "training tokens, not at convergence as in Kaplan et al., and a small training set is repeated for the "
         "epochs shown with no early stopping, so its loss includes what repetition costs.\n"),
        f"**Exponents ({NOT_COMPARABLE})**\n",
        markdown_table(["curve", "fit", "points", "α ± s.e.", "a", "c", "R² of ln L", "rms of ln L",
                        "Kaplan et al. 2020"], exponent_rows(curves), "llrrrrrrl"),
        "",
    ]
    out += [scaling_sentence(curve) for curve in curves] + [""]
    for curve in curves:
        out += [f"**{curve.label}** (scaling in {'parameters' if curve.axis == 'parameters' else 'data'})\n",
                scaling_points_table(curve), ""]
    for axis in ("parameters", "data"):
        if f"scaling-{axis}" in figures:
            out += [f"![{figures[f'scaling-{axis}']}](plots/scaling-{axis}.png)", ""]
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


# ---- the samples' quality (issue 18; measured in sample_quality.py) ----------------------------

SAMPLE_QUALITY_HEADER = ["model", "judge word perplexity", "distinct-1", "distinct-2", "distinct-3", "self-BLEU-4",
                         "ends in a loop", "Zipf coefficient", "words per line"]


def _fixed(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def sample_quality_cells(figures: dict) -> list[str]:
    spread = figures.get("std_length")
    length = DASH if figures.get("mean_length") is None else (
        f"{figures['mean_length']:.1f}" + ("" if spread is None else f" ± {spread:.1f}"))
    repeated = figures.get("repetition")
    return [fmt_number(figures.get("judge_word_perplexity")), _fixed(figures.get("distinct_1")),
            _fixed(figures.get("distinct_2")), _fixed(figures.get("distinct_3")), _fixed(figures.get("self_bleu")),
            DASH if repeated is None else f"{100 * repeated:.0f} %", _fixed(figures.get("zipf"), 2), length]



def sample_quality_sentence(section: dict) -> str | None:
    """Which model's samples the judge finds closest to the test text at the table's setting, and
    what lowering the temperature does to the judge perplexity and distinct-2 across the sweep."""
    reference = (section["reference"] or {}).get("judge_word_perplexity")
    default = section["default"]
    labels = sample_row_labels(section)
    scored = [(label, row["figures"][default]["judge_word_perplexity"]) for label, row in zip(labels, section["rows"])]
    scored = [(label, value) for label, value in scored if value is not None]
    parts = []
    if reference is not None and scored:
        label, value = min(scored, key=lambda item: abs(math.log(item[1] / reference)))
        parts.append(f"At {section['settings'][default]}, the judge finds {label}'s samples closest to the test text "
                     f"({fmt_number(value)} against {fmt_number(reference)})")
    temperatures = [(t, i) for i, (t, plain) in enumerate(zip(section["temperatures"], section["untruncated"]))
                    if plain]
    if len(temperatures) >= 2:
        (low, i), (high, j) = min(temperatures), max(temperatures)
        pairs = [(row["figures"][i], row["figures"][j]) for row in section["rows"]]
        pairs = [(a, b) for a, b in pairs if None not in (a["judge_word_perplexity"], b["judge_word_perplexity"],
                                                          a["distinct_2"], b["distinct_2"])]
        if pairs:
            both = sum(a["judge_word_perplexity"] < b["judge_word_perplexity"] and a["distinct_2"] < b["distinct_2"]
                       for a, b in pairs)
            parts.append(f"from T = {high:g} down to T = {low:g}, {both} of {len(pairs)} run(s) get both a lower judge "
                         "perplexity and a lower distinct-2 (more probable, less varied text)")
    return "; ".join(parts) + "." if parts else None


def sample_quality_section(sections: list[dict], figures: dict) -> list[str]:
    """The table per corpus (the test text's row first), the sweep, the figure and a sentence."""
    out = []
    for section in sections:
        unit = "characters" if section["level"] == "char" else "words"
        judge = section["judge"]
        default = section["default"]
        out.append(f"**{section['corpus']}**\n")
        reference_cut = ("one test line each (cut alike)" if section["level"] != "char" else
                         f"the whole lines of a {section['max_tokens']}-character window each")
        judged = (f"Judge: {judge['model']} ({judge['model_name']}), the lowest test word perplexity on "
                  f"{section['corpus']} ({fmt_number(judge['word_perplexity'])})." if judge else
                  "No judge: no finished causal, normalised run scored on the whole test split.")
        out.append(f"{section['per_setting']} samples per setting (seeds 0-{section['per_setting'] - 1}, at most "
                   f"{section['max_tokens']} {unit}); the table is at {section['settings'][default]}. The test text "
                   f"row is {section['per_setting']} random test positions (seed 0), {reference_cut}. {judged}\n")
        rows = []
        if section["reference"]:
            rows.append(["*test text*", *sample_quality_cells(section["reference"])])
        for label, row in zip(sample_row_labels(section), section["rows"]):
            rows.append([label, *sample_quality_cells(row["figures"][default])])
        out += [markdown_table(SAMPLE_QUALITY_HEADER, rows, "lrrrrrrrr"), ""]
        sentence = sample_quality_sentence(section)
        if sentence:
            out += [sentence, ""]
        sweep = [[label, *(f"{fmt_number(f['judge_word_perplexity'])} / {_fixed(f['distinct_2'])}"
                           for f in row["figures"])] for label, row in zip(sample_row_labels(section), section["rows"])]
        out += ["Judge word perplexity / distinct-2 at each setting:\n",
                markdown_table(["model", *section["settings"]], sweep, "l" + "r" * len(section["settings"])), ""]
        name = f"sample_quality-{section['corpus']}"
        if name in figures:
            out += [f"![{figures[name]}](plots/{name}.png)", ""]
    if out:
        out += [("Distinct-n: distinct n-grams / all n-grams of the samples, inside lines (Li et al. 2016). "
                 "Self-BLEU-4: each sample's BLEU-4 against all the others (Zhu et al. 2018; nltk, smoothing "
                 "method 1); higher is less varied. Ends in a loop: samples whose last k words (k = 1-4) come "
                 "three times in a row. Zipf coefficient: minus the slope of log frequency against log rank over "
                 "ranks 1 to min(types, 5,000) (Holtzman et al. 2020). Words per line: mean ± standard deviation. "
                 "Judge word perplexity: the judge's `evaluate` of the samples' lines, in the corpus's mode. Masked "
                 "LMs are not sampled here: their Gibbs sampling fixes the length up front and costs a pass per "
                 "token."), ""]
    return out


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


# ---- mixtures, fine-tuning, inside the models ---------------------------------------------------




def mixture_sentences(entries: list[Entry], level: str) -> list[str]:
    """Per mixture row of a corpus: its weights, how they were fitted, and its figure beside each
    component's own on the same test text (means over seeds)."""
    axis = primary_metric(level)
    metric, label, digits = axis.key, axis.label, axis.digits
    out = []
    for entry in entries:
        mixture = entry.first.get("mixture")
        if not mixture or entry.first["test"] is None:
            continue
        names = mixture["components"]
        weights = [statistics.fmean(ws) for ws in zip(*(r["mixture"]["weights"] for r in entry.results))]
        value = entry.mean(metric)
        own = []
        for i, name in enumerate(names):
            values = [metric_of(r["mixture"]["component_nll"][i], r["test"], metric) for r in entry.results]
            own.append((name, statistics.fmean(values) if None not in values else math.inf))
        below = [f"{name} {fmt_number(v, digits)}" for name, v in own if value < v]
        above = [f"{name} {fmt_number(v, digits)}" for name, v in own if value >= v]
        every = "both" if len(own) == 2 else "all of"
        verdict = (f"below {every} {listing_and(below)}" if not above else f"above {every} {listing_and(above)}"
                   if not below else f"below {listing_and(below)} but not {listing_and(above)}")
        if mixture["fitted_on"] == "valid":
            iterations = mean_of(entry.values("train", "steps"))
            how = (f"fitted by EM on the {mixture['valid_lines']:,} valid lines, {iterations:.0f} iterations"
                   + (", mean over seeds" if len(entry.results) > 1 else ""))
        else:
            folds = "; ".join(f"{'/'.join(f'{w:.2f}' for w in fold['weights'])} on the {fold['mixed']}"
                              for fold in mixture["folds"])
            how = ("cross-fitted, since this corpus's valid split is its test text: each half of the test text "
                   f"is mixed with the weights EM fitted on the other half ({folds}) and the NLL sums both halves; "
                   "the mean weights are shown, and its samples use them")
        out.append(f"**{entry.model}** mixes {listing_and(names)} with weights "
                   f"{'/'.join(f'{w:.2f}' for w in weights)} ({how}): {label} {fmt_number(value, digits)}, "
                   f"{verdict}.")
    return out


MIXTURE_LEGEND = ("A mixture row scores the test text once per component and mixes the per-token probabilities, "
                  "P = Σ λ_i P_i (Jelinek & Mercer 1980); its size is the sum of its components', its train s the "
                  "time of EM (with the scoring of the held-out text it needs), not the components' training.")


def finetune_section(finetunes, levels: dict) -> list[str]:
    """The before/after table of the fine-tunes (spec, stored result) and a sentence each."""
    rows, sentences, slices = [], [], set()
    for spec, r in finetunes:
        axis = primary_metric(levels[r["onto"]])
        metric, label, digits = axis.key, axis.label, axis.digits
        steps = f"{r['train']['steps']:,} steps, " if r["train"]["steps"] else ""
        training = (f"{fmt_seconds(r['train']['seconds'])} s ({steps}{fmt_count(r['train']['tokens'])} tokens) "
                    f"on {r['onto']} train" + "".join(f", {k}={v:g}" for k, v in sorted(spec.settings.items())))
        change = {}
        for side, corpus in (("target", r["onto"]), ("source", r["from"])):
            before, after = r["before"][side], r["after"][side]
            old, new = before[metric], after[metric]
            change[side] = (old, new)
            test = corpus + (f" (first {r['test_lines']:,} lines)" if r["test_lines"] else "")
            unk = f"{100 * before['n_unk'] / before['n_tokens']:.1f} %" if before["n_tokens"] else DASH
            rows.append([f"{r['name']} ({r['model_name']})" if side == "target" else "",
                         training if side == "target" else "", test, fmt_number(old, digits),
                         fmt_number(new, digits), _relative(old, new), unk])
        slices.add(r["test_lines"])
        (t_old, t_new), (s_old, s_new) = change["target"], change["source"]
        sentences.append(
            f"Fine-tuning {r['model']} on {r['onto']} {_moves(t_old, t_new)} its {label} there from "
            f"{fmt_number(t_old, digits)} to {fmt_number(t_new, digits)} and {_moves(s_old, s_new)} it on "
            f"{r['from']}, the text it was trained on, from {fmt_number(s_old, digits)} to "
            f"{fmt_number(s_new, digits)}.")
    stopping = {"early stopping on the target's valid split" if r["train"]["early_stopping"]
                else "a fixed budget (the target's valid split is its test text)" for _, r in finetunes}
    cut = ("the first lines of each test split (`test_lines`, to keep the table cheap)" if any(slices)
           else "the whole test splits")
    caption = ("Each fine-tune starts from the named run's checkpoint and trains on the target corpus's training "
               f"split (`fit(..., resume_from=...)`, {' / '.join(sorted(stopping))}). The architecture and "
               "vocabulary are kept, so target words the source vocabulary lacks are read as `<unk>` (last column: "
               f"a perplexity over many `<unk>` tokens is cheap). Figures on {cut}, before and after.\n")
    table = markdown_table(["fine-tune", "training", "test split", "before", "after", "change",
                            "test tokens read as `<unk>`"], rows, "lllrrrr")
    return [caption, table, "", *sentences, ""]


def _relative(old: float | None, new: float | None) -> str:
    if old is None or new is None or not old:
        return DASH
    return f"{100 * (new - old) / old:+.1f} %"


def _moves(old: float | None, new: float | None) -> str:
    return "leaves" if old is None or new is None or old == new else "lowers" if new < old else "raises"


def inside_files(inside) -> dict[tuple[str, str], Path]:
    """{(model, file): its stored PNG} of the stored Inside figures ((folder, stored) pairs)."""
    return {(stored["model"], name): folder / name for folder, stored in inside
            for data in stored["figures"].values() for name in data.get("files", [])}


def inside_plot(model: str, name: str) -> str:
    return f"inside-{re.sub(r'[^A-Za-z0-9_.=+-]+', '-', model)}-{name}"


def inside_section(spec, inside) -> list[str]:
    """The "Inside the models" section from the stored Inside figures ((folder, stored) pairs)."""
    by_figure: dict[str, list[tuple[dict, dict]]] = {}
    for _, stored in inside:
        for figure, data in stored["figures"].items():
            by_figure.setdefault(figure, []).append((stored, data))
    out = [(f"Drawn from the checkpoints of the {spec.corpus} runs (the config's `[inside]` table, "
            "langmodels/bench/inside.py); each caption is computed from the data of its figure.\n")]

    def image(stored: dict, name: str, alt: str) -> str:
        return f"![{alt}](plots/{inside_plot(stored['model'], name)})"

    def left_out(stored: dict, data: dict, what: str) -> bool:
        if "left_out" in data:
            out.extend([f"{stored['model']}: no {what} ({data['left_out']}).", ""])
        return "left_out" in data

    for stored, data in by_figure.get("graph", []):
        out.append(f"**The bigram's word graph around {show_text(spec.word)}** ({stored['model']}, "
                   f"{stored['model_name']}; {spec.k} successors per state, {spec.depth} steps)\n")
        if left_out(stored, data, "graph"):
            continue
        seen = data["seen_successors"]
        top, p = data["counted"][0] if data["counted"] else (None, None)
        unit = {"word": "words", "char": "characters"}.get(data.get("level"), "tokens")
        line = (f"{seen:,} different {unit} follow {show_text(data['word'])} in the training text, so the uniform "
                f"graph (every seen transition equally likely, the word graph of the course notes) gives each "
                f"1/{seen:,} = {1 / seen:.2g}")
        if top is not None:
            line += f"; counting gives the most frequent, {show_token(top)}, {p:.3f} ({p * seen:.0f}x as much)"
        out += [image(stored, data["files"][0], "uniform against counted transition graph"), "", line + ".", ""]
        best, q = data["model"][0] if data["model"] else (None, None)
        line = f"The model's own smoothed graph over {data['states']} states"
        if best is not None:
            counted = dict(data["counted"])
            by_count = f", {counted[best]:.3f} by counting" if best in counted else ""
            line += f": after {show_text(data['word'])} it gives {show_token(best)} {q:.3f}{by_count}"
        out += [image(stored, data["files"][1], "smoothed transition graph"), "", line + ".", ""]
    attention = by_figure.get("attention", [])
    if attention:
        out.append(f"**Attention maps of {show_text(spec.sentence)}** (row: the attending position; column: the "
                   "position attended to; every row sums to 1)\n")
    for stored, data in attention:
        if left_out(stored, data, "attention map"):
            continue
        out += [image(stored, data["files"][0], f"attention of {stored['model']}"), "",
                (f"{stored['model']} ({stored['model_name']}): averaged over its {data['layers']} layer(s) x "
                 f"{data['heads']} heads, the last token {show_token(data['last'])} attends most to "
                 f"{show_token(data['last_attends_to'])} ({data['last_weight']:.2f}); over all positions, "
                 f"{show_token(data['most_attended'])} receives the most attention "
                 f"({100 * data['most_attended_share']:.0f} % of a query's weight on average)."), ""]
    projections = by_figure.get("projection", [])
    if projections:
        out.append(f"**Word embeddings**: {', '.join(show_text(w) for w in spec.words)} placed by PCA of their "
                   "unit-length input embeddings\n")
    for stored, data in projections:
        if left_out(stored, data, "embedding map"):
            continue
        a, b, similarity = data["closest"]
        unknown = (f"; not in its vocabulary, left out: {', '.join(show_text(w) for w in data['unknown'])}"
                   if data["unknown"] else "")
        out += [image(stored, data["files"][0], f"embeddings of {stored['model']}"), "",
                (f"{stored['model']} ({stored['model_name']}): the closest pair in the embedding space is "
                 f"{show_text(a)} and {show_text(b)} (cosine {similarity:.2f}){unknown}."), ""]
    analogies = [(stored, data) for stored, data in by_figure.get("analogies", []) if "left_out" not in data]
    if analogies:
        rows = [[f"{stored['model']} ({stored['model_name']})",
                 DASH if data["accuracy"] is None else f"{100 * data['accuracy']:.1f} %", f"{data['correct']:,}",
                 f"{data['answered']:,}", f"{data['skipped']:,}"] for stored, data in analogies]
        out += [("**Word analogies** (a : b :: c : ?, answered by the word closest in cosine to b - a + c, "
                 "3CosAdd, Mikolov et al. 2013; corpora/analogies.txt)\n"),
                markdown_table(["model", "accuracy", "correct", "answered", "skipped (a word not in the vocabulary)"],
                               rows, "lrrrr"), ""]
        best = max(analogies, key=lambda item: item[1]["accuracy"] or 0.0)
        if best[1]["accuracy"] is not None:
            out += [(f"{best[0]['model']} answers the most: {best[1]['correct']:,} of {best[1]['answered']:,} "
                     f"({100 * best[1]['accuracy']:.1f} %)."), ""]
    for stored, data in by_figure.get("temperature", []):
        out.append(f"**Temperature, top-k and top-p** ({stored['model']}, {stored['model_name']}, after "
                   f"{show_text(data['context'])})\n")
        settings = data["settings"]
        top = data["tokens"][0] if data["tokens"] else None
        shaped = "; ".join(f"{s['label']}: p = {s['probabilities'][0]:.2f}, {s['kept']:,} tokens left, "
                           f"{s['entropy_bits']:.2f} bits" for s in settings)
        out += [image(stored, data["files"][0], "next-token distribution under temperature and truncation"), "",
                f"The most probable next token is {show_token(top)}. {shaped}.", ""]
        rows = [[f"{sample['temperature']:g}", *(show_text(text) for text in sample["texts"])]
                for sample in data["samples"]]
        if rows and len(rows[0]) > 1:
            seeds = len(rows[0]) - 1
            out += ["Samples (sample i uses seed i at every temperature):\n",
                    markdown_table(["T", *(f"sample {i + 1}" for i in range(seeds))], rows, "r" + "l" * seeds), ""]
    if len(out) == 1:
        out += ["No figure: the configured corpus has no run with a checkpoint of the models the figures need.", ""]
    return out


# ---- compute to overtake (overtake.py) ------------------------------------------------------------

OVERTAKE_HEADER = ["neural run", "FLOPs per token", "crossed at step", "tokens", "seconds", "FLOPs", "figure then",
                   "at the end: tokens, seconds, FLOPs", "figure at the end"]


def fmt_flops(value: float | None) -> str:
    return DASH if value is None else f"{value:.2e}"


def overtake_rows(overtake) -> list[list[str]]:
    rows = []
    digits = overtake.axis.digits
    for race in overtake.races:
        last, cross = race.points[-1], race.crossing
        spent = f"{fmt_count(last.tokens)}, {fmt_seconds(last.seconds)} s, {fmt_flops(last.flops)}"
        if cross is None:
            crossed = ["not within budget", DASH, DASH, DASH, DASH]
        else:
            crossed = [f"{cross.step:,}", fmt_count(cross.tokens), fmt_seconds(cross.seconds), fmt_flops(cross.flops),
                       fmt_number(cross.value, digits)]
        rows.append([race.model, fmt_flops(race.flops_per_token), *crossed, spent, fmt_number(last.value, digits)])
    return rows


def overtake_sentence(overtake) -> str:
    """Who passes the line first (by training FLOPs, else tokens), or plainly that none does."""
    axis, digits = overtake.axis, overtake.axis.digits
    line = f"{overtake.baseline} ({axis.label} {fmt_number(overtake.baseline_value, digits)} on it)"
    crossed = [race for race in overtake.races if race.crossing is not None]
    if not crossed:
        closest = min(overtake.races, key=lambda race: min(p.value for p in race.points))
        best = min(p.value for p in closest.points)
        return (f"On {overtake.corpus}, no neural run passes {line} within its budget: the closest, {closest.model}, "
                f"gets down to {fmt_number(best, digits)}.")
    by_flops = all(race.crossing.flops is not None for race in crossed)
    first = min(crossed, key=lambda race: race.crossing.flops if by_flops else race.crossing.tokens)
    c = first.crossing
    sentence = (f"On {overtake.corpus}, {len(crossed)} of {len(overtake.races)} neural run(s) pass {line}; "
                f"{first.model} first by {'compute' if by_flops else 'tokens'}, at step {c.step:,} "
                f"({fmt_count(c.tokens)} tokens, {fmt_seconds(c.seconds)} s, {fmt_flops(c.flops)} FLOPs)")
    behind = [race.model for race in overtake.races if race.crossing is None]
    if behind:
        sentence += f"; not within budget: {listing_and(behind)}"
    return sentence + "."


def overtake_section(overtakes, figures: dict) -> list[str]:
    out = [("Each causal neural run's validation curve, read on the corpus's axis (word perplexity, or bits per "
            "character), against the best count-based model's figure on the same text (the horizontal line); a "
            "run crosses at the first validated point below it, so the figures in the table are upper bounds "
            "within one validation interval. Training FLOPs are estimated per token as 6 M + 12 L T d "
            "(langmodels/bench/compute.py): M the weights multiplied by every token (linear layers, LSTM gates, "
            "the output layer over the vocabulary, which Kaplan et al. 2020's C = 6N leaves out; an adaptive "
            "softmax's tail clusters weighted by their share of the training tokens), 2 FLOPs each forward and 4 "
            "backward; 12 L T d is self-attention over a context of T positions in L layers of width d (PaLM, "
            "Chowdhery et al. 2022, app. B); embeddings, biases, normalisations and activations are left out. The "
            "masked LM is not drawn: its validation loss is over masked tokens only.\n")]
    for overtake in overtakes:
        out += [(f"**{overtake.corpus}** (validated on {overtake.held_out}; the line: {overtake.baseline}, "
                 f"{overtake.axis.label} {fmt_number(overtake.baseline_value, overtake.axis.digits)})\n"),
                markdown_table(OVERTAKE_HEADER, overtake_rows(overtake), "lrrrrrrrr"), "",
                overtake_sentence(overtake), ""]
        name = f"overtake-{overtake.corpus}"
        if name in figures:
            out += [f"![{figures[name]}](plots/{name}.png)", ""]
    return out


def neural_verdict(entries: list[Entry], level: str) -> str | None:
    """On the test split: whether the best pure neural model (trained, not mixed) is below the best
    count-based one on the corpus's axis, said plainly either way."""
    axis = primary_metric(level)
    ranked = [e for e in ranking(entries) if math.isfinite(e.mean(axis.key))]
    neural = [e for e in ranked if is_trained_neural(e.first)]
    counted = [e for e in ranked if is_count_based(e.first)]
    if not neural or not counted:
        return None
    best, line = neural[0], counted[0]
    a, b = fmt_number(best.mean(axis.key), axis.digits), fmt_number(line.mean(axis.key), axis.digits)
    if best.mean(axis.key) < line.mean(axis.key):
        return (f"The best pure neural model, {best.label} ({a}), is below the best count-based model, "
                f"{line.label} ({b}).")
    return (f"No pure neural model is below the best count-based model, {line.label} ({b}), on this test split within "
            f"these budgets: the best, {best.label}, has {a}.")
