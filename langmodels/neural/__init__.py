"""The neural family: one shared core and trainer, and a file per model."""

from .bert import MaskedLM
from .core import Embeddings, NeuralConfig, NeuralLM
from .gpt import GPTLM
from .lstm import LSTMLM
from .mlp import MLPLM

__all__ = ["GPTLM", "LSTMLM", "MLPLM", "Embeddings", "MaskedLM", "NeuralConfig", "NeuralLM"]
