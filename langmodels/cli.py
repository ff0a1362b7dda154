"""The `langmodels` command (docs/design.md section 6): corpora, train, evaluate, generate, complete,
fill-mask and bench; mix and finetune; and the figures that look inside a model: graph, attention,
embeddings, temperature.

Every user mistake ends as one line on stderr, ``langmodels: error: <message>``, and exit code 2;
notes (a prompt token read as <unk>, a fallback discount) print as ``note: <message>``. Only bugs
produce tracebacks. The command line is stable: scripts and courses depend on it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import itertools
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from . import __version__, corpora
from .base import LangmodelsWarning, LanguageModel
from .checkpoint import CheckpointNote, is_checkpoint, tidy_folder, verify_checkpoint
from .errors import ConfigError, LangmodelsError
from .families import MODELS, build_model, model_class_named, model_parameters
from .ngram import NGramLM, read_arpa
from .ngram.smoothing import DiscountFallbackWarning
from .options import BUDGET, RUN, Option, shown
from .standard_corpora import identify_split
from .tokenizers import Vocabulary

PROG = "langmodels"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

# A neural model trained without --max-seconds gets this budget (with a note).
DEFAULT_NEURAL_SECONDS = 600.0
SAVE_SECONDS = 0.2  # kept from --max-seconds for writing the checkpoint (tens of MB at most) after training
MIN_FIT_SECONDS = 1e-3  # the budget fit gets when reading the corpus spent all of --max-seconds

NOTE_CATEGORIES = (LangmodelsWarning, DiscountFallbackWarning, corpora.CorpusNote, CheckpointNote)


class UsageError(LangmodelsError):
    """A command line argparse could not make sense of."""


# ---- reading --set key=value ----------------------------------------------------------------


def _whole_number(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--set {key}={shown(text)}: {key} must be a whole number") from None


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--set {key}={shown(text)}: {key} must be a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"--set {key}={shown(text)}: {key} must be a finite number")
    return value


def _numbers(key: str, text: str) -> float | list[float]:
    """One number, or several separated by commas (kneser-ney's D1,D2,D3)."""
    if "," in text:
        return [_number(key, part.strip()) for part in text.split(",")]
    return _number(key, text)


def _text(key: str, text: str) -> str:
    if not text:
        raise ConfigError(f"--set {key}=: {key} needs a value")
    return text


def _flag(key: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"--set {key}={shown(text)}: {key} must be true or false")


# How to read the value of each constructor keyword the n-gram family has; keywords of other
# families are read by the type of their default value (see _parser_for).
PARAMETER_READERS: dict[str, Callable[[str, str], object]] = {
    "order": _whole_number,
    "smoothing": _text,
    "k": _number,
    "discount": _numbers,
    "backoff": _number,
    "level": _text,
    "min_count": _whole_number,
    "context": _whole_number,  # a Hugging Face model's defaults to None (the model's own)
    "stride": _whole_number,
}
NONE_WORDS = ("none", "null")


def _parser_for(parameter: inspect.Parameter) -> Callable[[str, str], object]:
    if parameter.name in PARAMETER_READERS:
        return PARAMETER_READERS[parameter.name]
    default = parameter.default
    if isinstance(default, bool):
        return _flag
    if isinstance(default, int):
        return _whole_number
    if isinstance(default, float):
        return _number
    return _text


def parse_settings(model_name: str, model_class: type[LanguageModel], settings: list[str]) -> dict:
    """`--set key=value` strings -> constructor keywords, each value read by its parameter's type."""
    parameters = model_parameters(model_class)
    params: dict[str, object] = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigError(f"--set expects key=value, got {setting!r}")
        parameter = parameters.get(key)
        if parameter is None:
            raise ConfigError(f"unknown --set key {key!r} for {model_name}; keys: {', '.join(parameters)}")
        text = text.strip()
        if text.lower() in NONE_WORDS and parameter.default is None:
            params[key] = None
        else:
            params[key] = _parser_for(parameter)(key, text)
    return params


# ---- argparse types: refuse bad values before any work is done ---------------------------------


def option_type(option: Option, flag: str, **narrower):
    """An argparse type reading an option's text and checking it against its range in options.py;
    `narrower` replaces a bound where a command needs more (samples' --max-tokens >= 1)."""
    option = dataclasses.replace(option, name=flag, **narrower)

    def parse(text: str):
        try:
            return option.parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = flag  # argparse names the type in some messages
    return parse


def path_type(what: str):
    """An argparse type for a name or path: refused when empty (`--corpus ''` would read the
    current folder)."""
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        return text

    check.__name__ = what
    return check


temperature_type = option_type(RUN["temperature"], "temperature")
top_k_type = option_type(RUN["top_k"], "top-k")
top_p_type = option_type(RUN["top_p"], "top-p")
max_tokens_type = option_type(RUN["max_tokens"], "max-tokens")
seed_type = option_type(RUN["seed"], "seed")
num_type = option_type(RUN["num"], "num")
k_type = option_type(RUN["k"], "k")
max_seconds_type = option_type(BUDGET["max_seconds"], "max-seconds")
# Arguments that name a corpus, a checkpoint, a config or a folder to write: an empty one is
# refused (ArgumentParser.add_argument gives each this type).
PATH_ARGUMENTS = {"corpus": "--corpus", "out": "--out", "judge": "--judge", "checkpoint": "the checkpoint folder",
                  "checkpoints": "a checkpoint folder", "config": "the benchmark config", "file": "the text file"}


CHECKPOINT_HELP = ("a checkpoint folder (written by train, mix or finetune), an ARPA file (.arpa, .arpa.gz), "
                   "or hf:NAME_OR_PATH for a Hugging Face model")
ARPA_SUFFIXES = (".arpa", ".arpa.gz")


def is_arpa_path(name: str) -> bool:
    return str(name).lower().endswith(ARPA_SUFFIXES)


def load_model(name: str) -> LanguageModel:
    """What DIR names wherever a command reads a model: a checkpoint folder, an ARPA file (read
    strictly, as KenLM does) or hf:NAME_OR_PATH."""
    if is_arpa_path(name):
        return read_arpa(name)
    if Path(name).is_file():
        raise ConfigError(f"{name} is a file, not a checkpoint folder (an ARPA model's name ends in "
                          f"{' or '.join(ARPA_SUFFIXES)})")
    return LanguageModel.load(name)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake raises (one line, printed by main) instead of exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def add_argument(self, *names, **kwargs):
        dest = kwargs.get("dest") or names[0].lstrip("-").replace("-", "_")
        if dest in PATH_ARGUMENTS and "type" not in kwargs and kwargs.get("action") is None:
            kwargs["type"] = path_type(PATH_ARGUMENTS[dest])
        return super().add_argument(*names, **kwargs)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Train, score, sample and compare language models, from bigrams to GPT.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("corpora", help="the shipped corpora and their sizes, or how a path is read")
    listing.add_argument("corpus", nargs="?", metavar="NAME|PATH",
                         help="one corpus: the file behind each split and its lines, words and characters "
                              "(default: every shipped corpus)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    train = commands.add_parser(
        "train", help="fit a model on a corpus and save a checkpoint",
        description="Fit a model on a corpus's train split, score its valid split once (written to the "
                    "checkpoint's metrics) and save a checkpoint. A neural model trains until its first "
                    "budget is spent; --max-seconds bounds the whole command.",
    )
    train.add_argument("model", metavar="MODEL", choices=list(MODELS),
                       help=f"the model family, one of: {' '.join(MODELS)}")
    train.add_argument("--corpus", required=True, metavar="NAME|PATH",
                       help="a shipped corpus (see 'langmodels corpora') or a UTF-8 file or folder (required)")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="the checkpoint folder to write, replaced atomically if it holds one (required)")
    train.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
        help="a constructor keyword, e.g. --set order=4 --set smoothing=witten-bell (repeatable; "
             "default: none, the model's own defaults)",
    )
    train.add_argument("--max-seconds", type=max_seconds_type, metavar="S",
                       help="wall-clock budget of the whole command, reading, training, validation and saving "
                            "included (neural models; default: none, or "
                            f"{DEFAULT_NEURAL_SECONDS:.0f} s when no budget is given)")
    train.add_argument("--max-steps", type=option_type(BUDGET["max_steps"], "max-steps"),
                       metavar="N", help="stop after N optimiser steps (neural models; default: none)")
    train.add_argument("--max-tokens", type=option_type(BUDGET["max_tokens"], "max-tokens"),
                       metavar="N", help="stop after N training tokens (neural models; default: none)")
    train.add_argument("--checkpoint-every", metavar="N",
                       type=option_type(RUN["checkpoint_every"], "checkpoint-every", low=1),
                       help="also write the training state to --out every N steps (neural models; default: "
                            "only on Ctrl-C)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run whose training state is in --out (left there by Ctrl-C or "
                            "--checkpoint-every), with the same model, corpus and settings (default: start afresh)")
    train.add_argument("--seed", type=seed_type, metavar="N",
                       help="random seed of the models that draw while training (default: the model's, 0)")
    train.add_argument("--quiet", action="store_true", help="no progress bars and no notes (default: shown)")

    evaluate = commands.add_parser(
        "evaluate", help="score a checkpoint on a corpus split",
        description="Score a checkpoint on a corpus split and print every normalisation of its NLL "
                    "(perplexity per token and per word, bits per char and per byte).",
    )
    evaluate.add_argument("checkpoint", metavar="DIR", help="the checkpoint folder (or ARPA file) to score")
    evaluate.add_argument("--corpus", required=True, metavar="NAME|PATH",
                          help="a shipped corpus or a UTF-8 file or folder, read at the model's level (required)")
    evaluate.add_argument("--split", default="test", choices=corpora.SPLIT_CHOICES,
                          help="the split to score (default: test)")
    evaluate.add_argument("--lines", type=option_type(RUN["lines"], "lines"),
                          metavar="N", help="score only the first N lines of the split, for a quick look "
                                            "(default: all of it)")
    evaluate.add_argument("--json", action="store_true",
                          help="print one JSON object instead of a table (default: table)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar and no notes (default: shown)")

    generate = commands.add_parser("generate", help="sample text from a checkpoint")
    generate.add_argument("checkpoint", metavar="DIR", help=CHECKPOINT_HELP)
    generate.add_argument("--prompt", default="", metavar="TEXT",
                          help="the text the samples continue (default: none, the start of a line)")
    generate.add_argument("--max-tokens", type=max_tokens_type, default=50, metavar="N",
                          help="tokens per sample at most; a word model's sample also ends at its end of line "
                               "(default 50)")
    generate.add_argument("--temperature", type=temperature_type, default=1.0, metavar="T",
                          help="divides the log-probabilities: below 1 sharper, above 1 flatter; 0 always takes "
                               "the most probable token (default 1.0)")
    generate.add_argument("--top-k", type=top_k_type, metavar="K",
                          help="sample among the K most probable tokens only (default: all)")
    generate.add_argument("--top-p", type=top_p_type, metavar="P",
                          help="sample among the fewest most probable tokens whose probability reaches P (nucleus "
                               "sampling; default: all)")
    generate.add_argument("--seed", type=seed_type, metavar="N",
                          help="sample i uses seed N+i, so runs repeat (default: none, random samples)")
    generate.add_argument("--num", type=num_type, default=1, metavar="N", help="how many samples (default 1)")

    score = commands.add_parser(
        "score", help="each token's log10 probability and OOV flag, line by line (KenLM query's layout)",
        description="Score every line of FILE (or of standard input, -) as a line of its own. Per line: each token "
                    "as word=ID N LOG10PROB, tab-separated (N: the n-gram length the prediction read, <s> and the "
                    "token included; for an n-gram model the longest n-gram found, as KenLM reports it), the "
                    "end of line (</s>, or the newline a character stream model learned), then 'Total: X OOV: N'; "
                    "after the last line, the perplexities with and without OOV tokens, as KenLM's summary.")
    score.add_argument("checkpoint", metavar="DIR", help=CHECKPOINT_HELP)
    score.add_argument("file", metavar="FILE|-",
                       help="a UTF-8 text file, one line per sentence; - reads standard input")
    score.add_argument("--json", action="store_true",
                       help="one JSON object per line instead: tokens, ids, log10, oov, ngram_length, total_log10 "
                            "(default: KenLM's text layout)")

    compare = commands.add_parser(
        "compare", help="score several checkpoints on one text and print one table",
        description="Evaluate each checkpoint on the same split, as `langmodels evaluate` does (each figure is "
                    "evaluate's), and print one row per checkpoint: word perplexity, bits per character, "
                    "perplexity per the model's own token, and the share of its tokens read as <unk>.")
    compare.add_argument("checkpoints", nargs="+", metavar="DIR", help="one or more checkpoint folders or ARPA files")
    compare.add_argument("--corpus", required=True, metavar="NAME|PATH",
                         help="a shipped corpus or a UTF-8 file/folder, read at each model's level")
    compare.add_argument("--split", default="test", choices=corpora.SPLIT_CHOICES,
                         help="the split to score (default test); all: every line of the corpus, in order")
    compare.add_argument("--json", action="store_true",
                         help="print a JSON list, one evaluate object per checkpoint (default: a table)")

    scored = commands.add_parser(
        "samples", help="score a checkpoint's samples: judge perplexity, distinct-n, self-BLEU, loops, Zipf, length",
        description="Draw seeded samples from the start of a line (as generate does) at each temperature and print "
                    "the figures of langmodels/sample_metrics.py: the samples' word perplexity under the judge, "
                    "distinct-1/2/3, self-BLEU-4, the share that ends in a loop, the Zipf coefficient and the "
                    "words per line.")
    scored.add_argument("checkpoint", metavar="DIR", help="the checkpoint whose samples are scored")
    scored.add_argument("--judge", required=True, metavar="DIR",
                        help="a causal, normalised checkpoint that scores the samples (DIR itself works too)")
    scored.add_argument("--num", type=num_type, default=20, metavar="N", help="samples per setting (default 20)")
    scored.add_argument("--temperature", type=temperature_type, nargs="+", default=[1.0], metavar="T",
                        help="one or more temperatures, a row each (default 1.0)")
    scored.add_argument("--top-p", type=top_p_type, metavar="P", help="nucleus sampling at every temperature "
                        "(default: none, the whole distribution)")
    scored.add_argument("--max-tokens", type=option_type(RUN["max_tokens"], "max-tokens", low=1),
                        metavar="N", help="tokens per sample at most (default 40 for a word model, 64 otherwise)")
    scored.add_argument("--seed", type=seed_type, default=0, metavar="S", help="sample i uses seed S+i (default 0)")
    scored.add_argument("--corpus", metavar="NAME|PATH", help="also score as many samples cut from this corpus's "
                        "test split, the human reference (default: none)")
    scored.add_argument("--json", action="store_true", help="print one JSON object, the samples included")

    complete = commands.add_parser("complete", help="the most probable next tokens after a text")
    complete.add_argument("checkpoint", metavar="DIR", help=CHECKPOINT_HELP)
    complete.add_argument("text", metavar="TEXT", help="the start of a line, read by the model's own tokenizer")
    complete.add_argument("-k", type=k_type, default=5, metavar="K", help="how many tokens (default 5)")

    fill = commands.add_parser("fill-mask", help="the most probable tokens for each [MASK] (bert models)")
    fill.add_argument("checkpoint", metavar="DIR", help=CHECKPOINT_HELP)
    fill.add_argument("text", metavar="TEXT", help="a line with one or more [MASK]")
    fill.add_argument("-k", type=k_type, default=5, metavar="K", help="candidates per mask (default 5)")

    mix = commands.add_parser("mix", help="interpolate checkpoints that share a tokenizer, weights fitted by EM")
    mix.add_argument("checkpoints", nargs="+", metavar="DIR", help="two or more checkpoint folders or ARPA files")
    mix.add_argument("--corpus", required=True, metavar="NAME|PATH", help="the weights are fitted on its valid split")
    mix.add_argument("--out", required=True, metavar="DIR", help="mixture checkpoint folder to write")

    finetune = commands.add_parser("finetune", help="continue training a neural checkpoint on another corpus")
    finetune.add_argument("checkpoint", metavar="DIR", help="the pretrained checkpoint (left as it is)")
    finetune.add_argument("--corpus", required=True, metavar="NAME|PATH", help="the new corpus: shipped, or a path")
    finetune.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder for the fine-tuned model")
    finetune.add_argument("--max-seconds", type=max_seconds_type, metavar="S",
                          help=f"training time budget in seconds (default {DEFAULT_NEURAL_SECONDS:.0f}, with a note)")
    finetune.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
        help="a training setting for the fine-tuning run, e.g. --set lr=3e-4 (repeatable; default: the "
             "pretrained model's own settings)",
    )

    bench = commands.add_parser("bench", help="run a benchmark config (corpora x models x budgets), write its report")
    bench.add_argument("config", metavar="CONFIG.toml", help="the benchmark config: corpora, models, budgets (TOML)")
    bench.add_argument("--out", required=True, metavar="DIR", help="report folder; finished runs are cached in it")
    bench.add_argument("--only", action="append", metavar="NAME",
                       help="run only this model, corpus or run id (repeatable; default: every run); the report "
                            "shows every finished run")
    bench.add_argument("--force", action="store_true", help="redo the chosen runs even when their results are cached")

    graph = commands.add_parser("graph", help="draw an n-gram model's transition graph around a word (.png or .svg)")
    graph.add_argument("checkpoint", metavar="DIR", help="an n-gram checkpoint folder or ARPA file")
    graph.add_argument("--word", required=True, metavar="WORD",
                       help="the start word (for a trigram also two words, e.g. 'of the')")
    graph.add_argument("--depth", type=option_type(RUN["depth"], "depth"),
                       default=2, metavar="N", help="levels of successors (default 2)")
    graph.add_argument("-k", type=k_type, default=5, metavar="K", help="successors per node (default 5)")
    graph.add_argument("--out", required=True, metavar="FILE", help="the figure to write: .png or .svg")
    graph.add_argument("--uniform", action="store_true",
                       help="draw the uniform graph (every seen successor equally likely) beside the counted one")

    attention = commands.add_parser("attention", help="heat maps of every layer and head's attention (gpt, bert)")
    attention.add_argument("checkpoint", metavar="DIR", help="a gpt or bert checkpoint folder")
    attention.add_argument("text", metavar="TEXT",
                           help="the text whose attention is drawn, read by the model's tokenizer")
    attention.add_argument("--out", required=True, metavar="FILE", help="the figure to write: .png or .svg")

    embeddings = commands.add_parser("embeddings", help="nearest words, analogies and a 2-D map of word embeddings")
    embeddings.add_argument("checkpoint", metavar="DIR", help="a neural checkpoint folder")
    embeddings.add_argument("--words", metavar="W1,W2,...",
                            help="words to place on a 2-D map (with --out) or list (default: none)")
    embeddings.add_argument("--nearest", metavar="WORD", help="the words closest to WORD (cosine; default: none)")
    embeddings.add_argument("--analogy", metavar="A,B,C", help="A is to B as C is to ? (3CosAdd; default: none)")
    embeddings.add_argument("-k", type=k_type, default=10, metavar="K", help="answers to show (default 10)")
    embeddings.add_argument("--analogies", nargs="?", const="", metavar="FILE",
                            help="analogy accuracy on the shipped question set, or on FILE ('a b c d' lines; "
                                 "default: not measured)")
    embeddings.add_argument("--out", metavar="FILE",
                            help="write the map of --words here: .png or .svg (default: none, coordinates printed)")
    embeddings.add_argument("--method", choices=("pca", "tsne"), default="pca", help="the 2-D projection (default pca)")
    embeddings.add_argument("--seed", type=option_type(RUN["projection seed"], "seed"), default=0, metavar="N",
                            help="seed of the projection (default 0)")

    temperature = commands.add_parser("temperature", help="the next-token distribution under temperature, top-k, top-p")
    temperature.add_argument("checkpoint", metavar="DIR", help=CHECKPOINT_HELP)
    temperature.add_argument("context", metavar="CONTEXT", help="the text before the next token ('' for a line start)")
    temperature.add_argument("--out", metavar="FILE",
                             help="the figure to write: .png or .svg (default: none, text only)")
    temperature.add_argument("--temperatures", default="0.5,1,2", metavar="T1,T2,...",
                             help="the temperatures to show, a panel each; 0 is greedy (default 0.5,1,2)")
    temperature.add_argument("--top-k", type=top_k_type, default=5, metavar="K", help="the top-k panel (default 5)")
    temperature.add_argument("--top-p", type=top_p_type, default=0.9, metavar="P", help="the top-p panel (default 0.9)")
    temperature.add_argument("--samples", type=option_type(RUN["samples"], "samples"),
                             default=0, metavar="N", help="samples to print at each temperature (default 0)")
    temperature.add_argument("--seed", type=seed_type, default=0, metavar="S",
                             help="sample i uses seed S+i (default 0)")
    temperature.add_argument("--max-tokens", type=max_tokens_type, default=30, metavar="N",
                             help="tokens per sample at most (default 30)")
    verify = commands.add_parser("verify",
                                 help="hash every byte of a checkpoint against its checksums (the deep check)")
    verify.add_argument("checkpoint", metavar="DIR",
                        help="the checkpoint folder to check (an ARPA file: read strictly)")
    export = commands.add_parser(
        "export", help="write a gpt checkpoint in Hugging Face's GPT-2 format, or a back-off n-gram as ARPA")
    export.add_argument("checkpoint", metavar="DIR", help="a gpt checkpoint folder (hf), or a word n-gram's (arpa)")
    export.add_argument("--format", required=True, choices=("hf", "arpa"),
                        help="hf: a folder transformers loads; arpa: an ARPA back-off file KenLM and SRILM read")
    export.add_argument("--out", required=True, metavar="OUT",
                        help="the folder to write (hf), or the .arpa file (arpa)")
    return parser


# ---- the commands -----------------------------------------------------------------------------


def _print_json(value) -> None:
    print(json.dumps(_json_safe(value), indent=2, allow_nan=False))


def _json_safe(value):
    """Strict JSON: an infinite or undefined float (perplexity with a zero probability) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def cmd_corpora(args) -> int:
    if args.corpus is not None:  # one corpus, shipped or a path: a user mistake is an error here
        return _show_corpus(corpora.load(args.corpus).describe(), args.json)
    described, failed = [], False
    for name in corpora.available():
        try:
            described.append(corpora.load(name).describe())
        except LangmodelsError as error:
            described.append({"name": name, "error": str(error)})
            failed = True
    if args.json:
        _print_json(described)
        return 1 if failed else 0
    header = f"{'name':<12} {'level':<5} {'mode':<6} {'split':<5} {'lines':>9} {'words':>10} {'chars':>11}"
    print(header)
    for entry in described:
        if "error" in entry:
            print(f"{entry['name']:<12} unavailable: {entry['error']}")
            continue
        for i, (split, size) in enumerate(entry["splits"].items()):
            label = (entry["name"], entry["level"], entry["mode"]) if i == 0 else ("", "", "")
            print(f"{label[0]:<12} {label[1]:<5} {label[2]:<6} {split:<5} "
                  f"{size['lines']:>9,} {size['words']:>10,} {size['chars']:>11,}")
    notes = [f"{entry['name']}: {entry['note']}" for entry in described if entry.get("note")]
    if notes:
        print()
        print("\n".join(notes))
    return 1 if failed else 0


def _show_corpus(entry: dict, as_json: bool) -> int:
    """`langmodels corpora NAME|PATH`: each split's file(s) and its lines, words and characters."""
    if as_json:
        _print_json(entry)
        return 0
    print(f"{entry['name']} ({entry['level']} level, {entry['mode']} mode)")
    print(f"{'split':<5} {'lines':>11} {'words':>13} {'chars':>14}  file")
    for split, size in entry["splits"].items():
        files = ", ".join(size.get("files", [])) or "-"
        print(f"{split:<5} {size['lines']:>11,} {size['words']:>13,} {size['chars']:>14,}  {files}")
    if entry.get("note"):
        print()
        print(entry["note"])
    return 0


def _check_out_folder(out: Path) -> None:
    """Refuse an --out that could not take a checkpoint before spending time on training (after
    putting back a checkpoint whose replacement a crash cut short, and removing dead writers'
    temporaries)."""
    tidy_folder(out.parent, out.name)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_checkpoint(out):
        raise ConfigError(f"--out {out} is not empty and not a langmodels checkpoint; refusing to overwrite it")


def _quiet(args) -> None:
    """--quiet: notes are not shown for the rest of the command (main's catch_warnings restores them)."""
    if args.quiet:
        for category in NOTE_CATEGORIES:
            warnings.simplefilter("ignore", category)


def _is_neural(model: LanguageModel) -> bool:
    """A NeuralLM (train's Trainer options apply), without importing torch for an n-gram model."""
    if isinstance(model, NGramLM):
        return False
    from .neural.core import NeuralLM

    return isinstance(model, NeuralLM)


def _holds_training_state(out: Path) -> bool:
    """--out holds a run's training state (neural/trainer.py's TRAINER_FILE), for --resume."""
    return (out / "trainer.json").is_file()


def cmd_train(args) -> int:
    started = time.perf_counter()  # --max-seconds counts from here: the command's imports are not in it
    _quiet(args)
    if _rank() not in (None, "0"):  # under torchrun, rank 0 alone says what the run reads and does
        for category in NOTE_CATEGORIES:
            warnings.simplefilter("ignore", category)
    model_class = model_class_named(args.model)
    params = parse_settings(args.model, model_class, args.settings)
    if args.seed is not None and "seed" in model_parameters(model_class):
        params["seed"] = args.seed
    model = build_model(model_class, params)  # settings checked before any reading
    neural = _is_neural(model)
    if neural:
        from .neural.memory import check_fits_memory

        check_fits_memory(model)  # before reading the corpus: at least the settings' own memory
    if not neural and (args.checkpoint_every is not None or args.resume):
        raise ConfigError(f"--checkpoint-every and --resume are for neural models, not {args.model}")
    if not neural and _rank() is not None:
        raise ConfigError(f"{args.model} trains in one process; torchrun runs the neural models only")
    out = Path(args.out)
    _check_out_folder(out)
    if args.resume and not _holds_training_state(out):
        raise ConfigError(f"--resume: {out} holds no training state (written on Ctrl-C or by --checkpoint-every)")
    # A level set for the model is the level the corpus is read at, so its splits' evaluation
    # mode (lines for words, stream for characters) matches what the model learns.
    # (An n-gram's level='bpe' is its unit, not the corpus's: the corpus keeps its own level.)
    level = params.get("level") if params.get("level") in corpora.LEVELS else None
    level = level or {"char": "char", "word": "word"}.get(params.get("tokenizer"))
    corpus = corpora.load(args.corpus, level=level)
    budget = {key: getattr(args, key) for key in ("max_seconds", "max_steps", "max_tokens")
              if getattr(args, key) is not None}
    progress = False if args.quiet else None
    if isinstance(model, NGramLM):
        model.fit(corpus.train, corpus.valid, **budget)
    else:
        if not budget:
            warnings.warn(f"no budget given: training for {DEFAULT_NEURAL_SECONDS:.0f} s", LangmodelsWarning)
            budget = {"max_seconds": DEFAULT_NEURAL_SECONDS}
        if "max_seconds" in budget:  # what is left of the command's budget, less the time to save;
            # if reading took all of it, what is left trains one step (the trainer's least)
            left = budget["max_seconds"] - (time.perf_counter() - started + SAVE_SECONDS)
            budget["max_seconds"] = max(left, MIN_FIT_SECONDS)
        select = True
        if corpus.valid_is_test:
            # Choosing on the split the model is scored on would tune on the test (docs/design.md 4).
            warnings.warn(f"{corpus.name}'s valid split is its test split: fixed budget, no early stopping",
                          LangmodelsWarning)
            select = False
        if neural:
            from .neural.distributed import processes

            # Under torchrun, one of several processes (docs/design.md 10): rank 0 alone validates,
            # writes and reports; the others end when training does.
            with processes(model.config.device) as world:
                try:
                    # Training state reaches --out only when asked for and on Ctrl-C: each write is
                    # the weights and AdamW's two moments, seconds of a short budget.
                    model.fit(corpus.train, corpus.valid, **budget, select_on_valid=select, checkpoint=out,
                              checkpoint_every=args.checkpoint_every or 0, resume=args.resume,
                              progress=progress if world.is_main else False)
                except KeyboardInterrupt:
                    if world.is_main and _holds_training_state(out):
                        warnings.warn(f"the training state is saved in {out}: the same command with --resume "
                                      "continues the run", LangmodelsWarning)
                    raise
            if not world.is_main:
                return 0
        else:
            model.fit(corpus.train, corpus.valid if select else None, **budget, progress=progress)
    fit_seconds = time.perf_counter() - started
    evaluation = getattr(model, "valid_evaluation_", None)  # a neural model's pass at the end of fit
    if not model.is_normalised:
        model.metrics_ = None
        scored = "no valid perplexity (unnormalised scores)"
    elif not model.is_causal:
        model.metrics_ = None
        scored = "valid pseudo-perplexity not computed (a pass per token: run `langmodels evaluate`)"
    else:
        evaluation = evaluation or model.evaluate(corpus.valid, progress=progress)
        model.metrics_ = evaluation.to_dict()
        scored = f"valid perplexity {evaluation.perplexity:.2f} ({evaluation.mode} mode)"
    # Only now, with a fitted model, is --out touched (but for training state); write_checkpoint
    # replaces it atomically.
    model.save(out)
    print(f"{model.name} on {corpus.name}: {scored}, trained and scored in {fit_seconds:.1f} s; saved to {out}")
    return 0


def _corpus_for(model: LanguageModel, name_or_path: str):
    """The corpus at the level the model reads (so the split's evaluation mode matches)."""
    level = getattr(model.tokenizer, "level", None)
    return corpora.load(name_or_path, level=level if level in corpora.LEVELS else None)


def cmd_evaluate(args) -> int:
    _quiet(args)
    model = load_model(args.checkpoint)
    corpus = _corpus_for(model, args.corpus)
    split = corpus.split(args.split)
    progress = False if args.quiet else None
    if args.lines is None:
        evaluation = model.evaluate(split, progress=progress)
        standard = identify_split(split)  # the field's standard file this split was read from, by its bytes
    else:
        first = list(itertools.islice(split, args.lines))
        evaluation = model.evaluate(first, mode=corpora.split_mode(split, "lines"), progress=progress)
        evaluation.corpus, evaluation.split = corpus.name, f"{args.split}, first {len(first):,} lines"
        standard = None
    result = evaluation.to_dict()
    result["benchmark"] = standard.corpus if standard is not None else None
    if args.json:
        _print_json(result)
        return 0
    label = "pseudo-perplexity" if evaluation.pseudo else "perplexity"
    rows = [
        ("model", evaluation.model),
        ("corpus", f"{evaluation.corpus} ({evaluation.split} split, {evaluation.mode} mode)"),
        *([("benchmark", standard.description)] if standard is not None else []),
        ("tokens", f"{evaluation.n_tokens:,} ({evaluation.n_unk:,} <unk>)"),
        ("words", f"{evaluation.n_words:,}"),
        ("chars", f"{evaluation.n_chars:,}"),
        ("nll (nats)", f"{evaluation.nll:,.2f}"),
        (label, f"{evaluation.perplexity:.4f}"),
        ("word " + label, f"{evaluation.word_perplexity:.4f}"),
        ("bits per char", f"{evaluation.bits_per_char:.4f}"),
        ("bits per byte", f"{evaluation.bits_per_byte:.4f}"),
        ("seconds", f"{evaluation.seconds:.2f} ({evaluation.tokens_per_second:,.0f} tokens/s)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def cmd_generate(args) -> int:
    model = load_model(args.checkpoint)
    # A word model's sample ends at its end of line, so samples print one per line; character and
    # subword samples run across lines, so several of them get a header each.
    headed = args.num > 1 and getattr(model.tokenizer, "level", "word") != "word"
    texts = model.generate(args.prompt, args.max_tokens, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, seed=args.seed, num=args.num)  # sample i: seed + i
    for i, text in enumerate(texts):
        if headed:
            print(f"--- sample {i + 1}" + ("" if args.seed is None else f" (seed {args.seed + i})") + " ---")
        print(text)
    return 0


def visible(token: str) -> str:
    """A token as one printable field: newline, tab and carriage return written as escapes."""
    return token.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 file, or of standard input for '-' (a final newline ends the last line)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return text.removesuffix("\n").split("\n") if text else []


def line_scores(model: LanguageModel, lines: list[str]) -> list[dict]:
    """Per line: its tokens as text, ids, log10 probabilities (the end of line last), OOV flags,
    n-gram lengths and total, as `langmodels score` prints them."""
    tokenizer = model._check_fitted()
    flat, lengths = tokenizer.encode_lines(lines)
    if not lines:
        return []
    natural = model.line_logprobs(flat, lengths, progress=False)
    grams = model.ngram_lengths(flat, lengths)
    end = model.line_end_id()
    end_text = "</s>" if end == tokenizer.vocab.eos_id else tokenizer.token_text(end)
    unk = tokenizer.vocab.unk_id
    rows, begin, at = [], 0, 0
    for line, length in zip(lines, lengths.tolist()):
        ids = flat[begin : begin + length].tolist()
        words = tokenizer.tokenize(line) if tokenizer.level in ("word", "char") else []
        tokens = words if len(words) == length else [tokenizer.token_text(i) for i in ids]
        log10 = (natural[at : at + length + 1] / math.log(10)).tolist()
        oov = [i == unk and token != Vocabulary.UNK for i, token in zip(ids, tokens)] + [False]
        rows.append({"tokens": [*tokens, end_text], "ids": [*ids, end], "log10": log10, "oov": oov,
                     "ngram_length": grams[at : at + length + 1].tolist(), "total_log10": float(sum(log10))})
        begin, at = begin + length, at + length + 1
    return rows


def cmd_score(args) -> int:
    model = load_model(args.checkpoint)
    model._check_normalised("a log10 probability per token")
    if not model.is_causal:
        warnings.warn(f"{model.name} is a masked model: each figure is a pseudo-log-likelihood term, the token's "
                      "probability with every other token of the line in view", LangmodelsWarning)
    lines = read_lines(args.file)
    rows = line_scores(model, lines)
    oov_total = sum(sum(row["oov"]) for row in rows)
    if oov_total:
        source = "standard input" if args.file == "-" else args.file
        warnings.warn(f"{oov_total:,} token(s) of {source} are not in the vocabulary; read as <unk>",
                      LangmodelsWarning)
    if args.json:
        for row in rows:
            print(json.dumps(_json_safe(row), ensure_ascii=False, allow_nan=False))
        return 0
    for row in rows:  # KenLM's query: word=vocab_id ngram_length log10(p) per token, then the line's total
        print("".join(f"{visible(token)}={i} {n} {p:.6g}\t" for token, i, n, p in
                      zip(row["tokens"], row["ids"], row["ngram_length"], row["log10"])), end="")
        print(f"Total: {row['total_log10']:.6g} OOV: {sum(row['oov'])}")
    total = sum(row["total_log10"] for row in rows)
    n_tokens = sum(len(row["log10"]) for row in rows)
    oov_log10 = sum(p for row in rows for p, flag in zip(row["log10"], row["oov"]) if flag)
    if n_tokens:
        print(f"Perplexity including OOVs:\t{10 ** (-total / n_tokens):.6g}")
        if n_tokens > oov_total:
            print(f"Perplexity excluding OOVs:\t{10 ** (-(total - oov_log10) / (n_tokens - oov_total)):.6g}")
        print(f"OOVs:\t{oov_total}")
        print(f"Tokens:\t{n_tokens}")
    return 0


COMPARE_COLUMNS = (("word ppl", "word_perplexity", "{:.2f}"), ("bits/char", "bits_per_char", "{:.4f}"),
                   ("token ppl", "perplexity", "{:.2f}"), ("<unk> rate", "unk_rate", "{:.2%}"))


def cmd_compare(args) -> int:
    results = []
    for folder in args.checkpoints:  # one model in memory at a time
        model = load_model(folder)
        evaluation = model.evaluate(_corpus_for(model, args.corpus).split(args.split))
        result = {"checkpoint": folder, **evaluation.to_dict()}
        result["unk_rate"] = evaluation.n_unk / evaluation.n_tokens if evaluation.n_tokens else None
        results.append(result)
    if args.json:
        _print_json(results)
        return 0
    first = results[0]
    print(f"{first['corpus']} ({args.split} split)")
    width = max(len("checkpoint"), *(len(row["checkpoint"]) for row in results))
    name_width = max(len("model"), *(len(row["model"]) for row in results))
    print(f"{'checkpoint':<{width}}  {'model':<{name_width}}  {'mode':<6}  "
          + "  ".join(f"{name:>10}" for name, _, _ in COMPARE_COLUMNS))
    for row in results:
        cells = ["-" if row.get(key) is None else form.format(row[key]) for _, key, form in COMPARE_COLUMNS]
        label = row["mode"] + ("*" if row.get("pseudo") else "")
        print(f"{row['checkpoint']:<{width}}  {row['model']:<{name_width}}  {label:<6}  "
              + "  ".join(f"{cell:>10}" for cell in cells))
    if any(row.get("pseudo") for row in results):
        print("* a masked model: pseudo-perplexities (Salazar et al. 2020), not comparable with perplexities")
    return 0


SAMPLE_COLUMNS = (("judge ppl", "judge_word_perplexity", "{:.2f}"), ("distinct-1", "distinct_1", "{:.3f}"),
                  ("distinct-2", "distinct_2", "{:.3f}"), ("distinct-3", "distinct_3", "{:.3f}"),
                  ("self-BLEU-4", "self_bleu", "{:.3f}"), ("loops", "repetition", "{:.0%}"),
                  ("Zipf", "zipf", "{:.2f}"), ("words/line", "mean_length", "{:.1f}"), ("std", "std_length", "{:.1f}"))


def cmd_samples(args) -> int:
    from . import sample_metrics as metrics
    from .corpora import default_mode

    model = load_model(args.checkpoint)
    judge = model if Path(args.judge).resolve() == Path(args.checkpoint).resolve() else load_model(args.judge)
    metrics.check_judge(judge, f"--judge {args.judge}")
    level = model.tokenizer.level
    max_tokens = args.max_tokens or metrics.SAMPLE_MAX_TOKENS.get(level, metrics.SAMPLE_MAX_TOKENS["word"])
    mode = default_mode(judge.tokenizer.level)
    corpus = _corpus_for(model, args.corpus) if args.corpus else None  # a bad corpus fails before sampling
    rows = []
    for temperature in args.temperature:
        texts = metrics.draw_samples(model, args.num, temperature=temperature, top_p=args.top_p, max_tokens=max_tokens,
                             seed=args.seed)
        figures = metrics.sample_figures([metrics.sample_lines(text, level) for text in texts], judge, mode)
        label = f"T={temperature:g}" + ("" if args.top_p is None else f", top-p={args.top_p:g}")
        rows.append({"setting": label, "temperature": temperature, "top_p": args.top_p, "figures": figures,
                     "samples": texts})
    reference = None
    if corpus is not None:
        cut = metrics.reference_samples(corpus.test, args.num, level, max_tokens)
        reference = {"corpus": corpus.name, "samples": cut, "figures": metrics.sample_figures(cut, judge, mode)}
    if args.json:
        _print_json({"model": model.name, "judge": judge.name, "judge_mode": mode, "num": args.num,
                     "seeds": [args.seed, args.seed + args.num - 1], "max_tokens": max_tokens, "settings": rows,
                     "reference": reference})
        return 0
    unit = "words" if level == "word" else "tokens"
    print(f"{model.name}: {args.num} samples per setting (seeds {args.seed}-{args.seed + args.num - 1}, at most "
          f"{max_tokens} {unit}); judge {judge.name} ({mode} mode)")
    table = [(row["setting"], row["figures"]) for row in rows]
    if reference is not None:
        table.append((f"test text ({reference['corpus']})", reference["figures"]))
    width = max(len("setting"), *(len(label) for label, _ in table))
    print(f"{'setting':<{width}}  " + "  ".join(f"{name:>11}" for name, _, _ in SAMPLE_COLUMNS))
    for label, figures in table:
        cells = ["-" if figures.get(key) is None else form.format(figures[key]) for _, key, form in SAMPLE_COLUMNS]
        print(f"{label:<{width}}  " + "  ".join(f"{cell:>11}" for cell in cells))
    return 0


def cmd_complete(args) -> int:
    model = load_model(args.checkpoint)
    for token, probability in model.top_next(args.text, k=args.k):
        print(f"{visible(token)}\t{probability:.6f}")
    return 0


def cmd_export(args) -> int:
    model = load_model(args.checkpoint)
    if args.format == "arpa":
        if not isinstance(model, NGramLM):
            raise ConfigError(f"{args.checkpoint} holds a {model.name}; only an n-gram model can be written as ARPA")
        if not args.out.endswith(".arpa"):
            raise ConfigError(f"--out {args.out!r}: an ARPA file's name ends in .arpa")
        model.to_arpa(args.out)  # refuses in one line what ARPA cannot hold (check_writable)
        print(f"wrote {args.out} (ARPA: KenLM's build_binary and query, SRILM's ngram -lm read it)")
        return 0
    if not hasattr(model, "save_hf"):
        raise ConfigError(
            f"{args.checkpoint} holds a {model.name}; only a gpt checkpoint can be written in GPT-2's format")
    model.save_hf(args.out)
    print(f"wrote {args.out} (GPT-2 format: load it with transformers' AutoModelForCausalLM.from_pretrained)")
    return 0


def cmd_verify(args) -> int:
    """The deep check (checkpoint.verify_checkpoint): loading checks sizes, small files whole and
    large tables by sampled blocks; this hashes every file whole. A damaged file: one error line."""
    started = time.perf_counter()
    if is_arpa_path(args.checkpoint):  # no checksums: the strict reader's checks are the check
        model = read_arpa(args.checkpoint)
        print(f"{args.checkpoint}: ok, an ARPA {model.order}-gram model that reads without error "
              f"({time.perf_counter() - started:.1f} s)")
        return 0
    manifest = verify_checkpoint(args.checkpoint)
    files = manifest["files"]
    sized = manifest["sizes"]
    total = sum(int(size) for size in sized.values())
    total += sum((Path(args.checkpoint) / name).stat().st_size for name in files if name not in sized)
    print(f"{args.checkpoint}: ok, {len(files)} files ({total / 1e6:,.1f} MB) match their sha256 "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_fill_mask(args) -> int:
    model = load_model(args.checkpoint)
    if not hasattr(model, "fill_mask"):
        raise ConfigError(f"{args.checkpoint} holds a {model.name}, which has no fill-mask (train a bert model)")
    for position, candidates in enumerate(model.fill_mask(args.text, k=args.k), start=1):
        for token, probability in candidates:
            print(f"{position}\t{visible(token)}\t{probability:.6f}")
    return 0


def _check_not_an_input(out: Path, inputs, what: str) -> None:
    """Refuse an --out that is one of the checkpoints read: they are kept as they are."""
    if any(Path(folder).resolve() == out.resolve() for folder in inputs):
        raise ConfigError(f"--out {out} is {what}; write the result to another folder (the input is kept)")


def _valid_is_test_note(corpus, consequence: str) -> bool:
    """True, with a note, when the corpus' valid split is its test split (Tiny Shakespeare)."""
    same = corpus.valid.text() == corpus.test.text()
    if same:
        warnings.warn(f"{corpus.name}'s valid split is its test split: {consequence}", LangmodelsWarning)
    return same


def cmd_mix(args) -> int:
    from .mixture import InterpolatedLM

    if len(args.checkpoints) < 2:
        raise ConfigError("mix needs two or more checkpoint folders")
    out = Path(args.out)
    _check_out_folder(out)
    _check_not_an_input(out, args.checkpoints, "one of the checkpoints being mixed")
    mixture = InterpolatedLM([load_model(folder) for folder in args.checkpoints])
    mixture.check_components()  # one shared tokenizer, causal and normalised, before any scoring
    corpus = _corpus_for(mixture, args.corpus)
    _valid_is_test_note(corpus, "the weights are fitted on the text they are then scored on")
    mixture.fit_weights(corpus.valid)
    # EM's last held-out log-likelihood is the mixture's own on valid (tests check they agree),
    # so valid is scored once, not again by evaluate.
    mixture.metrics_ = None
    mixture.save(out)
    width = max(len(model.name) for model in mixture.models)
    print(f"{'weight':>8}  {'model':<{width}}  {'valid ppl':>10}  checkpoint")
    for folder, model, weight, loglik in zip(args.checkpoints, mixture.models, mixture.weights_,
                                             mixture.component_logliks_):
        print(f"{weight:>8.4f}  {model.name:<{width}}  {math.exp(-loglik):>10.2f}  {folder}")
    print(f"mixture valid perplexity per token {math.exp(-mixture.em_history_[-1]):.2f} ({mixture.mode_} mode, "
          f"{len(mixture.em_history_) - 1} EM iterations); saved to {out}")
    return 0


def cmd_finetune(args) -> int:
    from .neural.core import NeuralLM

    out = Path(args.out)
    _check_out_folder(out)
    _check_not_an_input(out, [args.checkpoint], "the pretrained checkpoint")
    pretrained = load_model(args.checkpoint)
    if not isinstance(pretrained, NeuralLM):
        raise ConfigError(f"{args.checkpoint} holds a {pretrained.name} ({type(pretrained).__name__}), "
                          "not a neural model; only neural models can be fine-tuned")
    model_class = type(pretrained)
    params = parse_settings(model_class.__name__, model_class, args.settings)
    kept = sorted(set(params) - set(model_class.Config.TRAINING_SETTINGS))
    if kept:
        raise ConfigError(f"--set {kept[0]}: fine-tuning keeps the pretrained architecture and tokenizer; "
                          f"settings that may change: {', '.join(model_class.Config.TRAINING_SETTINGS)}")
    model = build_model(model_class, params)
    corpus = _corpus_for(pretrained, args.corpus)
    budget = {"max_seconds": args.max_seconds}
    if args.max_seconds is None:
        warnings.warn(f"no --max-seconds: fine-tuning for {DEFAULT_NEURAL_SECONDS:.0f} s", LangmodelsWarning)
        budget = {"max_seconds": DEFAULT_NEURAL_SECONDS}
    same = _valid_is_test_note(corpus, "fixed budget, no early stopping")
    scored = pretrained.is_causal  # a masked model's pseudo-perplexity costs a pass per token
    before = pretrained.evaluate(corpus.valid) if scored else None
    start = time.perf_counter()
    model.fit(corpus.train, None if same else corpus.valid, resume_from=pretrained, **budget)
    seconds = time.perf_counter() - start
    if scored:
        after = model.evaluate(corpus.valid)
        model.metrics_ = after.to_dict()
        result = (f"valid perplexity {before.perplexity:.2f} before, {after.perplexity:.2f} after "
                  f"({after.mode} mode)")
    else:
        model.metrics_ = None
        result = "valid pseudo-perplexity not computed (a pass per token: run `langmodels evaluate`)"
    model.save(out)
    print(f"{model.name} fine-tuned on {corpus.name}: {result}, trained in {seconds:.1f} s; saved to {out}")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_benchmark

    run_benchmark(args.config, args.out, only=args.only, force=args.force)
    return 0


def cmd_graph(args) -> int:
    from .inside import draw_transition_graph, draw_uniform_vs_counted
    from .inside.figures import check_figure_path

    check_figure_path(args.out)  # before the (slower) loading
    model = load_model(args.checkpoint)
    if args.uniform:
        _, graph = draw_uniform_vs_counted(model, args.word, depth=args.depth, k=args.k, path=args.out)
    else:
        graph = draw_transition_graph(model, args.word, depth=args.depth, k=args.k, path=args.out)
    print(f"wrote {args.out} ({graph.number_of_nodes()} states, {graph.number_of_edges()} transitions)")
    return 0


def cmd_attention(args) -> int:
    from .inside import attention_maps
    from .inside.figures import check_figure_path

    check_figure_path(args.out)
    model = load_model(args.checkpoint)
    weights, tokens = attention_maps(model, args.text, path=args.out)
    layers, heads = weights.shape[:2]
    print(f"wrote {args.out} ({layers} layers x {heads} heads over {len(tokens)} positions)")
    return 0


def cmd_embeddings(args) -> int:
    from .inside import analogy_accuracy, embedding_projection, read_analogies
    from .inside.embeddings import embeddings_of
    from .inside.figures import check_figure_path
    from .inside.lookup import require_tokens

    if not (args.words or args.nearest or args.analogy or args.analogies is not None):
        raise ConfigError("nothing to show: give --words, --nearest, --analogy or --analogies")
    if args.out and not args.words:
        raise ConfigError("--out draws the map of --words: give --words w1,w2,...")
    if args.out:
        check_figure_path(args.out)
    model = load_model(args.checkpoint)
    embeddings = embeddings_of(model)
    if args.nearest:
        require_tokens([args.nearest], embeddings.vocab)
        print(f"nearest to {args.nearest}:")
        for token, similarity in embeddings.nearest(args.nearest, k=args.k):
            print(f"{token}\t{similarity:.4f}")
    if args.analogy:
        words = [word.strip() for word in args.analogy.split(",")]
        if len(words) != 3 or not all(words):
            raise ConfigError(f"--analogy takes three words A,B,C, got {args.analogy!r}")
        require_tokens(words, embeddings.vocab)
        print(f"{words[0]} : {words[1]} :: {words[2]} : ?")
        for token, similarity in embeddings.analogy(*words, k=args.k):
            print(f"{token}\t{similarity:.4f}")
    if args.words:
        words = [word.strip() for word in args.words.split(",") if word.strip()]
        points = embedding_projection(model, words, method=args.method, path=args.out, seed=args.seed)
        if args.out:
            print(f"wrote {args.out} ({len(points)} words, {args.method})")
        else:
            for word, (x, y) in points.items():
                print(f"{word}\t{x:.4f}\t{y:.4f}")
    if args.analogies is not None:
        result = analogy_accuracy(embeddings, read_analogies(args.analogies or None))

        def accuracy(tally):
            return "-" if tally["accuracy"] is None else f"{tally['accuracy']:.1%}"

        rows = [(name, tally) for name, tally in result["categories"].items()] + [("all", result)]
        width = max(len("category"), *(len(name) for name, _ in rows))
        print(f"{'category':<{width}}  {'accuracy':>8}  {'correct':>7}  {'answered':>8}  {'skipped':>7}")
        for name, tally in rows:
            print(f"{name:<{width}}  {accuracy(tally):>8}  {tally['correct']:>7}  {tally['answered']:>8}  "
                  f"{tally['skipped']:>7}")
    return 0


def cmd_temperature(args) -> int:
    from .inside import next_token_distributions, temperature_samples
    from .inside.figures import check_figure_path
    from .inside.temperature import describe

    temperatures = [RUN["temperature"].parse(t.strip(), "each of --temperatures") for t in args.temperatures.split(",")]
    if args.out:
        check_figure_path(args.out)
    model = load_model(args.checkpoint)
    tokens, settings = next_token_distributions(model, args.context, temperatures=temperatures, top_k=args.top_k,
                                                top_p=args.top_p, path=args.out)
    print(describe(tokens, settings))
    if args.samples:
        samples = temperature_samples(model, args.context, temperatures=temperatures, samples=args.samples,
                                      seed=args.seed, max_tokens=args.max_tokens)
        for temperature, texts in samples.items():
            print(f"\n--- temperature {temperature:g} ---")
            print("\n".join(texts))
    if args.out:
        print(f"\nwrote {args.out}")
    return 0


COMMANDS = {
    "corpora": cmd_corpora,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "generate": cmd_generate,
    "score": cmd_score,
    "compare": cmd_compare,
    "samples": cmd_samples,
    "complete": cmd_complete,
    "fill-mask": cmd_fill_mask,
    "export": cmd_export,
    "verify": cmd_verify,
    "mix": cmd_mix,
    "finetune": cmd_finetune,
    "bench": cmd_bench,
    "graph": cmd_graph,
    "attention": cmd_attention,
    "embeddings": cmd_embeddings,
    "temperature": cmd_temperature,
}


# ---- entry point --------------------------------------------------------------------------------


def _show_note(message, category, filename, lineno, file=None, line=None, *, fallback):
    if issubclass(category, NOTE_CATEGORIES):
        print(f"note: {' '.join(str(message).split())}", file=sys.stderr)
    else:
        fallback(message, category, filename, lineno, file, line)


def _rank() -> str | None:
    """This process's rank when torchrun started several (WORLD_SIZE > 1), else None."""
    return os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1") else None


def _error(message: str) -> None:
    rank = "" if _rank() is None else f"rank {_rank()}: "  # one line from each process torchrun started
    print(f"{PROG}: error: {rank}{' '.join(str(message).split())}", file=sys.stderr)


def _os_error_message(error: OSError) -> str:
    if error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 2 a user mistake, 130 interrupted)."""
    with warnings.catch_warnings():
        for category in NOTE_CATEGORIES:
            warnings.simplefilter("always", category)
        fallback = warnings.showwarning
        warnings.showwarning = lambda *a, **kw: _show_note(*a, **kw, fallback=fallback)
        try:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command](args)
        except LangmodelsError as error:
            _error(error)
        except UnicodeDecodeError as error:
            _error(f"not UTF-8 text: {error}")
        except OSError as error:
            if isinstance(error, BrokenPipeError):
                # The reader of stdout went away (`langmodels generate ... | head`): not an error.
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
            _error(_os_error_message(error))
        except KeyboardInterrupt:
            print(f"{PROG}: {'' if _rank() is None else f'rank {_rank()}: '}interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except SystemExit as done:  # --help and --version print and stop
            return done.code if isinstance(done.code, int) else 0
    return EXIT_ERROR
