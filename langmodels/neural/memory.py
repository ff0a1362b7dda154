"""Will a neural model fit in memory? An estimate made from its settings before anything is built,
so a model too large for the machine is refused at once in one line (`check_fits_memory`)
instead of dying in the allocator or swapping for hours.

Training a neural model holds, in float32 (4 bytes a value):

    state        P x 4 x 4 bytes                  the weights, their gradients and Adam's two
                                                  moment estimates (Kingma & Ba 2015, Algorithm 1)
    activations  B T L (66 C + 9 H T) bytes       what backward keeps of each of the L layers
    output       3 x B T V x 4 bytes              logits, their log-softmax and its gradient

for B sequences of T tokens (batch_size x context), width C (n_embd, or an LSTM's hidden size if
larger), H heads and a vocabulary of V. The activation constants are Korthikanti et al. (2022,
sec. 4.1) moved to float32: a transformer layer keeps 34 s b h + 5 a s^2 b bytes with 16-bit values
and 1-byte dropout masks. Of the 34 bytes per token and unit, 2 are masks (after attention and after
the MLP) and 32 are sixteen 2-byte values (attention 5, MLP 9, the two LayerNorms' inputs 2), so
float32 gives 16 x 4 + 2 = 66; the 5 a s^2 b are the softmax (2), its dropout mask (1) and the
dropped weights (2), hence 4 + 1 + 4 = 9. Recurrent and feed-forward families keep fewer values per
unit than a transformer layer, so for them the same formula errs on the high side.

Loading a checkpoint to score with it holds the weights twice (the file's bytes and the module:
P x 4 x 2) and one layer's working values at a time, B T (16 C + 4 H T) bytes (the MLP's 4C-wide
hidden values and the attention scores, float32), plus the scores of at most SCORE_LOGITS tokens x
vocabulary entries that scoring holds at once (core.py).

P is counted exactly, by building the family's own module on torch's meta device (shapes without
storage: a model of a trillion parameters costs nothing to count). V is the tokenizer's vocabulary
when it is known, else a lower bound (the five special tokens, or bpe_vocab_size). The estimate is
compared with the memory free on the device the model would use: the GPU's free memory
(torch.cuda.mem_get_info), or on a CPU what the kernel says is available (MemAvailable in
/proc/meminfo); where that cannot be read, nothing is checked.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..tokenizers import Vocabulary

BYTES_PER_VALUE = 4  # float32
STATE_COPIES = 4  # weights, gradients, Adam's first and second moments
LOADED_COPIES = 2  # the checkpoint file's bytes and the module's weights
LAYER_BYTES_PER_UNIT = 66  # per token, per unit of width, per layer (see above)
ATTENTION_BYTES_PER_SCORE = 9  # per head, query and key
SCORING_BYTES_PER_UNIT = 16  # one layer's working values per token and unit when scoring
SCORING_BYTES_PER_SCORE = 4
OUTPUT_COPIES = 3  # logits, log-softmax, gradient
SCORE_LOGITS = 1 << 24  # scores held at once when scoring (64 MB of float32; core.py)
GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    state_bytes: int
    activation_bytes: int
    training: bool = True

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes

    def explained(self) -> str:
        """'about 12.3 GiB to train (1.2 G parameters x 16 bytes for ..., + 0.4 GiB of activations)'."""
        if self.training:
            state = f"x {STATE_COPIES * BYTES_PER_VALUE} bytes for weights, gradients and Adam's two moments"
        else:
            state = f"x {LOADED_COPIES * BYTES_PER_VALUE} bytes for the file's weights and the model's"
        return (f"about {self.total / GIB:,.1f} GiB to {'train' if self.training else 'load and score'} "
                f"({_count(self.parameters)} parameters {state}, + {self.activation_bytes / GIB:,.1f} GiB of "
                "activations)")


def _count(n: int) -> str:
    return f"{n / 1e9:,.1f} G" if n >= 1e9 else f"{n / 1e6:,.1f} M"


def device_of(config) -> torch.device:
    """The device a model of this config trains on: its `device` setting where it has one, else
    CUDA when present."""
    wanted = str(getattr(config, "device", "auto") or "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def available_bytes(device: torch.device | None = None) -> int | None:
    """Free memory on `device`: a GPU's (torch.cuda.mem_get_info), else MemAvailable from
    /proc/meminfo (proc(5)): memory a new allocation can have without swapping. None where it
    cannot be read."""
    if device is not None and device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError, ValueError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def vocabulary_floor(config) -> int:
    """The fewest token types a model of this config can have before its tokenizer has read a text."""
    if getattr(config, "tokenizer", None) == "bpe":
        return config.bpe_vocab_size + len(Vocabulary.SPECIALS)
    return len(Vocabulary.SPECIALS)


RANDOM_INITIALISERS = ("normal_", "uniform_", "trunc_normal_", "kaiming_normal_", "kaiming_uniform_",
                      "xavier_normal_", "xavier_uniform_", "orthogonal_", "sparse_")


@contextmanager
def initialisers_skipped():
    """torch.nn.init's random initialisers as no-ops inside the block, for a module built on the
    meta device: only its shapes are counted, and a random fill of a meta tensor goes through
    torch's compiler decompositions, whose first use imports torch._dynamo (1 to 3 s here; a
    1,024-layer model then took 5 s more). Put back when the block ends."""
    saved = {name: getattr(torch.nn.init, name) for name in RANDOM_INITIALISERS}
    for name in saved:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, initialiser in saved.items():
            setattr(torch.nn.init, name, initialiser)


def estimate(model, vocab_size: int, *, training: bool = True) -> MemoryEstimate | None:
    """The memory of a neural model (see above) to train, or to load and score; None for a family
    without a torch module (the n-gram models count, they do not train)."""
    config = getattr(model, "config", None)
    if not hasattr(model, "build_module") or config is None:
        return None
    with torch.device("meta"), initialisers_skipped():  # shapes only: nothing is allocated
        module = model.build_module(vocab_size)
    parameters = sum(p.numel() for p in module.parameters())
    context = getattr(config, "context", 1)
    tokens = getattr(config, "batch_size", 1) * context  # B T
    width = max(getattr(config, "n_embd", 0), getattr(config, "hidden", 0))
    heads = getattr(config, "n_head", 0)
    if training:
        per_layer = LAYER_BYTES_PER_UNIT * width + ATTENTION_BYTES_PER_SCORE * heads * context
        activations = tokens * getattr(config, "n_layer", 1) * per_layer
        activations += OUTPUT_COPIES * tokens * vocab_size * BYTES_PER_VALUE
        return MemoryEstimate(parameters, parameters * STATE_COPIES * BYTES_PER_VALUE, activations)
    activations = tokens * (SCORING_BYTES_PER_UNIT * width + SCORING_BYTES_PER_SCORE * heads * context)
    activations += min(tokens * vocab_size, SCORE_LOGITS) * BYTES_PER_VALUE
    return MemoryEstimate(parameters, parameters * LOADED_COPIES * BYTES_PER_VALUE, activations, training=False)


def check_fits_memory(model, vocab_size: int | None = None, *, training: bool = True,
                      available: int | None = None) -> MemoryEstimate | None:
    """ConfigError when `model` (a NeuralLM whose settings are checked; unfitted is fine) would need
    more memory than is free on its device, to train (`training`) or to load and score; call it
    before building the module. vocab_size: the tokenizer's, once known (default: the least the
    settings allow, so the check is a lower bound). Returns the estimate (None: nothing to check)."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    known = vocab_size is not None
    vocab_size = vocab_size if known else vocabulary_floor(config)
    needed = estimate(model, vocab_size, training=training)
    device = device_of(config)
    available = available_bytes(device) if available is None else available
    if needed is None or available is None or needed.total <= available:
        return needed
    where = "GPU memory free" if device.type == "cuda" else "memory available (MemAvailable)"
    shape = ("n_layer", "n_embd", "hidden", "context", "batch_size")
    sizes = ", ".join(f"{name}={getattr(config, name)}" for name in shape if hasattr(config, name))
    vocabulary = f"{'' if known else 'at least '}{vocab_size:,} token types"
    raise ConfigError(f"{model.name} ({sizes}, {vocabulary}) would need {needed.explained()}, more than the "
                      f"{available / GIB:,.1f} GiB {where}: make {', '.join(shape)} smaller")
