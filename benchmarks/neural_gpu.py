"""How fast the GPT trains on one CUDA GPU, as a share of the GPU's bf16 peak; and how soon it
reaches nanoGPT's Tiny Shakespeare loss.

Not a test: every figure is measured in this run and printed with the target it is held to.
Without CUDA it says so, measures nothing and exits 0 (`--device cpu` runs it on the CPU anyway,
to try the script; no MFU then).

    a. Training tokens/s of the baby GPT (4 layers, 4 heads, 128 wide, context 64, batch 12:
       nanoGPT's CPU recipe, benchmarks/neural_speed.py) and of nanoGPT's shakespeare_char GPT
       (6 layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2), through our Trainer
       (bf16 autocast, TF32, fused AdamW, flash attention through scaled_dot_product_attention),
       measured after the first tenth of the steps (CUDA start-up and kernel choice left out).
       Beside it, the same network trained by a plain loop the way nanoGPT's train.py trains on a
       GPU (autocast bf16, fused AdamW, pinned non-blocking batches, no validation): the ratio is
       what our Trainer costs.
    b. Model-FLOPs utilisation: tokens/s x FLOPs per token / the GPU's dense bf16 peak, with
       FLOPs per token = 6 N + 12 L H Q T (PaLM, Chowdhery et al. 2022, appendix B; nanoGPT's
       estimate_mfu): N parameters without the position embeddings, L layers, H heads of Q
       dimensions, context T. Peaks (NVIDIA's data sheets, dense = half the sparse figure):
       PEAK_BF16_TFLOPS below; another GPU needs --peak-tflops.
    c. Time to reach nanoGPT's 1.4697 nats/char validation loss on Tiny Shakespeare with the
       shakespeare_char GPT (nanoGPT: 5000 iterations, about 3 minutes on an A100), validated
       every 250 steps as nanoGPT does (our Validation reads the first 50,000 characters of the
       split), with the whole split scored once at the end. Goal on one H100: under 3 minutes at
       40 % MFU or more.

    python benchmarks/neural_gpu.py [--max-minutes M] [--compile] [--json PATH] [--peak-tflops P]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # measure this checkout, installed or not

from langmodels import corpora  # noqa: E402
from langmodels.errors import LangmodelsError  # noqa: E402
from langmodels.neural.devices import Precision, resolve_device, to_device  # noqa: E402
from langmodels.neural.gpt import GPTLM  # noqa: E402

# Dense bf16 tensor-core peaks in TFLOP/s (NVIDIA data sheets; dense = the "with sparsity" figure / 2),
# matched against torch.cuda.get_device_name(), first match wins.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),  # same tensor cores as the H100 SXM
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM5
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
)
NANOGPT_LOSS = 1.4697  # nats/char, nanoGPT's README for shakespeare_char (5000 iterations, ~3 min on an A100)
TARGET_SECONDS = 180.0
TARGET_MFU = 0.40
BABY = {"n_layer": 4, "n_head": 4, "n_embd": 128, "context": 64, "batch_size": 12, "dropout": 0.0, "bias": False,
        "lr": 1e-3}
# nanoGPT's config/train_shakespeare_char.py (its beta2 0.99 aside: our AdamW keeps 0.95)
SHAKESPEARE_CHAR = {"n_layer": 6, "n_head": 6, "n_embd": 384, "context": 256, "batch_size": 64, "dropout": 0.2,
                    "bias": False, "lr": 1e-3, "warmup_steps": 100}
NANOGPT_ITERS = 5000
EVAL_EVERY = 250


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    """The GPU's dense bf16 peak and its name (None off CUDA or for a GPU not in the table)."""
    if device.type != "cuda":
        return given, device.type
    name = torch.cuda.get_device_name(device)
    if given is not None:
        return given, name
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None), name


def flops_per_token(model: GPTLM) -> float:
    """6 N + 12 L H Q T (PaLM appendix B; nanoGPT's estimate_mfu), N without position embeddings."""
    c = model.config
    n = sum(p.numel() for p in model.module_.parameters())
    n -= sum(p.numel() for name, p in model.module_.named_parameters() if name.startswith("position."))
    return 6 * n + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * c.context


def steady_rate(curve: list[dict]) -> float:
    """Tokens/s between the first curve point (a tenth of the steps) and the last."""
    first, last = curve[0], curve[-1]
    return (last["tokens"] - first["tokens"]) / max(last["seconds"] - first["seconds"], 1e-9)


def trainer_speed(train, settings: dict, device: str, compile_: bool, steps: int, seconds: float) -> tuple:
    model = GPTLM(tokenizer="char", device=device, compile=compile_, **settings)
    model.fit(train, max_steps=steps, max_seconds=seconds, progress=False)
    return model, steady_rate(model.curve_)


def plain_loop_speed(model: GPTLM, train, steps: int, seconds: float) -> float:
    """nanoGPT's train.py loop on the same network (a fresh copy of its shape) for `steps` steps or
    `seconds`: tokens/s after a tenth of the steps or of the seconds."""
    c, device = model.config, model.device
    module = model.build_module(len(model.tokenizer.vocab)).to(device).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=c.lr, betas=(0.9, 0.95), fused=True)
    precision = Precision(device)
    ids = torch.from_numpy(model._stream_ids(train).astype("int64"))
    generator = torch.Generator().manual_seed(0)
    done, started, warm = 0, None, max(steps // 10, 3)
    begin = time.perf_counter()
    put_back_matmuls = precision.fast_matmuls()
    for step in range(steps):
        if started is None and (step == warm or time.perf_counter() - begin > seconds / 10):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started, done = time.perf_counter(), 0
        starts = torch.randint(len(ids) - c.context - 1, (c.batch_size,), generator=generator)
        windows = torch.stack([ids[s : s + c.context + 1] for s in starts.tolist()])  # (B, T + 1)
        x, y = to_device(windows[:, :-1], device), to_device(windows[:, 1:], device)
        with precision.autocast():
            logits = module(x)  # (B, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        precision.scaler.scale(loss).backward()
        precision.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(module.parameters(), c.grad_clip)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        done += y.numel()
        if time.perf_counter() - begin > seconds and started is not None:
            break
    put_back_matmuls()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return done / (time.perf_counter() - started) if started else float("nan")


def time_to_loss(corpus, device: str, compile_: bool, seconds: float) -> dict:
    """nanoGPT's shakespeare_char run (5000 steps, validated every 250) within `seconds`."""
    model = GPTLM(tokenizer="char", device=device, compile=compile_, eval_every=EVAL_EVERY, **SHAKESPEARE_CHAR)
    started = time.perf_counter()
    model.fit(corpus.train, corpus.valid, max_steps=NANOGPT_ITERS, max_seconds=seconds, select_on_valid=False,
              progress=False)
    wall = time.perf_counter() - started
    reached = next((p for p in model.curve_ if p["valid_loss"] is not None and p["valid_loss"] <= NANOGPT_LOSS), None)
    final = model.valid_evaluation_
    return {
        "steps": model.curve_[-1]["step"], "wall_seconds": wall,
        "reached_at_step": reached and reached["step"], "reached_at_seconds": reached and reached["seconds"],
        "curve": [(p["step"], p["seconds"], p["valid_loss"]) for p in model.curve_],
        "final_valid_nats_per_char": final.nats_per_token if final is not None else None,
        "tokens_per_second": model.curve_[-1]["tokens"] / max(model.curve_[-1]["seconds"], 1e-9),
    }


def say(message: str) -> None:
    """Progress on stderr, with the seconds since the start: a run cut short still shows how far it got."""
    print(f"[{time.perf_counter() - START:6.1f} s] {message}", file=sys.stderr, flush=True)


def run(args) -> dict | None:
    try:
        device = resolve_device(args.device)
    except LangmodelsError as error:  # no such device here: say so and measure nothing
        print(f"neural_gpu: measures nothing without CUDA ({error}); exit 0")
        return None
    corpus = corpora.load("shakespeare")
    peak, name = peak_tflops(device, args.peak_tflops)
    budget = args.max_minutes * 60
    speed_seconds = min(45.0, budget / 8)  # each of the four speed runs; the rest for part c
    figures = {"device": name, "peak_bf16_tflops": peak, "precision": Precision(device).label,
               "compile": args.compile, "torch": torch.__version__, "models": {}}
    for label, settings, steps in (("baby GPT 4x128", BABY, 2000), ("shakespeare_char GPT 6x384", SHAKESPEARE_CHAR,
                                                                  1000)):
        say(f"{label}: training through the Trainer")
        model, ours = trainer_speed(corpus.train, settings, args.device, args.compile, steps, speed_seconds)
        say(f"{label}: {ours:,.0f} tokens/s; now a plain nanoGPT-style loop")
        peer = plain_loop_speed(model, corpus.train, steps, speed_seconds)
        say(f"{label}: plain loop {peer:,.0f} tokens/s")
        per_token = flops_per_token(model)
        figures["models"][label] = {
            "flops_per_token": per_token, "tokens_per_second": ours, "plain_loop_tokens_per_second": peer,
            "ratio_to_plain_loop": ours / peer, "mfu": ours * per_token / (peak * 1e12) if peak else None,
        }
    left = budget - (time.perf_counter() - START)
    say(f"time to {NANOGPT_LOSS} nats/char: up to {NANOGPT_ITERS} steps in {max(left - 30, 30):.0f} s")
    figures["time_to_loss"] = time_to_loss(corpus, args.device, args.compile, max(left - 30, 30))
    return figures


def report(figures: dict) -> None:
    peak = figures["peak_bf16_tflops"]
    print(f"{figures['device']} ({figures['precision']}, torch {figures['torch']}, compile={figures['compile']}), "
          f"dense bf16 peak {peak if peak else 'unknown (give --peak-tflops)'} TFLOP/s")
    for label, m in figures["models"].items():
        mfu = f"{m['mfu']:.1%}" if m["mfu"] is not None else "n/a"
        print(f"  {label}: {m['tokens_per_second']:,.0f} tokens/s ({m['ratio_to_plain_loop']:.2f}x a plain "
              f"nanoGPT-style loop's {m['plain_loop_tokens_per_second']:,.0f}), {m['flops_per_token'] / 1e6:.1f} "
              f"MFLOPs/token, MFU {mfu} (target >= {TARGET_MFU:.0%} for 6x384)")
    t = figures["time_to_loss"]
    reached = (f"reached at step {t['reached_at_step']} after {t['reached_at_seconds']:.0f} s"
               if t["reached_at_step"] else f"not reached in {t['steps']} steps ({t['wall_seconds']:.0f} s)")
    final = t["final_valid_nats_per_char"]
    final = f"{final:.4f} nats/char" if final is not None else "not scored"
    print(f"  time to {NANOGPT_LOSS} nats/char on Tiny Shakespeare: {reached} (target < {TARGET_SECONDS:.0f} s; "
          f"nanoGPT ~180 s on an A100); the whole valid split after {t['steps']} steps: {final}")


START = time.perf_counter()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-minutes", type=float, default=8.0, help="wall-clock budget of the whole script")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to try the script")
    parser.add_argument("--compile", action="store_true", help="train through torch.compile")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of a GPU not in the table")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args)
    if figures is None:
        return 0
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
