"""Published figures a corpus can be read against: shown as external rows, never ranked.

Rows of a shipped corpus apply when it is trained and tested whole. Rows of a standard benchmark
(PTB, WikiText-2) apply to any corpus whose test file is that benchmark's test file, recognised
by the sha256 of its bytes (langmodels.standard_corpora). A config may add its own [[reference]].
"""

from __future__ import annotations

from dataclasses import replace

from .. import corpora
from ..errors import LangmodelsError
from ..standard_corpora import identify_split
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

# Every figure below was read in its source before it was written here (Merity et al. 2017's own
# abstract: "57.3 on Penn Treebank and 65.8 on WikiText-2 ... 52.8 on Penn Treebank and 52.0 on
# WikiText-2" with the neural cache). Figures that could not be checked against their own source
# (Mikolov et al. 2011's KN-5, Zaremba et al. 2014's Table 1, GPT-2's Table 3, whose tables are
# images in the copies at hand) are left out rather than quoted from memory or from compilations.
AWD_LSTM = "Merity et al. 2017 (AWD-LSTM), abstract"
STANDARD_PUBLISHED = [
    Reference("ptb", "AWD-LSTM", AWD_LSTM, "3-layer weight-dropped LSTM, 24M parameters; test perplexity",
              "word_perplexity", 57.3),
    Reference("ptb", "AWD-LSTM + continuous cache pointer", AWD_LSTM,
              "the model above with Grave et al.'s neural cache at test time", "word_perplexity", 52.8),
    Reference("wikitext-2", "AWD-LSTM", AWD_LSTM, "33M parameters; test perplexity", "word_perplexity", 65.8),
    Reference("wikitext-2", "AWD-LSTM + continuous cache pointer", AWD_LSTM,
              "the model above with Grave et al.'s neural cache at test time", "word_perplexity", 52.0),
]


def standard_test_of(spec) -> str | None:
    """The benchmark ("ptb", "wikitext-2") whose test file is this corpus's test split, or None."""
    if spec.source in corpora.available():
        return None
    try:
        corpus = corpora.load(spec.source, level=spec.level)
    except LangmodelsError:
        return None  # the runner reports an unreadable corpus itself
    standard = identify_split(corpus.test)
    return standard.corpus if standard is not None and standard.split == "test" else None


def references_for(config: BenchConfig) -> list[Reference]:
    """The published rows of every corpus of the config that models are trained and tested on
    whole (a slice of valid changes neither), by the corpus's label; then the config's own rows."""
    whole = [spec for spec in config.corpora
             if spec.slices["train"] is None and spec.slices["test"] is None and not spec.finetune_only]
    rows = []
    for spec in whole:
        rows += [replace(ref, corpus=spec.label) for ref in PUBLISHED if ref.corpus == spec.source]
        standard = standard_test_of(spec)
        rows += [replace(ref, corpus=spec.label) for ref in STANDARD_PUBLISHED if ref.corpus == standard]
    return rows + list(config.references)
