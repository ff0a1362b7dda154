"""The model families by the names the command line and benchmark configs use, and their settings.

One mapping from `bigram trigram ngram mlp lstm gpt bert` to classes, shared by `langmodels train`
and `langmodels bench`. A benchmark config may also name any other family as `package.module:Class`
(a LanguageModel subclass, from an installed package or a config's plugins folder: plugins.py): a
new family joins the harness by implementing the contract.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

from .base import LanguageModel
from .errors import ConfigError
from .ngram import BigramLM, NGramLM, TrigramLM
from .options import NEURAL, check_settings
from .plugins import import_model_class

# The neural classes are imported when named, so commands that do not need torch start quickly.
MODELS: dict[str, type[LanguageModel] | str] = {
    "bigram": BigramLM,
    "trigram": TrigramLM,
    "ngram": NGramLM,
    "mlp": "langmodels.neural.mlp:MLPLM",
    "lstm": "langmodels.neural.lstm:LSTMLM",
    "gpt": "langmodels.neural.gpt:GPTLM",
    "bert": "langmodels.neural.bert:MaskedLM",
    "hf": "langmodels.hf:HFCausalLM",  # a published causal model, e.g. settings = { model = "gpt2" }
    "hf-masked": "langmodels.hf:HFMaskedLM",
}
BUDGET_KEYS = ("max_steps", "max_tokens", "max_seconds")


def model_class_named(name: str, plugins: tuple = ()) -> type[LanguageModel]:
    """The class of a family name, or of `package.module:Class` from an installed package or one
    of the `plugins` folders (plugins.py); ConfigError for anything else."""
    entry = MODELS.get(name)
    if entry is None and ":" not in name:
        raise ConfigError(f"unknown model {name!r}; models: {', '.join(MODELS)} (or package.module:Class)")
    if isinstance(entry, str):  # one of ours, imported when named
        module_name, _, class_name = entry.partition(":")
        return getattr(importlib.import_module(module_name), class_name)
    return entry or import_model_class(name, plugins)


def model_parameters(model_class: type[LanguageModel]) -> dict[str, inspect.Parameter]:
    """The keyword arguments of a model's constructor: what --set and a config's settings may
    name (a neural model's are the fields of its config dataclass)."""
    config = getattr(model_class, "Config", None)
    if config is not None and dataclasses.is_dataclass(config):
        return {
            field.name: inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default)
            for field in dataclasses.fields(config)
        }
    return {
        name: parameter
        for name, parameter in inspect.signature(model_class.__init__).parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }


def takes_budget(model_class: type[LanguageModel]) -> bool:
    """True when the family's fit, or one it extends, names training budgets (it trains until one
    is spent); False for families whose fit is one pass (n-gram counting), which take no budget."""
    fits = [klass.fit for klass in model_class.__mro__ if "fit" in vars(klass)]
    return any(key in inspect.signature(fit).parameters for fit in fits for key in BUDGET_KEYS)


def build_model(model_class: type[LanguageModel], params: dict) -> LanguageModel:
    """An unfitted model with its settings' types and ranges checked (options.py's tables) before
    any reading or training. (Whether a neural model fits in memory is neural/memory.py's check:
    the command line's train and fit make it for one model, a benchmark for all its runs at once.)"""
    try:
        model = model_class(**params)
    except TypeError as error:  # a keyword the constructor does not take
        raise ConfigError(f"{model_class.__name__}: {error}") from None
    if isinstance(model, NGramLM):
        model.make_smoothing()  # checks order, smoothing name and its option
        if model.level is not None:
            model.make_tokenizer(None)  # and a level given (word, char or bpe), before any reading
    elif dataclasses.is_dataclass(getattr(model, "config", None)) and hasattr(model.config, "check"):
        model.config.check(machine=True)  # a neural model's settings
    elif callable(getattr(model, "check_params", None)):
        model.check_params()  # a Hugging Face model's settings (hf.py, by options.py's tables), before it is loaded
    else:
        # A family of its own (a plugin): the settings it shares with the neural families by name
        # (lr, batch_size, seed, ...) keep their ranges.
        check_settings({key: value for key, value in params.items() if value is not None}, NEURAL)
    return model
