"""Compute to overtake: when each neural run's learning curve first passes the best n-gram model.

Per corpus, every causal neural run's validation curve (valid loss at its curve points) is read on
the corpus's axis (word perplexity, or bits per character) and compared with the best count-based
model's figure on the same validation text, stored with every run (measure.train_and_test): the
corpus's valid split, or for a corpus whose valid split is its test text the first lines of the
test text that the trainer watched (measure.watched_lines). The crossing is the first curve point
below that line, with the training seconds, tokens and FLOPs spent by then (compute.py's estimate
of FLOPs per token times the tokens): an upper bound, since the curve was validated only at its
points. Read from stored results alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .results import Axis, Entry, is_count_based, is_trained_neural, metric_of, primary_metric


@dataclass(frozen=True)
class Point:
    """A validated point of a learning curve, on the corpus's axis."""

    step: int
    tokens: int
    seconds: float
    flops: float | None  # training FLOPs spent by this point (None: no estimate for this model)
    value: float


@dataclass(frozen=True)
class Race:
    """One neural run's curve against the line to pass."""

    model: str  # the entry's label, with the seed when the model has several
    group: str
    run_id: str
    points: tuple[Point, ...]
    crossing: Point | None  # the first point below the line; None: not within the run's budget
    flops_per_token: float | None


@dataclass(frozen=True)
class Overtake:
    """One corpus: the best count-based model on the validation text and every neural run's race."""

    corpus: str
    axis: Axis
    baseline: str  # the best count-based model's label
    baseline_value: float
    held_out: str  # what the curves and the line are measured on
    races: tuple[Race, ...]


def curve_points(result: dict, axis: Axis) -> list[Point]:
    """The curve points with a valid loss, converted to the axis with the counts of the held-out
    text they were measured on (result['valid']): nats per token x tokens = the text's NLL."""
    held_out = result.get("valid")
    compute = result.get("compute") or {}
    per_token = compute.get("flops_per_token")
    points = []
    for point in result["train"]["curve"]:
        if point.get("valid_loss") is None or held_out is None:
            continue
        value = metric_of(point["valid_loss"] * held_out["n_tokens"], held_out, axis.key)
        if value is not None and math.isfinite(value):
            flops = None if per_token is None else per_token * point["tokens"]
            points.append(Point(point["step"], point["tokens"], point["seconds"], flops, value))
    return points


def _held_out_value(result: dict, axis: Axis) -> float | None:
    held_out = result.get("valid")
    if not (result["causal"] and result["normalised"]) or held_out is None:
        return None
    value = held_out.get(axis.key)
    return value if value is not None and math.isfinite(value) else None


def overtakes(entries: list[Entry], levels: dict, held_out: dict | None = None) -> list[Overtake]:
    """Per corpus (in `levels`' order) with a count-based model and a causal neural run that both
    stored figures on the held-out text. held_out: {corpus: description of that text}."""
    out = []
    for corpus, level in levels.items():
        axis = primary_metric(level)
        here = [e for e in entries if e.corpus == corpus]
        baselines = [(value, e) for e in here for r in e.results[:1] if is_count_based(r)
                     and (value := _held_out_value(r, axis)) is not None]
        if not baselines:
            continue
        line, best = min(baselines, key=lambda item: item[0])  # the first of equals: config order
        races = []
        for entry in here:
            if entry.is_sweep or not entry.first["causal"]:
                continue
            for result in entry.results:
                points = curve_points(result, axis) if is_trained_neural(result) else []
                if not points:
                    continue
                label = entry.model + (f" (seed {result['seed']})" if len(entry.results) > 1 else "")
                crossing = next((p for p in points if p.value < line), None)
                per_token = (result.get("compute") or {}).get("flops_per_token")
                races.append(Race(label, entry.group, result["run_id"], tuple(points), crossing, per_token))
        if races:
            description = (held_out or {}).get(corpus, "the held-out text")
            out.append(Overtake(corpus, axis, best.label, line, description, tuple(races)))
    return out
