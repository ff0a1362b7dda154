"""Seeing inside the models: transition graphs of n-gram models, attention maps of transformers,
the geometry of embeddings, and what temperature and truncation do to a next-token distribution.

Each function takes a model, returns the data it plots, and writes the figure (PNG or SVG by the
file's suffix) when given a path, so the command line and the benchmark report share them.
"""

from .attention_maps import attention_maps
from .embeddings import AnalogyQuestion, analogy_accuracy, embedding_projection, read_analogies
from .graphs import draw_transition_graph, draw_uniform_vs_counted, successor_graph
from .lookup import UnknownWordError, close_words
from .temperature import next_token_distributions, temperature_samples

__all__ = [
    "AnalogyQuestion",
    "UnknownWordError",
    "analogy_accuracy",
    "attention_maps",
    "close_words",
    "draw_transition_graph",
    "draw_uniform_vs_counted",
    "embedding_projection",
    "next_token_distributions",
    "read_analogies",
    "successor_graph",
    "temperature_samples",
]
