"""The smoothing estimators, all in Chen & Goodman's (1998) alpha/gamma form.

For a context h, its continuation w and the context h' that drops h's first token:

    P(w | h) = alpha(w | h) + gamma(h) * P_lower(w | h')     (interpolated)
    P(w | h) = alpha(w | h)        if c(h w) > 0
             = gamma(h) * P_lower(w | h')   otherwise        (backoff: stupid backoff only)

P_lower is the same model one order down (`lower = "recursive"`), or the uniform distribution
over the vocabulary (`lower = "uniform"`) for the estimators that only look at the full context.
The recursion ends at order 0, the uniform distribution 1/V over every token that can be
predicted (Chen & Goodman 1998, section 2; nltk.lm ends at the unsmoothed unigram instead).

Every estimator returns, for order n, alpha per seen n-gram and gamma per context; contexts with
no continuation get gamma = 1 (they pass straight through to the lower order).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from ..errors import ConfigError
from .counting import NGramCounts, count_of_counts


def _divide(numerator, denominator, empty=1.0):
    """numerator / denominator, with `empty` where the denominator is 0 (a context never seen)."""
    out = np.full(np.broadcast(numerator, denominator).shape, empty, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


class DiscountFallbackWarning(UserWarning):
    """Closed-form discounts were undefined and the fallback ones are used (KenLM's warning)."""


class Smoothing:
    """An estimator of alpha (per n-gram) and gamma (per context) for one order at a time."""

    name: ClassVar[str]
    lower: ClassVar[str] = "recursive"  # or "uniform"
    interpolated: ClassVar[bool] = True
    normalised: ClassVar[bool] = True

    def alpha_gamma(self, counts: NGramCounts, n: int, support_size: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def params(self) -> dict:
        return {}


class MLE(Smoothing):
    """Maximum likelihood: c(h w) / c(h); unseen continuations get probability zero."""

    name = "mle"
    lower = "uniform"

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        total = table.per_context(table.count)
        return _divide(table.count, total[table.context], 0.0), np.zeros(table.n_contexts)


class Uniform(Smoothing):
    """The transition graph: every continuation seen after h is equally likely, 1 / N1+(h .)."""

    name = "uniform"
    lower = "uniform"

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        seen = (table.count > 0).astype(np.float64)
        types = table.per_context(seen)
        return _divide(seen, types[table.context], 0.0), np.zeros(table.n_contexts)


class Lidstone(Smoothing):
    """Add-k: (c(h w) + k) / (c(h) + k V), i.e. MLE interpolated with the uniform 1/V."""

    name = "lidstone"
    lower = "uniform"

    def __init__(self, k: float = 0.5):
        if not (isinstance(k, (int, float)) and k > 0):
            raise ConfigError(f"lidstone needs k > 0, got {k!r}")
        self.k = float(k)

    def params(self):
        return {"k": self.k}

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        total = table.per_context(table.count)
        denominator = total + self.k * support_size
        return table.count / denominator[table.context], self.k * support_size / denominator


class Laplace(Lidstone):
    """Add-one smoothing (Lidstone with k = 1)."""

    name = "laplace"

    def __init__(self):
        super().__init__(1.0)

    def params(self):
        return {}


class AbsoluteDiscounting(Smoothing):
    """Subtract D from every seen count (Ney, Essen & Kneser 1994), interpolated.

    alpha = max(c(h w) - D, 0) / c(h),  gamma = D N1+(h .) / c(h). D defaults to the estimate
    n1 / (n1 + 2 n2) of each order's count-of-counts (Ney et al. 1994, eq. 12).
    """

    name = "absolute"

    def __init__(self, discount: float | None = None):
        if discount is not None and not (isinstance(discount, (int, float)) and 0 < discount < 1):
            raise ConfigError(f"absolute discounting needs 0 < discount < 1, got {discount!r}")
        self.discount = discount

    def params(self):
        return {"discount": self.discount}

    def order_discount(self, counts: NGramCounts, n: int) -> float:
        if self.discount is not None:
            return self.discount
        n_k = count_of_counts(counts[n].count)
        if n_k[1] == 0 or n_k[2] == 0:
            warnings.warn(
                f"absolute: order {n} has no count-of-counts to estimate D; using 0.75",
                DiscountFallbackWarning,
                stacklevel=5,
            )
            return 0.75
        return n_k[1] / (n_k[1] + 2.0 * n_k[2])

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        d = self.order_discount(counts, n)
        total = table.per_context(table.count)
        types = table.per_context((table.count > 0).astype(np.float64))
        alpha = _divide(np.maximum(table.count - d, 0.0), total[table.context], 0.0)
        return alpha, _divide(d * types, total)


class WittenBell(Smoothing):
    """Witten & Bell (1991), method C as in Chen & Goodman (1998) eq. 18-19.

    gamma(h) = N1+(h .) / (N1+(h .) + c(h)): the more distinct continuations a context has, the
    more mass goes to the lower order.
    """

    name = "witten-bell"

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        total = table.per_context(table.count)
        types = table.per_context((table.count > 0).astype(np.float64))
        denominator = total + types
        return _divide(table.count, denominator[table.context], 0.0), _divide(types, denominator)


class KneserNey(Smoothing):
    """Interpolated modified Kneser-Ney (Chen & Goodman 1998, eqs. 17 and 26), as SRILM and KenLM.

    Counts are the adjusted counts a(.) of `NGramCounts.adjusted_counts`. With n_k the number of
    n-grams of the order whose adjusted count is k, Y = n1 / (n1 + 2 n2) and
    D_k = k - (k + 1) Y n_{k+1} / n_k for k = 1, 2, 3 (D_3 is used for every count >= 3):

        alpha(w | h) = (a(h w) - D(a(h w))) / sum_x a(h x)
        gamma(h)     = (D1 N1(h .) + D2 N2(h .) + D3 N3+(h .)) / sum_x a(h x)

    When a discount is undefined (some n_k = 0) or outside [0, k], as on tiny or character
    corpora, the order falls back to D = (0.5, 1.0, 1.5) with a warning, like lmplz's
    --discount_fallback. `discounts` fixes (D1, D2, D3) for every order instead.
    """

    name = "kneser-ney"
    FALLBACK = (0.5, 1.0, 1.5)

    def __init__(self, discounts: tuple[float, float, float] | None = None):
        if discounts is not None:
            if len(discounts) != 3 or not all(0 <= d <= k for k, d in enumerate(discounts, start=1)):
                raise ConfigError(f"kneser-ney discounts must be (D1, D2, D3) with 0 <= Dk <= k, got {discounts!r}")
            discounts = tuple(float(d) for d in discounts)
        self.discounts = discounts
        self.used_discounts_: dict[int, tuple[float, float, float]] = {}

    def params(self):
        return {"discounts": list(self.discounts) if self.discounts else None}

    def order_discounts(self, adjusted: np.ndarray, n: int) -> tuple[float, float, float]:
        if self.discounts is not None:
            return self.discounts
        n_k = count_of_counts(adjusted).astype(np.float64)
        if np.all(n_k[1:4] > 0):
            y = n_k[1] / (n_k[1] + 2 * n_k[2])
            estimate = tuple(k - (k + 1) * y * n_k[k + 1] / n_k[k] for k in (1, 2, 3))
            if all(0 <= d <= k for k, d in enumerate(estimate, start=1)):
                return estimate
        warnings.warn(
            f"kneser-ney: closed-form discounts are undefined for order {n} (count-of-counts "
            f"n1..n4 = {n_k[1:].astype(int).tolist()}); using fallback D = {self.FALLBACK}",
            DiscountFallbackWarning,
            stacklevel=5,
        )
        return self.FALLBACK

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        adjusted = counts.adjusted_counts(n)
        d1, d2, d3 = self.order_discounts(adjusted, n)
        self.used_discounts_[n] = (d1, d2, d3)
        discount = np.select([adjusted == 0, adjusted == 1, adjusted == 2], [0.0, d1, d2], d3)
        total = table.per_context(adjusted)
        released = table.per_context(np.where(adjusted > 0, discount, 0.0))
        alpha = _divide(adjusted - discount, total[table.context], 0.0)
        return alpha, _divide(released, total)


class StupidBackoff(Smoothing):
    """Brants et al. (2007): relative frequency, else `backoff` times the lower order's score.

    The scores do not sum to one, so the model may rank and generate but has no perplexity.
    """

    name = "stupid-backoff"
    interpolated = False
    normalised = False

    def __init__(self, backoff: float = 0.4):
        if not (isinstance(backoff, (int, float)) and 0 < backoff <= 1):
            raise ConfigError(f"stupid-backoff needs 0 < backoff <= 1, got {backoff!r}")
        self.backoff = float(backoff)

    def params(self):
        return {"backoff": self.backoff}

    def alpha_gamma(self, counts, n, support_size):
        table = counts[n]
        total = table.per_context(table.count)
        return _divide(table.count, total[table.context], 0.0), np.full(table.n_contexts, self.backoff)


SMOOTHINGS: dict[str, type[Smoothing]] = {
    cls.name: cls
    for cls in (MLE, Uniform, Laplace, Lidstone, AbsoluteDiscounting, WittenBell, KneserNey, StupidBackoff)
}
