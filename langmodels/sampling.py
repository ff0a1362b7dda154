"""Choosing the next token from a distribution: one module for every model.

Temperature scaling, top-k truncation (Fan et al. 2018) and nucleus / top-p truncation
(Holtzman et al. 2020) are applied in that order to natural-log probabilities, then one token is
drawn with a seeded numpy Generator, so the same seed gives the same samples on every model.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError


def check_sampling_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Refuse options that do not define a distribution, naming the option."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top-k must be a whole number >= 1, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ConfigError(f"top-p must be in (0, 1], got {top_p!r}")


def shape_distribution(
    logprobs: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> np.ndarray:
    """The renormalised probabilities to sample from, as float64 of the same shape (V,)."""
    logits = np.asarray(logprobs, dtype=np.float64) / temperature
    if top_k is not None and top_k < logits.size:
        kth = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= kth, logits, -np.inf)
    finite_max = np.max(logits)
    if not np.isfinite(finite_max):
        raise ConfigError("the model gives every next token probability zero; nothing to sample")
    probs = np.exp(logits - finite_max)
    probs /= probs.sum()
    if top_p is not None and top_p < 1:
        # Keep the smallest set of most probable tokens whose mass reaches top_p.
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = np.searchsorted(cumulative, top_p) + 1
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[:keep]] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    return probs


def sample_next(
    logprobs: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """Draw one token id from next-token log-probabilities."""
    probs = shape_distribution(logprobs, temperature, top_k, top_p)
    # Inverse-CDF draw: one uniform number per token keeps seeded runs comparable across models.
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    # Rounding can push the draw past the end; fall back to the last token with mass.
    return min(index, int(np.flatnonzero(probs)[-1]))
