"""The finished runs gathered into table entries, and how they are read and ranked.

An Entry is one model on one corpus over its seeds; `models_of` picks a corpus's rows (a sweep
stands in by its best point), `ranking` orders them, and `primary_metric` says which figure a
corpus is read on. The Markdown sections, the figures and the exports all read results through
these, so a ranking or an axis is decided once.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field

from ..metrics import LN2, bits_per_char, perplexity


@dataclass(frozen=True)
class Axis:
    """A figure of the test split that a corpus is read on."""

    key: str  # the field of a stored evaluation: "word_perplexity" or "bits_per_char"
    label: str  # in tables and sentences
    axis_label: str  # on a figure's axis
    digits: int | None  # decimals in tables (None: markdown.auto_digits)


WORDS = Axis("word_perplexity", "word perplexity", "word perplexity", None)
CHARS = Axis("bits_per_char", "bits/char", "bits per character", 4)


def primary_metric(level: str) -> Axis:
    """The axis a corpus is read on: word perplexity for words, bits per character for characters."""
    return CHARS if level == "char" else WORDS


def other_metric(level: str) -> Axis:
    """The axis quoted beside the primary one (bits/char for words, word perplexity for characters)."""
    return WORDS if level == "char" else CHARS


def metric_of(nll: float | None, counts: dict, metric: str) -> float | None:
    """A total NLL (nats) on the axis of `metric`, counted over the text that `counts` (a stored
    evaluation: n_tokens, n_words, n_chars) describes."""
    if nll is None:
        return None
    if metric == "bits_per_char":
        return bits_per_char(nll, counts["n_chars"])
    return perplexity(nll, counts["n_words"] if metric == "word_perplexity" else counts["n_tokens"])


def reference_value(reference, metric: str) -> float | None:
    """A published figure (references.py) on the axis of `metric`, where the conversion is exact
    (nats -> bits: / ln 2); None when it is quoted on another axis."""
    if metric == "bits_per_char":
        return {"bits_per_char": reference.value, "nats_per_char": reference.value / LN2}.get(reference.figure)
    return reference.value if reference.figure == "word_perplexity" else None


def models_of(entries: list, corpus: str, *, best_of_sweeps: bool = True) -> list:
    """The rows of one corpus's results, in config order: the models of their own and, for a model
    given only as a sweep, its best point (lowest mean word perplexity among its ranked points),
    labelled as such. best_of_sweeps=False: the models of their own alone (the sampled ones)."""
    own = [e for e in entries if e.corpus == corpus and not e.is_sweep]
    if not best_of_sweeps:
        return own
    listed = {e.group for e in own}
    points: dict[str, list] = {}
    for e in entries:
        if e.corpus == corpus and e.is_sweep and e.group not in listed:
            points.setdefault(e.group, []).append(e)
    best = {}
    for group, swept in points.items():
        ranked = [e for e in swept if e.ranked and not math.isnan(e.mean("word_perplexity"))]
        if ranked:  # min keeps the first of equals: config order
            best[group] = dataclasses.replace(min(ranked, key=lambda e: e.mean("word_perplexity")),
                                              sweep_points=len(swept))
    rows, placed, own_ids = [], set(), {id(e) for e in own}
    for e in entries:
        if id(e) in own_ids:
            rows.append(e)
        elif e.group in best and e.group not in placed and e.corpus == corpus:
            rows.append(best[e.group])
            placed.add(e.group)
    return rows


@dataclass
class Entry:
    """One model on one corpus: its runs over the seeds."""

    corpus: str
    model: str
    group: str
    results: list = field(default_factory=list)
    probes: list = field(default_factory=list)
    sweep_points: int = 0  # > 0: this sweep point stands in the results for its whole sweep, the best of so many

    @property
    def first(self) -> dict:
        return self.results[0]

    @property
    def label(self) -> str:
        """The model's label, saying when it is the best point of a sweep."""
        return self.model + (f" (best of {self.sweep_points} sweep points)" if self.sweep_points else "")

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


def is_count_based(result: dict) -> bool:
    """An n-gram model (its size is stored n-grams), not a mixture with one."""
    return result["size_unit"] == "n-grams" and not result.get("mixture")


def is_trained_neural(result: dict) -> bool:
    """A model trained by the neural trainer: it has a learning curve (a mixture has none)."""
    return bool(result["train"]["curve"]) and not result.get("mixture")


def ranking(entries: list[Entry]) -> list[Entry]:
    """Ranked entries, lowest mean word perplexity first (infinite last; ties keep config order)."""
    return sorted((e for e in entries if e.ranked), key=lambda e: e.mean("word_perplexity"))


def mean_of(values) -> float | None:
    values = [v for v in values or [] if v is not None]
    return statistics.fmean(values) if values else None


def sweep_axes(keys: list[str], sweeps: list[dict]) -> tuple[str, list[str]]:
    """The x axis of a sweep (its first swept setting whose values are all numbers, else its first)
    and the settings that tell its lines apart."""
    numeric = [k for k in keys if all(isinstance(s[k], (int, float)) and not isinstance(s[k], bool) for s in sweeps)]
    x_key = numeric[0] if numeric else keys[0]
    return x_key, [k for k in keys if k != x_key]


def sample_row_labels(section: dict) -> list[str]:
    """A row's model, with its seed where the model has several runs."""
    models = [row["model"] for row in section["rows"]]
    return [row["model"] + (f" (seed {row['seed']})" if models.count(row["model"]) > 1 else "")
            for row in section["rows"]]
