"""Published figures the shipped corpora can be read against: shown as external rows, never ranked.

They apply only to a shipped corpus trained and tested whole; a config may add its own [[reference]].
"""

from __future__ import annotations

from dataclasses import replace

from .config import BenchConfig, Reference

BENGIO_SPLIT = ("test perplexity on their Brown split (800k train words, 16,383-word vocabulary): close to ours, "
                "not the same")
NANOGPT = "nanoGPT README (Karpathy)"

# corpus = the shipped corpus's name; figures as published (the report converts nats to bits).
PUBLISHED = [
    Reference("brown", "Kneser-Ney back-off, n = 5", "Bengio et al. 2003, Table 1", BENGIO_SPLIT,
              "word_perplexity", 321.0),
    Reference("brown", "neural probabilistic LM (MLP)", "Bengio et al. 2003, Table 1",
              "their best Brown test perplexity, same split as the row above", "word_perplexity", 252.0),
    Reference("shakespeare", "nanoGPT shakespeare_char, GPU", NANOGPT,
              "6 layers x 384, 10.7M parameters; validation loss on the same last 10 % of characters",
              "nats_per_char", 1.4697),
    Reference("shakespeare", "nanoGPT baby GPT, CPU", NANOGPT,
              "4 layers x 128, block 64, 2,000 iterations of 12 x 64 characters; same validation text",
              "nats_per_char", 1.88),
]


def references_for(config: BenchConfig) -> list[Reference]:
    """The published rows of every shipped corpus of the config that models are trained and tested
    on whole (a slice of valid changes neither), by the corpus's label; then the config's own rows."""
    whole = [spec for spec in config.corpora
             if spec.slices["train"] is None and spec.slices["test"] is None and not spec.finetune_only]
    rows = [replace(ref, corpus=spec.label) for spec in whole for ref in PUBLISHED if ref.corpus == spec.source]
    return rows + list(config.references)
