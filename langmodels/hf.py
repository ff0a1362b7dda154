"""Hugging Face models behind the contract (docs/design.md 11): `HFCausalLM` and `HFMaskedLM`.

A `transformers` model and its tokenizer become one more family, so GPT-2 and a Kneser-Ney 5-gram
are scored by the same code: each gives the total NLL (nats) of the test text, and metrics.py
divides that one number by tokens, words, characters or UTF-8 bytes.

Boundaries, as docs/design.md 2 asks of every family:

* lines: a line is read after the model's start token and ends with its end token. A causal
  model's start is its BOS token, or its EOS token when it has no BOS (GPT-2's <|endoftext|> is
  both: it separates documents in its training text, so a line is read as a new document, as
  lm-evaluation-harness does); a tokenizer with neither is refused. The end is the EOS token; a
  model without one can still score streams but not lines (refused in one line).
* stream: the text is one sequence after the start token, scored in sliding windows of the
  model's context that advance by `stride` tokens (the "perplexity of fixed-length models" method
  of the transformers documentation): each window predicts only the tokens the previous windows
  did not, so every token is scored once, and all but the first window's tokens see at least
  context - stride tokens of history. The default stride is half the context (docs/design.md 3).

A masked model (BERT) has no left-to-right factorisation; it is scored by pseudo-log-likelihood
(Salazar et al. 2020): PLL(W) = sum_t log P(w_t | W with w_t masked), each line read as
[CLS] w_1 .. w_k [SEP]. BERT is never asked to predict [CLS] or [SEP] in pre-training (Devlin et
al. 2019 mask text tokens only) and Salazar et al. sum over the words alone, so a line's end is
given, not predicted: its entry is log 1 = 0. Everything evaluate() reports for it is therefore a
pseudo-perplexity, flagged as such (is_causal False).

`transformers` is an optional extra (pip install 'langmodels[hf]'), imported only when a model is
loaded. Models are read offline: a local folder or the Hugging Face cache, never the network,
unless the user passes download=True.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import ClassVar

import numpy as np

from . import __version__
from .base import METRICS_FILE, LanguageModel, most_probable, note
from .checkpoint import write_checkpoint
from .corpora import split_mode
from .errors import CheckpointError, ConfigError, LangmodelsError
from .options import HF, NEURAL, check_decay, check_settings, shown
from .tokenizers import Tokenizer

EXTRA = "pip install 'langmodels[hf]'"
PREFIX = "hf:"  # `langmodels evaluate hf:gpt2 ...`: a Hugging Face model where a checkpoint folder goes
HF_FOLDER = "hf"  # inside a checkpoint: a fine-tuned model's transformers folder
BUDGET_KEYS = ("max_steps", "max_tokens", "max_seconds")
# Markers a user may write for the token to fill in `fill_mask` (the model's own mask string too).
MASK_MARKER = re.compile(r"\[MASK\]|<mask>")


class MissingExtraError(LangmodelsError):
    """An optional dependency is not installed."""


def import_transformers():
    """The transformers package, or a one-line error naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise MissingExtraError(f"Hugging Face models need the transformers package: {EXTRA}") from None
    return transformers


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextmanager
def quiet(transformers):
    """transformers' progress bars (loading, writing shards) and info logs off inside the block."""
    logging = transformers.utils.logging
    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


# ---- the tokenizer behind our Tokenizer interface ------------------------------------------------


class HFVocabulary:
    """Token strings <-> ids of a transformers tokenizer, over the model's output size."""

    def __init__(self, hf_tokenizer, size: int, *, bos_id: int, eos_id: int | None, unk_id: int,
                 pad_id: int, mask_id: int):
        self._hf = hf_tokenizer
        self.size = size
        self.bos_id, self.eos_id, self.unk_id, self.pad_id, self.mask_id = bos_id, eos_id, unk_id, pad_id, mask_id

    def __len__(self) -> int:
        return self.size

    def token(self, token_id) -> str:
        token_id = int(token_id)
        if not 0 <= token_id < self.size:
            raise IndexError(f"token id {token_id} is outside a vocabulary of {self.size}")
        token = self._hf.convert_ids_to_tokens(token_id)
        return token if isinstance(token, str) else f"<id {token_id}>"  # an output row with no token

    def __getitem__(self, token: str) -> int:
        token_id = self._hf.convert_tokens_to_ids(token)
        return self.unk_id if token_id is None else int(token_id)

    def __contains__(self, token) -> bool:
        return token in self._hf.get_vocab()

    def ids(self, tokens) -> np.ndarray:
        return np.array([self[token] for token in tokens], dtype=np.int64)


class HFTokenizer(Tokenizer):
    """A transformers tokenizer as our Tokenizer (tokenizers.py): ids of a text's own tokens,
    never the model's special tokens (the families add start and end themselves)."""

    level = "subword"
    kind = "hf"
    tokens_are_words = False
    LINES_PER_CALL = 4096  # lines handed to the (Rust, parallel) batch encoder at once

    def __init__(self, hf_tokenizer, vocab: HFVocabulary):
        self.hf = hf_tokenizer
        self.vocab = vocab

    def get_params(self) -> dict:
        return {"name_or_path": self.hf.name_or_path}

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return self.hf(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def tokenize(self, text: str) -> list[str]:
        return self.hf.tokenize(text)

    def encode(self, text: str) -> list[int]:
        return list(self._ids([text])[0])

    def encode_lines(self, lines):
        lines = lines if isinstance(lines, list) else list(lines)
        per_line = []
        for begin in range(0, len(lines), self.LINES_PER_CALL):
            per_line.extend(self._ids(lines[begin : begin + self.LINES_PER_CALL]))
        lengths = np.fromiter(map(len, per_line), dtype=np.int64, count=len(per_line))
        flat = np.fromiter(chain.from_iterable(per_line), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)

    def to_dict(self) -> dict:
        """What identifies it (the id cache keys on this): its name, the sha256 of the fast
        tokenizer's own JSON (vocabulary, merges, normalisation) or of its vocabulary, and the
        transformers-level setting that changes encoding (split_special_tokens)."""
        digest = getattr(self, "_digest", None)
        if digest is None:
            backend = getattr(self.hf, "backend_tokenizer", None)
            described = backend.to_str() if backend is not None else json.dumps(sorted(self.hf.get_vocab().items()))
            digest = self._digest = hashlib.sha256(described.encode("utf-8")).hexdigest()
        return {"type": self.kind, **self.get_params(), "sha256": digest,
                "split_special_tokens": bool(getattr(self.hf, "split_special_tokens", False))}

    def __repr__(self) -> str:
        return f"HFTokenizer({self.hf.name_or_path!r}) <{len(self.vocab)} tokens>"


# ---- what both families share ----------------------------------------------------------------------


@dataclass
class HFTraining:
    """The Trainer's settings (neural/trainer.py reads these names) for fine-tuning."""

    lr: float
    batch_size: int
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    eval_every: int
    patience: int
    seed: int
    warmup_fraction: float = 0.0  # the warm-up is warmup_steps long, whatever the budget


class Finetuning:
    """An HFModel as neural/trainer.py's Trainer sees a model (NeuralLM's names): its module,
    device, a step's batch and its loss, which the family gives. Training checkpoints are not
    written (no `checkpoint`)."""

    def __init__(self, model: HFModel):
        self.model = model
        self.module_ = model.module_
        self.device = model.module_.device
        self.name = model.name
        self.curve_: list[dict] = []

    def training_batch(self, data, step: int):
        return self.model._training_batch(data, step)

    def loss(self, batch):
        return self.model._training_loss(batch)

    def training_state(self) -> dict:
        return {}

    def load_training_state(self, tensors) -> None:
        pass


class MaskedRows:
    """A masked-LM training batch of a transformers model: corrupted rows (B, T), targets (B, T),
    IGNORE off the chosen positions, and the attention mask (B, T), 0 on padding."""

    def __init__(self, inputs, targets, attention):
        self.inputs, self.targets, self.attention = inputs, targets, attention
        self.n_targets = int((targets >= 0).sum())  # the chosen positions (IGNORE is negative)


class HFModel(LanguageModel):
    """A transformers model and its tokenizer, loaded on first use (constructing one reads nothing)."""

    #: transformers' Auto class for the family (an attribute name of the transformers package)
    AUTO_CLASS: ClassVar[str] = ""
    score_batch_lines: ClassVar[int] = 256

    def __init__(self, model: str = "gpt2", *, context: int | None = None, batch_tokens: int = 1024,
                 download: bool = False, device: str = "auto", lr: float = 5e-5, batch_size: int = 8,
                 warmup_steps: int = 0, weight_decay: float = 0.0, grad_clip: float = 1.0, eval_every: int = 100,
                 patience: int = 4, seed: int = 0):
        """model: a Hugging Face Hub name or a local folder (its name_or_path); context: tokens a
        window holds (None: the model's own maximum); batch_tokens: tokens per forward pass when
        scoring; download: let transformers fetch from the Hub (otherwise only a local folder or
        the Hugging Face cache is read); device: auto (CUDA when present), cpu or cuda. lr ..
        seed: fine-tuning settings (fit with a budget), as neural/core.py's NeuralConfig names
        them; GPT-2 and BERT fine-tune at about 5e-5 (Devlin et al. 2019 sec. A.3)."""
        self.model = model
        self.context = context
        self.batch_tokens = batch_tokens
        self.download = download
        self.device = device
        self.lr, self.batch_size, self.warmup_steps = lr, batch_size, warmup_steps
        self.weight_decay, self.grad_clip, self.eval_every = weight_decay, grad_clip, eval_every
        self.patience, self.seed = patience, seed
        self.tokenizer = None
        self.module_ = None
        self.curve_: list[dict] = []
        self.finetuned_from_: str | None = None

    @property
    def name(self) -> str:
        return f"hf:{self.model}" + (" (fine-tuned)" if self.finetuned_from_ else "")

    def check_params(self) -> None:
        """ConfigError naming the first setting of the wrong type or out of range, before anything
        is read: the settings shared with the neural families by name (lr, batch_size, seed, ...)
        by options.NEURAL's ranges, this family's own (context, batch_tokens, stride) by options.HF's."""
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be a Hugging Face model name or folder, got {shown(self.model)}")
        params = self.get_params()
        check_settings({name: value for name, value in params.items() if value is not None}, {**NEURAL, **HF})
        check_decay(self.lr, self.weight_decay)
        if not isinstance(self.download, bool):
            raise ConfigError(f"download must be True or False, got {shown(self.download)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {shown(self.device)}")

    # ---- loading ---------------------------------------------------------------------------------

    def _check_fitted(self):
        if self.tokenizer is None:
            self._load(self.model)
        return self.tokenizer

    def _torch_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _load(self, source: str) -> None:
        """Read the model and tokenizer from `source` (a folder, or a name in the cache)."""
        self.check_params()
        transformers = import_transformers()
        import torch

        offline = not self.download
        try:
            with quiet(transformers):
                hf_tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=offline)
                module = getattr(transformers, self.AUTO_CLASS).from_pretrained(
                    source, local_files_only=offline, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as error:
            if not Path(source).exists() and (source.startswith(("/", ".", "~")) or source.count("/") > 1):
                raise LangmodelsError(f"{source}: no such model folder") from None  # a path, not a Hub name
            where = "" if Path(source).is_dir() else (
                " (offline: it is neither a local folder nor in the Hugging Face cache; fetch it once with "
                f"`hf download {source}` or pass download=True)" if offline else "")
            raise LangmodelsError(f"cannot load Hugging Face model {source!r}{where}: {first_line(error)}") from None
        self.module_ = module.to(self._torch_device()).eval()
        self.context_ = self._model_context(module.config, hf_tokenizer)
        self.tokenizer = HFTokenizer(hf_tokenizer, self._vocabulary(hf_tokenizer, module.config))

    def _model_context(self, config, hf_tokenizer) -> int:
        limits = [getattr(config, key, None) for key in ("n_positions", "max_position_embeddings", "n_ctx")]
        limit = next((int(v) for v in limits if isinstance(v, int) and v > 0), None)
        if limit is None:
            tokenizer_limit = getattr(hf_tokenizer, "model_max_length", None)
            limit = int(tokenizer_limit) if isinstance(tokenizer_limit, int) and tokenizer_limit < 1 << 20 else None
        if self.context is not None:
            if limit is not None and self.context > limit:
                raise ConfigError(f"context {self.context} is more than {self.model} reads ({limit} positions)")
            return self.context
        if limit is None:
            raise ConfigError(f"{self.model} does not say how many positions it reads; give context=N")
        return limit

    def _vocabulary(self, hf_tokenizer, config) -> HFVocabulary:
        raise NotImplementedError

    def _module(self):
        self._check_fitted()
        return self.module_

    @property
    def context_size(self) -> int:
        self._check_fitted()
        return self.context_

    # ---- fitting (fine-tuning) -----------------------------------------------------------------

    def fit(self, train, valid=None, **budget) -> HFModel:
        """Load the pretrained model; with a budget (max_steps, max_tokens, max_seconds) also
        fine-tune it on `train`. Without one there is nothing to learn: the benchmark harness
        calls fit(train) and then scores the model as it was published."""
        self._check_fitted()
        unknown = sorted(set(budget) - {*BUDGET_KEYS, "progress"})
        if unknown:
            raise ConfigError(f"{type(self).__name__}.fit takes no {', '.join(unknown)} "
                              f"(budgets: {', '.join(BUDGET_KEYS)}; settings go to the constructor)")
        if all(budget.get(key) is None for key in BUDGET_KEYS):
            return self
        return self._finetune(train, valid, **budget)

    def _finetune(self, train, valid, **budget) -> HFModel:
        """Continue training the model on `train` with neural/trainer.py (AdamW, warm-up and
        cosine decay, clipping, early stopping on `valid`'s loss): each family says how its text
        becomes batches (_training_data), what a step's batch is and its loss (Finetuning)."""
        import torch

        from .neural.trainer import Trainer

        self.check_params()
        if isinstance(train, str):
            raise LangmodelsError("fit takes a list of lines or a Corpus split, not one string")
        if not any(line.strip() for line in train):
            raise LangmodelsError("the training text is empty")
        mode = split_mode(train, "lines")
        data = self._training_data(train, mode)
        if data.n_tokens < self.batch_size:
            raise LangmodelsError(
                f"the training text has {data.n_tokens} tokens, fewer than one batch ({self.batch_size})")
        torch.manual_seed(self.seed)
        settings = HFTraining(self.lr, self.batch_size, self.warmup_steps, self.weight_decay, self.grad_clip,
                              self.eval_every, self.patience, self.seed)
        validate = None
        if valid is not None:
            valid_mode = split_mode(valid, mode)

            def validate() -> float:
                self.module_.eval()  # no dropout (the trainer switches training back on)
                return self._validation_loss(valid, valid_mode)

        self.finetuned_from_ = self.finetuned_from_ or self.model
        self.curve_ = Trainer(Finetuning(self), settings, data).run(
            validate=validate, progress=budget.get("progress"), **{k: budget.get(k) for k in BUDGET_KEYS})
        self.module_.eval()
        return self

    def _training_data(self, lines, mode: str):
        """neural/data.py's LineBatches or StreamBatches of a text, in this family's rows."""
        raise NotImplementedError

    def _training_batch(self, data, step: int):
        """The batch of training step `step`, drawn from (seed, step)."""
        raise NotImplementedError

    def _training_loss(self, batch):
        """The mean loss (nats) of a batch, a torch scalar the trainer differentiates."""
        raise NotImplementedError

    def _validation_loss(self, lines, mode: str) -> float:
        """The loss early stopping watches on a split (nats per predicted token), deterministic."""
        raise NotImplementedError

    # ---- checkpoints -----------------------------------------------------------------------------

    def fitted_facts(self) -> dict:
        return {"finetuned_from": self.finetuned_from_}

    def checkpoint_contents(self, extra_files: dict[str, bytes] | None = None) -> tuple[dict, dict[str, bytes]]:
        """A published model is saved as its name_or_path (a local folder made absolute): nothing
        else is needed to read it again. A fine-tuned one also holds its transformers folder
        (config, safetensors weights, tokenizer) under hf/, which transformers itself can load."""
        self._check_fitted()
        files = dict(extra_files or {})
        params = self.get_params()
        if Path(self.model).is_dir():
            params["model"] = str(Path(self.model).resolve())
        if self.finetuned_from_:
            with tempfile.TemporaryDirectory() as folder, quiet(import_transformers()):
                self.module_.save_pretrained(folder)
                self.tokenizer.hf.save_pretrained(folder)
                files.update({f"{HF_FOLDER}/{path.relative_to(folder).as_posix()}": path.read_bytes()
                              for path in sorted(Path(folder).rglob("*")) if path.is_file()})
        files[METRICS_FILE] = json.dumps(getattr(self, "metrics_", None) or {}, indent=2).encode("utf-8")
        config = {"class": type(self).__name__, "library_version": __version__, "params": params,
                  "fitted": self.fitted_facts()}
        return config, files

    def save(self, path, *, extra_files: dict[str, bytes] | None = None) -> None:
        write_checkpoint(path, *self.checkpoint_contents(extra_files))

    save_pretrained = save

    @classmethod
    def from_checkpoint(cls, config: dict, files: dict[str, bytes], where: str) -> HFModel:
        model_class = LanguageModel._registry.get(config.get("class"))
        if model_class is None or not issubclass(model_class, cls) or not issubclass(model_class, HFModel):
            raise CheckpointError(f"{where}: checkpoint class {config.get('class')!r} is not a {cls.__name__}")
        try:
            model = model_class(**config["params"])
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"{where}: checkpoint does not fit {config.get('class')} ({error})") from None
        model.metrics_ = json.loads(files.get(METRICS_FILE, b"{}")) or None
        model.finetuned_from_ = (config.get("fitted") or {}).get("finetuned_from")
        weights = {name[len(HF_FOLDER) + 1 :]: data for name, data in files.items()
                   if name.startswith(f"{HF_FOLDER}/")}
        if not weights:
            model._load(model.model)
        elif (Path(where) / HF_FOLDER).is_dir():  # the files there are the ones just checksummed
            model._load(str(Path(where) / HF_FOLDER))
        else:
            with tempfile.TemporaryDirectory() as folder:
                for name, data in weights.items():
                    (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
                    (Path(folder) / name).write_bytes(data)
                model._load(folder)
        return model


def load_hf(name_or_path: str, expected: type = LanguageModel) -> HFModel:
    """The model behind `hf:NAME_OR_PATH`: HFMaskedLM when its config names a masked-LM head
    (BertForMaskedLM ...), else HFCausalLM; loaded now, so a missing model fails here."""
    if not name_or_path:
        raise LangmodelsError("hf: needs a model name or folder after it, e.g. hf:gpt2")
    model_class = HFCausalLM
    transformers = import_transformers()
    try:
        with quiet(transformers):
            architectures = transformers.AutoConfig.from_pretrained(name_or_path, local_files_only=True).architectures
    except (OSError, ValueError, KeyError):
        architectures = None  # not here: HFCausalLM's loading says so in its own words
    if any(name.endswith("ForMaskedLM") for name in architectures or ()):
        model_class = HFMaskedLM
    if not issubclass(model_class, expected):
        raise LangmodelsError(f"hf:{name_or_path} is a {model_class.__name__}, not a {expected.__name__}")
    model = model_class(name_or_path)
    model._check_fitted()
    return model


# ---- causal models (GPT-2 and the like) ------------------------------------------------------------


class HFCausalLM(HFModel):
    """A transformers causal LM (AutoModelForCausalLM) and its tokenizer behind the contract."""

    AUTO_CLASS = "AutoModelForCausalLM"

    def __init__(self, model: str = "gpt2", *, context: int | None = None, stride: int | None = None,
                 batch_tokens: int = 1024, download: bool = False, device: str = "auto",
                 lr: float = 5e-5, batch_size: int = 8, warmup_steps: int = 0, weight_decay: float = 0.0,
                 grad_clip: float = 1.0, eval_every: int = 100, patience: int = 4, seed: int = 0):
        """stride: tokens each scoring window advances in stream mode and on lines longer than
        the context (None: half the context); the rest as HFModel's."""
        super().__init__(model, context=context, batch_tokens=batch_tokens, download=download, device=device,
                         lr=lr, batch_size=batch_size, warmup_steps=warmup_steps, weight_decay=weight_decay,
                         grad_clip=grad_clip, eval_every=eval_every, patience=patience, seed=seed)
        self.stride = stride

    def _vocabulary(self, hf_tokenizer, config) -> HFVocabulary:
        bos, eos = hf_tokenizer.bos_token_id, hf_tokenizer.eos_token_id
        start = bos if bos is not None else eos
        if start is None:
            raise LangmodelsError(
                f"{self.model}'s tokenizer has neither a BOS nor an EOS token: a line has no start to be read after")
        unk = hf_tokenizer.unk_token_id
        pad = hf_tokenizer.pad_token_id
        return HFVocabulary(
            hf_tokenizer, int(config.vocab_size), bos_id=int(start), eos_id=None if eos is None else int(eos),
            unk_id=-1 if unk is None or unk in (bos, eos) else int(unk),  # GPT-2's <unk> is its <|endoftext|>
            pad_id=int(pad if pad is not None else start), mask_id=-1)

    @property
    def _stride(self) -> int:
        if self.stride is not None and self.stride > self.context_size:
            raise ConfigError(f"stride {self.stride} is more than the context ({self.context_size}): "
                              "windows would leave tokens out")
        return self.stride or max(self.context_size // 2, 1)

    # ---- the two primitives ----------------------------------------------------------------------

    def _log_softmax(self, logits):
        import torch

        return torch.log_softmax(logits.float(), dim=-1)

    def next_logprobs(self, context_ids) -> np.ndarray:
        import torch

        vocab = self._check_fitted().vocab
        sequence = [vocab.bos_id, *[int(i) for i in context_ids]]
        if len(sequence) > self.context_size:
            note(f"the context has {len(sequence)} tokens; {self.name} sees the last {self.context_size}")
            sequence = sequence[-self.context_size :]
        module = self._module()
        with torch.inference_mode():
            logits = module(input_ids=torch.tensor([sequence], device=module.device)).logits[0, -1]  # (V,)
        return self._log_softmax(logits).double().cpu().numpy()

    def _rows_logprobs(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        """log P(row[i] | row[:i]) for i >= 1 of each row (each at most context long), (len(row) - 1,)
        float64; rows of similar length share a forward pass of at most batch_tokens tokens."""
        import torch
        import torch.nn.functional as F

        module = self._module()
        results: list[np.ndarray | None] = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        begin = 0
        while begin < len(order):
            end = begin + 1
            while end < len(order) and (end + 1 - begin) * len(rows[order[end]]) <= self.batch_tokens:
                end += 1
            chosen = order[begin:end]
            width = len(rows[chosen[-1]])
            ids = np.zeros((len(chosen), width), dtype=np.int64)  # (B, T): right-padded
            mask = np.zeros((len(chosen), width), dtype=np.int64)
            for r, i in enumerate(chosen):
                ids[r, : len(rows[i])], mask[r, : len(rows[i])] = rows[i], 1
            ids_t = torch.from_numpy(ids).to(module.device)
            with torch.inference_mode():
                logits = module(input_ids=ids_t, attention_mask=torch.from_numpy(mask).to(module.device)).logits
                # log P(next) at each position, (B, T - 1): the cross-entropy's negative, one fused op
                picked = -F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids_t[:, 1:], reduction="none")
            picked = picked.double().cpu().numpy()
            for r, i in enumerate(chosen):
                results[i] = picked[r, : len(rows[i]) - 1]
            begin = end
        return results

    def _windows(self, sequence: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        """Sliding windows over a sequence that starts with the start token: the windows, and in
        each the index of its first row entry to keep (the tokens earlier windows did not score).

        Windows of `context` tokens start at 0, stride, 2 stride, ...; window [b, e) predicts
        tokens max(previous e, b + 1) .. e - 1 (the transformers docs' fixed-length method)."""
        window, stride = self.context_size, self._stride
        windows, keep = [], []
        scored_to, begin = 1, 0  # tokens [1, scored_to) are scored
        while scored_to < len(sequence):
            end = min(begin + window, len(sequence))
            windows.append(sequence[begin:end])
            keep.append(scored_to - begin - 1)  # row entry j predicts token begin + j + 1
            scored_to = end
            begin += stride
        return windows, keep

    def _sequence_logprobs(self, sequences: list[np.ndarray]) -> list[np.ndarray]:
        """log P(sequence[i] | sequence[:i]) for i >= 1 of each sequence, windowed where longer
        than the context."""
        rows, owners, keeps = [], [], []
        for index, sequence in enumerate(sequences):
            windows, keep = self._windows(sequence)
            rows.extend(windows)
            owners.extend([index] * len(windows))
            keeps.extend(keep)
        pieces: list[list[np.ndarray]] = [[] for _ in sequences]
        for owner, keep, scored in zip(owners, keeps, self._rows_logprobs(rows)):
            pieces[owner].append(scored[keep:])
        return [np.concatenate(p) if p else np.zeros(0) for p in pieces]

    def score_ids(self, batch) -> list[np.ndarray]:
        """Per line, log P of each token after the start token and of the end token after them."""
        vocab = self._check_fitted().vocab
        if vocab.eos_id is None:
            raise LangmodelsError(f"{self.model}'s tokenizer has no EOS token, so a line has no end to score; "
                                  "evaluate it in stream mode")
        return self._sequence_logprobs(
            [np.concatenate([[vocab.bos_id], np.asarray(ids, dtype=np.int64), [vocab.eos_id]]) for ids in batch])

    def score_stream(self, ids) -> np.ndarray:
        """log P of each token of one sequence after the start token, in windows advancing by stride."""
        vocab = self._check_fitted().vocab
        return self._sequence_logprobs([np.concatenate([[vocab.bos_id], np.asarray(ids, dtype=np.int64)])])[0]

    def next_logprobs_incremental(self, context_ids):
        """next_logprobs along a growing text with transformers' key/value cache: each sent token
        costs one position while the text fits the context; past it, each step reads the last
        `context` tokens afresh (positions are absolute, so the cache cannot slide)."""
        import inspect

        import torch

        module = self._module()
        window = self.context_size
        cache_name = "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
        sequence = [self.tokenizer.vocab.bos_id, *[int(i) for i in context_ids]]
        cache, noted = None, False
        while True:
            fits = len(sequence) <= window
            if not fits and not noted:
                note(f"the context has {len(sequence)} tokens; {self.name} sees the last {window}")
                noted = True
            feed = sequence[-1:] if fits and cache is not None else sequence[-window:]
            with torch.inference_mode():
                out = module(input_ids=torch.tensor([feed], device=module.device), use_cache=fits,
                             **({cache_name: cache} if fits and cache is not None else {}))
            cache = (out.get("cache") or out.get("past_key_values")) if fits else None
            token = yield self._log_softmax(out.logits[0, -1]).double().cpu().numpy()
            sequence.append(int(token))

    # ---- fine-tuning through our Trainer -----------------------------------------------------------

    def _training_data(self, lines, mode: str):
        """Lines as <start> line <end> pieces of at most `context` tokens, a stream as windows of
        `context` tokens."""
        from .neural.data import LineBatches, StreamBatches

        vocab = self.tokenizer.vocab
        if mode == "stream":
            return StreamBatches(self._stream_ids(lines), bos=vocab.bos_id, block=self.context_size - 1)
        if vocab.eos_id is None:
            raise LangmodelsError(f"{self.model} has no EOS token to end its training lines")
        flat, lengths = self.tokenizer.encode_lines(list(lines))
        return LineBatches(flat, lengths, bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id,
                           max_len=self.context_size)

    def _training_batch(self, data, step: int):
        return data.sample(self.batch_size, self.seed, step)

    def _training_loss(self, batch):
        """Mean next-token cross-entropy (nats) over the batch's targets (IGNORE where padded)."""
        import torch.nn.functional as F

        from .neural.data import IGNORE

        module = self.module_
        logits = module(input_ids=batch.inputs.to(module.device)).logits  # (B, T, V)
        return F.cross_entropy(logits.float().transpose(1, 2), batch.targets.to(module.device), ignore_index=IGNORE)

    def _validation_loss(self, lines, mode: str) -> float:
        """Nats per token of the split, as evaluate() scores it."""
        return self.evaluate(lines, mode=mode, progress=False).nats_per_token


# ---- masked models (BERT and the like) -----------------------------------------------------------


class HFMaskedLM(HFModel):
    """A transformers masked LM (AutoModelForMaskedLM): fill-mask and pseudo-log-likelihood."""

    AUTO_CLASS = "AutoModelForMaskedLM"
    is_causal = False

    def __init__(self, model: str = "bert-base-uncased", *, context: int | None = None, batch_tokens: int = 1024,
                 download: bool = False, device: str = "auto", lr: float = 5e-5, batch_size: int = 8,
                 warmup_steps: int = 0, weight_decay: float = 0.0, grad_clip: float = 1.0, eval_every: int = 100,
                 patience: int = 4, seed: int = 0, mask_prob: float = 0.15, mask_token_prob: float = 0.8,
                 random_token_prob: float = 0.1):
        """mask_prob, mask_token_prob, random_token_prob: BERT's masking when fine-tuning (Devlin
        et al. 2019 sec. 3.1), as our MaskedLM names it; the rest as HFModel's."""
        super().__init__(model, context=context, batch_tokens=batch_tokens, download=download, device=device,
                         lr=lr, batch_size=batch_size, warmup_steps=warmup_steps, weight_decay=weight_decay,
                         grad_clip=grad_clip, eval_every=eval_every, patience=patience, seed=seed)
        self.mask_prob, self.mask_token_prob, self.random_token_prob = mask_prob, mask_token_prob, random_token_prob

    def check_params(self) -> None:
        from .neural.bert import check_masking

        super().check_params()
        check_masking(self)

    def _vocabulary(self, hf_tokenizer, config) -> HFVocabulary:
        start = hf_tokenizer.cls_token_id if hf_tokenizer.cls_token_id is not None else hf_tokenizer.bos_token_id
        end = hf_tokenizer.sep_token_id if hf_tokenizer.sep_token_id is not None else hf_tokenizer.eos_token_id
        if start is None or end is None or hf_tokenizer.mask_token_id is None:
            raise LangmodelsError(f"{self.model}'s tokenizer lacks a CLS/BOS, SEP/EOS or mask token: "
                                  "it is not a masked LM that can score lines")
        unk, pad = hf_tokenizer.unk_token_id, hf_tokenizer.pad_token_id
        return HFVocabulary(hf_tokenizer, int(config.vocab_size), bos_id=int(start), eos_id=int(end),
                            unk_id=-1 if unk is None else int(unk), pad_id=int(pad if pad is not None else end),
                            mask_id=int(hf_tokenizer.mask_token_id))

    def _never_text(self) -> list[int]:
        """Ids that are markers, not text: never an answer, never sampled."""
        vocab = self.tokenizer.vocab
        return sorted({vocab.bos_id, vocab.pad_id, vocab.mask_id})

    def _logprobs_at(self, sequence: list[int], positions: list[int]) -> np.ndarray:
        """log P(token at each position | the sequence), (len(positions), V) float64."""
        import torch

        module = self._module()
        with torch.inference_mode():
            logits = module(input_ids=torch.tensor([sequence], device=module.device)).logits[0, positions]
        return torch.log_softmax(logits.float(), dim=-1).double().cpu().numpy()

    # ---- fine-tuning by masked-LM, as our MaskedLM trains (neural/bert.py) -------------------------

    def _training_data(self, lines, mode: str):
        """Lines as [CLS] line [SEP] pieces of at most `context` tokens; a stream as windows of
        context - 2 tokens, each read as [CLS] window [SEP] (how score_stream reads a stream)."""
        from .neural.data import LineBatches, StreamBatches

        vocab = self.tokenizer.vocab
        if mode == "stream":
            return StreamBatches(self._stream_ids(lines), bos=vocab.bos_id, block=self.context_size - 2)
        flat, lengths = self.tokenizer.encode_lines(list(lines))
        return LineBatches(flat, lengths, bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id,
                           max_len=self.context_size - 1)

    def _masked_batch(self, batch, stream: bool, generator) -> MaskedRows:
        """A batch of neural/data.py's as whole rows, masked by neural/bert.py's mask_tokens.

        Markers are never chosen: [CLS], [PAD], [MASK], and [SEP], which scoring gives rather
        than predicts; a random replacement is any id of the vocabulary, as in BERT's
        create_pretraining_data.py and transformers' DataCollatorForLanguageModeling."""
        import torch

        from .neural.bert import full_rows, mask_tokens
        from .neural.data import IGNORE

        vocab = self.tokenizer.vocab
        if stream:  # the window's tokens (its targets: never the stream's start token) in [CLS] .. [SEP]
            targets = batch.targets
            rows = torch.cat([torch.full_like(targets[:, :1], vocab.bos_id), targets,
                              torch.full_like(targets[:, :1], vocab.eos_id)], dim=1)  # (B, T + 2)
            attention = torch.ones_like(rows)
        else:  # [CLS] w1 .. wk [SEP] and padding, which attention skips (pad may be [SEP] itself)
            rows = full_rows(batch, vocab.pad_id)  # (B, T + 1)
            attention = torch.cat([torch.ones_like(rows[:, :1]), (batch.targets != IGNORE).long()], dim=1)
        inputs, targets = mask_tokens(rows, generator, len(vocab), self,
                                      not_text=(*self._never_text(), vocab.eos_id), mask_id=vocab.mask_id,
                                      random_from=0)
        return MaskedRows(inputs, targets, attention)

    def _training_batch(self, data, step: int) -> MaskedRows:
        """The step's rows (drawn from (seed, step) as for every model), masked from (seed, step)."""
        from .neural.bert import step_generator
        from .neural.data import StreamBatches

        batch = data.sample(self.batch_size, self.seed, step)
        return self._masked_batch(batch, isinstance(data, StreamBatches), step_generator(self.seed, step))

    def _training_loss(self, batch: MaskedRows):
        """Mean cross-entropy at the chosen positions (Devlin et al. 2019's masked-LM loss)."""
        import torch.nn.functional as F

        from .neural.data import IGNORE

        module = self.module_
        targets = batch.targets.to(module.device)  # (B, T)
        logits = module(input_ids=batch.inputs.to(module.device),
                        attention_mask=batch.attention.to(module.device)).logits  # (B, T, V)
        chosen = targets != IGNORE
        return F.cross_entropy(logits[chosen].float(), targets[chosen])

    def _validation_loss(self, lines, mode: str) -> float:
        """Masked-LM cross-entropy (nats per chosen token) over every row of a split, once, with
        masks from the seed (purpose 1: not any training step's), as MaskedLM.validation_loss;
        far cheaper than the pseudo-log-likelihood (a pass per row, not per token). A stream is
        cut into consecutive windows of context - 2 tokens."""
        import torch

        from .neural.bert import step_generator
        from .neural.data import LineBatches

        vocab = self.tokenizer.vocab
        if mode == "stream":
            ids = self._stream_ids(lines)
            room = self.context_size - 2
            lengths = np.diff(np.append(np.arange(0, len(ids), room), len(ids)))
            data = LineBatches(ids, lengths, bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id, max_len=None)
        else:
            data = self._training_data(lines, mode)
        total, count = 0.0, 0
        with torch.no_grad():
            for index, batch in enumerate(data.in_order(self.batch_size)):
                masked = self._masked_batch(batch, False, step_generator(self.seed, index, 1))
                total += self._training_loss(masked).item() * masked.n_targets
                count += masked.n_targets
        return total / max(count, 1)

    # ---- pseudo-log-likelihood --------------------------------------------------------------------

    def _masked_copies(self, ids: np.ndarray, first: int, last: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """One row per token first .. last-1 of `ids`: [start] + a window of ids around it + [end],
        the token masked, padded to `width`. Returns (rows (n, width), the masked position in each
        row (n,)). A line that fits the context is copied whole; a longer text gives each token
        the window of context - 2 tokens centred on it."""
        vocab = self.tokenizer.vocab
        inner = min(len(ids), self.context_size - 2)
        targets = np.arange(first, last)
        start = np.clip(targets - inner // 2, 0, len(ids) - inner)  # (n,): where each window begins
        rows = np.full((len(targets), width), vocab.pad_id, dtype=np.int64)  # (n, width)
        rows[:, 0] = vocab.bos_id
        rows[:, 1 : inner + 1] = ids[start[:, None] + np.arange(inner)[None, :]]
        rows[:, inner + 1] = vocab.eos_id
        positions = targets - start + 1
        rows[np.arange(len(targets)), positions] = vocab.mask_id
        return rows, positions

    def _pll(self, texts: list[np.ndarray]) -> list[np.ndarray]:
        """Per id array, the PLL term of each of its tokens (Salazar et al. 2020): one
        masked copy per token; copies of consecutive texts share forward passes of at most
        batch_tokens tokens (copies x the widest copy)."""
        import torch

        module = self._module()
        room = self.context_size - 2
        texts = [np.asarray(ids, dtype=np.int64) for ids in texts]
        batches, current, rows_in, width_in = [], [], 0, 0  # each batch: [(text, first, last), ...]
        for t, ids in enumerate(texts):
            width, first = min(len(ids), room) + 2, 0
            while first < len(ids):
                wider = max(width_in, width)
                fit = self.batch_tokens // wider - rows_in
                if fit < 1 and current:
                    batches.append(current)
                    current, rows_in, width_in = [], 0, 0
                    continue
                last = min(len(ids), first + max(fit, 1))
                current.append((t, first, last))
                rows_in, width_in, first = rows_in + last - first, wider, last
        if current:
            batches.append(current)
        terms = [np.zeros(len(ids)) for ids in texts]
        for batch in batches:
            width = max(min(len(texts[t]), room) + 2 for t, _, _ in batch)
            copies = [self._masked_copies(texts[t], first, last, width) for t, first, last in batch]
            rows = torch.from_numpy(np.concatenate([r for r, _ in copies])).to(module.device)  # (R, W)
            widths = np.concatenate([np.full(last - first, min(len(texts[t]), room) + 2) for t, first, last in batch])
            attention = torch.from_numpy(np.arange(width)[None, :] < widths[:, None]).long().to(module.device)
            positions = torch.from_numpy(np.concatenate([p for _, p in copies])).to(module.device)  # (R,)
            true = np.concatenate([texts[t][first:last] for t, first, last in batch])
            true = torch.from_numpy(true).to(module.device)  # (R,): the masked tokens
            with torch.inference_mode():
                logits = module(input_ids=rows, attention_mask=attention).logits  # (R, W, V)
                at_mask = logits[torch.arange(len(rows), device=module.device), positions].float()  # (R, V)
                picked = torch.log_softmax(at_mask, dim=-1).gather(1, true[:, None])[:, 0].double().cpu().numpy()
            offset = 0
            for t, first, last in batch:
                terms[t][first:last] = picked[offset : offset + last - first]
                offset += last - first
        return terms

    def score_ids(self, batch) -> list[np.ndarray]:
        """Pseudo-log-likelihood terms of each line; the end-of-line entry is 0 (given, not
        predicted: see the module's docstring)."""
        self._check_fitted()
        return [np.append(terms, 0.0) for terms in self._pll([np.asarray(ids, dtype=np.int64) for ids in batch])]

    def score_stream(self, ids) -> np.ndarray:
        """PLL terms of each token of a stream, each masked in the window of context - 2 tokens around it."""
        self._check_fitted()
        return self._pll([np.asarray(ids, dtype=np.int64)])[0]

    # ---- next token, fill-mask -----------------------------------------------------------------------

    def next_logprobs(self, context_ids) -> np.ndarray:
        """The distribution at a mask after [CLS] + context and before [SEP] (markers excluded).

        An approximation, as for our MaskedLM: a bidirectional model has no next-token
        distribution; this asks for the last token of a line that ends right after the mask. It
        lets top_next and generate (left to right, one mask at a time) work; scoring never uses it.
        """
        vocab = self._check_fitted().vocab
        room = self.context_size - 2
        context = [int(i) for i in context_ids]
        if len(context) + 1 > room:
            note(f"the context has {len(context)} tokens; {self.name} sees the last {room - 1}")
            context = context[len(context) + 1 - room :]
        sequence = [vocab.bos_id, *context, vocab.mask_id, vocab.eos_id]
        logprobs = self._logprobs_at(sequence, [len(sequence) - 2])[0]
        logprobs[self._never_text()] = -np.inf
        return logprobs - np.logaddexp.reduce(logprobs)

    def fill_mask(self, text: str, k: int = 5) -> list[list[tuple[str, float]]]:
        """The k most probable tokens for each [MASK] (or <mask>, or the model's own mask string)
        in `text`, most probable first, each predicted with all masks in place."""
        tokenizer = self._check_fitted()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise LangmodelsError(f"k must be a whole number >= 1, got {k!r}")
        own = tokenizer.hf.mask_token
        marked = MASK_MARKER.sub(own, text)
        if own not in marked:
            raise LangmodelsError(f"no [MASK] to fill in {text!r}; write [MASK] (or <mask>) where a token is missing")
        vocab = tokenizer.vocab
        sequence = [vocab.bos_id, *tokenizer.encode(marked), vocab.eos_id]
        if len(sequence) > self.context_size:
            raise LangmodelsError(f"the text has {len(sequence)} tokens with [CLS] and [SEP]; "
                                  f"{self.name} reads at most {self.context_size}")
        positions = [i for i, token in enumerate(sequence) if token == vocab.mask_id]
        logprobs = self._logprobs_at(sequence, positions)  # (masks, V)
        logprobs[:, sorted(set(tokenizer.hf.all_special_ids))] = -np.inf  # markers are not answers
        return [most_probable(row, tokenizer, k) for row in logprobs]

    def pseudo_perplexity(self, texts) -> float:
        """exp(-PLL / tokens) of a text (Salazar et al. 2020's PPPL): evaluate(texts).perplexity,
        which for this model is a pseudo-perplexity."""
        return self.evaluate(texts).perplexity
