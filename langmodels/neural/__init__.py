"""The neural family: one shared core and trainer, and a file per model."""

from .core import Embeddings, NeuralConfig, NeuralLM

__all__ = ["Embeddings", "NeuralConfig", "NeuralLM"]
