"""What the harness measures of one model, through the contract alone (docs/design.md 2-3).

`train_and_test` fits a model and scores the test split: training time and tokens/s, every
normalisation of the test NLL, evaluation tokens/s, size and peak memory. `probe` asks a fitted
model (trained now or loaded from its checkpoint) for seeded samples and their novelty, its top-k
next tokens after fixed prompts, and its loss by position in the line. Nothing here knows a
family: a class that implements LanguageModel is measured like the shipped ones.
"""

from __future__ import annotations

import gc
import inspect
import io
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np

from .. import __version__
from ..corpora import split_text
from ..metrics import count_words
from .compute import training_flops

WATCH_CHARS = 50_000  # a watched test slice (watched_lines): the neural trainer's own cap on what it validates on

# ---- size and memory --------------------------------------------------------------------------


def model_size(model) -> tuple[int | None, str]:
    """The learned size in the family's own unit: a torch module's parameters, an n-gram model's
    stored n-grams, else the numbers in its saved state (safetensors or npz)."""
    module = getattr(model, "module_", None)
    if module is not None and hasattr(module, "parameters"):
        return int(sum(p.numel() for p in module.parameters())), "parameters"
    counts = getattr(model, "counts_", None)
    if counts is not None:
        return int(sum(len(order) for order in counts)), "n-grams"
    try:
        files = model.state_files()
    except NotImplementedError:
        return None, ""
    return sum(_stored_values(name, data) for name, data in files.items()), "stored values"


def non_embedding_parameters(model) -> int | None:
    """Kaplan et al. (2020, sec. 2.1)'s N: a torch module's parameters without the vocabulary and
    position embeddings (every nn.Embedding) or the output layer over the vocabulary (`output`,
    tied to the token embedding in the transformers); None for a model without a torch module."""
    module = getattr(model, "module_", None)
    if module is None or not hasattr(module, "parameters"):
        return None
    import torch

    vocabulary = [m for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    output = getattr(module, "output", None)
    if output is not None:
        vocabulary.append(output)
    excluded = {id(p) for m in vocabulary for p in m.parameters()}
    return int(sum(p.numel() for p in module.parameters() if id(p) not in excluded))


def _stored_values(name: str, data: bytes) -> int:
    if name.endswith(".safetensors"):  # 8-byte little-endian header length, then a JSON header
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
    if name.endswith(".npz"):
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return sum(arrays[key].size for key in arrays.files)
    return 0


def _status_bytes(field: str) -> int | None:
    """A size from /proc/self/status (Linux), in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak resident memory of this process while the block runs.

    On Linux, writing 5 to /proc/self/clear_refs resets the high-water mark VmHWM (proc(5)), so
    each run gets its own peak; elsewhere ru_maxrss is the peak of the whole process so far.
    """

    def __enter__(self) -> Self:
        gc.collect()
        self.method = "process peak so far (ru_maxrss)"
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
            self.method = "peak RSS during the run (VmHWM, reset at its start)"
        except OSError:
            pass
        self.start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_bytes("VmHWM") if self.method.startswith("peak RSS") else None
        if peak is None:
            scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        self.peak = peak

    def to_dict(self) -> dict:
        return {"peak_rss_bytes": self.peak, "start_rss_bytes": self.start, "method": self.method}


# ---- the environment --------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    """The checkout's commit, with '+modified' when tracked files differ from it; None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+modified" if dirty else "")


def environment() -> dict:
    """Where and with what a run was measured: stored with it, so the report shows the truth."""
    torch = sys.modules.get("torch")  # only when a family has loaded it
    return {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "langmodels": __version__,
        "commit": _commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---- training and testing ---------------------------------------------------------------------


def training_tokens(model, train) -> int:
    """Tokens the fit read: the trainer's count for a trained model (curve_), else one pass
    over the training text."""
    curve = getattr(model, "curve_", None)
    if curve:
        return int(curve[-1]["tokens"])
    return text_tokens(model, train)


def text_tokens(model, train) -> int:
    """The training text's size in the model's tokens (words + one end-of-line per line,
    characters, or the tokenizer's pieces): Kaplan et al.'s dataset size D."""
    level = getattr(model.tokenizer, "level", None)
    text = split_text(train)
    if level == "word":
        return count_words(text)
    if level == "char":
        return len(text)
    flat, lengths = model.tokenizer.encode_lines(list(train))
    return int(len(flat) + len(lengths))


def _recorded(caught) -> list[str]:
    """The notes a model gave (user warnings: a fallback discount, a prompt cut to the context)."""
    return sorted({" ".join(str(w.message).split()) for w in caught if issubclass(w.category, UserWarning)})


def _silent(stage: str) -> None:
    pass


def watched_lines(test):
    """What a corpus without a valid split of its own (its valid split is the test text) has its
    learning curves validated on: the first lines of the test split within WATCH_CHARS characters,
    watched only, never selected on (no early stopping, no best-weights restore)."""
    ends = np.cumsum([len(line) + 1 for line in test])  # characters up to each line's end
    return test[: max(int(np.searchsorted(ends, WATCH_CHARS, side="right")), 1)]


def _watches(model) -> bool:
    """The model's fit, or one it extends, can watch a valid text without selecting on it (the
    neural trainer's select_on_valid)."""
    fits = [klass.fit for klass in type(model).__mro__ if "fit" in vars(klass)]
    return any("select_on_valid" in inspect.signature(fit).parameters for fit in fits)


def train_and_test(model, train, valid, test, budget: dict, stage=_silent, *, count_train: bool = False,
                   watch=None, fit=None) -> dict:
    """Fit on train (valid for early stopping, or None), score test; the run's figures.
    stage(text) is told when scoring starts (the runner's progress display); count_train: also
    measure the training text in the model's tokens (a data-scaling point's D; a subword
    tokenizer encodes the whole text for it); fit: what fits the model, as model.fit is called
    (bench/launch.py's training on several processes), model.fit if None. watch: with no valid
    split, lines of the test text (watched_lines) the learning curve is validated on without early
    stopping (a launched run's processes are handed the same lines). A causal model's
    figures on the valid split (or the watched lines) are stored too: the compute-to-overtake
    section compares every curve with the n-grams on that same text."""
    held_out = valid if valid is not None else watch
    watched, options = valid, {}
    if valid is None and watch is not None and model.is_causal and _watches(model):
        watched, options = watch, {"select_on_valid": False}
    with warnings.catch_warnings(record=True) as caught, PeakMemory() as memory:
        warnings.simplefilter("always")
        start = time.perf_counter()
        (fit or model.fit)(train, watched, **budget, **options)
        fit_seconds = time.perf_counter() - start
        evaluation = held_out_evaluation = None
        if model.is_normalised:
            kind = "pseudo-likelihood, a pass per token" if not model.is_causal else "test split"
            stage(f"trained in {fit_seconds:.1f} s; scoring the {kind} ({len(test):,} lines)")
            evaluation = model.evaluate(test)
            if model.is_causal and held_out is not None:  # the trainer's pass after training, if it made one
                held_out_evaluation = getattr(model, "valid_evaluation_", None) or model.evaluate(held_out)
    tokens = training_tokens(model, train)
    size, unit = model_size(model)
    non_embedding = non_embedding_parameters(model)
    curve = [dict(point) for point in getattr(model, "curve_", None) or []]
    return {
        "model_name": model.name,
        "causal": bool(model.is_causal),
        "normalised": bool(model.is_normalised),
        "size": size,
        "size_unit": unit,
        "non_embedding_parameters": non_embedding,
        "train": {
            "seconds": fit_seconds,
            "tokens": tokens,
            "text_tokens": text_tokens(model, train) if count_train else None,
            "tokens_per_second": tokens / fit_seconds if fit_seconds > 0 else None,
            "steps": curve[-1]["step"] if curve else None,
            "early_stopping": valid is not None,
            "curve": curve,
        },
        "test": evaluation.to_dict() if evaluation is not None else None,
        "valid": held_out_evaluation.to_dict() if held_out_evaluation is not None else None,
        "compute": training_flops(model, train),
        "memory": memory.to_dict(),
        "notes": _recorded(caught),
        "environment": environment(),
    }


# ---- samples, autocomplete, loss by position --------------------------------------------------


def generated_lines(sample: str, prompt: str) -> list[str]:
    """The lines of a sample that hold generated text: lines wholly inside the prompt are left
    out, and so is a last line cut off mid-way (a sample over several lines that does not end
    with a newline). A one-line sample (a word model stops at its end of line) is its line."""
    pieces = sample.split("\n")
    if len(pieces) > 1 and not sample.endswith("\n"):
        pieces = pieces[:-1]
    lines, offset = [], 0
    for piece in pieces:
        end = offset + len(piece)
        if end > len(prompt) and piece.strip():
            lines.append(piece)
        offset = end + 1
    return lines


def novelty(lines: list[str], train_lines: set, test_lines: set) -> dict:
    """makemore's sort of samples: a line copied from train, else found in test, else new."""
    in_train = sum(line in train_lines for line in lines)
    in_test = sum(line not in train_lines and line in test_lines for line in lines)
    return {"lines": len(lines), "in_train": in_train, "in_test": in_test, "new": len(lines) - in_train - in_test}


def loss_by_position(model, lines: list[str], position_max: int) -> dict:
    """Mean NLL (nats) of a line's tokens at each position 0..position_max, each line scored on
    its own from start-of-line, so position i is a prediction from i tokens of context.

    Only lines with a token at position_max are scored, so every position averages the same lines
    and the curve shows the gain from context, not a change in which lines are counted.
    """
    flat, lengths = model.tokenizer.encode_lines(lines)
    lengths = np.asarray(lengths, dtype=np.int64)
    long_enough = lengths > position_max
    pieces = np.split(np.asarray(flat), np.cumsum(lengths)[:-1]) if len(lengths) else []
    kept = [piece for piece, keep in zip(pieces, long_enough) if keep]
    if not kept:  # no line that long (and NGramLM.score_lines fails on zero lines)
        return {"lines": 0, "count": [0] * (position_max + 1), "mean_nll": [None] * (position_max + 1)}
    flat = np.concatenate(kept)
    lengths = lengths[long_enough]
    scores = model.score_lines(np.asarray(flat), lengths, progress=False)  # len(flat) + len(lines)
    starts = np.repeat(np.cumsum(lengths + 1) - (lengths + 1), lengths + 1)
    position = np.arange(scores.size) - starts
    keep = (position < np.repeat(lengths, lengths + 1)) & (position <= position_max)
    count = np.bincount(position[keep], minlength=position_max + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.bincount(position[keep], weights=-scores[keep], minlength=position_max + 1)
        mean = total / count
    return {
        "lines": len(lengths),
        "count": count.tolist(),
        "mean_nll": [float(x) if math.isfinite(x) else None for x in mean],
    }


def no_probe(corpus) -> dict:
    """What a sweep run stores instead of a probe: its table cell and plot point need none."""
    return {"samples": [], "sample_tokens": None, "level": corpus.level, "autocomplete": [], "position_loss": None,
            "notes": [], "seconds": {}}


def probe(model, corpus, measure, stage=_silent) -> dict:
    """Samples with their novelty, the autocomplete rows and the loss by position of one model.

    corpus: the run's CorpusData (splits, prompts and lengths); measure: the config's Measure.
    """
    stage("sampling, autocomplete and loss by position")
    spec = corpus.spec
    level = corpus.level
    train_lines, test_lines = set(corpus.train), set(corpus.test)
    sample_tokens = spec.sample_tokens or corpus.default_sample_tokens
    timings = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        samples = []
        for prompt in spec.prompts:
            for temperature in measure.temperatures:
                for seed in measure.sample_seeds:
                    text = model.generate(prompt, sample_tokens, temperature=temperature, seed=seed)
                    lines = generated_lines(text, prompt)
                    samples.append({"prompt": prompt, "temperature": temperature, "seed": seed, "text": text,
                                    "novelty": novelty(lines, train_lines, test_lines)})
        timings["samples"] = time.perf_counter() - start
        start = time.perf_counter()
        complete = [{"prompt": prompt, "top": [[token, p] for token, p in model.top_next(prompt, k=measure.top_k)]}
                    for prompt in spec.complete]
        timings["autocomplete"] = time.perf_counter() - start
        position = None
        if model.is_causal and model.is_normalised:  # pseudo-likelihood terms are not left-to-right gains
            start = time.perf_counter()
            lines = [line for line in corpus.test[: spec.position_lines] if line.strip()]
            position = loss_by_position(model, lines, spec.position_max or corpus.default_position_max)
            timings["position"] = time.perf_counter() - start
    return {
        "samples": samples,
        "sample_tokens": sample_tokens,
        "level": level,
        "autocomplete": complete,
        "position_loss": position,
        "notes": _recorded(caught),
        "seconds": timings,
    }
