"""The n-gram family: counting, smoothing estimators, back-off tables, ARPA in/out, graph view."""

from .model import BigramLM, NGramLM, TrigramLM
from .smoothing import SMOOTHINGS

__all__ = ["SMOOTHINGS", "BigramLM", "NGramLM", "TrigramLM"]
