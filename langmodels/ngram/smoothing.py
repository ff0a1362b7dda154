"""The smoothing estimators, all in Chen & Goodman's (1998) alpha/gamma form.

For a context h, its continuation w and the context h' that drops h's first token:

    P(w | h) = alpha(w | h) + gamma(h) * P_lower(w | h')     (interpolated)
    P(w | h) = alpha(w | h)        if c(h w) > 0
             = gamma(h) * P_lower(w | h')   otherwise        (backoff: stupid backoff only)

P_lower is the same model one order down (`lower = "recursive"`), or the uniform distribution
over the vocabulary (`lower = "uniform"`) for the estimators that only look at the full context.
The recursion ends at order 0, the uniform distribution 1/V over every token that can be
predicted (Chen & Goodman 1998, section 2; nltk.lm ends at the unsmoothed unigram instead).

Each estimator is written on two kinds of arrays, so that the external-memory pipeline
(estimate.py) can apply it to one block of n-grams at a time:

* the counts of the n-grams (raw counts, or Kneser-Ney's adjusted counts: `adjusted = True`),
* `ContextStats`, sums over each context's continuations (total count, number of types, and
  the number with count 1, 2 and 3+), all integers, so they are exact whatever the blocks.

An order's own parameters (the discounts of absolute discounting and Kneser-Ney) are set first
from its count-of-counts n_1..n_4 (`prepare`). `alpha` then gives alpha per n-gram and `gamma`
per context; contexts with no continuation never reach them (they pass straight to the lower
order). `alpha_gamma` does the whole order at once from an in-memory `NGramCounts`.
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


class ContextStats:
    """Per context, sums over its continuations' counts c (float64 arrays, one entry per
    context), each computed on first use: total (sum of c), types (N1+(h .), c > 0) and
    n1, n2, n3 (N1(h .), N2(h .), N3+(h .): c == 1, c == 2, c >= 3)."""

    def __init__(self, count: np.ndarray, sums):
        self._count = count
        self._sums = sums  # values per n-gram -> float64 sums per context
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def of_segments(cls, count: np.ndarray, starts: np.ndarray) -> ContextStats:
        """Stats of the contexts whose continuations are count[starts[i]:starts[i + 1]]."""
        def sums(values):
            return np.add.reduceat(values.astype(np.float64), starts) if starts.size else np.zeros(0)
        return cls(count, sums)

    @classmethod
    def of_contexts(cls, count: np.ndarray, context: np.ndarray, n_contexts: int) -> ContextStats:
        """Stats of every context 0..n_contexts-1, from each n-gram's context id."""
        def sums(values):
            return np.bincount(context, weights=values.astype(np.float64), minlength=n_contexts)
        return cls(count, sums)

    def _get(self, name, values):
        if name not in self._cache:
            self._cache[name] = self._sums(values())
        return self._cache[name]

    @property
    def total(self) -> np.ndarray:
        return self._get("total", lambda: self._count)

    @property
    def types(self) -> np.ndarray:
        return self._get("types", lambda: self._count > 0)

    @property
    def n1(self) -> np.ndarray:
        return self._get("n1", lambda: self._count == 1)

    @property
    def n2(self) -> np.ndarray:
        return self._get("n2", lambda: self._count == 2)

    @property
    def n3(self) -> np.ndarray:
        return self._get("n3", lambda: self._count >= 3)


class Smoothing:
    """An estimator of alpha (per n-gram) and gamma (per context) for one order at a time."""

    name: ClassVar[str]
    lower: ClassVar[str] = "recursive"  # or "uniform"
    interpolated: ClassVar[bool] = True
    normalised: ClassVar[bool] = True
    adjusted: ClassVar[bool] = False  # True: works on Kneser-Ney's adjusted counts

    def prepare(self, n: int, n_k: np.ndarray) -> None:
        """Set order n's own parameters from its count-of-counts n_0..n_4."""

    def alpha(self, count: np.ndarray, stats: ContextStats, context: np.ndarray, n: int,
              support_size: int) -> np.ndarray:
        """alpha(w | h) per n-gram; context[i] is the index in `stats` of n-gram i's context."""
        raise NotImplementedError

    def gamma(self, stats: ContextStats, n: int, support_size: int) -> np.ndarray:
        """gamma(h) per context."""
        raise NotImplementedError

    def alpha_gamma(self, counts: NGramCounts, n: int, support_size: int) -> tuple[np.ndarray, np.ndarray]:
        """alpha per seen n-gram of order n and gamma per context, from in-memory counts."""
        table = counts[n]
        count = counts.adjusted_counts(n) if self.adjusted else table.count
        self.prepare(n, count_of_counts(count))
        stats = ContextStats.of_contexts(count, table.context, table.n_contexts)
        return self.alpha(count, stats, table.context, n, support_size), self.gamma(stats, n, support_size)

    def params(self) -> dict:
        return {}


class MLE(Smoothing):
    """Maximum likelihood: c(h w) / c(h); unseen continuations get probability zero."""

    name = "mle"
    lower = "uniform"

    def alpha(self, count, stats, context, n, support_size):
        return _divide(count, stats.total[context], 0.0)

    def gamma(self, stats, n, support_size):
        return np.zeros(stats.total.shape)


class Uniform(Smoothing):
    """The transition graph: every continuation seen after h is equally likely, 1 / N1+(h .)."""

    name = "uniform"
    lower = "uniform"

    def alpha(self, count, stats, context, n, support_size):
        return _divide((count > 0).astype(np.float64), stats.types[context], 0.0)

    def gamma(self, stats, n, support_size):
        return np.zeros(stats.total.shape)


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

    def alpha(self, count, stats, context, n, support_size):
        return count / (stats.total[context] + self.k * support_size)

    def gamma(self, stats, n, support_size):
        return self.k * support_size / (stats.total + self.k * support_size)


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
        self.used_discount_: dict[int, float] = {}

    def params(self):
        return {"discount": self.discount}

    def prepare(self, n, n_k):
        self.used_discount_[n] = self.order_discount(n_k, n)

    def order_discount(self, n_k: np.ndarray, n: int) -> float:
        if self.discount is not None:
            return self.discount
        if n_k[1] == 0 or n_k[2] == 0:
            warnings.warn(
                f"absolute: order {n} has no count-of-counts to estimate D; using 0.75",
                DiscountFallbackWarning,
                stacklevel=8,  # the caller of fit (base.checked_fit adds a frame)
            )
            return 0.75
        return n_k[1] / (n_k[1] + 2.0 * n_k[2])

    def alpha(self, count, stats, context, n, support_size):
        return _divide(np.maximum(count - self.used_discount_[n], 0.0), stats.total[context], 0.0)

    def gamma(self, stats, n, support_size):
        return _divide(self.used_discount_[n] * stats.types, stats.total)


class WittenBell(Smoothing):
    """Witten & Bell (1991), method C as in Chen & Goodman (1998) eq. 18-19.

    gamma(h) = N1+(h .) / (N1+(h .) + c(h)): the more distinct continuations a context has, the
    more mass goes to the lower order.
    """

    name = "witten-bell"

    def alpha(self, count, stats, context, n, support_size):
        return _divide(count, (stats.total + stats.types)[context], 0.0)

    def gamma(self, stats, n, support_size):
        return _divide(stats.types, stats.total + stats.types)


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
    adjusted = True
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

    def prepare(self, n, n_k):
        self.used_discounts_[n] = self.order_discounts(n_k, n)

    def order_discounts(self, n_k: np.ndarray, n: int) -> tuple[float, float, float]:
        """Chen & Goodman (1998) eq. 26 from the count-of-counts n_0..n_4 of the adjusted counts."""
        if self.discounts is not None:
            return self.discounts
        n_k = np.asarray(n_k, dtype=np.float64)
        if np.all(n_k[1:4] > 0):
            y = n_k[1] / (n_k[1] + 2 * n_k[2])
            estimate = tuple(k - (k + 1) * y * n_k[k + 1] / n_k[k] for k in (1, 2, 3))
            if all(0 <= d <= k for k, d in enumerate(estimate, start=1)):
                return estimate
        warnings.warn(
            f"kneser-ney: closed-form discounts are undefined for order {n} (count-of-counts "
            f"n1..n4 = {n_k[1:].astype(int).tolist()}); using fallback D = {self.FALLBACK}",
            DiscountFallbackWarning,
            stacklevel=8,  # the caller of fit (base.checked_fit adds a frame)
        )
        return self.FALLBACK

    def alpha(self, count, stats, context, n, support_size):
        d1, d2, d3 = self.used_discounts_[n]
        discount = np.select([count == 0, count == 1, count == 2], [0.0, d1, d2], d3)
        return _divide(count - discount, stats.total[context], 0.0)

    def gamma(self, stats, n, support_size):
        d1, d2, d3 = self.used_discounts_[n]
        return _divide(d1 * stats.n1 + d2 * stats.n2 + d3 * stats.n3, stats.total)


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

    def alpha(self, count, stats, context, n, support_size):
        return _divide(count, stats.total[context], 0.0)

    def gamma(self, stats, n, support_size):
        return np.full(stats.total.shape, self.backoff)


SMOOTHINGS: dict[str, type[Smoothing]] = {
    cls.name: cls
    for cls in (MLE, Uniform, Laplace, Lidstone, AbsoluteDiscounting, WittenBell, KneserNey, StupidBackoff)
}
