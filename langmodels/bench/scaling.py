"""Scaling laws: test loss as a power law of model size or of data (Kaplan et al. 2020).

    L(x) = a x^-alpha + c        x = N, non-embedding parameters, or D, training-set tokens

c >= 0 is the loss that no size reaches, the irreducible term of Henighan et al. (2020) (E in
Hoffmann et al. 2022, eq. 2). Kaplan et al. fit the pure power law L = (x_c / x)^alpha, that is
c = 0 (their eqs. 1.1 and 1.2), and find alpha_N = 0.076 over 768 to 1.5e9 non-embedding parameters
and alpha_D = 0.095 over 2.2e7 to 2.3e10 tokens of WebText2, each with the other resource not
limiting. Both forms are fitted here; a handful of CPU-sized models on characters is a different
regime, so the exponents are a small-scale figure to read beside theirs, not a replication.

Fits minimise the squared error of ln L, i.e. relative error (a loss of 1.5 and one of 3 weigh
alike), with x scaled by its geometric mean so the parameters are of order one. The exponent's
standard error is the usual least-squares one: the residual variance times (J^T J)^-1 at the
optimum (Gauss-Newton), which needs more points than parameters. A parameter that ends on its
bound (c = 0 is common: the points show no floor) is held there, as in the c = 0 fit, and the
error is that of the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

# Kaplan et al. (2020), eqs. 1.1 and 1.2 (and Table 5): the exponents to read ours beside.
KAPLAN_ALPHA = {"parameters": 0.076, "data": 0.095}
AXIS_SYMBOL = {"parameters": "N", "data": "D"}
MAX_ALPHA = 10.0  # a bound, not a belief: language-model exponents are well below 1
FLOOR_STARTS = (0.0, 0.5, 0.9)  # starting values of c, as shares of the lowest loss


@dataclass(frozen=True)
class PowerLawFit:
    """L(x) = a x^-alpha + c fitted to `points` points (c = 0 when not `irreducible`)."""

    a: float
    alpha: float
    c: float
    alpha_se: float | None  # standard error of alpha; None without more points than parameters
    r2: float | None  # R^2 of ln L (None when every loss is the same)
    rms: float  # root mean square residual of ln L: about the typical relative error
    points: int
    irreducible: bool
    at_bound: tuple[str, ...] = ()  # parameters that ended on a bound ("alpha", "c"), held there

    @property
    def parameters(self) -> int:
        return 3 if self.irreducible else 2

    @property
    def form(self) -> str:
        return "a x^-α + c" if self.irreducible else "a x^-α (c = 0)"

    def __call__(self, x) -> np.ndarray:
        return self.a * np.asarray(x, dtype=float) ** -self.alpha + self.c


def min_points(irreducible: bool) -> int:
    """Points a fit needs: one more than its parameters, so that a residual is left to judge it."""
    return 4 if irreducible else 3


def fit_power_law(x, loss, *, irreducible: bool = True) -> PowerLawFit:
    """Least-squares fit of L = a x^-alpha + c (c >= 0, below the lowest loss; c = 0 without
    `irreducible`) in ln L. ValueError for too few points or values that are not positive."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(loss, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and loss must be 1-d arrays of the same length")
    if len(x) < min_points(irreducible):
        raise ValueError(f"a fit of {'three' if irreducible else 'two'} parameters needs at least "
                         f"{min_points(irreducible)} points, got {len(x)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x and loss must be finite and positive")
    if len(np.unique(x)) < 2:
        raise ValueError("x must take at least two values")
    x0 = math.exp(np.log(x).mean())  # geometric mean: ln(x / x0) is centred on 0
    u = np.log(x / x0)
    ln_y = np.log(y)
    at_bound: tuple[str, ...] = ()
    if irreducible:
        ln_scale, alpha, c, jacobian, at_bound = _fit_with_floor(u, y)
    else:
        ln_scale, alpha, c, jacobian = _fit_line(u, ln_y)
    residual = np.log(np.exp(ln_scale - alpha * u) + c) - ln_y
    ssr = float(residual @ residual)
    free = [i for i, name in enumerate(("ln_a", "alpha", "c")[: jacobian.shape[1]]) if name not in at_bound]
    dof = len(x) - len(free)
    alpha_se = None
    if dof > 0 and "alpha" not in at_bound:
        covariance = ssr / dof * np.linalg.pinv(jacobian[:, free].T @ jacobian[:, free])
        alpha_se = float(math.sqrt(max(covariance[free.index(1), free.index(1)], 0.0)))
    sst = float(((ln_y - ln_y.mean()) ** 2).sum())
    return PowerLawFit(
        a=math.exp(ln_scale) * x0**alpha,  # A (x / x0)^-alpha = (A x0^alpha) x^-alpha
        alpha=float(alpha), c=float(c), alpha_se=alpha_se,
        r2=1 - ssr / sst if sst > 0 else None, rms=math.sqrt(ssr / len(x)), points=len(x),
        irreducible=irreducible, at_bound=at_bound,
    )


def _fit_line(u: np.ndarray, ln_y: np.ndarray):
    """c = 0: ln L = ln A - alpha u is a straight line, solved in closed form (ordinary least squares)."""
    design = np.column_stack([np.ones_like(u), -u])  # d(ln L)/d(ln A), d(ln L)/d(alpha)
    (ln_scale, alpha), *_ = np.linalg.lstsq(design, ln_y, rcond=None)
    return float(ln_scale), float(alpha), 0.0, design


def _fit_with_floor(u: np.ndarray, y: np.ndarray):
    """ln L = ln(A e^(-alpha u) + c) by bounded trust-region least squares from a few starting
    floors; each start takes (ln A, alpha) from the straight line through ln(L - c)."""
    ln_y = np.log(y)
    floor_max = float(y.min()) * (1 - 1e-9)

    def residual(theta):
        ln_scale, alpha, c = theta
        return np.log(np.exp(ln_scale - alpha * u) + c) - ln_y

    best = None
    for share in FLOOR_STARTS:
        c0 = share * floor_max
        ln_scale0, alpha0, _, _ = _fit_line(u, np.log(y - c0))
        start = np.array([ln_scale0, min(max(alpha0, 1e-6), MAX_ALPHA - 1e-6), c0])
        result = least_squares(residual, start, bounds=([-np.inf, 0.0, 0.0], [np.inf, MAX_ALPHA, floor_max]),
                               method="trf", x_scale="jac", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=10_000)
        if best is None or result.cost < best.cost:
            best = result
    ln_scale, alpha, c = best.x
    bounds = {"alpha": (0.0, MAX_ALPHA), "c": (0.0, floor_max)}
    values = {"alpha": alpha, "c": c}
    scale = {"alpha": 1.0, "c": floor_max}
    at_bound = tuple(name for name, (low, high) in bounds.items()
                     if min(abs(values[name] - low), abs(high - values[name])) <= 1e-6 * scale[name])
    return float(ln_scale), float(alpha), float(c), best.jac, at_bound


# ---- the curves of a benchmark ------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingPoint:
    """One run of a scaling sweep (means over its seeds)."""

    model: str  # the run's label, with its swept settings
    parameters: float | None  # N: non-embedding parameters
    data: float | None  # D: tokens of the training text it read from
    tokens: float  # tokens it trained on (the budget, repeats included)
    loss: float  # test loss, nats per token

    def x(self, axis: str) -> float | None:
        return self.parameters if axis == "parameters" else self.data


@dataclass
class ScalingCurve:
    """One scaling sweep on one corpus: its points in order of x, and both fits."""

    axis: str  # "parameters" or "data"
    group: str
    corpus: str
    budget: dict
    points: list[ScalingPoint]
    fit: PowerLawFit | None = None  # a x^-alpha + c, with enough points
    pure: PowerLawFit | None = None  # c = 0, Kaplan et al.'s form

    @property
    def label(self) -> str:
        return f"{self.group} on {self.corpus}"

    @property
    def x(self) -> list[float]:
        return [p.x(self.axis) for p in self.points]

    @property
    def loss(self) -> list[float]:
        return [p.loss for p in self.points]


def nats_per_token(result: dict) -> float | None:
    """The test loss of Kaplan et al.: the NLL over the test split's tokens in the model's own
    tokenisation (None when it is not finite)."""
    test = result.get("test")
    if not test or not test.get("n_tokens") or test.get("nll") is None or not math.isfinite(test["nll"]):
        return None
    return test["nll"] / test["n_tokens"]


def _mean(values) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def scaling_curves(scaling: dict, entries) -> list[ScalingCurve]:
    """The curves of the config's scaling sweeps ({group: axis}) from the report's entries
    (objects with .group, .corpus, .model and .results, the stored results over seeds). A run
    without a finite loss or without its x is left out."""
    curves: dict[tuple[str, str], ScalingCurve] = {}
    for entry in entries:
        axis = scaling.get(entry.group)
        if axis is None:
            continue
        point = ScalingPoint(
            model=entry.model,
            parameters=_mean([r.get("non_embedding_parameters") for r in entry.results]),
            data=_mean([r["train"].get("text_tokens") for r in entry.results]),
            tokens=float(np.mean([r["train"]["tokens"] for r in entry.results])),
            loss=_mean([nats_per_token(r) for r in entry.results]),
        )
        curve = curves.setdefault((entry.group, entry.corpus),
                                  ScalingCurve(axis, entry.group, entry.corpus, entry.results[0]["budget"], []))
        if point.loss is not None and point.x(axis) is not None:
            curve.points.append(point)
    for curve in curves.values():
        curve.points.sort(key=lambda p: p.x(curve.axis))
        distinct = len(set(curve.x))
        if distinct >= min_points(True):
            curve.fit = fit_power_law(curve.x, curve.loss, irreducible=True)
        if distinct >= min_points(False):
            curve.pure = fit_power_law(curve.x, curve.loss, irreducible=False)
    return list(curves.values())
