"""A decoder-only transformer language model (GPT; Radford et al. 2018, 2019).

Data flows top to bottom through this file: token + position embeddings, n_layer pre-LayerNorm
blocks of causal multi-head self-attention and a GELU MLP (attention.py), a final LayerNorm, and
an output layer that reuses the token embedding matrix (tied weights; Press & Wolf 2017), or an
adaptive softmax (output.py; the default for a word vocabulary):

    h_0 = E[idx] + P[0..T-1]                     (B, T, C)
    h_l = Block_l(h_{l-1}),  l = 1..n_layer      causal: position t sees tokens <= t
    logits = LayerNorm(h_L) E^T                  (B, T, V), the next-token logits of EVERY position

Every position's logits come out of one forward pass, so training, scoring a line and scoring a
stream use the same computation. Generation keeps each layer's keys and values (the KV cache):
after the prompt, each new token costs one position instead of the whole prefix.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..base import note
from .attention import (
    Block,
    KVCache,
    PositionEncoding,
    StepWeights,
    TransformerConfig,
    dropout,
    init_transformer_weights,
    without_onednn,
)
from .core import NeuralLM
from .output import OutputLayer, resolve_softmax


@dataclass
class GPTConfig(TransformerConfig):
    """GPTLM's settings: the shared ones (core.NeuralConfig), the architecture (attention.py), and
    nanoGPT's baby-GPT learning rate as the default."""

    lr: float = 1e-3
    softmax: str = "auto"  # adaptive for a word vocabulary, full for characters and subwords (output.py)


def zero_head_bias_if_missing(module: GPT, state_dict: dict, prefix: str, *_) -> None:
    """A checkpoint written before the adaptive head had a bias loads with a zero one: the same model."""
    key = f"{prefix}output.adaptive.head.bias"
    if module.output.is_adaptive and key not in state_dict:
        state_dict[key] = torch.zeros_like(module.output.adaptive.head.bias)


class GPT(nn.Module):
    """ids (B, T) -> next-token logits (B, T, V) with causal self-attention."""

    def __init__(self, vocab_size: int, config: TransformerConfig):
        super().__init__()
        C = config.n_embd
        self.token_embedding = nn.Embedding(vocab_size, C)  # E, also the output layer
        self.position = PositionEncoding(config.positions, config.context, C)
        # Vaswani et al. 2017, sec. 3.4: embeddings are scaled by sqrt(C) next to fixed sinusoids of
        # amplitude 1; learned positions start at the embeddings' own scale (GPT-2), so no scaling.
        self.embedding_scale = math.sqrt(C) if config.positions == "sinusoidal" else 1.0
        self.dropout = config.dropout  # on the embeddings (training only)
        self.blocks = nn.ModuleList(
            [Block(C, config.n_head, config.dropout, config.bias) for _ in range(config.n_layer)]
        )
        self.ln_f = nn.LayerNorm(C, bias=config.bias)
        # The tied output layer has no bias, as GPT-2's lm_head (so that it exports to GPT-2's
        # format); an adaptive softmax has one in its head, which fit() starts at the unigram
        # distribution, so that a short run begins there rather than at uniform.
        adaptive = resolve_softmax(config.softmax, vocab_size) == "adaptive"
        self.output = OutputLayer(vocab_size, C, softmax=config.softmax, tied=self.token_embedding, bias=adaptive)
        init_transformer_weights(self, config.n_layer)
        self.register_load_state_dict_pre_hook(zero_head_bias_if_missing)

    def embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        """Token ids (..., T) at positions start .. start+T-1 -> h_0 = E[idx] (scaled) + P, (..., T, C)."""
        x = self.token_embedding(idx)  # (..., T, C)
        if self.embedding_scale != 1.0:
            x = x * self.embedding_scale
        return x + self.position(start, idx.size(-1))

    def hidden(
        self, idx: torch.Tensor, caches: list[KVCache] | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """idx (B, T) -> final hidden states (B, T, C) and each layer's attention weights (or None).

        caches: one KVCache per layer holding the earlier positions; idx then holds only the new
        positions, and their keys and values join the caches.
        """
        start = 0 if caches is None else caches[0].length  # positions already cached
        x = dropout(self.embed(idx, start), self.dropout, self.training)  # (B, T, C)
        weights = []
        for layer, block in enumerate(self.blocks):
            x, w = block(
                x, causal=True, cache=None if caches is None else caches[layer], need_weights=need_weights
            )  # (B, T, C)
            weights.append(w)
        return self.ln_f(x), weights

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> the final hidden states (B, T, C) the output layer reads."""
        return self.hidden(idx)[0]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> scores (B, T, V) of the token after each position."""
        return self.output(self.features(idx))

    def new_caches(self) -> list[KVCache]:
        """Empty KV caches, one per layer, for a generation of up to `context` positions."""
        return [KVCache(self.position.n_positions) for _ in self.blocks]

    def forward_cached(self, idx: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
        """New positions idx (B, T) after the cached ones -> their scores (B, T, V); the caches grow."""
        return self.output(self.hidden(idx, caches)[0])

    def step_weights(self) -> list[StepWeights]:
        """Every block's parameters, gathered once for a generation's steps (attention.StepWeights)."""
        return [block.step_weights() for block in self.blocks]

    def step(self, token: int, caches: list[KVCache], weights: list[StepWeights]) -> torch.Tensor:
        """One token after the cached positions -> the scores (V,) of the token after it; the
        caches grow by one. forward_cached(tensor([[token]]), caches)[0, -1] through Block.step."""
        x = self.embed(torch.tensor([token], device=self.token_embedding.weight.device), caches[0].length)
        for cache, w in zip(caches, weights):
            x = Block.step(x, cache, w)  # (1, C)
        return self.output(self.ln_f(x))[0]  # (V,)


class GPTLM(NeuralLM):
    """A decoder-only transformer: pre-LN blocks, causal attention, tied embeddings, KV-cache sampling."""

    Config = GPTConfig

    @property
    def name(self) -> str:
        c = self.config
        return f"GPT {c.n_layer}x{c.n_embd}"

    def build_module(self, vocab_size: int) -> GPT:
        self.config.check()
        return GPT(vocab_size, self.config)

    # ---- sampling with the KV cache --------------------------------------------------------------

    def next_logprobs_incremental(self, context_ids) -> Generator[np.ndarray, int, None]:
        """The distributions `next_logprobs` gives along a growing text, one position per token.

        Yields log P(next | start, context_ids) (V,); `send(token)` appends a token and yields
        the distribution after it. Each layer's keys and values are kept, so each sent token
        costs one position. Once start + text exceed `context`, the model sees the last `context`
        tokens, exactly as `next_logprobs` does (a note says so once), and every step then
        recomputes that window: learned and sinusoidal positions are absolute, so a cache made
        at other positions cannot be reused.
        """
        if not getattr(self, "_use_cache", True):
            yield from super().next_logprobs_incremental(context_ids)
            return
        module = self._fitted_module()
        module.eval()
        window = self.config.context
        sequence = [self._check_fitted().vocab.bos_id, *[int(i) for i in context_ids]]
        caches: list[KVCache] | None = None
        weights = module.step_weights()
        noted = False
        while True:
            if len(sequence) > window and not noted:
                note(f"the context has {len(sequence)} tokens; {self.name} sees the last {window}")
                noted = True
            with torch.inference_mode():
                if caches is None or len(sequence) > window:
                    caches = module.new_caches()
                    feed = torch.tensor([sequence[-window:]], device=self.device)  # (1, T): the visible window
                    logits = module.forward_cached(feed, caches)[0, -1]  # (V,)
                else:
                    with without_onednn():
                        logits = module.step(sequence[-1], caches, weights)  # (V,): only the new token
            token = yield self.log_softmax(logits).double().cpu().numpy()  # (V,)
            sequence.append(int(token))

    def generate(self, prompt: str = "", max_tokens: int = 50, *, use_cache: bool = True, **sampling) -> str:
        """`LanguageModel.generate` through the KV cache; use_cache=False recomputes the prefix for
        every token (the same seed draws the same tokens either way, only slower)."""
        self._use_cache = use_cache
        try:
            return super().generate(prompt, max_tokens, **sampling)
        finally:
            self._use_cache = True

    # ---- export ----------------------------------------------------------------------------------

    def save_hf(self, path) -> None:
        """Write a GPT-2 format folder (config.json, model.safetensors, tokenizer files) that
        transformers loads as GPT2LMHeadModel; what the format cannot hold is refused in one line
        (hf_export.py)."""
        from .hf_export import save_gpt2

        save_gpt2(self, path)

    # ---- inspection ------------------------------------------------------------------------------

    @torch.no_grad()
    def attention(self, text: str) -> np.ndarray:
        """Attention weights over <s> + the text's tokens, (layers, heads, T, T), float32.

        Row i is how position i distributes its attention over positions 0..i (causal: the upper
        triangle is 0). Longer texts keep their last `context` tokens, with a note.
        """
        vocab = self._check_fitted().vocab
        sequence = [vocab.bos_id, *self.encode_context(text)]
        if len(sequence) > self.config.context:
            note(f"the text has {len(sequence)} tokens with <s>; {self.name} shows the last {self.config.context}")
            sequence = sequence[-self.config.context :]
        module = self._fitted_module()
        module.eval()
        _, weights = module.hidden(torch.tensor([sequence], device=self.device), need_weights=True)
        return torch.stack([w[0] for w in weights]).float().cpu().numpy()  # (layers, H, T, T)
