"""What temperature and truncation do to a model's next-token distribution, for one context.

The distributions are shaped by `sampling.shape_distribution`, the very code `generate` samples
from: temperature T turns p_i into p_i^(1/T) / sum_j p_j^(1/T); top-k keeps the k most probable
tokens (Fan et al. 2018); top-p keeps the smallest most-probable set whose mass reaches p
(Holtzman et al. 2020). Truncation is shown at T = 1, as `generate` applies it after temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base import LanguageModel
from ..errors import ConfigError
from ..options import RUN, SEED_MAX, shown
from ..sampling import check_sampling_options, shape_distribution
from .figures import check_figure_path, pyplot, save_figure, token_label

TEMPERATURES = (0.5, 1.0, 2.0)
SHOWN_TOKENS = 15
REST = "(rest)"


@dataclass
class Setting:
    """One way of shaping the distribution, and what it gives for the shown tokens."""

    label: str
    temperature: float
    top_k: int | None = None
    top_p: float | None = None
    probabilities: np.ndarray = field(default=None, repr=False)  # (shown tokens + 1,): the last is the rest
    kept: int = 0  # tokens left with probability > 0
    entropy_bits: float = 0.0  # of the whole shaped distribution


def _number(value: float) -> str:
    return f"{value:g}"


def check_model(model) -> None:
    if not isinstance(model, LanguageModel):
        raise ConfigError(f"model must be a fitted language model, got {shown(model)}")


def check_temperatures(temperatures) -> list[float]:
    """The temperatures as a list, each in options.RUN's range; ConfigError for none or a bad one."""
    try:
        listed = None if isinstance(temperatures, (str, bytes)) else list(temperatures)
    except TypeError:
        listed = None
    if listed is None:
        raise ConfigError(f"temperatures must be a list of numbers, got {shown(temperatures)}")
    temperatures = listed
    if not temperatures:
        raise ConfigError("give at least one temperature")
    for temperature in temperatures:
        RUN["temperature"].check(temperature)
    return list(temperatures)


def settings_for(temperatures=TEMPERATURES, top_k: int | None = 5, top_p: float | None = 0.9) -> list[Setting]:
    """The temperatures, then top-k and top-p (each at T = 1; None leaves it out), checked."""
    settings = [Setting(f"T = {_number(t)}", t) for t in check_temperatures(temperatures)]
    if top_k is not None:
        settings.append(Setting(f"top-k = {top_k} (T = 1)", 1.0, top_k=top_k))
    if top_p is not None:
        settings.append(Setting(f"top-p = {_number(top_p)} (T = 1)", 1.0, top_p=top_p))
    for setting in settings:
        check_sampling_options(setting.temperature, setting.top_k, setting.top_p)
    return settings


def next_token_distributions(model, context: str = "", *, temperatures=TEMPERATURES, top_k: int | None = 5,
                             top_p: float | None = 0.9, n_tokens: int = SHOWN_TOKENS,
                             path=None) -> tuple[list[str], list[Setting]]:
    """The n_tokens most probable next tokens after `context` and, per setting, their shaped
    probabilities (plus the mass left to all other tokens). One bar panel per setting is
    written to path (.png or .svg) when given."""
    check_model(model)
    RUN["n_tokens"].check(n_tokens)
    settings = settings_for(temperatures, top_k, top_p)
    if path is not None:
        check_figure_path(path)
    model._check_fitted()
    logprobs = model.next_logprobs(model.encode_context(context, "context"))
    possible = int(np.count_nonzero(np.isfinite(logprobs)))
    shown = np.argsort(-logprobs, kind="stable")[: min(n_tokens, possible)]
    tokens = [model.tokenizer.token_text(int(i)) for i in shown]  # BPE pieces as text
    for setting in settings:
        probs = shape_distribution(logprobs, setting.temperature, setting.top_k, setting.top_p)
        setting.probabilities = np.append(probs[shown], max(0.0, 1.0 - float(probs[shown].sum())))
        setting.kept = int(np.count_nonzero(probs))
        positive = probs[probs > 0]
        setting.entropy_bits = float(-np.sum(positive * np.log2(positive)))
    if path is not None:
        save_figure(_bar_panels(tokens, settings, model.name, context), path)
    return tokens, settings


def temperature_samples(model, context: str = "", *, temperatures=TEMPERATURES, samples: int = 3, seed: int = 0,
                        max_tokens: int = 30) -> dict[float, list[str]]:
    """`samples` continuations of `context` at each temperature; sample i uses seed + i at every
    temperature, so the rows differ by temperature only."""
    check_model(model)
    temperatures = check_temperatures(temperatures)
    RUN["samples"].check(samples)
    RUN["max_tokens"].check(max_tokens)
    RUN["seed"].check(seed)
    if samples and seed + samples - 1 > SEED_MAX:  # sample i's seed, seed + i, must be a seed too
        raise ConfigError(f"seed + samples - 1 must be at most {SEED_MAX:,} (sample i uses seed + i), "
                          f"got {shown(seed)} + {samples} - 1")
    return {
        t: [model.generate(context, max_tokens, temperature=t, seed=seed + i) for i in range(samples)]
        for t in temperatures
    }


def _bar_panels(tokens: list[str], settings: list[Setting], name: str, context: str):
    labels = [token_label(t) for t in tokens] + [REST]
    plt = pyplot()
    figure, axes = plt.subplots(1, len(settings), figsize=(2.4 * len(settings) + 1.4, 0.26 * len(labels) + 1.8),
                                sharey=True, squeeze=False, layout="constrained")
    rows = np.arange(len(labels))
    top = max(float(np.max(s.probabilities[:-1], initial=0.0)) for s in settings)
    right = min(1.0, max(top, 1e-9) * 1.25)
    for ax, setting in zip(axes[0], settings):
        colours = ["#3b6ea5"] * len(tokens) + ["#bbbbbb"]
        ax.barh(rows, np.minimum(setting.probabilities, right), color=colours)
        rest = setting.probabilities[-1]  # may run past the axis: its value is written beside it
        inside = rest > right
        ax.annotate(f"{rest:.2f}", (min(rest, right), rows[-1]), xytext=(-2 if inside else 2, 0),
                    textcoords="offset points", va="center", ha="right" if inside else "left", fontsize=7)
        ax.set_xlim(0, right)
        ax.set_title(f"{setting.label}\n{setting.kept:,} tokens, H = {setting.entropy_bits:.2f} bits", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("probability", fontsize=8)
    axes[0, 0].set_yticks(rows, labels, fontsize=8)
    axes[0, 0].invert_yaxis()
    shown = context if len(context) <= 60 else "..." + context[-57:]
    figure.suptitle(f"{name}: the next token after {shown!r}", fontsize=10)
    return figure


def describe(tokens: list[str], settings: list[Setting]) -> str:
    """The distributions as a plain-text table (token, then one column per setting)."""
    width = max(len(token_label(t)) for t in [*tokens, REST])
    header = f"{'token':<{width}}  " + "  ".join(f"{s.label.split(' (')[0]:>12}" for s in settings)
    lines = [header]
    for row, token in enumerate([*(token_label(t) for t in tokens), REST]):
        lines.append(f"{token:<{width}}  " + "  ".join(f"{s.probabilities[row]:>12.4f}" for s in settings))
    return "\n".join(lines)
