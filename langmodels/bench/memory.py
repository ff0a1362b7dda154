"""Will each run of a benchmark fit in memory? Checked before anything is trained, so a benchmark
with a model too large for the machine stops at once with one line, instead of swapping for hours
or being killed half-way through a sweep. The estimate is neural/memory.py's; here its vocabulary
is bounded from each run's corpus: its distinct characters or words plus the special tokens, or a
BPE tokenizer's bpe_vocab_size.
"""

from __future__ import annotations

from ..corpora import split_level, split_text
from ..errors import ConfigError
from ..families import build_model
from ..tokenizers import Vocabulary


def vocabulary_bound(model, train) -> int:
    """At most how many token types the model's tokenizer can give this training text."""
    kind = getattr(model.config, "tokenizer", "auto")
    kind = split_level(train, "word") if kind == "auto" else kind
    if kind == "bpe":
        return model.config.bpe_vocab_size + len(Vocabulary.SPECIALS)
    text = split_text(train)
    types = set(text) if kind == "char" else set(text.split())
    return len(types) + len(Vocabulary.SPECIALS)


def check_memory(runs, available: int | None = None) -> None:
    """ConfigError naming the first run whose estimate exceeds the available memory (and how many
    others would not fit either), before anything is trained or written."""
    from ..neural.memory import GIB, available_bytes, estimate  # torch, only when a benchmark runs

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
        f"run {run.spec.run_id} would need {needed.explained()}, more than the {available / GIB:,.1f} GiB available "
        f"(MemAvailable){others}: make n_layer, n_embd, batch_size or context smaller")
