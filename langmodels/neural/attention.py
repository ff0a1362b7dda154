"""The transformer's parts, shared by the decoder (gpt.py) and the masked encoder (bert.py).

Multi-head self-attention (Vaswani et al. 2017, sec. 3.2):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head)) V,   one per head, heads concatenated

computed by `torch.nn.functional.scaled_dot_product_attention` (fused kernels), or by an explicit
path that writes the formula out and also returns the weights (for `attention(text)` heat maps).
A causal mask lets position t see positions <= t (GPT); a padding mask hides <pad> keys (BERT).
A KVCache keeps a layer's keys and values, so a decoder generating one token at a time computes
one position per step (Block.step) and attends over the cached ones.

The Block is pre-LayerNorm (Xiong et al. 2020; GPT-2): x + attn(ln(x)), then x + mlp(ln(x)).
Positions are learned vectors (GPT, BERT) or the fixed sinusoids of Vaswani et al. 2017, sec. 3.5.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .core import NeuralConfig

POSITIONS = ("learned", "sinusoidal")



@dataclass
class TransformerConfig(NeuralConfig):
    """The architecture both transformers share; GPTConfig and MaskedLMConfig derive from it."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1  # on embeddings, attention weights, and each residual branch (training only)
    positions: str = "learned"  # learned | sinusoidal
    bias: bool = True  # biases in the linear layers and LayerNorms

    def check(self, *, machine: bool = False) -> None:
        super().check(machine=machine)
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head gets n_embd / n_head"
            )
        if self.positions not in POSITIONS:
            raise ConfigError(f"positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}")


# ---- attention ------------------------------------------------------------------------------


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout, left out entirely where it is the identity (evaluation, or p = 0): F.dropout
    would still dispatch an op, and a generation step of a small model is mostly dispatch."""
    return F.dropout(x, p, True) if training and p > 0 else x


@contextmanager
def without_onednn():
    """oneDNN switched off inside the block: for the one new position of a KV-cache step.

    PyTorch hands float32 GELU to oneDNN, whose set-up on every call (about 10 us here) is
    several times the work of one 512-wide vector; the native kernel computes the same function.
    A cached generation step of the baby GPT took about a fifth less time without it
    (benchmarks/neural_speed.py). Training and whole-prefix passes keep oneDNN, which is faster on
    large tensors. The switch is process-wide, so it is put back as soon as the step ends.
    """
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


class KVCache:
    """One layer's projections q|k|v of every position seen so far, for generation.

    The rows, (B, capacity, 3C), are allocated once and new positions are written in place: one
    copy per step, where growing tensors with torch.cat would copy all S cached positions again.
    Only keys and values are read back; keeping the whole row lets a single copy store both.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.length = 0  # positions held
        self.rows: torch.Tensor | None = None

    def extend(self, qkv: torch.Tensor) -> torch.Tensor:
        """Append the new positions' projections qkv (B, T, 3C); return those of all
        S = length + T positions, (B, S, 3C), a view of the rows."""
        B, T, width = qkv.shape
        if self.length + T > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions; {self.length} + {T} do not fit")
        if self.rows is None:
            self.rows = qkv.new_empty(B, self.capacity, width)
        self.rows[:, self.length : self.length + T] = qkv
        self.length += T
        return self.rows[:, : self.length]


def causal_mask(T: int, S: int, device=None) -> torch.Tensor:
    """(T, S) bool, True where query i (the last T of S positions) may see key j: j <= S - T + i."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def split_heads(qkv: torch.Tensor, n_head: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projections (B, T, 3C) -> the queries, keys and values of each head, (B, H, T, D) each (views)."""
    B, T, width = qkv.shape
    return qkv.view(B, T, 3, n_head, width // (3 * n_head)).permute(2, 0, 3, 1, 4).unbind(0)


class StepWeights(NamedTuple):
    """One Block's parameters, gathered once per generation for Block.step. Each pair is (weight, bias).

    A cached step of a small model costs more in Python than in arithmetic, and looking each
    parameter up through its modules on every step (block.attn.qkv.weight is three
    nn.Module.__getattr__ calls) is a good part of that Python. A baby-GPT step through
    Block.step took 0.7 of the time of one through forward(), and 0.9 when Block.step looked its
    parameters up itself (medians of 15 alternating runs of 256 tokens, one thread).
    """

    n_head: int
    normalized_shape: tuple[int, ...]
    eps: float
    ln_1: tuple[torch.Tensor, torch.Tensor | None]
    qkv: tuple[torch.Tensor, torch.Tensor | None]
    proj: tuple[torch.Tensor, torch.Tensor | None]
    ln_2: tuple[torch.Tensor, torch.Tensor | None]
    fc: tuple[torch.Tensor, torch.Tensor | None]
    mlp_proj: tuple[torch.Tensor, torch.Tensor | None]


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q, k, v projection and an output projection."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ConfigError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # W_Q, W_K, W_V of every head, stacked
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)  # W_O
        self.dropout = dropout  # on the attention weights and the output

    def forward(
        self,
        x: torch.Tensor,
        *,
        causal: bool = False,
        key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        at: torch.Tensor | None = None,
        qkv: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (y (B, T, C), weights (B, H, T, S) or None), S the positions attended to.

        key_padding_mask: (B, S) bool, True for real tokens, False for keys to hide (padding).
        cache: x holds the T newest positions; their keys and values join the cache, and a causal
        query sees every cached position and the new ones up to itself.
        need_weights: take the explicit path and return the attention weights.
        at: (B,) one position per row whose query alone is computed (T becomes 1): every key and
        value are still read, so y equals the full pass's y[arange(B), at] (not with causal).
        qkv: (B, T, 3C) the projections of x, if the caller has them (masked copies of one line
        share most of theirs: bert.py); x is then not read.
        """
        B, T, C = x.shape if qkv is None else (*qkv.shape[:2], qkv.size(2) // 3)
        if at is not None and qkv is None:
            # One query per row: project the keys and values of every position, the query at `at` only.
            rows = torch.arange(B, device=x.device)
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[rows, at], weight[:C], None if bias is None else bias[:C])  # (B, C)
            kv = F.linear(x, weight[C:], None if bias is None else bias[C:])  # (B, T, 2C)
            k, v = kv.view(B, T, 2, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D)
            q, T = q.view(B, self.n_head, 1, C // self.n_head), 1  # (B, H, 1, D)
        else:
            if qkv is None:
                qkv = self.qkv(x)  # (B, T, 3C): every head's query, key and value
            q, k, v = split_heads(qkv, self.n_head)  # each (B, H, T, D)
            if at is not None:
                q, T = q[torch.arange(B, device=q.device), :, at][:, :, None], 1  # (B, H, 1, D)
        if cache is not None:
            _, k, v = split_heads(cache.extend(qkv), self.n_head)  # each (B, H, S, D): the cached positions' too
        S = k.size(2)

        mask = None  # (B or 1, 1, T, S) bool, True = may attend
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]
        # Causal with T == S is sdpa's own is_causal; one new query sees every key: no mask.
        if causal and (need_weights or key_padding_mask is not None or 1 < T < S):
            allowed = causal_mask(T, S, x.device)[None, None]
            mask = allowed if mask is None else mask & allowed

        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, H, T, S)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)  # (B, H, T, S)
            y = dropout(weights, self.dropout, self.training) @ v  # (B, H, T, D)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                is_causal=causal and mask is None and T == S > 1,
            )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return dropout(self.proj(y), self.dropout, self.training), weights


class MLP(nn.Module):
    """Position-wise feed-forward network: C -> 4C -> C with a GELU (Hendrycks & Gimpel 2016)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(self.proj(F.gelu(self.fc(x))), self.dropout, self.training)  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attention(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = SelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        causal: bool = False,
        key_padding_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        at: torch.Tensor | None = None,
        qkv: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (x (B, T, C), weights (B, H, T, S) or None); with `at` (B,) positions,
        only those positions' outputs, (B, 1, C); qkv: the attention's projections of ln_1(x),
        if the caller has them (see SelfAttention)."""
        attended, weights = self.attn(
            x if qkv is not None else self.ln_1(x), causal=causal, key_padding_mask=key_padding_mask, cache=cache,
            need_weights=need_weights, at=at, qkv=qkv,
        )
        if at is not None:
            x = x[torch.arange(len(x), device=x.device), at][:, None]  # (B, 1, C)
        x = x + attended  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x, weights

    def step_weights(self) -> StepWeights:
        """This block's parameters, for step()."""
        attn, mlp = self.attn, self.mlp
        return StepWeights(
            attn.n_head, self.ln_1.normalized_shape, self.ln_1.eps,
            (self.ln_1.weight, self.ln_1.bias), (attn.qkv.weight, attn.qkv.bias), (attn.proj.weight, attn.proj.bias),
            (self.ln_2.weight, self.ln_2.bias), (mlp.fc.weight, mlp.fc.bias), (mlp.proj.weight, mlp.proj.bias),
        )

    @staticmethod
    def step(x: torch.Tensor, cache: KVCache, w: StepWeights) -> torch.Tensor:
        """A generation step: one new position per row after the cached ones, x (B, C) -> (B, C).

        forward(x[:, None], causal=True, cache=cache) in inference, with the weights gathered
        beforehand (see StepWeights), the rows kept 2-D, and no mask: the one query sees every key.
        """
        h = F.layer_norm(x, w.normalized_shape, *w.ln_1, w.eps)
        qkv = cache.extend(F.linear(h, *w.qkv)[:, None])  # (B, S, 3C): every cached position's
        q, k, v = split_heads(qkv, w.n_head)  # each (B, H, S, D)
        y = F.scaled_dot_product_attention(q[:, :, -1:], k, v)  # (B, H, 1, D): the newest query, every key
        x = x + F.linear(y.reshape(x.shape), *w.proj)  # (B, C): the heads side by side
        h = F.layer_norm(x, w.normalized_shape, *w.ln_2, w.eps)
        return x + F.linear(F.gelu(F.linear(h, *w.fc)), *w.mlp_proj)  # (B, C)


# ---- positions ------------------------------------------------------------------------------


def sinusoidal_positions(n_positions: int, n_embd: int) -> torch.Tensor:
    """(n_positions, n_embd): PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(same)
    (Vaswani et al. 2017, sec. 3.5)."""
    position = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    frequency = torch.pow(10000.0, -torch.arange(0, n_embd, 2, dtype=torch.float64) / n_embd)  # (ceil(C/2),)
    angles = position * frequency[None, :]  # (P, ceil(C/2))
    table = torch.zeros(n_positions, n_embd, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : n_embd // 2])
    return table.float()


class PositionEncoding(nn.Module):
    """The vector added for each position 0 .. n_positions-1: learned, or fixed sinusoids.

    The sinusoids are a buffer left out of the state dict: they are a formula, not weights.
    """

    def __init__(self, kind: str, n_positions: int, n_embd: int):
        super().__init__()
        if kind not in POSITIONS:
            raise ConfigError(f"positions must be one of {', '.join(POSITIONS)}, got {kind!r}")
        self.kind = kind
        self.n_positions = n_positions
        if kind == "learned":
            self.embedding = nn.Embedding(n_positions, n_embd)
        else:
            self.register_buffer("table", sinusoidal_positions(n_positions, n_embd), persistent=False)

    def forward(self, start: int, T: int) -> torch.Tensor:
        """Encodings of positions start .. start+T-1, (T, C)."""
        if start + T > self.n_positions:
            raise ValueError(f"position {start + T - 1} is beyond the model's context of {self.n_positions}")
        if self.kind == "learned":
            return self.embedding.weight[start : start + T]  # (T, C)
        return self.table[start : start + T]  # (T, C)


def init_transformer_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation (Radford et al. 2019): N(0, 0.02) weights, zero biases, and the
    projections that write into the residual stream scaled by 1/sqrt(2 n_layer) so the stream's
    variance does not grow with depth."""
    for name, parameter in module.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(parameter)
        elif parameter.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("attn.proj.weight", "mlp.proj.weight")) else 0.02
            nn.init.normal_(parameter, mean=0.0, std=std)
        # LayerNorm weights keep their 1s.
