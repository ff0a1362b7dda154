"""How fast the neural family trains and generates on this machine, against its float32 peak.

Not a test: every figure is measured in this run and printed with the target it is held to.

    a. float32 matmul peak (GFLOP/s) with 1 and 2 threads: the yardstick for the shares below.
    b. GPT at nanoGPT's 'baby GPT' configuration (4 layers, 4 heads, 128 wide, block 64, batch 12,
       no dropout as its CPU recipe sets, and no biases as its train.py has by default) on Tiny
       Shakespeare characters: training tokens/s and the share of the peak it uses,
       counting 6 x parameters + 12 x layers x width x block FLOPs per token (Kaplan et al. 2020;
       nanoGPT's estimate_mfu). Target: nanoGPT's 14,800 tokens/s here (about 37 % of a 205
       GFLOP/s peak). Side by side, in turns, two peers measure what this machine allows today,
       whatever its peak is: the same network built from PyTorch's own nn.TransformerEncoderLayer
       (pre-LN, GELU, causal mask) and trained by a plain loop, and our network trained the way
       nanoGPT's train.py trains on a CPU.
    c. LSTM 2x200 at batch 20, BPTT 35 on Brown words as a stream, one thread: tokens/s, with the
       example's full softmax and with the adaptive one. Target: twice the PyTorch
       word_language_model example's 2,100 tokens/s. (With a full 14k-word softmax the example
       already runs at about 45 % of one thread's peak, so only a cheaper output layer can double it.)
    d. GPT generation of 256 tokens with the KV cache against recomputing the prefix, one thread
       (one new position is too little work to share between threads), best of alternating
       rounds. Target: at least 5x faster per token. Also the 256th token alone (the prefix
       then costs the most to recompute).

    python benchmarks/neural_speed.py [--steps N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # measure this checkout, installed or not

from langmodels import corpora  # noqa: E402
from langmodels.base import LanguageModel  # noqa: E402
from langmodels.neural.gpt import GPTLM  # noqa: E402
from langmodels.neural.lstm import LSTMLM  # noqa: E402

NANOGPT_TOKENS_PER_SECOND = 14_800
NANOGPT_PEAK_GFLOPS = 205  # the 2-thread peak of the machine that figure was measured on (issue 3)
PYTORCH_EXAMPLE_LSTM_TOKENS_PER_SECOND = 2_100
TARGET_KV_SPEEDUP = 5.0


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """Best-of float32 square matmul throughput with `threads` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    torch.set_num_threads(previous)
    return 2 * size**3 / best / 1e9


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def training_throughput(model, train, steps: int) -> dict:
    """Tokens per second over `steps` training steps after a short warm-up (no validation)."""
    model.fit(train, max_steps=steps, progress=False)
    curve = model.curve_[-1]
    return {"steps": curve["step"], "tokens": curve["tokens"], "seconds": curve["seconds"],
            "tokens_per_second": curve["tokens"] / curve["seconds"]}


def parameters(model) -> int:
    return sum(p.numel() for p in model.module_.parameters())


class StockGPT(nn.Module):
    """The baby GPT from PyTorch's stock parts, the peer of section b: token and learned position
    embeddings, nn.TransformerEncoder of pre-LN GELU layers under a causal mask, a final LayerNorm,
    and the output tied to the token embedding; no biases, like nanoGPT's baby GPT."""

    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int, block: int):
        super().__init__()
        self.token = nn.Embedding(vocab_size, n_embd)
        self.position = nn.Embedding(block, n_embd)
        layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True, bias=False)
        self.encoder = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(n_embd, bias=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(block))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.token(idx) + self.position.weight[: idx.size(1)]  # (B, T, C)
        x = self.encoder(x, mask=self.mask, is_causal=True)  # (B, T, C)
        return self.ln(x) @ self.token.weight.T  # (B, T, V)


def loop_throughput(model: nn.Module, draw, optimizer, steps: int, *, clip: float | None = None,
                    set_lr=None) -> float:
    """Training tokens/s of a plain loop: draw() windows (B, block + 1), the cross-entropy of each
    window's next tokens, backward, optional clipping and learning-rate setting, an optimiser step."""

    def step(i: int) -> int:
        windows = draw()  # (B, block + 1)
        logits = model(windows[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if set_lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = set_lr(i)
        optimizer.step()
        return windows[:, 1:].numel()

    for i in range(3):  # warm-up, as our trainer's first steps are part of its own clock
        step(i)
    start = time.perf_counter()
    tokens = sum(step(i) for i in range(steps))
    return tokens / (time.perf_counter() - start)


def stock_throughput(ids: np.ndarray, vocab_size: int, steps: int, *, batch: int, block: int, **shape) -> float:
    """Training tokens/s of StockGPT on random windows of `ids`: AdamW (fused), cross-entropy."""
    model = StockGPT(vocab_size, block=block, **shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    rng = np.random.default_rng(0)

    def draw() -> torch.Tensor:
        starts = rng.integers(0, len(ids) - block - 1, size=batch)
        return torch.from_numpy(ids[starts[:, None] + np.arange(block + 1)])  # (B, block + 1)

    return loop_throughput(model, draw, optimizer, steps)


def nanogpt_recipe_throughput(module: nn.Module, ids: np.ndarray, steps: int, *, batch: int, block: int) -> float:
    """Training tokens/s of our network (op for op nanoGPT's: fused q|k|v projection, sdpa with
    is_causal, GELU MLP, pre-LN, tied output) trained the way nanoGPT's train.py trains on a CPU:
    torch.randint window starts whose slices are stacked, AdamW with weight decay on matrices
    only, betas (0.9, 0.99) and no fused kernel (train.py asks for it on CUDA only), gradients
    clipped at 1.0, the cosine learning rate set every step (1e-3 down to 1e-4 over the recipe's
    2,000 iterations)."""
    decay = [p for p in module.parameters() if p.dim() >= 2]
    rest = [p for p in module.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.99))
    data = torch.from_numpy(ids)

    def draw() -> torch.Tensor:
        starts = torch.randint(len(data) - block - 1, (batch,))
        return torch.stack([data[i : i + block + 1] for i in starts.tolist()])  # (B, block + 1)

    return loop_throughput(module.train(), draw, optimizer, steps, clip=1.0,
                           set_lr=lambda i: 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * i / 2000)))


def section_gpt(shakespeare, steps: int, peak: float, rounds: int = 3) -> dict:
    """Ours and the two peers in alternating rounds, each keeping its best round."""
    shape = {"n_layer": 4, "n_head": 4, "n_embd": 128}
    ours, stock, recipe = [], [], []
    for _ in range(rounds):
        model = GPTLM(**shape, context=64, batch_size=12, dropout=0.0, bias=False, eval_every=10**9, threads=2)
        ours.append(training_throughput(model, shakespeare.train, steps))
        ids = model._stream_ids(shakespeare.train)
        stock.append(stock_throughput(ids, len(model.tokenizer.vocab), steps, batch=12, block=64, **shape))
        fresh = model.build_module(len(model.tokenizer.vocab))
        recipe.append(nanogpt_recipe_throughput(fresh, ids, steps, batch=12, block=64))
    result = max(ours, key=lambda r: r["tokens_per_second"])
    n_params = parameters(model)
    flops_per_token = 6 * n_params + 12 * 4 * 128 * 64
    result.update(parameters=n_params, flops_per_token=flops_per_token,
                  share_of_peak=flops_per_token * result["tokens_per_second"] / (peak * 1e9),
                  ratio_to_nanogpt=result["tokens_per_second"] / NANOGPT_TOKENS_PER_SECOND,
                  stock_tokens_per_second=max(stock), ratio_to_stock=result["tokens_per_second"] / max(stock),
                  nanogpt_recipe_tokens_per_second=max(recipe),
                  ratio_to_nanogpt_recipe=result["tokens_per_second"] / max(recipe),
                  nanogpt_at_this_peak=NANOGPT_TOKENS_PER_SECOND * peak / NANOGPT_PEAK_GFLOPS)
    result["kv_cache"] = kv_cache_speedup(shakespeare)
    return result


def kv_cache_speedup(shakespeare, tokens: int = 256, rounds: int = 5, tail: int = 32) -> dict:
    """Seconds per generated token with and without the cache, for the baby GPT with a context
    long enough to hold all `tokens` (past it the cache cannot be used). The step-by-step
    distributions are driven directly for exactly `tokens` steps (feeding back the most probable
    token), so an early end-of-line cannot cut the measurement short. The two take turns for
    `rounds` rounds and each keeps its best, so a busy moment on a shared machine hurts neither
    alone. `tail`: the last steps, whose prefix is longest, are also reported on their own."""
    model = GPTLM(n_layer=4, n_head=4, n_embd=128, context=tokens + 64, batch_size=12, dropout=0.0,
                  eval_every=10**9, threads=1).fit(shakespeare.train, max_steps=5, progress=False)

    def drive(distributions) -> np.ndarray:
        """Seconds of each of the `tokens` steps."""
        seconds = np.empty(tokens)
        start = time.perf_counter()
        logprobs = next(distributions)
        for i in range(tokens):
            seconds[i] = time.perf_counter() - start
            if i + 1 < tokens:
                start = time.perf_counter()
                logprobs = distributions.send(int(logprobs.argmax()))
        return seconds

    runs = {"cached": [], "uncached": []}
    for _ in range(rounds):
        runs["cached"].append(drive(model.next_logprobs_incremental([])))
        runs["uncached"].append(drive(LanguageModel.next_logprobs_incremental(model, [])))
    whole = {mode: min(r.sum() for r in rounds_) / tokens for mode, rounds_ in runs.items()}
    last = {mode: min(r[-tail:].sum() for r in rounds_) / tail for mode, rounds_ in runs.items()}
    return {"tokens": tokens, "cached_seconds_per_token": whole["cached"],
            "uncached_seconds_per_token": whole["uncached"], "speedup": whole["uncached"] / whole["cached"],
            "tail": tail, "tail_speedup": last["uncached"] / last["cached"],
            "tail_cached_seconds_per_token": last["cached"], "tail_uncached_seconds_per_token": last["uncached"]}


def section_lstm(brown, steps: int) -> dict:
    stream = corpora.Split(list(brown.train), name="train", corpus="brown", level="word", mode="stream")
    results = {}
    for softmax in ("full", "adaptive"):
        model = LSTMLM(n_layer=2, hidden=200, n_embd=200, batch_size=20, context=35, dropout=0.2,
                       eval_every=10**9, threads=1, softmax=softmax)
        result = training_throughput(model, stream, steps)
        result.update(parameters=parameters(model),
                      ratio_to_pytorch_example=result["tokens_per_second"] / PYTORCH_EXAMPLE_LSTM_TOKENS_PER_SECOND)
        results[softmax] = result
    return results


def run(steps: int) -> dict:
    figures = {"threads_default": torch.get_num_threads(),
               "peak_gflops": {1: matmul_gflops(1), 2: matmul_gflops(2)}}
    figures["gpt_baby"] = section_gpt(corpora.load("shakespeare"), steps, figures["peak_gflops"][2])
    figures["lstm_2x200"] = section_lstm(corpora.load("brown"), steps)
    return figures


def report(figures: dict) -> None:
    peak = figures["peak_gflops"]
    gpt, lstm = figures["gpt_baby"], figures["lstm_2x200"]
    kv = gpt["kv_cache"]
    rows = [
        ("float32 matmul peak, 1 thread", f"{peak[1]:.0f} GFLOP/s", ""),
        ("float32 matmul peak, 2 threads", f"{peak[2]:.0f} GFLOP/s", ""),
        ("GPT baby: training tokens/s", f"{gpt['tokens_per_second']:,.0f}",
         f"target >= {NANOGPT_TOKENS_PER_SECOND:,} (nanoGPT): {gpt['ratio_to_nanogpt']:.2f}x"),
        ("GPT baby: share of 2-thread peak", f"{gpt['share_of_peak']:.0%}", "target ~37 %, aim 50 %"),
        ("  stock PyTorch peer (nn.TransformerEncoder)", f"{gpt['stock_tokens_per_second']:,.0f}",
         f"ours {gpt['ratio_to_stock']:.2f}x the peer"),
        ("  the same network trained as nanoGPT trains it", f"{gpt['nanogpt_recipe_tokens_per_second']:,.0f}",
         f"ours {gpt['ratio_to_nanogpt_recipe']:.2f}x the recipe"),
        ("  nanoGPT's figure scaled to this peak", f"{gpt['nanogpt_at_this_peak']:,.0f}",
         f"14,800 x {peak[2]:.0f} / {NANOGPT_PEAK_GFLOPS} GFLOP/s"),
        *[(f"LSTM 2x200, {softmax} softmax: training tokens/s (1 thread)", f"{r['tokens_per_second']:,.0f}",
           (f"target >= {2 * PYTORCH_EXAMPLE_LSTM_TOKENS_PER_SECOND:,}: "
            f"{r['ratio_to_pytorch_example']:.2f}x the PyTorch example")) for softmax, r in lstm.items()],
        ("GPT generation, ms/token cached (1 thread)", f"{kv['cached_seconds_per_token'] * 1e3:.2f}", ""),
        ("GPT generation, ms/token uncached", f"{kv['uncached_seconds_per_token'] * 1e3:.2f}", ""),
        ("KV-cache speed-up", f"{kv['speedup']:.1f}x", f"target >= {TARGET_KV_SPEEDUP:.0f}x"),
        (f"KV-cache speed-up, last {kv['tail']} of the {kv['tokens']} tokens", f"{kv['tail_speedup']:.1f}x",
         f"{kv['tail_cached_seconds_per_token'] * 1e3:.2f} vs {kv['tail_uncached_seconds_per_token'] * 1e3:.2f} ms"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per throughput measurement")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.steps)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
