"""A mixture row of the benchmark: finished runs of one corpus and seed, interpolated.

    P(w | h) = sum_i lambda_i P_i(w | h),   lambda_i >= 0, sum_i lambda_i = 1

(Jelinek & Mercer 1980; the neural + n-gram mixture of Bengio et al. 2003, section 4; the model is
langmodels.mixture.InterpolatedLM.) Each component scores the test split once
(`component_logprobs`: a (T, K) matrix of log p_i(t)), and the row's NLL is
-sum_t log sum_i lambda_i p_i(t), mixed from that matrix (`mix_logprobs`): the same figure
`InterpolatedLM.evaluate` gives, without scoring the text a second time.

The weights are fitted by EM on the corpus's valid split. Where the valid split is the test text
(Tiny Shakespeare, split as nanoGPT does), fitting them there would tune on the text being scored,
so they are cross-fitted in two folds, as in cross-validation: the test token stream is cut into
halves, EM fits weights on each half's rows of the matrix, and each half is mixed with the weights
fitted on the other. Every token is then scored with weights fitted without it, and the NLL sums
both halves. The samples and autocompletions of such a row use the mean of the two folds' weights.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..corpora import split_mode
from ..errors import LangmodelsError
from ..metrics import Evaluation
from ..mixture import InterpolatedLM, fit_mixture_weights, mix_logprobs
from .measure import PeakMemory, _recorded, _silent, environment, model_size

FOLDS = ("first half", "second half")


def log_weights(weights) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a weight of 0 drops its component: log 0 = -inf
        return np.log(np.asarray(weights, dtype=np.float64))


def cross_fitted(logp: np.ndarray, *, tol: float, max_iter: int) -> tuple[np.ndarray, list[dict]]:
    """2-fold cross-fitting of the weights over the rows of logp (T, K): the first half's tokens
    mixed with weights fitted by EM on the second half's, and the other way round. Returns the
    mixed log-probabilities (T,) and per fold: the half it mixes, the tokens in it, and the
    weights and EM history it was mixed with (fitted on the other half)."""
    T = len(logp)
    if T < 2:
        raise LangmodelsError(f"cross-fitting needs at least 2 test tokens, got {T}")
    halves = (slice(0, T // 2), slice(T // 2, T))
    fits = [fit_mixture_weights(logp[half], tol=tol, max_iter=max_iter) for half in halves]
    mixed = np.empty(T)
    folds = []
    for i, half in enumerate(halves):
        weights, history = fits[1 - i]  # fitted on the other half
        mixed[half] = mix_logprobs(logp[half].T, log_weights(weights))
        folds.append({"mixed": FOLDS[i], "fitted_on": FOLDS[1 - i], "tokens": half.stop - half.start,
                      "weights": weights.tolist(), "em_history": history})
    return mixed, folds


def mixed_evaluation(mixture: InterpolatedLM, test, logprobs: np.ndarray, seconds: float) -> Evaluation:
    """The Evaluation of mixed per-token log-probabilities of `test`, counted as
    LanguageModel.evaluate counts them (its tokens in the split's mode, words, characters, <unk>)."""
    mode = split_mode(test, "lines")
    targets = mixture._stream_ids(test) if mode == "stream" else mixture.tokenizer.encode_lines(list(test))[0]
    return mixture.evaluation_of(test, mode, targets, logprobs, seconds)


def mix_and_test(models: list, labels: list[str], valid, test, settings: dict, stage=_silent
                 ) -> tuple[dict, InterpolatedLM]:
    """Fit the weights of the fitted `models` (labelled as in the config) on `valid`, or by
    cross-fitting on `test` when valid is None, and score `test`: the run's figures, shaped as
    measure.train_and_test shapes a trained model's, with the weights under 'mixture'; and the
    mixture (with the weights its samples use)."""
    with warnings.catch_warnings(record=True) as caught, PeakMemory() as memory:
        warnings.simplefilter("always")
        mixture = InterpolatedLM(models, **settings)
        mixture.check_components()  # one tokenizer, causal, normalised: before any scoring
        em_seconds, em_tokens, folds, history = 0.0, 0, [], None
        if valid is not None:
            start = time.perf_counter()
            valid_logp = mixture.component_logprobs(valid)  # each component scores valid once, then EM
            mixture.weights_, history = fit_mixture_weights(valid_logp, tol=mixture.tol, max_iter=mixture.max_iter)
            em_seconds, em_tokens = time.perf_counter() - start, len(valid_logp)
        stage(f"scoring the test split ({len(test):,} lines) with each of {len(models)} components")
        start = time.perf_counter()
        logp = mixture.component_logprobs(test)  # (T, K): each component scores the test once
        score_seconds = time.perf_counter() - start
        if valid is None:
            start = time.perf_counter()
            mixed, folds = cross_fitted(logp, tol=mixture.tol, max_iter=mixture.max_iter)
            em_seconds, em_tokens = time.perf_counter() - start, len(logp)
            mixture.weights_ = np.mean([fold["weights"] for fold in folds], axis=0)
        else:
            start = time.perf_counter()
            mixed = mix_logprobs(logp.T, log_weights(mixture.weights_))
            score_seconds += time.perf_counter() - start
        evaluation = mixed_evaluation(mixture, test, mixed, score_seconds)
    sizes = [model_size(model) for model in models]
    iterations = sum(len(fold["em_history"]) - 1 for fold in folds) if folds else len(history) - 1
    with np.errstate(invalid="ignore"):
        component_nll = [-float(column.sum()) for column in logp.T]
    return {
        "model_name": mixture.name,
        "causal": True,
        "normalised": True,
        "size": None if any(size is None for size, _ in sizes) else sum(size for size, _ in sizes),
        "size_unit": " + ".join(dict.fromkeys(unit for _, unit in sizes)),
        "non_embedding_parameters": None,
        "train": {
            "seconds": em_seconds,  # EM, with the scoring of the valid split it needs: no component trains
            "tokens": em_tokens,  # the held-out tokens EM read (each fold's, summed)
            "text_tokens": None,
            "tokens_per_second": em_tokens / em_seconds if em_seconds > 0 else None,
            "steps": iterations,
            "early_stopping": False,
            "curve": [],
        },
        "test": evaluation.to_dict(),
        "memory": memory.to_dict(),
        "notes": _recorded(caught),
        "environment": environment(),
        "mixture": {
            "components": labels,
            "weights": mixture.weights_.tolist(),
            "fitted_on": "valid" if valid is not None else "cross-fitted",
            "valid_lines": len(valid) if valid is not None else None,
            "em_history": history,
            "folds": folds,
            "component_nll": [nll if np.isfinite(nll) else None for nll in component_nll],
        },
    }, mixture


def rebuild(models: list, mixture: dict, settings: dict) -> InterpolatedLM:
    """The mixture of a stored row, from its components' checkpoints and its stored weights (to
    probe it again when only its prompts or samples changed)."""
    rebuilt = InterpolatedLM(models, weights=mixture["weights"], **settings)
    rebuilt.check_components()
    return rebuilt
