"""What every neural model shares: configuration, tokenizer choice, batching, scoring through
one forward pass, the training entry point, embeddings, and safetensors checkpoints.

A family subclasses `NeuralLM`, sets `Config` (a dataclass deriving from `NeuralConfig`) and
implements `build_module(vocab_size)`, an `nn.Module` with `features(idx)`: token ids (B, T) ->
hidden vectors (B, T, width), `output`: an OutputLayer (output.py) from those to the next token,
`forward(idx) = output(features(idx))`: scores (B, T, V) whose log_softmax is log P, and its
input embedding as `token_embedding`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..base import LanguageModel, NotFittedError, note
from ..corpora import split_level, split_mode
from ..errors import CheckpointError, ConfigError, LangmodelsError
from ..metrics import Evaluation
from ..options import NEURAL, RUN, THREADS_HERE, check_decay, check_settings, check_text, shown
from ..token_ids import token_ids
from ..tokenizers import BPETokenizer, CharTokenizer, WordTokenizer
from .data import IGNORE, Batch, LineBatches, StreamBatches, pad_rows
from .devices import loading_device, parse_device, resolve_device
from .distributed import current_world, main_first, rank_device
from .memory import SCORE_LOGITS, check_fits_memory
from .output import SOFTMAXES
from .trainer import EVALUATIONS

# Periodic validation reads the first lines of the valid split up to this many characters
# (Brown: about 8,000 words of its 1.3 M characters), so that ten passes cost a small share of
# a short budget; the full split is scored once, after training.
VALIDATION_SLICE_CHARS = 50_000
PROBE_CHARS = 2_000  # the first valid lines scored before training to measure the scoring speed
FINAL_SHARE = 0.25  # the most of a time budget the pass over valid after training may take
WEIGHTS_FILE = "weights.safetensors"
CURVE_FILE = "curve.json"
TOKENIZERS = ("auto", "word", "char", "bpe")


@dataclass
class NeuralConfig:
    """Settings every neural model has; each family's Config adds its architecture."""

    tokenizer: str = "auto"  # auto (the corpus level), word, char or bpe
    bpe_vocab_size: int = 4096
    min_count: int = 1
    context: int = 128  # tokens of context the model sees (the window for bounded models)
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 0  # the least warm-up, in steps
    warmup_fraction: float = 0.05  # warm-up as a share of the steps the budget allows, if longer
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 0  # steps between validation passes (and checkpoints); 0: at each tenth of the budget
    patience: int = 4  # validation passes without improvement before early stopping
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave torch's default
    dropout: float = 0.1  # where each family applies it is said in its module; training only
    softmax: str = "full"  # the output layer: full, or adaptive (Grave et al. 2017; output.py)
    device: str = "auto"  # auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps (devices.py)
    compile: bool = False  # train through torch.compile (trainer.py; costs its compile time first)

    #: settings a fine-tuning run may change; all others shape the tokenizer or the weights and
    #: are kept from the pretrained model. Families add their own training-only settings.
    TRAINING_SETTINGS: ClassVar[tuple[str, ...]] = (
        "batch_size", "lr", "warmup_steps", "warmup_fraction", "weight_decay", "grad_clip", "eval_every", "patience",
        "seed", "threads", "dropout", "device", "compile",
    )
    #: where and how this process computes, not what is learned: a run resumes under other values
    RUNTIME_SETTINGS: ClassVar[tuple[str, ...]] = ("device", "compile")

    def check(self, *, machine: bool = False) -> None:
        """Raise ConfigError naming the first field of the wrong type or out of range (the ranges
        are options.NEURAL's). machine=True, before training, also what depends on this machine
        (threads <= its processors); a checkpoint written on a larger machine still loads."""
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value, expected = getattr(self, field.name), hints[field.name]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(f"{field.name} must be {expected.__name__}, got {shown(value)}")
        check_settings(dataclasses.asdict(self), NEURAL)
        if machine:
            THREADS_HERE.check(self.threads)
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.softmax not in SOFTMAXES:
            raise ConfigError(f"softmax must be one of {', '.join(SOFTMAXES)}, got {self.softmax!r}")
        check_decay(self.lr, self.weight_decay)
        parse_device(self.device)  # the spelling; whether this machine has it is checked by fit


@contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to n inside the block, and put back after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def map_batches(score: Callable, batches: list, device: torch.device, progress=None) -> list:
    """[score(batch) for batch in batches], with the batches shared out on a CPU.

    With n > 1 torch threads, n Python threads each run whole batches on one torch thread: a
    scoring batch's products (an LSTM step's (lines, hidden) x (hidden, 4 hidden), a small
    transformer's (tokens, 128) x (128, 384)) are too small to split well across cores, while
    batches side by side never wait on each other. Median of 5 alternating runs on 2 threads:
    Brown's valid split through the default report's LSTM 4.98 s one way, 4.35 s the other;
    Tiny Shakespeare's through its GPT 5.88 s, 4.77 s. The thread count is process-wide, so it
    is put back as soon as the batches are done. `score` must set its own grad mode (it is per
    thread); `progress` wraps the results' iterator.
    """
    def collect(results) -> list:
        return list(progress(results, total=len(batches)) if progress else results)

    workers = torch.get_num_threads() if device.type == "cpu" and len(batches) > 1 else 1
    if workers == 1:
        return collect(map(score, batches))
    with ThreadPoolExecutor(workers) as pool, torch_threads(1):
        return collect(pool.map(score, batches))


def with_targets(h: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden vectors (B, T, width) and targets (B, T) -> those of the N positions that have a
    target, (N, width) and (N,): padding never reaches the output layer, the costly part. A batch
    without padding (stream windows) is only reshaped, not copied."""
    h, targets = h.flatten(0, 1), targets.flatten()
    real = targets != IGNORE
    if real.all():
        return h, targets
    return h[real], targets[real]


class NeuralLM(LanguageModel):
    """The shared body of MLPLM, LSTMLM, GPTLM and MaskedLM."""

    Config: ClassVar[type[NeuralConfig]] = NeuralConfig

    def __init__(self, **settings):
        unknown = set(settings) - {field.name for field in dataclasses.fields(self.Config)}
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} setting(s): {', '.join(sorted(unknown))}")
        self.config = self.Config(**settings)
        self.given_settings = frozenset(settings)  # what fine-tuning takes over a pretrained config
        self.tokenizer = None
        self.module_ = None
        self.curve_: list[dict] = []

    def get_params(self) -> dict:
        return dataclasses.asdict(self.config)

    @property
    def context_size(self) -> int | None:
        """Tokens of context the model can see (None: unbounded, e.g. a recurrent state)."""
        return self.config.context

    # ---- to implement ----------------------------------------------------------------------

    def build_module(self, vocab_size: int) -> torch.nn.Module:
        raise NotImplementedError

    # ---- set-up ------------------------------------------------------------------------------

    def make_tokenizer(self, train):
        kind = self.config.tokenizer
        if kind == "auto":
            kind = split_level(train, "word")
        if kind == "word":
            return WordTokenizer(min_count=self.config.min_count)
        if kind == "char":
            return CharTokenizer(min_count=self.config.min_count)
        return BPETokenizer(vocab_size=self.config.bpe_vocab_size)

    def _fitted_module(self) -> torch.nn.Module:
        if self.module_ is None or self.tokenizer is None:
            raise NotFittedError(f"{self.name} is not fitted yet: call fit() or load a checkpoint")
        return self.module_

    @property
    def device(self) -> torch.device:
        return next(self._fitted_module().parameters()).device

    def to(self, device: str) -> NeuralLM:
        """Move the fitted model to `device` (a `device` setting: auto, cpu, cuda, cuda:N, mps);
        returns self. Its scores stay the same to float32 rounding (about 1e-4 in log-probability)."""
        self._fitted_module().to(resolve_device(device))
        self.config.device = device
        return self

    def stream_block(self) -> int:
        """Inputs per training window cut from a stream."""
        return self.config.context

    def line_pieces(self) -> int | None:
        """Longest training row cut from a line (None: whole lines, for models that, unlike a
        windowed transformer, read a line's whole history when scoring it)."""
        return self.config.context

    def training_data(self, lines, mode: str):
        """LineBatches or StreamBatches over a split, in the tokenizer's ids."""
        vocab = self.tokenizer.vocab
        if mode == "stream":
            return StreamBatches(self._stream_ids(lines), bos=vocab.bos_id, block=self.stream_block())
        ids = token_ids(lines, self.tokenizer)  # tokenized once per text and tokenizer, then cached
        return LineBatches(
            ids.ids, ids.lengths, bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id, max_len=self.line_pieces()
        )

    def training_batch(self, data, step: int) -> Batch:
        """The batch of one training step; recurrent models override this to read the stream in order."""
        return data.sample(self.config.batch_size, self.config.seed, step)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) over the batch's targets; padded positions never
        reach the output layer, the costly part."""
        module = self._fitted_module()
        h = module.features(batch.inputs.to(self.device))  # (B, T, width)
        return module.output.loss(*with_targets(h, batch.targets.to(self.device)))

    def training_state(self) -> dict[str, torch.Tensor]:
        """Tensors a run carries between steps besides the weights (the LSTM's BPTT state)."""
        return {}

    def load_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what training_state() gave, when a run resumes."""

    def validation_loss(self, lines, mode: str) -> float:
        """What early stopping watches: nats per token of one full deterministic pass over `lines`.
        MaskedLM overrides it with its masked-LM loss (its pseudo-perplexity costs a pass per token)."""
        return self.evaluate(lines, mode=mode, progress=False).nats_per_token

    # ---- fitting -------------------------------------------------------------------------------

    def fit(self, train, valid=None, *, max_steps=None, max_tokens=None, max_seconds=None,
            checkpoint=None, checkpoint_every=None, resume=False, resume_from=None, select_on_valid=True,
            progress=None) -> NeuralLM:
        """Train with the shared Trainer until a budget is spent (or early stopping on `valid`).

        max_seconds bounds this whole call in wall-clock seconds: reading the text, training,
        validation and the final pass over `valid`. Validation during training reads the first
        VALIDATION_SLICE_CHARS characters of `valid`; after training, a causal model scores all of
        `valid` once, in `valid_evaluation_` (an Evaluation; None without `valid`).
        select_on_valid=False only watches `valid` (no early stopping, no best-weights restore):
        for a valid split that is the test split.
        checkpoint: a folder where training state is written atomically every `checkpoint_every`
        steps (None: at each curve point) and on KeyboardInterrupt; resume=True continues from it
        on the same batches an uninterrupted run would have seen.
        resume_from: a fitted model of this class, or its checkpoint folder, to fine-tune: its
        architecture, tokenizer (vocabulary included: new words are read as <unk>) and weights
        are the starting point; the training settings given to this model's constructor replace
        its own; the optimiser and learning-rate schedule start afresh, and `curve_` is this run's.
        """
        from .trainer import Trainer, TrainingDivergedError

        started = time.perf_counter()
        pretrained = None
        if resume_from is not None:
            pretrained = self._pretrained(resume_from, checkpoint)
            self.config = self._finetuning_config(pretrained)
        self.config.check(machine=True)
        if checkpoint_every is not None:
            RUN["checkpoint_every"].check(checkpoint_every)
        if isinstance(train, str):
            raise LangmodelsError("fit takes a list of lines or a Corpus split, not one string")
        if not any(line.strip() for line in train):
            raise LangmodelsError("the training text is empty")
        if max_steps is None and max_tokens is None and max_seconds is None:
            raise LangmodelsError("give a training budget: max_steps, max_tokens or max_seconds")
        world = current_world()  # several processes under torchrun (distributed.py)
        device = rank_device(resolve_device(self.config.device), world)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        torch.manual_seed(self.config.seed)
        mode = split_mode(train, "lines")
        if pretrained is None:
            with main_first(world):  # rank 0 writes the token-id cache, the others then read it
                self.tokenizer = self.make_tokenizer(train).fit(train)  # one pass over the text's blocks
            check_fits_memory(self, len(self.tokenizer.vocab))
            self.module_ = self.build_module(len(self.tokenizer.vocab)).to(device)
            self.finetuned_from_ = None
        else:
            # A module built from the (possibly new) settings, holding the pretrained weights: a
            # copy, so a pretrained model passed in memory is left as it was.
            self.tokenizer = pretrained.tokenizer
            check_fits_memory(self, len(self.tokenizer.vocab))
            module = self.build_module(len(self.tokenizer.vocab))
            module.load_state_dict(pretrained._fitted_module().state_dict())
            self.module_ = module.to(device)
            self.finetuned_from_ = pretrained.name if isinstance(resume_from, LanguageModel) else str(resume_from)
        self.mode_ = mode
        self.valid_evaluation_ = None
        with main_first(world):
            data = self.training_data(train, mode)
        if pretrained is not None:
            self._note_unknown(data, pretrained)
        else:
            self._start_at_unigram(data)
        if data.n_tokens < self.config.batch_size:
            raise LangmodelsError(
                f"the training text has {data.n_tokens} tokens, fewer than one batch ({self.config.batch_size})"
            )
        validation = None  # rank 0 alone validates
        if valid is not None and world.is_main:
            validation = Validation(self, valid, split_mode(valid, mode), max_seconds)
        set_up = time.perf_counter() - started
        trainer = Trainer(self, self.config, data)
        self.curve_ = trainer.run(
            validate=validation and validation.watch, select=select_on_valid,
            reserve=lambda: set_up + (validation.final_seconds() if validation else 0.0),
            max_steps=max_steps, max_tokens=max_tokens, max_seconds=max_seconds,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, progress=progress,
        )
        self.module_.eval()
        if not all(bool(torch.isfinite(p).all()) for p in self.module_.parameters()):  # the last step's update
            raise TrainingDivergedError(f"the weights stopped being finite numbers by step {trainer.step}; "
                                        "lower lr or raise warmup_steps")
        if validation is not None and validation.final:
            left = None if max_seconds is None else max_seconds - set_up - trainer.seconds
            self.valid_evaluation_ = validation.final_pass(left, progress)
        return self

    def _start_at_unigram(self, data) -> None:
        """A fresh output layer starts as the add-one unigram model of the training targets."""
        output = getattr(self.module_, "output", None)
        if output is None:
            return
        ids = data.target_ids() if isinstance(data, LineBatches) else data.data[1:]
        counts = np.bincount(ids, minlength=len(self.tokenizer.vocab)) + 1.0  # add-one: no token at -inf
        output.start_at_unigram(torch.from_numpy(np.log(counts / counts.sum())).float().to(self.device))

    # ---- fine-tuning ---------------------------------------------------------------------------

    def _pretrained(self, source, checkpoint) -> NeuralLM:
        """The fitted model to fine-tune: `source` itself, or the one saved in the folder `source`."""
        if isinstance(source, LanguageModel):
            model, where = source, "resume_from"
        else:
            where = str(source)
            if checkpoint is not None and Path(checkpoint).resolve() == Path(source).resolve():
                raise LangmodelsError(
                    f"the training checkpoint {checkpoint} is the pretrained model's folder; "
                    "write the fine-tuning run elsewhere so the pretrained checkpoint is kept"
                )
            model = LanguageModel.load(source)
        if not isinstance(model, NeuralLM):
            raise LangmodelsError(
                f"{where} holds a {model.name} ({type(model).__name__}), not a neural model; "
                "only neural models can be fine-tuned"
            )
        if type(model) is not type(self):
            raise LangmodelsError(
                f"{where} holds a {type(model).__name__}, which cannot be fine-tuned as a {type(self).__name__}"
            )
        model._fitted_module()  # NotFittedError for an unfitted model
        return model

    def _finetuning_config(self, pretrained: NeuralLM) -> NeuralConfig:
        """The pretrained config, with the training settings this model was given (or changed from
        the defaults); any other setting of this model must agree with the pretrained one."""
        if pretrained is self:
            return self.config
        config = dataclasses.replace(pretrained.config)
        defaults = self.Config()
        for field in dataclasses.fields(self.config):
            name, value = field.name, getattr(self.config, field.name)
            if name not in self.given_settings and value == getattr(defaults, name):
                continue
            if name in self.Config.TRAINING_SETTINGS:
                setattr(config, name, value)
            elif value != getattr(pretrained.config, name):
                raise ConfigError(
                    f"{name}={value!r} differs from the pretrained model's {getattr(pretrained.config, name)!r}; "
                    f"fine-tuning keeps its architecture and tokenizer (settings that may change: "
                    f"{', '.join(self.Config.TRAINING_SETTINGS)})"
                )
        return config

    def _note_unknown(self, data, pretrained: NeuralLM) -> None:
        """Say how much of the new training text the pretrained vocabulary does not cover."""
        ids = data.target_ids() if isinstance(data, LineBatches) else data.data[1:]
        unknown = int(np.count_nonzero(ids == self.tokenizer.vocab.unk_id))
        if unknown:
            note(f"fine-tuning keeps {pretrained.name}'s vocabulary: {unknown:,} of the {ids.size:,} new "
                 f"training tokens ({unknown / max(ids.size, 1):.1%}) are read as <unk>")

    # ---- scoring ----------------------------------------------------------------------------

    def never_next(self) -> list[int]:
        """<s>, <pad> and <mask> are never the next token: probability zero, as in the n-gram models.
        Nor is </s> in a character or subword stream, whose text has no end-of-line token (its
        newlines are characters): left in, its leftover probability would end samples early."""
        tokenizer = self._check_fitted()
        vocab = tokenizer.vocab
        excluded = [vocab.bos_id, vocab.pad_id, vocab.mask_id]
        if getattr(self, "mode_", None) == "stream" and tokenizer.level != "word":
            excluded.append(vocab.eos_id)
        return excluded

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities (..., V) in float32 from scores (..., V), never_next() excluded."""
        never = torch.tensor(self.never_next(), device=logits.device)
        return torch.log_softmax(logits.float().index_fill(-1, never, -torch.inf), dim=-1)

    @torch.no_grad()
    def output_logprobs(self, h: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """log P(targets) (N,) float64 from output-side vectors h (N, width), in slices that bound
        the (rows, V) scores held at once."""
        output = self._fitted_module().output
        rows = max(1, SCORE_LOGITS // len(self.tokenizer.vocab))
        excluded = self.never_next()
        out = [output.target_logprobs(h[begin : begin + rows], targets[begin : begin + rows], excluded)
               for begin in range(0, len(h), rows)]
        return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)

    @torch.no_grad()
    def token_logprobs(self, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """log P(targets | inputs) per position, (B, T) float64; 0 where a target is IGNORE."""
        module = self._fitted_module()
        module.eval()
        h = module.features(inputs.to(self.device))  # (B, T, width)
        real = (targets != IGNORE).to(self.device)
        picked = np.zeros(tuple(targets.shape))
        picked[real.cpu().numpy()] = self.output_logprobs(h[real], targets.to(self.device)[real])
        return picked

    def _batch_logprobs(self, batch: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
        return self.token_logprobs(*batch)

    def sequence_logprobs(self, sequence: np.ndarray) -> np.ndarray:
        """log P(sequence[i] | sequence[:i]) for i >= 1 of one sequence starting with <s>.

        A bounded model scores windows of its context overlapping by half, so every token is
        scored once, with at least half a window of context (docs/design.md 3).
        """
        sequence = torch.as_tensor(np.asarray(sequence, dtype=np.int64))
        window = self.context_size or len(sequence)
        if len(sequence) - 1 <= window:
            return self.token_logprobs(sequence[None, :-1], sequence[None, 1:])[0]
        stride = max(window // 2, 1)
        starts = list(range(0, len(sequence) - 1 - window, stride)) + [len(sequence) - 1 - window]
        inputs = torch.stack([sequence[s : s + window] for s in starts])
        targets = torch.stack([sequence[s + 1 : s + window + 1] for s in starts])
        size = self.config.batch_size
        batches = [(inputs[begin : begin + size], targets[begin : begin + size])
                   for begin in range(0, len(starts), size)]
        scored = []
        done = 0  # targets scored so far
        windows = np.concatenate(map_batches(self._batch_logprobs, batches, self.device))  # (len(starts), window)
        for start, row in zip(starts, windows):
            keep = start + window - done  # this window's targets not yet scored
            scored.append(row[window - keep :])
            done += keep
        return np.concatenate(scored)

    def score_ids(self, batch) -> list[np.ndarray]:
        vocab = self._check_fitted().vocab
        lines = [np.concatenate([[vocab.bos_id], np.asarray(ids, dtype=np.int64), [vocab.eos_id]]) for ids in batch]
        window = self.context_size
        short = [i for i, line in enumerate(lines) if window is None or len(line) - 1 <= window]
        results: list[np.ndarray | None] = [None] * len(lines)
        size = self.config.batch_size
        batches = [short[begin : begin + size] for begin in range(0, len(short), size)]
        padded = [(torch.from_numpy(pad_rows([lines[i][:-1] for i in rows], vocab.pad_id)),
                   torch.from_numpy(pad_rows([lines[i][1:] for i in rows], IGNORE))) for rows in batches]
        for rows, scored in zip(batches, map_batches(self._batch_logprobs, padded, self.device)):
            for row, i in enumerate(rows):
                results[i] = scored[row, : len(lines[i]) - 1]
        for i, line in enumerate(lines):
            if results[i] is None:
                results[i] = self.sequence_logprobs(line)
        return results

    def score_stream(self, ids) -> np.ndarray:
        bos = self._check_fitted().vocab.bos_id
        return self.sequence_logprobs(np.concatenate([[bos], np.asarray(ids, dtype=np.int64)]))

    @torch.no_grad()
    def next_logprobs(self, context_ids) -> np.ndarray:
        vocab = self._check_fitted().vocab
        sequence = [vocab.bos_id, *[int(i) for i in context_ids]]
        window = self.context_size
        if window is not None and len(sequence) > window:
            note(f"the context has {len(sequence)} tokens; {self.name} sees the last {window}")
            sequence = sequence[-window:]
        module = self._fitted_module()
        module.eval()
        logits = module(torch.tensor([sequence], device=self.device))[0, -1]  # (V,)
        return self.log_softmax(logits).double().cpu().numpy()

    # ---- embeddings ----------------------------------------------------------------------------

    def embeddings(self) -> Embeddings:
        """The input embedding matrix, for nearest neighbours and analogies."""
        matrix = self._fitted_module().token_embedding.weight.detach().float().cpu().numpy()
        return Embeddings(matrix, self.tokenizer.vocab)

    # ---- checkpoints ---------------------------------------------------------------------------

    def fitted_facts(self) -> dict:
        facts = {"mode": getattr(self, "mode_", "lines")}
        if getattr(self, "finetuned_from_", None):
            facts["finetuned_from"] = self.finetuned_from_
        return facts

    def state_files(self) -> dict[str, bytes]:
        weights = self._fitted_module().state_dict()
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in weights.items()}
        return {WEIGHTS_FILE: save_safetensors(state), CURVE_FILE: json.dumps(self.curve_).encode("utf-8")}

    def restore_state(self, files: dict[str, bytes], fitted: dict) -> None:
        self.config.check()
        check_fits_memory(self, len(self.tokenizer.vocab), training=False)
        module = self.build_module(len(self.tokenizer.vocab))
        try:
            state = load_safetensors(files[WEIGHTS_FILE])
            module.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, ValueError) as error:
            first = str(error).strip().splitlines()[0]
            raise CheckpointError(f"{WEIGHTS_FILE} does not match the model in config.json ({first})") from None
        self.module_ = module.to(loading_device(self.config.device)).eval()
        self.curve_ = json.loads(files.get(CURVE_FILE, b"[]"))
        self.mode_ = fitted.get("mode", "lines")
        self.finetuned_from_ = fitted.get("finetuned_from")


class Validation:
    """What training watches on a valid split, sized from the time budget.

    Before training, a probe pass over the first lines measures the scoring speed (seconds per
    character); the periodic validations then read the first lines of the split that one
    two-hundredth of the budget allows (at most VALIDATION_SLICE_CHARS characters), so that ten
    of them cost about a twentieth of it (trainer.py skips one when they have cost more than a
    tenth). After training a causal model scores the whole split once,
    or, if that would not fit in FINAL_SHARE of the budget, its first lines that do (with a note).
    """

    def __init__(self, model: NeuralLM, lines, mode: str, max_seconds: float | None):
        self.model, self.lines, self.mode, self.max_seconds = model, lines, mode, max_seconds
        self.final = model.is_causal and model.is_normalised  # scored once after training
        self.line_chars = np.cumsum([len(line) + 1 for line in lines])  # characters up to each line's end
        self.seconds_per_char = self._timed(self._first(PROBE_CHARS))[1]
        slice_chars = VALIDATION_SLICE_CHARS
        if max_seconds is not None:
            slice_chars = min(slice_chars, max_seconds / (EVALUATIONS * 20) / self.seconds_per_char)
        self.watched = self._first(slice_chars)

    def _first(self, chars: float):
        """The first lines of the split within `chars` characters (at least one), or all of it."""
        cut = max(int(np.searchsorted(self.line_chars, chars, side="right")), 1)
        return self.lines if cut >= len(self.line_chars) else list(itertools.islice(self.lines, cut))

    def _timed(self, lines) -> tuple[float, float]:
        """The validation loss of `lines` and the seconds it took per character."""
        begin = time.perf_counter()
        loss = self.model.validation_loss(lines, self.mode)
        chars = sum(len(line) + 1 for line in lines)
        return loss, (time.perf_counter() - begin) / max(chars, 1)

    def watch(self) -> float:
        loss, self.seconds_per_char = self._timed(self.watched)
        return loss

    def final_seconds(self) -> float:
        """Seconds kept for the pass after training: the whole split's, up to FINAL_SHARE of the budget."""
        if not self.final:
            return 0.0
        whole = float(self.line_chars[-1]) * self.seconds_per_char
        return whole if self.max_seconds is None else min(whole, FINAL_SHARE * self.max_seconds)

    def final_pass(self, seconds_left: float | None, progress) -> Evaluation:
        """Score the whole split; or, if it was not expected to fit in FINAL_SHARE of the budget,
        its first lines, a fiftieth of the split at a time, while the next part fits in
        `seconds_left` (with a note). A split read as one stream is scored whole."""
        whole = float(self.line_chars[-1]) * self.seconds_per_char
        if seconds_left is None or self.mode == "stream" or whole <= FINAL_SHARE * self.max_seconds:
            return self.model.evaluate(self.lines, mode=self.mode, progress=progress)
        lines = list(self.lines)
        size = max(len(lines) // 50, 1)
        begin = time.perf_counter()
        targets, logprobs, done, slowest = [], [], 0, 0.0
        while done < len(lines) and (done == 0 or time.perf_counter() - begin + slowest <= seconds_left):  # >= 1 part
            started = time.perf_counter()
            ids = token_ids(lines[done : done + size], self.model.tokenizer)
            logprobs.append(self.model.score_lines(ids.ids, ids.lengths, progress=False))
            targets.append(ids.ids)
            done += size
            slowest = max(slowest, time.perf_counter() - started)
        done = min(done, len(lines))
        name = getattr(self.lines, "name", "valid")
        if done < len(lines):
            note(f"the time budget left room to score the first {done:,} of the {len(lines):,} lines of the "
                 f"{name} split; `langmodels evaluate --split {name}` scores them all")
        evaluation = self.model.evaluation_of(lines[:done], self.mode, np.concatenate(targets),
                                              np.concatenate(logprobs), time.perf_counter() - begin)
        evaluation.corpus = getattr(self.lines, "corpus", "")
        evaluation.split = name if done == len(lines) else f"{name}, first {done:,} lines"
        return evaluation


class Embeddings:
    """Cosine-similarity queries over a model's token embeddings (Mikolov et al. 2013)."""

    def __init__(self, matrix: np.ndarray, vocab):
        self.vocab = vocab
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.unit = matrix / np.maximum(norms, 1e-12)

    def vector(self, token: str) -> np.ndarray:
        check_text(token, "token")
        if token not in self.vocab:
            raise LangmodelsError(f"{token!r} is not in the vocabulary")
        return self.unit[self.vocab[token]]

    def _closest(self, query: np.ndarray, k: int, exclude: set[str]) -> list[tuple[str, float]]:
        RUN["k"].check(k)
        similarity = self.unit @ (query / max(np.linalg.norm(query), 1e-12))
        result = []
        for index in np.argsort(-similarity):
            token = self.vocab.token(int(index))
            if token not in exclude and index >= 5:  # the five specials are not words
                result.append((token, float(similarity[index])))
            if len(result) == k:
                break
        return result

    def nearest(self, token: str, k: int = 10) -> list[tuple[str, float]]:
        """The k tokens whose embeddings are closest in cosine to `token`'s."""
        return self._closest(self.vector(token), k, {token})

    def analogy(self, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
        """Tokens closest to b - a + c: analogy("man", "king", "woman") ~ queen (3CosAdd)."""
        query = self.vector(b) - self.vector(a) + self.vector(c)
        return self._closest(query, k, {a, b, c})

