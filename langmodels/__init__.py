"""langmodels: the history of language modelling behind one interface."""

__version__ = "0.1.0"

from .base import LanguageModel, load  # noqa: E402
from .ngram import ArpaLM, BigramLM, NGramLM, TrigramLM  # noqa: E402

__all__ = ["ArpaLM", "BigramLM", "LanguageModel", "NGramLM", "TrigramLM", "__version__", "load"]
