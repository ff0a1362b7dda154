"""InterpolatedLM: a linear mixture of language models that share one tokenizer.

    P(w | h) = sum_i lambda_i P_i(w | h),   lambda_i >= 0, sum_i lambda_i = 1

(Jelinek & Mercer 1980; the neural + n-gram mixture of Bengio et al. 2003, section 4). The
weights are fitted by expectation-maximisation on held-out text: each component scores the text
once, through its own batched scoring, giving a matrix of per-token log-probabilities
log p_i(t); then, in log space,

    E-step   r_ti = lambda_i p_i(t) / sum_j lambda_j p_j(t)
    M-step   lambda_i = mean_t r_ti

which never lowers the held-out log-likelihood (Dempster, Laird & Rubin 1977). A checkpoint is a
folder: the mixture's config.json (weights, component classes) and each component's own
checkpoint in a subfolder, every file checksummed by the mixture's config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np

from .base import TOKENIZER_FILE, LanguageModel, NotFittedError, note
from .checkpoint import CONFIG_FILE, config_json
from .corpora import split_mode
from .errors import CheckpointError, ConfigError, LangmodelsError
from .options import shown


class InterpolatedLM(LanguageModel):
    """A weighted mixture of fitted (or to-be-fitted) causal, normalised models.

    models: the components, all with the same tokenizer (vocabulary and tokenisation).
    weights: the mixture weights until EM fits them, and EM's starting point (None: uniform).
    tol: EM stops when an iteration gains less than this in mean held-out log-likelihood (nats).
    max_iter: EM stops after this many iterations in any case.

    >>> mix = InterpolatedLM([lstm, kn5]).fit_weights(corpus.valid)
    >>> mix.weights_, mix.em_history_[-1]
    """

    def __init__(self, models: Sequence[LanguageModel] = (), weights: Sequence[float] | None = None, *,
                 tol: float = 1e-6, max_iter: int = 500):
        if isinstance(models, (str, bytes)) or not isinstance(models, Iterable):
            raise ConfigError(f"models must be a list of language models, got {shown(models)}")
        self.models = list(models)
        self.weights = weights
        self.tol = tol
        self.max_iter = max_iter
        self.tokenizer = None
        self.weights_: np.ndarray | None = None
        self.em_history_: list[float] = []
        self.component_logliks_: np.ndarray | None = None
        self._checked: tuple | None = None  # (models, tokenizers) the last component check passed

    @property
    def name(self) -> str:
        return "mixture of " + " + ".join(model.name for model in self.models)

    # ---- checks ----------------------------------------------------------------------------------

    def _check_models(self) -> None:
        """What can be known before fitting: at least one component, each a causal, normalised
        LanguageModel, and usable weights and EM settings."""
        if not self.models:
            raise ConfigError("a mixture needs at least one model")
        for i, model in enumerate(self.models, start=1):
            if not isinstance(model, LanguageModel):
                raise ConfigError(f"mixture component {i} is a {type(model).__name__}, not a LanguageModel")
            if not model.is_causal:
                raise ConfigError(
                    f"mixture component {i} ({model.name}) gives pseudo-likelihoods, not next-token "
                    "probabilities; a mixture needs causal models"
                )
            if not model.is_normalised:
                raise ConfigError(
                    f"mixture component {i} ({model.name}) gives unnormalised scores; a mixture needs probabilities"
                )
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or not self.tol >= 0:
            raise ConfigError(f"tol must be a number >= 0, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"max_iter must be a whole number >= 1, got {self.max_iter!r}")
        self._given_weights()

    def _given_weights(self) -> np.ndarray | None:
        """The `weights` argument as a distribution over the components (None if not given)."""
        if self.weights is None:
            return None
        try:
            weights = np.asarray(self.weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"weights must be numbers, got {self.weights!r}") from None
        if weights.shape != (len(self.models),):
            raise ConfigError(f"weights has {weights.size} entries for {len(self.models)} models")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
            raise ConfigError(f"weights must be finite, >= 0 and not all 0, got {list(self.weights)}")
        return weights / weights.sum()

    def check_components(self) -> None:
        """Raise a LangmodelsError unless every component is a fitted, causal, normalised model
        tokenizing exactly as the first does (their serialised tokenizers agree); the mixture's
        tokenizer is then theirs."""
        key = (tuple(map(id, self.models)), tuple(id(getattr(model, "tokenizer", None)) for model in self.models))
        if key == self._checked:
            return
        self._check_models()
        unfitted = [f"{i} ({m.name})" for i, m in enumerate(self.models, start=1) if m.tokenizer is None]
        if unfitted:
            raise NotFittedError(f"mixture component(s) {', '.join(unfitted)} not fitted: call fit() on the mixture")
        first = self.models[0]
        reference = tokenizer_signature(first.tokenizer)
        for i, model in enumerate(self.models[1:], start=2):
            if tokenizer_signature(model.tokenizer) != reference:
                raise ConfigError(
                    f"mixture components 1 ({first.name}, {describe_tokenizer(first.tokenizer)}) and {i} "
                    f"({model.name}, {describe_tokenizer(model.tokenizer)}) tokenize differently; "
                    "a mixture needs models trained with the same tokenizer settings on the same text"
                )
        self.tokenizer = first.tokenizer
        self._checked = key

    def _check_fitted(self):
        self.check_components()
        return super()._check_fitted()

    def mixture_weights(self) -> np.ndarray:
        """lambda_i: the weights EM fitted, else the ones given."""
        self.check_components()
        weights = self.weights_ if self.weights_ is not None else self._given_weights()
        if weights is None:
            raise NotFittedError(
                f"{self.name} has no weights yet: call fit_weights(held-out lines) or give weights="
            )
        return weights

    def _log_weights(self) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a weight of 0 is log 0 = -inf: that component drops out
            return np.log(self.mixture_weights())

    # ---- fitting ---------------------------------------------------------------------------------

    def fit(self, train, valid=None, **budget) -> InterpolatedLM:
        """Fit the components not fitted yet on `train` (with `valid` for those that stop early on
        it, and the budget), then the weights by EM on `valid`."""
        if valid is None:
            raise LangmodelsError(
                "a mixture fits its weights by EM on held-out text: pass valid= (e.g. the corpus' valid split)"
            )
        self._check_models()
        for model in self.models:
            if model.tokenizer is None:
                model.fit(train, valid, **budget)
        return self.fit_weights(valid)

    def component_logprobs(self, lines, *, mode: str | None = None) -> np.ndarray:
        """log p_i(t) of every token t of `lines` under every component i, shape (T, K), each
        component scoring the whole text once in the evaluation mode of the split (or `mode`),
        so the tokens line up with what `evaluate` scores."""
        tokenizer = self._check_fitted()
        if isinstance(lines, str):
            raise LangmodelsError("give a list of lines or a Corpus split, not one string")
        mode = mode or split_mode(lines, "lines")
        if mode == "stream":
            ids = self._stream_ids(lines)
            columns = [model.score_stream(ids) for model in self.models]
        elif mode == "lines":
            flat, lengths = tokenizer.encode_lines(list(lines))
            columns = [model.line_logprobs(flat, lengths) for model in self.models]
        else:
            raise LangmodelsError(f"unknown evaluation mode {mode!r}; use 'lines' or 'stream'")
        return np.stack(columns, axis=1)

    def fit_weights(self, lines, *, mode: str | None = None) -> InterpolatedLM:
        """Fit the mixture weights by EM on held-out `lines` (a Split or a list of lines).

        Starts from `weights` (uniform if None), stops when an iteration raises the mean
        log-likelihood per token by less than `tol`, or after `max_iter` iterations. Records the
        mean held-out log-likelihood per token before and after each iteration in `em_history_`
        (nats; it never decreases), and each component's own in `component_logliks_`.
        """
        self.check_components()
        logp = self.component_logprobs(lines, mode=mode)  # (T, K)
        self.component_logliks_ = logp.mean(axis=0)
        self.weights_, self.em_history_ = fit_mixture_weights(
            logp, self._given_weights(), tol=self.tol, max_iter=self.max_iter
        )
        self.mode_ = mode or split_mode(lines, "lines")
        return self

    # ---- the primitives: each component's log-probabilities, mixed ---------------------------

    def _mix(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """log sum_i lambda_i p_i from per-component arrays of log p_i (all the same shape)."""
        log_weights = self._log_weights()
        stacked = np.stack([np.asarray(c, dtype=np.float64) for c in columns])  # (K, ...)
        return mix_logprobs(stacked, log_weights)

    def next_logprobs(self, context_ids) -> np.ndarray:
        self._check_fitted()
        return self._mix([model.next_logprobs(context_ids) for model in self.models])

    def next_logprobs_incremental(self, context_ids):
        """Drives every component's own incremental generator (GPT's key-value cache stays in use)."""
        self._check_fitted()
        streams = [model.next_logprobs_incremental(context_ids) for model in self.models]
        distributions = [next(stream) for stream in streams]
        while True:
            token = yield self._mix(distributions)
            distributions = [stream.send(token) for stream in streams]

    def score_ids(self, batch) -> list[np.ndarray]:
        self._check_fitted()
        per_model = [model.score_ids(batch) for model in self.models]
        return [self._mix(line_scores) for line_scores in zip(*per_model)]

    def score_lines(self, flat, lengths, *, progress=None) -> np.ndarray:
        self._check_fitted()
        return self._mix([model.score_lines(flat, lengths, progress=progress) for model in self.models])

    def score_stream(self, ids) -> np.ndarray:
        self._check_fitted()
        return self._mix([model.score_stream(ids) for model in self.models])

    def line_logprobs(self, flat, lengths, *, progress=None) -> np.ndarray:
        """Plain lines, each component ending a line its own way (a stream-trained character
        model with the newline it learned, the others with </s>): the mixture's end of a line is
        then sum_i lambda_i P_i(component i's end of line)."""
        self._check_fitted()
        return self._mix([model.line_logprobs(flat, lengths, progress=progress) for model in self.models])

    def line_end_id(self) -> int:
        """The components' end of line where they agree; </s> (any end of line) where they do not."""
        ends = {model.line_end_id() for model in self.models}
        return ends.pop() if len(ends) == 1 else self._check_fitted().vocab.eos_id

    # ---- checkpoints: the mixture's config and a subfolder per component ---------------------

    def get_params(self) -> dict:
        return {"models": self.models, "weights": self.weights, "tol": self.tol, "max_iter": self.max_iter}

    def fitted_facts(self) -> dict:
        return {
            "weights": None if self.weights_ is None else [float(w) for w in self.weights_],
            "em_history": [float(x) for x in self.em_history_],
            "component_logliks": None if self.component_logliks_ is None else self.component_logliks_.tolist(),
            "mode": getattr(self, "mode_", None),
            "components": [
                {"class": type(model).__name__, "name": model.name, "folder": component_folder(i)}
                for i, model in enumerate(self.models)
            ],
        }

    def state_files(self) -> dict[str, bytes]:
        """Each component's whole checkpoint, config.json included, in a subfolder of its own;
        the mixture's manifest.json then checksums every file below it."""
        files = {}
        for i, model in enumerate(self.models):
            config, own = model.checkpoint_contents()
            own[CONFIG_FILE] = config_json(config)
            files.update({f"{component_folder(i)}/{name}": data for name, data in own.items()})
        return files

    def checkpoint_contents(self, extra_files: dict[str, bytes] | None = None) -> tuple[dict, dict[str, bytes]]:
        self._log_weights()  # a mixture without weights is not worth saving
        config, files = super().checkpoint_contents(extra_files)
        # The components are stored as files, not as constructor arguments.
        config["params"] = {"weights": None if self.weights is None else [float(w) for w in self.weights],
                            "tol": self.tol, "max_iter": self.max_iter}
        return config, files

    def restore_state(self, files: dict[str, bytes], fitted: dict) -> None:
        """Rebuild each component from its subfolder's files (already checksummed by `load`)."""
        components = fitted.get("components")
        if not isinstance(components, list) or not components:
            raise CheckpointError("the mixture's config.json lists no components")
        models = []
        for entry in components:
            folder = entry.get("folder") if isinstance(entry, dict) else None
            prefix = f"{folder}/"
            own = {name[len(prefix):]: data for name, data in files.items() if name.startswith(prefix)}
            if not folder or CONFIG_FILE not in own:
                raise CheckpointError(f"mixture component folder {folder!r} is missing from the checkpoint")
            models.append(LanguageModel.from_checkpoint(json.loads(own.pop(CONFIG_FILE)), own, where=folder))
        saved_tokenizer = self.tokenizer
        self.models = models
        self.tokenizer = None
        self.check_components()
        if tokenizer_signature(saved_tokenizer) != tokenizer_signature(self.tokenizer):
            raise CheckpointError(f"the mixture's {TOKENIZER_FILE} differs from its components' tokenizer")
        weights = fitted.get("weights")
        self.weights_ = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights_ is not None and self.weights_.shape != (len(models),):
            raise CheckpointError(f"the mixture has {self.weights_.size} weights for {len(models)} components")
        self.em_history_ = list(fitted.get("em_history") or [])
        logliks = fitted.get("component_logliks")
        self.component_logliks_ = None if logliks is None else np.asarray(logliks, dtype=np.float64)
        self.mode_ = fitted.get("mode")


def component_folder(index: int) -> str:
    return f"component-{index}"


def tokenizer_signature(tokenizer) -> str:
    """The tokenizer's serialised form: equal exactly when two tokenizers map text to the same ids."""
    return json.dumps(tokenizer.to_dict(), sort_keys=True)


def describe_tokenizer(tokenizer) -> str:
    """'word tokenizer, 14,118 tokens': enough to see why two tokenizers differ."""
    return f"{tokenizer.kind} tokenizer, {len(tokenizer.vocab):,} tokens"


# ---- the arithmetic ---------------------------------------------------------------------------


def mix_logprobs(logp: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """log sum_i exp(log lambda_i + log p_i) over the first axis of logp (K, ...), computed as a
    logsumexp so tiny probabilities do not underflow."""
    joint = logp + log_weights.reshape((-1,) + (1,) * (logp.ndim - 1))
    top = np.max(joint, axis=0)
    safe_top = np.where(np.isfinite(top), top, 0.0)  # all -inf: the sum is 0, its log -inf
    with np.errstate(divide="ignore"):
        return safe_top + np.log(np.sum(np.exp(joint - safe_top), axis=0))


def fit_mixture_weights(logp: np.ndarray, start: np.ndarray | None = None, *, tol: float, max_iter: int
                        ) -> tuple[np.ndarray, list[float]]:
    """EM for the weights of a K-component mixture from per-token log-probabilities logp (T, K),
    from `start` (uniform if None).

    Returns the weights and the mean log-likelihood per token at the start and after each
    iteration. E-step r_ti = lambda_i p_i(t) / sum_j lambda_j p_j(t); M-step lambda_i = mean_t
    r_ti (Jelinek & Mercer 1980; Bengio et al. 2003, section 4). EM cannot lower the likelihood;
    should rounding make the last step do so, that step is undone and EM stops. A token no
    component gives any probability says nothing about the weights: it is left out, with a note.
    """
    hopeless = ~np.any(np.isfinite(logp), axis=1)
    if hopeless.all():
        raise LangmodelsError("every held-out token has probability zero under every component")
    if hopeless.any():
        note(f"{int(hopeless.sum())} held-out tokens have probability zero under every component; EM leaves them out")
        logp = logp[~hopeless]
    k = logp.shape[1]
    weights = np.full(k, 1 / k) if start is None else np.asarray(start, dtype=np.float64)
    # Each row scaled by its largest probability, once: p_i(t) = exp(top_t) scaled_ti, scaled in [0, 1],
    # so every iteration is a matrix-vector product: log sum_i lambda_i p_i(t) = top_t + log(scaled_t . lambda).
    top = logp.max(axis=1)  # (T,), finite: no hopeless row is left
    scaled = np.exp(logp - top[:, None])  # (T, K)

    def mixed_probability(w: np.ndarray) -> tuple[np.ndarray, float]:
        """(scaled_t . w) per token, and the mean log-likelihood per token under weights w."""
        mixture = scaled @ w
        with np.errstate(divide="ignore"):
            return mixture, float(top.mean() + np.log(mixture).mean())

    mixture, likelihood = mixed_probability(weights)
    history = [likelihood]
    for _ in range(max_iter):
        # E-step and M-step in one: lambda_i' = mean_t lambda_i p_i(t) / sum_j lambda_j p_j(t)
        updated = weights * (scaled / mixture[:, None]).mean(axis=0)
        updated /= updated.sum()  # exactly a distribution despite rounding
        mixture_new, likelihood = mixed_probability(updated)
        if likelihood < history[-1]:
            break
        weights, mixture = updated, mixture_new
        history.append(likelihood)
        if likelihood - history[-2] < tol:
            break
    return weights, history

