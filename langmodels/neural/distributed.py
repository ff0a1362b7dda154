"""Training on several processes: the process group torchrun describes, and what the ranks agree on.

`torchrun --nproc_per_node N -m langmodels train ...` starts N copies of the command with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in their environment. `start()` joins them in
one process group (gloo on CPUs, nccl on CUDA GPUs, one GPU per process: cuda:LOCAL_RANK), and
the Trainer then wraps the model in DistributedDataParallel, which averages the gradients of
the ranks' batches in backward (docs/design.md 10). What the ranks must decide alike, they agree
on here: each step's loss and token count (summed over the ranks) and the clock and the time
budget (rank 0's, which alone validates and writes); at a curve point, whether early stopping
stops (rank 0's decision).

Failures end the whole run: a rank whose collective fails because another rank has gone raises
ProcessGroupError (one line); torchrun stops the other ranks with SIGTERM, which `start()` turns
into KeyboardInterrupt, so rank 0 writes its training state (atomically) as on Ctrl-C; and every
collective has a timeout (TIMEOUT), so no rank waits for ever on one that hangs.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import LangmodelsError
from .devices import DeviceError, resolve_device

# Longer than anything rank 0 does while the others wait for it at the next step (a curve
# point's validation of at most 50,000 characters, a checkpoint), short enough that a rank that
# hangs ends the run.
TIMEOUT = timedelta(minutes=10)


class ProcessGroupError(LangmodelsError):
    """The process group could not be joined, or a collective failed (another rank stopped)."""


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank `rank` of `size` (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that validates, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def label(self) -> str:
        return f"rank {self.rank} of {self.size}"


def launched() -> bool:
    """This process is one of several that torchrun started (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def current_world() -> World:
    """The process group joined (by start() or by the user's own init_process_group), or one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: torch.device, world: World) -> torch.device:
    """One GPU per process: on several processes, CUDA is cuda:LOCAL_RANK (a GPU named by its
    index would be every rank's, which nccl refuses)."""
    if device.type != "cuda" or world.size == 1:
        return device
    if device.index is not None:
        raise DeviceError(f"device='cuda:{device.index}' on {world.size} processes: each process takes "
                          "cuda:LOCAL_RANK; set device=cuda (or auto)")
    return torch.device("cuda", world.local_rank)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def start(device_name: str) -> World:
    """Join torchrun's process group: nccl when the ranks train on CUDA, else gloo. SIGTERM (how
    torchrun stops the other ranks when one fails, or on Ctrl-C) then interrupts like Ctrl-C."""
    if dist.is_initialized():
        return current_world()
    environment = World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                        int(os.environ.get("LOCAL_RANK", "0")))
    device = rank_device(resolve_device(device_name), environment)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=TIMEOUT)
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ProcessGroupError(f"cannot join the {backend} process group torchrun describes ({first})") from None
    signal.signal(signal.SIGTERM, _interrupt)
    return current_world()


def stop() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def main_first(world: World):
    """Rank 0 runs the block before the others do (it writes the token-id cache they then read)."""
    if world.size > 1 and not world.is_main:
        _collective(world, dist.barrier)
    yield
    if world.size > 1 and world.is_main:
        _collective(world, dist.barrier)


# What gloo and nccl say when a collective fails because another rank has gone or hangs (they
# raise plain RuntimeErrors, not always torch.distributed.DistError).
PEER_FAILURES = ("Connection closed by peer", "Connection reset", "Broken pipe", "gloo", "NCCL", "imed out")


def peer_failure(world: World, error: BaseException) -> ProcessGroupError | None:
    """`error` (raised by a collective, or by DistributedDataParallel's in backward) as the
    one-line ProcessGroupError it means; None if it is not a collective's failure."""
    if world.size == 1 or not isinstance(error, RuntimeError):
        return None
    text = str(error)
    if not isinstance(error, dist.DistError) and not any(mark in text for mark in PEER_FAILURES):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]  # gloo's source position and advice left out
    return ProcessGroupError(f"another process of the run stopped or hung ({first})")


def _collective(world: World, operation, *args, **kwargs):
    try:
        return operation(*args, **kwargs)
    except RuntimeError as error:
        failure = peer_failure(world, error)
        if failure is None:
            raise
        raise failure from None


def _figures(values, device: torch.device) -> torch.Tensor:
    # nccl reduces GPU tensors only; gloo CPU ones. float64 keeps token counts exact to 2**53.
    return torch.tensor(values, dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")


# How long a collective's tensor may stay in gloo's hands after the collective returned: its worker
# thread lets go within microseconds, or within a scheduler slice on a loaded machine.
RELEASE_SECONDS = 30.0


def _exchange(world: World, operation, figures: torch.Tensor, **kwargs) -> list[float]:
    """`operation(figures, **kwargs)` (a collective, waited for), then `figures` as a list, once
    gloo's worker thread has let go of it.

    A gloo collective returns when its work is done, but the work object (which holds `figures`)
    is destroyed a moment later on one of gloo's worker threads, and letting go of a tensor Python
    made takes the interpreter lock. DistributedDataParallel keeps the process group, and so those
    threads, alive until the process exits (torch 2.13: destroy_process_group does not join them);
    a worker that reaches for the lock while the interpreter shuts down aborts the process
    ("terminate called without an active exception", about one run in twenty on a loaded
    2-core machine). Python's reference count of `figures` shows when the work let go: the tensor
    holds one reference to its Python object while C++ holds the tensor too."""
    held = sys.getrefcount(figures)
    _collective(world, operation, figures, **kwargs)
    if figures.device.type == "cpu":
        deadline = time.monotonic() + RELEASE_SECONDS
        while sys.getrefcount(figures) > held and time.monotonic() < deadline:
            time.sleep(1e-4)  # the interpreter lock goes to the worker thread that needs it
    return figures.tolist()


def agree_step(world: World, device: torch.device, loss: float, targets: int, main_only: list[float]) -> tuple:
    """(mean loss over the ranks, targets summed over the ranks, rank 0's `main_only` values),
    in one all_reduce: the other ranks add zeros where rank 0's values go."""
    if world.size == 1:
        return loss, targets, list(main_only)
    mine = [float(v) if world.is_main else 0.0 for v in main_only]
    figures = _exchange(world, dist.all_reduce, _figures([loss, targets, *mine], device), op=dist.ReduceOp.SUM)
    return figures[0] / world.size, int(figures[1]), figures[2:]


def from_main(world: World, device: torch.device, values: list[float]) -> list[float]:
    """Rank 0's `values`, on every rank."""
    if world.size == 1:
        return list(values)
    return _exchange(world, dist.broadcast, _figures(values, device), src=0)


@contextmanager
def processes(device_name: str):
    """The World this process trains in: torchrun's process group (joined here, left at the end
    of the block) when torchrun started several processes, else one process."""
    if not launched():
        yield current_world()
        return
    world = start(device_name)
    try:
        yield world
    except BaseException:
        stop()
        raise
    # every rank leaves together (no rank's collective fails because a peer has torn down its group)
    try:
        _collective(world, dist.barrier)
    finally:
        stop()
