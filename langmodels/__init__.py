"""langmodels: the history of language modelling behind one interface."""

__version__ = "0.1.0"

from .base import LangmodelsWarning, LanguageModel, load
from .mixture import InterpolatedLM
from .ngram import ArpaLM, BigramLM, NGramLM, TrigramLM

# The neural family needs torch, which takes a while to import: load it on first use (PEP 562).
NEURAL = {"MLPLM": "mlp", "LSTMLM": "lstm", "GPTLM": "gpt", "MaskedLM": "bert"}
# Hugging Face models: transformers (an optional extra) is imported only when one is loaded.
HF = ("HFCausalLM", "HFMaskedLM")


def __getattr__(name):
    if name in NEURAL:
        import importlib

        return getattr(importlib.import_module(f".neural.{NEURAL[name]}", __name__), name)
    if name in HF:
        import importlib

        return getattr(importlib.import_module(".hf", __name__), name)
    raise AttributeError(f"module 'langmodels' has no attribute {name!r}")


__all__ = [
    "GPTLM",
    "LSTMLM",
    "MLPLM",
    "ArpaLM",
    "BigramLM",
    "HFCausalLM",
    "HFMaskedLM",
    "InterpolatedLM",
    "LangmodelsWarning",
    "LanguageModel",
    "MaskedLM",
    "NGramLM",
    "TrigramLM",
    "__version__",
    "load",
]
