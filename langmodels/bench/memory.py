"""Will each run fit in memory? An estimate made before anything is trained, so a benchmark with a
model too large for the machine stops at once with one line, instead of swapping for hours or
being killed half-way through a sweep.

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

P is counted exactly, by building the family's own module on torch's meta device (shapes without
storage: a model of a trillion parameters costs nothing to count). V is bounded from the corpus:
its distinct characters or words plus the special tokens, or a BPE tokenizer's bpe_vocab_size.
The estimate is compared with the memory the kernel says is available now (MemAvailable in
/proc/meminfo); where that cannot be read, nothing is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..corpora import split_level, split_text
from ..errors import ConfigError
from ..families import build_model
from ..tokenizers import Vocabulary

BYTES_PER_VALUE = 4  # float32
STATE_COPIES = 4  # weights, gradients, Adam's first and second moments
LAYER_BYTES_PER_UNIT = 66  # per token, per unit of width, per layer (see above)
ATTENTION_BYTES_PER_SCORE = 9  # per head, query and key
OUTPUT_COPIES = 3  # logits, log-softmax, gradient
GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    state_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (proc(5)): memory that can be given to a new process
    without swapping; None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def vocabulary_bound(model, train) -> int:
    """At most how many token types the model's tokenizer can give this training text."""
    kind = getattr(model.config, "tokenizer", "auto")
    kind = split_level(train, "word") if kind == "auto" else kind
    if kind == "bpe":
        return model.config.bpe_vocab_size + len(Vocabulary.SPECIALS)
    text = split_text(train)
    types = set(text) if kind == "char" else set(text.split())
    return len(types) + len(Vocabulary.SPECIALS)


def estimate(model, vocab_size: int) -> MemoryEstimate | None:
    """The training memory of a neural model (see above); None for a family without a torch
    module (the n-gram models count, they do not train)."""
    config = getattr(model, "config", None)
    if not hasattr(model, "build_module") or config is None:
        return None
    import torch

    with torch.device("meta"):  # shapes only: nothing is allocated, however large the model
        module = model.build_module(vocab_size)
    parameters = sum(p.numel() for p in module.parameters())
    context = getattr(config, "context", 1)
    tokens = getattr(config, "batch_size", 1) * context  # B T
    width = max(getattr(config, "n_embd", 0), getattr(config, "hidden", 0))
    per_layer = LAYER_BYTES_PER_UNIT * width + ATTENTION_BYTES_PER_SCORE * getattr(config, "n_head", 0) * context
    activations = tokens * getattr(config, "n_layer", 1) * per_layer
    output = OUTPUT_COPIES * tokens * vocab_size * BYTES_PER_VALUE
    return MemoryEstimate(parameters, parameters * STATE_COPIES * BYTES_PER_VALUE, activations + output)


def _count(n: int) -> str:
    return f"{n / 1e9:,.1f} G" if n >= 1e9 else f"{n / 1e6:,.1f} M"


def check_memory(runs, available: int | None = None) -> None:
    """ConfigError naming the first run whose estimate exceeds the available memory (and how many
    others would not fit either), before anything is trained or written."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    bounds: dict[tuple, int] = {}
    too_big = []
    for run in runs:
        if getattr(run.spec, "components", None):
            continue  # a mixture trains no network: it weighs finished runs
        model = build_model(run.spec.model_class, run.spec.params)
        if not hasattr(model, "build_module") or getattr(model, "config", None) is None:
            continue  # counted, not trained (n-grams), or a family of its own without a config
        key = (run.spec.corpus, getattr(model.config, "tokenizer", None), getattr(model.config, "bpe_vocab_size", None))
        if key not in bounds:
            bounds[key] = vocabulary_bound(model, run.corpus.train)
        needed = estimate(model, bounds[key])
        if needed.total > available:
            too_big.append((run, needed))
    if not too_big:
        return
    run, needed = too_big[0]
    others = f"; {len(too_big) - 1} more run(s) would not fit either" if len(too_big) > 1 else ""
    raise ConfigError(
        f"run {run.spec.run_id} would need about {needed.total / GIB:,.1f} GiB to train "
        f"({_count(needed.parameters)} parameters x {STATE_COPIES * BYTES_PER_VALUE} bytes for weights, "
        f"gradients and Adam's two moments, + {needed.activation_bytes / GIB:,.1f} GiB of activations), more than "
        f"the {available / GIB:,.1f} GiB available (MemAvailable){others}: make n_layer, n_embd, batch_size or "
        "context smaller")
