"""langmodels: the history of language modelling behind one interface."""

__version__ = "0.1.0"

from .base import LanguageModel, load
from .ngram import ArpaLM, BigramLM, NGramLM, TrigramLM

__all__ = ["ArpaLM", "BigramLM", "LanguageModel", "NGramLM", "TrigramLM", "__version__", "load"]
