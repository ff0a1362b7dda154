"""A fine-tuning job of the benchmark: a finished neural run trained further on another corpus.

The pretrained checkpoint's architecture, tokenizer and weights are the starting point
(`fit(train, valid, resume_from=model)`, neural/core.py): words of the new corpus that its
vocabulary lacks are read as <unk>. Perplexity on both corpora's test splits, before and after,
shows what the new text teaches and what the old one loses (the catastrophic forgetting of
McCloskey & Cohen 1989).
"""

from __future__ import annotations

import time
import warnings

from ..families import build_model
from .measure import PeakMemory, _recorded, _silent, environment, training_tokens


def finetune_and_test(pretrained, settings: dict, budget: dict, target, source_test, target_test,
                      stage=_silent) -> tuple[dict, object]:
    """Fine-tune a copy of the fitted `pretrained` model on `target` (a CorpusData: its train
    split, and its valid split for early stopping unless that is the test text) with the training
    `settings` and `budget`; score `source_test` and `target_test` before and after. Returns the
    job's figures and the fine-tuned model (the pretrained one is left as it was)."""
    with warnings.catch_warnings(record=True) as caught, PeakMemory() as memory:
        warnings.simplefilter("always")
        stage("scoring both test splits before fine-tuning")
        before = {"source": pretrained.evaluate(source_test, progress=False),
                  "target": pretrained.evaluate(target_test, progress=False)}
        model = build_model(type(pretrained), settings)
        stage("fine-tuning (" + ", ".join(f"{k}={v:g}" for k, v in budget.items()) + ")")
        start = time.perf_counter()
        model.fit(target.train, target.valid, resume_from=pretrained, **budget)
        seconds = time.perf_counter() - start
        stage(f"fine-tuned in {seconds:.1f} s; scoring both test splits after")
        after = {"source": model.evaluate(source_test, progress=False),
                 "target": model.evaluate(target_test, progress=False)}
    tokens = training_tokens(model, target.train)
    curve = [dict(point) for point in model.curve_]
    return {
        "model_name": model.name,
        "train": {
            "seconds": seconds,
            "tokens": tokens,
            "tokens_per_second": tokens / seconds if seconds > 0 else None,
            "steps": curve[-1]["step"] if curve else None,
            "early_stopping": target.valid is not None,
            "curve": curve,
        },
        "before": {split: evaluation.to_dict() for split, evaluation in before.items()},
        "after": {split: evaluation.to_dict() for split, evaluation in after.items()},
        # The kept vocabulary reads these target test tokens (each line's </s> included) as <unk>.
        "target_unk_share": before["target"].n_unk / before["target"].n_tokens if before["target"].n_tokens else None,
        "settings": model.get_params(),
        "memory": memory.to_dict(),
        "notes": _recorded(caught),
        "environment": environment(),
    }, model
