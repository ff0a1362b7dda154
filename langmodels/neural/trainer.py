"""The one training loop every neural model uses.

AdamW (Loshchilov & Hutter 2019; weight decay on matrices only) with linear warm-up (a share of
the steps the budget allows) and cosine decay to a tenth of the peak rate, gradient-norm
clipping, a budget in steps, tokens or wall-clock seconds (validation included), a deterministic
validation pass every `eval_every` steps or at each tenth of the budget with early stopping on
it, and resumable checkpoints (written on Ctrl-C too). Each step's batch and dropout masks are
drawn from (seed, step), so a resumed run repeats exactly the curve an uninterrupted one would
have drawn.

The device and the processes (docs/design.md 10): each step's forward pass runs under the
device's Precision (devices.py: bf16 autocast and TF32 on CUDA, a loss scaler for fp16), through
torch.compile when `compile` is set, and, when torchrun started several processes
(distributed.py), through DistributedDataParallel, which averages the ranks' gradients in
backward. Every rank then takes the same optimizer step; the budgets are global (tokens summed
over the ranks, rank 0's clock), and rank 0 alone validates and writes checkpoints.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..checkpoint import read_checkpoint
from ..errors import CheckpointError, LangmodelsError
from .data import Batch
from .devices import Precision
from .distributed import ProcessGroupError, agree_step, current_world, from_main, peer_failure

OPTIMIZER_FILE = "optimizer.safetensors"
BEST_FILE = "best.safetensors"
CARRIED_FILE = "carried.safetensors"  # what the model carries between steps (model.training_state())
TRAINER_FILE = "trainer.json"
FINAL_LR_FRACTION = 0.1
EVALUATIONS = 10  # curve points (and validations) over a budget when eval_every is 0
VALIDATION_SHARE = 0.1  # under a time budget, a curve point is validated only while validation has
# taken at most this share of the seconds so far (a slow pass would otherwise eat a short budget)


class TrainingDivergedError(LangmodelsError):
    """The loss stopped being a finite number."""


def learning_rate(step: int, peak: float, warmup: float, horizon: int | None) -> float:
    """Linear warm-up for `warmup` steps, then cosine decay to FINAL_LR_FRACTION * peak at `horizon`
    (None: not known yet, the peak)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if horizon is None:
        return peak
    progress = min((step - warmup) / max(horizon - warmup, 1), 1.0)
    floor = FINAL_LR_FRACTION * peak
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW's state as named tensors (for safetensors) and the JSON-safe rest."""
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def seed_dropout(seed: int, device: torch.device) -> None:
    """Seed the generator dropout draws from on `device`: the CPU's, or the GPU's too.

    torch.manual_seed would do it, but with no GPU in use it also files a GPU seeding away for
    later together with a formatted stack trace: about 0.15 ms, on every step.
    """
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):  # this GPU's generator, whichever is current
            torch.cuda.manual_seed(seed)


class StepLoss(nn.Module):
    """model.loss(batch) as one module's forward: what DistributedDataParallel wraps (its forward
    must run for its backward to average the gradients) and what torch.compile compiles."""

    def __init__(self, model):
        super().__init__()
        self.network = model.module_  # registered, so that its parameters are this module's
        self.model = model  # not an nn.Module: a plain attribute

    def forward(self, batch) -> torch.Tensor:
        return self.model.loss(batch)


class Trainer:
    """Runs optimisation for one NeuralLM over its training data (LineBatches or StreamBatches)."""

    def __init__(self, model, config, data):
        self.model = model
        self.config = config
        self.data = data
        module = model.module_
        decay = [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in module.parameters() if p.requires_grad and p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
            betas=(0.9, 0.95),
            fused=True,  # one kernel per step for all parameters (CPU and CUDA), not one per tensor
        )
        self.step = 0
        self.tokens = 0
        self.seconds = 0.0
        self.horizon: int | None = None
        self.curve: list[dict] = []
        self.best_valid = math.inf
        self.best_state: dict | None = None
        self.stale_evaluations = 0
        self.window_loss, self.window_steps = 0.0, 0  # train loss summed since the last curve point
        self.evaluated_at = 0.0  # the spent fraction of the budget at the last curve point
        self.validation_seconds = 0.0
        self.world = current_world()
        self.precision = Precision(model.device)

    def _step_module(self) -> nn.Module:
        """What computes a step's loss: StepLoss, in DistributedDataParallel on several processes
        (one GPU each, or gloo on CPUs), compiled when the config asks for it."""
        step = StepLoss(self.model)
        if self.world.size > 1:
            device = self.model.device
            step = DistributedDataParallel(
                step, device_ids=[device] if device.type == "cuda" else None,
                forward_sync_buffers=False,  # no running statistics to share (positions are a formula)
                # an adaptive softmax's tail clusters are unused by a batch without their words
                find_unused_parameters=getattr(self.config, "softmax", "full") == "adaptive",
            )
        if getattr(self.config, "compile", False):
            step = torch.compile(step)
        return step

    # ---- budgets -------------------------------------------------------------------------------

    def _estimate_horizon(self, max_steps, max_tokens, seconds_left) -> int | None:
        """Steps the cosine schedule spans: the step budget, or the one the token or time budget
        implies at the mean rate so far (validation passes included, as they spend the time
        budget too); None before any rate is measured. Re-estimated after every step, so the
        decay ends when the budget does."""
        candidates = []
        if max_steps is not None:
            candidates.append(max_steps)
        if self.step > 0 and max_tokens is not None:
            candidates.append(self.step + math.ceil((max_tokens - self.tokens) * self.step / max(self.tokens, 1)))
        if self.step > 0 and seconds_left is not None:
            candidates.append(self.step + math.ceil(seconds_left * self.step / max(self.seconds, 1e-6)))
        if not candidates:
            return None
        return max(min(candidates), self.config.warmup_steps + 1)

    def _warmup(self) -> float:
        """Warm-up steps: warmup_steps, or warmup_fraction of the expected steps if longer.
        Before the first step's speed is known, an unknown horizon means a rate of ~0."""
        fraction = self.config.warmup_fraction
        if self.horizon is None:
            return math.inf if fraction > 0 else self.config.warmup_steps
        return max(self.config.warmup_steps, math.ceil(fraction * self.horizon))

    @staticmethod
    def _spent_fraction(step, tokens, seconds, max_steps, max_tokens, seconds_budget) -> float:
        """How much of the budget is spent, 0 to 1: the largest share of any budget given."""
        shares = [0.0]
        if max_steps is not None:
            shares.append(step / max(max_steps, 1))
        if max_tokens is not None:
            shares.append(tokens / max(max_tokens, 1))
        if seconds_budget is not None:
            shares.append(seconds / max(seconds_budget, 1e-9))
        return max(shares)

    # ---- checkpoints ---------------------------------------------------------------------------

    def _trainer_state(self) -> dict:
        return {
            "step": self.step, "tokens": self.tokens, "seconds": self.seconds, "horizon": self.horizon,
            "curve": self.curve, "best_valid": self.best_valid if math.isfinite(self.best_valid) else None,
            "stale_evaluations": self.stale_evaluations, "window_loss": self.window_loss,
            "window_steps": self.window_steps, "evaluated_at": self.evaluated_at,
            "validation_seconds": self.validation_seconds,
        }

    def save(self, path) -> None:
        tensors, rest = _flatten_optimizer(self.optimizer.state_dict())
        extra = {
            OPTIMIZER_FILE: save_safetensors(tensors),
            TRAINER_FILE: json.dumps({**self._trainer_state(), "optimizer": rest,
                                      "scaler": self.precision.scaler.state_dict()}).encode("utf-8"),
        }
        if self.best_state is not None:
            extra[BEST_FILE] = save_safetensors(self.best_state)
        carried = self.model.training_state()
        if carried:
            extra[CARRIED_FILE] = save_safetensors({k: v.detach().cpu().contiguous() for k, v in carried.items()})
        self.model.curve_ = self.curve
        self.model.save(path, extra_files=extra)

    def restore(self, path) -> None:
        config, files = read_checkpoint(path)
        runtime = getattr(self.config, "RUNTIME_SETTINGS", ())  # device, compile: may differ on resuming

        def learned(params: dict) -> dict:
            return {k: v for k, v in params.items() if k not in runtime}

        if learned(config.get("params") or {}) != learned(self.model.get_params()):
            raise CheckpointError(f"{path} was trained with other settings; resume with the same ones")
        if TRAINER_FILE not in files:
            raise CheckpointError(f"{path} holds no training state to resume from")
        try:
            state = json.loads(files[TRAINER_FILE])
            self.model.module_.load_state_dict(load_safetensors(files["weights.safetensors"]))
            self.optimizer.load_state_dict(
                _unflatten_optimizer(load_safetensors(files[OPTIMIZER_FILE]), state["optimizer"])
            )
            self.model.load_training_state(load_safetensors(files[CARRIED_FILE]) if CARRIED_FILE in files else {})
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{path}: cannot resume from it ({error})") from None
        self.step, self.tokens, self.seconds = state["step"], state["tokens"], state["seconds"]
        self.horizon, self.curve = state["horizon"], state["curve"]
        self.best_valid = state["best_valid"] if state["best_valid"] is not None else math.inf
        self.stale_evaluations = state["stale_evaluations"]
        self.window_loss, self.window_steps = state.get("window_loss", 0.0), state.get("window_steps", 0)
        self.evaluated_at = state.get("evaluated_at", 0.0)
        self.validation_seconds = state.get("validation_seconds", 0.0)
        if state.get("scaler") and self.precision.scaler.is_enabled():  # fp16's loss scale
            self.precision.scaler.load_state_dict(state["scaler"])
        if BEST_FILE in files:
            self.best_state = load_safetensors(files[BEST_FILE])

    # ---- the loop ------------------------------------------------------------------------------

    def _evaluate(self, validate, select: bool) -> bool:
        """Record a curve point (the mean train loss since the last one, and the valid loss if
        `validate`); keep the best weights and return True when early stopping says stop, if `select`."""
        point = {"step": self.step, "tokens": self.tokens, "seconds": round(self.seconds, 3),
                 "lr": self.optimizer.param_groups[0]["lr"],
                 "train_loss": self.window_loss / max(self.window_steps, 1), "valid_loss": None}
        self.window_loss, self.window_steps = 0.0, 0
        stop = False
        if validate is not None:
            begin = time.perf_counter()
            valid = float(validate())
            self.validation_seconds += time.perf_counter() - begin
            point["valid_loss"] = valid
            if select and valid < self.best_valid:
                self.best_valid = valid
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.module_.state_dict().items()}
                self.stale_evaluations = 0
            elif select:
                self.stale_evaluations += 1
                stop = self.config.patience > 0 and self.stale_evaluations >= self.config.patience
        self.curve.append(point)
        return stop

    def run(self, *, validate=None, max_steps=None, max_tokens=None, max_seconds=None, reserve=None,
            select=True, checkpoint=None, checkpoint_every=None, resume=False, progress=None) -> list[dict]:
        """Train until a budget is spent or early stopping stops; return the curve.

        max_seconds counts training and validation, across resumed runs, plus `reserve()`: seconds
        the caller keeps for work after the loop (re-read after each step). Curve points (and
        validations) come every `eval_every` steps, or with eval_every 0 at each tenth of the budget.
        select: keep the best-validated weights and stop early; False only watches the valid loss.
        checkpoint: written every `checkpoint_every` steps (None: at each curve point and at the
        end; 0: never but on KeyboardInterrupt), and on KeyboardInterrupt, so that `resume=True`
        continues exactly where the run stopped.
        """
        config, model, module = self.config, self.model, self.model.module_
        world, precision, device = self.world, self.precision, model.device
        if resume:
            if checkpoint is None or not Path(checkpoint).exists():
                raise LangmodelsError(f"nothing to resume: no training checkpoint at {checkpoint}")
            self.restore(checkpoint)
        if world.size > 1:
            self.data.shard(world.rank, world.size)  # this rank's rows of each global batch (data.py)
        step_loss_of = self._step_module()
        reserve = reserve or (lambda: 0.0)
        saves = checkpoint is not None and world.is_main  # rank 0 alone writes

        def seconds_budget():
            return None if max_seconds is None else max_seconds - reserve()

        def spent_fraction():
            return self._spent_fraction(self.step, self.tokens, self.seconds, max_steps, max_tokens, budget)

        # The time budget is re-read after each step and curve point, and on several processes it
        # is rank 0's on every rank, as is the clock (self.seconds): all agree on lr and stopping.
        budget = seconds_budget()
        if world.size > 1 and budget is not None:
            budget = from_main(world, device, [budget])[0]
        # progress None: a bar on a terminal only (tqdm's disable=None), so logs get none
        bar = tqdm(total=max_steps, initial=self.step, desc=f"training {model.name}", unit="step",
                   disable=(None if progress is None else not progress) if world.is_main else True,
                   leave=False, dynamic_ncols=True)
        started = time.perf_counter() - self.seconds
        stopped_early = False
        parameters = [p for p in module.parameters() if p.requires_grad]
        module.train()
        put_back_matmuls = precision.fast_matmuls()  # TF32 on CUDA while training, and only then
        try:
            while spent_fraction() < 1:
                # dropout repeats on resume and differs between ranks; modulo 2**64, the seeds torch
                # takes (options.SEED_MAX)
                seed_dropout(((config.seed * 1_000_003 + self.step) * world.size + world.rank) % 2**64, device)
                batch = model.training_batch(self.data, self.step)
                n_targets = batch.n_targets  # counted on the host, before the copy
                if isinstance(batch, Batch):
                    batch = batch.to(device)
                with precision.autocast():
                    loss = step_loss_of(batch)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"the training loss became {loss.item()} at step {self.step}; stopped "
                        "(the last good checkpoint, if any, is untouched): lower lr or raise warmup_steps"
                    )
                self.horizon = self._estimate_horizon(
                    max_steps, max_tokens, None if budget is None else budget - self.seconds
                )
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(self.step, config.lr, self._warmup(), self.horizon)
                self.optimizer.zero_grad(set_to_none=True)
                precision.scaler.scale(loss).backward()  # DDP averages the ranks' gradients here
                precision.scaler.unscale_(self.optimizer)  # (scaling: fp16 only; else no-ops)
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip, foreach=True)  # one norm op
                step_loss = loss.item()
                precision.scaler.step(self.optimizer)
                precision.scaler.update()
                # The step is done: count it at once, so an interrupt from here on saves it whole.
                self.step, self.tokens = self.step + 1, self.tokens + n_targets * world.size
                self.window_steps += 1
                step_loss, targets, (self.seconds, left) = agree_step(
                    world, device, step_loss, n_targets,
                    [time.perf_counter() - started, -1.0 if max_seconds is None else seconds_budget()],
                )
                self.tokens += targets - n_targets * world.size  # the ranks' own counts, summed
                self.window_loss += step_loss
                budget = None if max_seconds is None else left
                if not bar.disable:
                    self._show(bar, step_loss, max_steps, budget)
                fraction = spent_fraction()
                due = (self.step % config.eval_every == 0 if config.eval_every
                       else math.floor(fraction * EVALUATIONS) > math.floor(self.evaluated_at * EVALUATIONS))
                if due:
                    affordable = max_seconds is None or self.validation_seconds <= VALIDATION_SHARE * self.seconds
                    stopped_early = self._evaluate(validate if affordable else None, select)
                    self.evaluated_at = fraction
                    # rank 0's decision and clock (it alone validated) on every rank
                    stop, self.seconds, left = from_main(world, device, [
                        float(stopped_early), time.perf_counter() - started,
                        -1.0 if max_seconds is None else seconds_budget(),
                    ])
                    stopped_early, budget = bool(stop), None if max_seconds is None else left
                    module.train()  # validation left it in evaluation mode
                    if saves and checkpoint_every is None:
                        self.save(checkpoint)
                    if stopped_early:
                        break
                if saves and checkpoint_every and self.step % checkpoint_every == 0:
                    self.save(checkpoint)
        except KeyboardInterrupt:
            if saves:
                bar.close()
                self.save(checkpoint)  # the steps done so far, whole: --resume continues from here
            raise
        except (RuntimeError, ProcessGroupError) as error:  # on several processes: another one stopped
            failure = error if isinstance(error, ProcessGroupError) else peer_failure(world, error)
            if failure is None:
                raise
            if saves:  # the steps done so far are whole on rank 0 too
                bar.close()
                self.save(checkpoint)
                raise ProcessGroupError(f"{failure}; the training state is saved in {checkpoint}: "
                                        "the same command with --resume continues the run") from None
            raise failure from None
        finally:
            bar.close()
            put_back_matmuls()
        if self.window_steps:  # steps since the last curve point: one more point, validated only if
            # the last validation is old (a pass can cost as much as minutes of training)
            interval = config.eval_every or self.step / EVALUATIONS
            recent = self.curve and self.step - self.curve[-1]["step"] < interval / 10
            self._evaluate(None if recent else validate, select)
            self.seconds = time.perf_counter() - started
        if saves and checkpoint_every != 0:
            self.save(checkpoint)
        if self.best_state is not None:
            module.load_state_dict(self.best_state)
        module.eval()
        return copy.deepcopy(self.curve)

    def _show(self, bar, step_loss: float, max_steps, seconds_budget) -> None:
        """The bar's figures: train loss, tokens/s, the last valid perplexity, the time left."""
        if max_steps is None and self.horizon is not None:
            bar.total = self.horizon  # the steps the budget is expected to allow
        figures = [f"loss {step_loss:.3f}", f"{self.tokens / max(self.seconds, 1e-9):,.0f} tok/s"]
        valid = next((p["valid_loss"] for p in reversed(self.curve) if p["valid_loss"] is not None), None)
        if valid is not None:
            figures.append(f"valid ppl {math.exp(min(valid, 700)):,.1f}")
        if seconds_budget is not None:
            figures.append(f"{max(seconds_budget - self.seconds, 0):.0f} s left")
        bar.set_postfix_str(", ".join(figures), refresh=False)
        bar.update(1)
