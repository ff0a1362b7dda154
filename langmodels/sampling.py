"""Choosing the next token from a distribution: one module for every model.

Temperature scaling, top-k truncation (Fan et al. 2018) and nucleus / top-p truncation
(Holtzman et al. 2020) are applied in that order to natural-log probabilities, then one token is
drawn with a seeded numpy Generator, so the same seed gives the same samples on every model.

Temperature 0 is greedy decoding, as in most generation APIs: always the most probable token
(ties to the lowest id), the same token top-k 1 keeps. Any temperature > 0, however small, is
applied in log space to probabilities scaled by the most probable one, so it never overflows:
log(p / p_max) / T is <= 0, and below float64's range it is exp(-inf) = 0, not an error.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .options import RUN


def check_sampling_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Refuse options that do not define a distribution, naming the option (options.RUN's ranges)."""
    RUN["temperature"].check(temperature)
    if top_k is not None:
        RUN["top_k"].check(top_k, "top-k")
    if top_p is not None:
        RUN["top_p"].check(top_p, "top-p")


def top_k_mask(logits: np.ndarray, k: int) -> np.ndarray:
    """True at exactly k of the most probable tokens (fewer if fewer are possible); among tokens
    tied at the k-th value the lowest ids are kept, so top-k 1 is the greedy choice."""
    if k >= logits.size:
        return np.isfinite(logits)
    kth = np.partition(logits, -k)[-k]
    keep = logits > kth
    tied = np.flatnonzero(logits == kth)[: k - int(np.count_nonzero(keep))]
    keep[tied] = True
    return keep & np.isfinite(logits)


def shape_distribution(
    logprobs: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> np.ndarray:
    """The renormalised probabilities to sample from, as float64 of the same shape (V,)."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    best = np.max(logprobs) if logprobs.size else -np.inf
    if not np.isfinite(best):
        raise ConfigError("the model gives every next token probability zero; nothing to sample")
    if temperature == 0:  # greedy: the most probable token (np.argmax: the lowest id among ties)
        probs = np.zeros_like(logprobs)
        probs[int(np.argmax(logprobs))] = 1.0
        return probs
    with np.errstate(over="ignore"):  # (log p - log p_max) / T <= 0: an overflow is -inf, exp gives 0
        logits = (logprobs - best) / temperature
    if top_k is not None:
        logits = np.where(top_k_mask(logits, top_k), logits, -np.inf)
    probs = np.exp(logits)  # the most probable token has exp(0) = 1, so the sum is >= 1
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
    """Draw one token id from next-token log-probabilities (temperature 0: the most probable)."""
    probs = shape_distribution(logprobs, temperature, top_k, top_p)
    # Inverse-CDF draw: one uniform number per token keeps seeded runs comparable across models.
    # (A greedy draw uses it too, so the generator advances alike at every temperature.)
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    # Rounding can push the draw past the end; fall back to the last token with mass.
    return min(index, int(np.flatnonzero(probs)[-1]))
