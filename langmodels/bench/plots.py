"""The report's figures (matplotlib, Agg): quality per model, learning curves, loss by position in
the line, one figure per sweep, the scaling curves on log-log axes with their fitted power laws,
the samples' quality against their diversity, and the compute to overtake the n-grams.
Drawn from stored results only; each PNG is written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..inside.figures import pyplot, save_png
from .results import models_of, primary_metric, ranking, reference_value, sweep_axes
from .scaling import AXIS_SYMBOL, KAPLAN_ALPHA

MIN_LINES_AT_POSITION = 20  # a position's mean loss is drawn only when this many lines reach it


def _colours(names: list[str]) -> dict:
    cycle = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
             "#bcbd22", "#17becf"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(dict.fromkeys(names))}


def quality(entries, levels: dict, references, path: Path) -> bool:
    corpora = [c for c in levels if models_of(entries, c)]
    if not corpora:
        return False
    plt = pyplot()
    figure, axes = plt.subplots(1, len(corpora), figsize=(6.2 * len(corpora), 4.2), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        axis = primary_metric(levels[corpus])
        metric, label = axis.key, axis.axis_label
        ranked = [e for e in ranking(models_of(entries, corpus))
                  if math.isfinite(e.mean(metric))]
        names = [e.model for e in ranked]
        values = [e.mean(metric) for e in ranked]
        errors = [e.spread(metric) or 0.0 for e in ranked]
        # Dots, not bars: on a log axis a bar's length depends on where the axis happens to start.
        ax.errorbar(values, range(len(ranked)), xerr=errors, fmt="o", color="#4c72b0", capsize=3)
        ax.set_yticks(range(len(ranked)), names)
        ax.set_ylim(len(ranked) - 0.5, -0.5)
        for i, value in enumerate(values):
            ax.annotate(f"{value:.4g}", (value, i), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
        for reference in references:
            value = reference_value(reference, metric) if reference.corpus == corpus else None
            if value is not None:
                ax.axvline(value, color="#c44e52", linestyle="--", linewidth=1)
                ax.annotate(f"external: {reference.label}", (value, len(ranked) - 0.5), rotation=90, fontsize=7,
                            color="#c44e52", xytext=(-3, 2), textcoords="offset points", va="bottom", ha="right")
        if metric == "word_perplexity":
            ax.set_xscale("log")
        ax.set_xlabel(f"test {label} (lower is better)")
        ax.set_title(corpus)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    save_png(figure, path)
    return True


def learning_curves(entries, levels: dict, path: Path) -> bool:
    curves = [e for e in entries if not e.is_sweep and e.first["train"]["curve"]]
    corpora = [c for c in levels if any(e.corpus == c for e in curves)]
    if not corpora:
        return False
    plt = pyplot()
    colours = _colours([e.group for e in curves])
    figure, axes = plt.subplots(len(corpora), 2, figsize=(12, 3.8 * len(corpora)), squeeze=False)
    for row, corpus in zip(axes, corpora):
        for entry in [e for e in curves if e.corpus == corpus]:
            curve = entry.first["train"]["curve"]  # the first seed's
            has_valid = any(point["valid_loss"] is not None for point in curve)
            key = "valid_loss" if has_valid else "train_loss"
            points = [p for p in curve if p[key] is not None]
            label = f"{entry.model} ({'valid' if has_valid else 'train'}"
            label += ", masked-LM loss over its masked tokens: not comparable)" if not entry.first["causal"] else ")"
            style = "--" if not entry.first["causal"] else "-"
            for ax, x in zip(row, ("tokens", "seconds")):
                ax.plot([p[x] for p in points], [p[key] for p in points], style, marker="o", markersize=3,
                        color=colours[entry.group], label=label)
        for ax, x in zip(row, ("training tokens", "training seconds")):
            ax.set_xlabel(x)
            ax.set_ylabel("loss (nats per token)")
            ax.set_title(f"{corpus}: loss against {x}")
            ax.grid(True, alpha=0.3)
        row[1].legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)
    return True


def loss_by_position(entries, levels: dict, path: Path) -> bool:
    chosen = [e for e in entries if not e.is_sweep and e.probes[0]["position_loss"]]
    corpora = [c for c in levels if any(e.corpus == c for e in chosen)]
    if not corpora:
        return False
    plt = pyplot()
    colours = _colours([e.group for e in chosen])
    figure, axes = plt.subplots(1, len(corpora), figsize=(6.5 * len(corpora), 4.4), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        lines = 0
        for entry in [e for e in chosen if e.corpus == corpus]:
            loss = entry.probes[0]["position_loss"]
            lines = loss["lines"]
            points = [(i, m) for i, (m, n) in enumerate(zip(loss["mean_nll"], loss["count"]))
                      if m is not None and n >= MIN_LINES_AT_POSITION]
            if points:
                ax.plot(*zip(*points), marker=".", color=colours[entry.group], label=entry.model)
        unit = "character" if levels[corpus] == "char" else "word"
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(f"position in the line ({unit}s of context before the token)")
        ax.set_ylabel("mean loss (nats per token)")
        ax.set_title(f"{corpus}: {lines:,} test lines that reach the last position, each scored from its start",
                     fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)
    return True


def sweep(group: str, keys: list[str], entries, levels: dict, path: Path) -> bool:
    chosen = [e for e in entries if e.group == group]
    corpora = [c for c in levels if any(e.corpus == c for e in chosen)]
    if not corpora:
        return False
    plt = pyplot()
    figure, axes = plt.subplots(1, len(corpora), figsize=(6.5 * len(corpora), 4.6), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        axis = primary_metric(levels[corpus])
        metric, label = axis.key, axis.axis_label
        here = [e for e in chosen if e.corpus == corpus]
        x_key, series_keys = sweep_axes(keys, [e.first["sweep"] for e in here])
        series: dict[tuple, list] = {}
        for e in here:
            series.setdefault(tuple(e.first["sweep"][k] for k in series_keys), []).append(e)
        for name, members in series.items():
            text = ", ".join(f"{k}={v}" for k, v in zip(series_keys, name)) or group
            if not members[0].first["normalised"]:
                continue  # scores, not probabilities: no perplexity to draw
            points = sorted((e.first["sweep"][x_key], e.mean(metric)) for e in members)
            finite = [(x, y) for x, y in points if math.isfinite(y)]
            if finite:
                left_out = " (infinite points left out)" if len(finite) < len(points) else ""
                ax.plot(*zip(*finite), marker="o", label=text + left_out)
        xs = sorted({e.first["sweep"][x_key] for e in here}, key=str)
        if all(isinstance(x, int) for x in xs):
            ax.set_xticks(sorted(xs))
        ax.set_xlabel(x_key)
        ax.set_ylabel(f"test {label}")
        if metric == "word_perplexity":
            ax.set_yscale("log")
        ax.set_title(f"{group} on {corpus}")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)
    return True


SCALING_AXIS_LABEL = {"parameters": "non-embedding parameters N", "data": "training-set tokens D"}


def scaling(axis: str, curves, path: Path) -> bool:
    """Test loss against N or D on log-log axes: the points, the fit a x^-alpha + c (solid), the
    pure power law c = 0 (dashed), and a line of Kaplan et al.'s slope through the middle point."""
    chosen = [c for c in curves if c.axis == axis and c.points]
    if not chosen:
        return False
    plt = pyplot()
    from matplotlib.ticker import FormatStrFormatter, NullLocator

    colours = _colours([c.label for c in chosen])
    figure, ax = plt.subplots(figsize=(7.5, 5))
    symbol = AXIS_SYMBOL[axis]
    shown = []  # every loss drawn, points and fits: the y range
    for curve in chosen:
        colour = colours[curve.label]
        x, loss = np.asarray(curve.x), np.asarray(curve.loss)
        ax.plot(x, loss, "o", color=colour, label=curve.label)
        grid = np.geomspace(x.min() / 1.25, x.max() * 1.25, 200)
        shown += [loss] + [fit(grid) for fit in (curve.fit, curve.pure) if fit is not None]
        if curve.fit is not None:
            ax.plot(grid, curve.fit(grid), "-", color=colour, linewidth=1.2,
                    label=f"a {symbol}^-α + c: α = {curve.fit.alpha:.3f}, c = {curve.fit.c:.3f}")
        if curve.pure is not None:
            ax.plot(grid, curve.pure(grid), "--", color=colour, linewidth=1,
                    label=f"a {symbol}^-α (c = 0): α = {curve.pure.alpha:.3f}")
        middle = len(x) // 2  # Kaplan et al.'s slope, for the eye: parallel lines scale alike
        ax.plot(grid, loss[middle] * (grid / x[middle]) ** -KAPLAN_ALPHA[axis], ":", color="#7f7f7f", linewidth=1,
                label=f"slope of Kaplan et al. 2020, α_{symbol} = {KAPLAN_ALPHA[axis]}" if curve is chosen[0] else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # The measured range sets the y axis (Kaplan's line is cut to it); a range this narrow has no
    # decade ticks, so five ticks are spread over it evenly on the log scale.
    low = min(values.min() for values in shown) / 1.01
    high = max(values.max() for values in shown) * 1.01
    ax.set_ylim(low, high)
    ax.set_yticks(np.geomspace(low, high, 5))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(SCALING_AXIS_LABEL[axis] + " (log scale)")
    ax.set_ylabel("test loss, nats per token (log scale)")
    ax.set_title(f"Test loss against {SCALING_AXIS_LABEL[axis]} (small-scale, CPU budget)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    figure.tight_layout()
    save_png(figure, path)
    return True


def sample_quality_figure(section: dict, path: Path) -> bool:
    """One corpus's samples (sample_quality.gather's section): judge word perplexity against
    distinct-2, one point per setting per run, the temperatures of a run joined by a line (its
    truncated settings as crosses), the test text as a black star."""
    rows = [row for row in section["rows"] if any(f["judge_word_perplexity"] is not None for f in row["figures"])]
    if not rows:
        return False
    plt = pyplot()
    colours = _colours([row["group"] for row in rows])
    figure, ax = plt.subplots(figsize=(7.5, 5))
    settings = section["settings"]
    plain = [i for i, untruncated in enumerate(section["untruncated"]) if untruncated]  # temperature alone
    models = [row["model"] for row in rows]
    for row in rows:
        label = row["model"] + (f" (seed {row['seed']})" if models.count(row["model"]) > 1 else "")
        points = {i: (f["distinct_2"], f["judge_word_perplexity"]) for i, f in enumerate(row["figures"])
                  if f["distinct_2"] is not None and f["judge_word_perplexity"] is not None}
        line = [points[i] for i in sorted(plain, key=lambda i: section["temperatures"][i]) if i in points]
        if line:
            ax.plot(*zip(*line), "-o", color=colours[row["group"]], markersize=4, label=label)
        for i, (x, y) in points.items():
            if i not in plain:
                ax.plot(x, y, "x", color=colours[row["group"]], markersize=7)
            ax.annotate(settings[i], (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6,
                        color=colours[row["group"]])
    reference = section["reference"] or {}
    if reference.get("distinct_2") is not None and reference.get("judge_word_perplexity") is not None:
        ax.plot(reference["distinct_2"], reference["judge_word_perplexity"], "*", color="black", markersize=14,
                label="test text")
    ax.set_yscale("log")
    ax.set_xlabel("distinct-2 of the samples (higher is more varied)")
    judge = section["judge"]["model"] if section["judge"] else "no judge"
    ax.set_ylabel(f"judge word perplexity ({judge}; log scale)")
    ax.set_title(f"{section['corpus']}: quality against diversity, {section['per_setting']} samples per setting "
                 "(crosses: top-p / top-k)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    figure.tight_layout()
    save_png(figure, path)
    return True


def write_plots(folder: Path, config, entries, levels: dict, curves=(), *, sample_quality=(), overtakes=()) -> dict:
    """Every figure the results allow (curves: the scaling curves, scaling.py; sample_quality:
    sample_quality.gather's sections; overtakes: overtake.overtakes' corpora); returns {name:
    description} of those written."""
    if not entries:
        return {}
    written = {}
    if quality(entries, levels, config.references, folder / "quality.png"):
        written["quality"] = "test word perplexity (bits per character for character corpora) per model"
    if learning_curves(entries, levels, folder / "learning_curves.png"):
        written["learning_curves"] = "learning curves against training tokens and seconds"
    if loss_by_position(entries, levels, folder / "loss_by_position.png"):
        written["loss_by_position"] = "mean loss by position in the line"
    for group, keys in config.sweeps.items():
        if sweep(group, keys, entries, levels, folder / f"sweep-{group}.png"):
            written[f"sweep-{group}"] = f"{group} sweep"
    for axis in ("parameters", "data"):
        if scaling(axis, curves, folder / f"scaling-{axis}.png"):
            written[f"scaling-{axis}"] = f"test loss against {SCALING_AXIS_LABEL[axis]}, log-log, with the fits"
    for race_set in overtakes:
        if overtake_figure(race_set, folder / f"overtake-{race_set.corpus}.png"):
            written[f"overtake-{race_set.corpus}"] = (f"{race_set.corpus}: validation {race_set.axis.axis_label} "
                                                      "against training seconds and FLOPs")
    for section in sample_quality:
        name = f"sample_quality-{section['corpus']}"
        if sample_quality_figure(section, folder / f"{name}.png"):
            written[name] = f"{section['corpus']}: judge word perplexity against distinct-2 of the samples"
    return written


def overtake_figure(race_set, path: Path) -> bool:
    """One corpus's compute to overtake (overtake.Overtake): each neural run's validation figure
    against training seconds and against training FLOPs (log x), the best count-based model as a
    horizontal line and each run's first point below it circled."""
    races = [race for race in race_set.races if race.points]
    if not races:
        return False
    plt = pyplot()
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    colours = _colours([race.group for race in races])
    axis = race_set.axis
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.4), squeeze=False)
    for ax, x in zip(axes[0], ("seconds", "flops")):
        for race in races:
            points = [p for p in race.points if getattr(p, x) is not None and getattr(p, x) > 0]
            if not points:
                continue
            colour = colours[race.group]
            ax.plot([getattr(p, x) for p in points], [p.value for p in points], "-o", markersize=3, color=colour,
                    label=race.model)
            crossing = race.crossing
            if crossing is not None and getattr(crossing, x) is not None:
                ax.plot(getattr(crossing, x), crossing.value, "o", markersize=11, markerfacecolor="none",
                        markeredgecolor=colour, markeredgewidth=2)
        ax.axhline(race_set.baseline_value, color="black", linestyle="--", linewidth=1,
                   label=f"{race_set.baseline} (best count-based)")
        ax.plot([], [], "o", markersize=11, markerfacecolor="none", markeredgecolor="black",
                label="first point below the line")
        ax.set_xscale("log")
        if axis.key == "word_perplexity":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training seconds (log scale)" if x == "seconds" else "training FLOPs, estimated (log scale)")
        ax.set_ylabel(f"validation {axis.axis_label}")
        ax.set_title(f"{race_set.corpus}: against training {'seconds' if x == 'seconds' else 'FLOPs'}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][1].legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)
    return True
