"""The n-gram family: counting, smoothing estimators, back-off tables, ARPA in/out, graph view."""

from .arpa import write_arpa
from .model import ArpaLM, BigramLM, NGramLM, TrigramLM, read_arpa
from .smoothing import SMOOTHINGS

__all__ = ["SMOOTHINGS", "ArpaLM", "BigramLM", "NGramLM", "TrigramLM", "read_arpa", "write_arpa"]
