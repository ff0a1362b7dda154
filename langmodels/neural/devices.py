"""Where a neural model computes, and how a training step uses that device (docs/design.md 10).

`device` is a setting of every neural family: "auto", "cpu", "cuda", "cuda:N" or "mps".
"auto" takes CUDA when torch sees a GPU and the CPU otherwise; it never picks Apple's "mps",
which is taken only when named (float64, which scoring returns, and some kernels are missing there,
so a model would not score the same on it without the user asking for it).

A device that is named but absent is a one-line DeviceError when a model is fitted. A checkpoint
is the same files whatever device trained it (weights are written from CPU tensors); loading
puts the model on its saved device when this machine has it, and on "auto"'s device otherwise,
with a note, so a model trained on a GPU loads, scores and samples on a CPU-only machine.

On CUDA a training step runs in mixed precision (Micikevicius et al. 2018): under bf16 autocast
where the GPU computes bf16 natively (Ampere and later), else under fp16 autocast with a loss
scaler (torch.amp.GradScaler) against fp16's narrow exponent; with TF32 matmuls; and with each
batch copied from pinned host memory without waiting (nanoGPT's train.py habits). Only the
training loop runs this way: scoring stays in float32, so the same weights give the same
log-probabilities on every device to about 1e-4.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from ..base import note
from ..errors import ConfigError, LangmodelsError

DEVICE_TYPES = ("cpu", "cuda", "mps")
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"


class DeviceError(LangmodelsError):
    """A device that this machine (or this build of torch) does not have."""


def parse_device(name: str) -> torch.device | None:
    """The device a setting names (None for "auto"), checked for its spelling only."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES or (device.type != "cuda" and device.index):
        raise ConfigError(f"device must be {DEVICE_NAMES}, got {name!r}")
    return device


def resolve_device(name: str) -> torch.device:
    """The torch device a setting names, checked against this machine: DeviceError if absent."""
    device = parse_device(name)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise DeviceError(f"device={name!r}, but torch sees no CUDA GPU here (torch {torch.__version__}, {build})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device={name!r}, but torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device={name!r}, but Apple's Metal (mps) is not available here")
    return device


def loading_device(name: str) -> torch.device:
    """Where a loaded checkpoint goes: its saved device if present here, else "auto"'s (a note says so)."""
    try:
        return resolve_device(name)
    except DeviceError:
        device = resolve_device("auto")
        note(f"the checkpoint was set to run on {name}, which this machine lacks: loaded on {device.type}")
        return device


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`: to a GPU through pinned (page-locked) memory, without waiting
    for the copy, so the step's work queues behind it (the GPU's stream orders them)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class Precision:
    """How a training step computes on `device`: autocast dtype, loss scaling and matmul precision.

    CPU and mps: float32 throughout (autocast off; bf16 on a CPU without native bf16 units is slower).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.dtype: torch.dtype | None = None  # the autocast dtype; None: float32
        if device.type == "cuda":
            with torch.cuda.device(device):
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            self.dtype = torch.bfloat16 if native else torch.float16
        # fp16 gradients underflow without scaling; bf16 has float32's exponent and needs none.
        # Disabled, the scaler passes the loss and the optimizer step through unchanged.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype is torch.float16)

    @property
    def label(self) -> str:
        return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(self.dtype, "float32")

    def autocast(self):
        """The forward pass's context: autocast on CUDA, nothing elsewhere."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def fast_matmuls(self) -> Callable[[], None]:
        """TF32 matmuls and convolutions from now on, on CUDA (10-bit mantissa products, float32
        sums); returns the function that puts the previous settings back, so that scoring outside
        training stays float32."""
        if self.device.type != "cuda":
            return lambda: None
        matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

        def put_back() -> None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn

        return put_back
