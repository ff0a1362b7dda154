"""A BERT-style masked language model (Devlin et al. 2019): a bidirectional transformer encoder.

    h_0 = E[idx] + P[0..T-1] + S[segment]        token + position + segment embeddings  (B, T, C)
    h_l = Block_l(h_{l-1})                       no causal mask: every token sees the whole line
    logits = LayerNorm(GELU(W h_L)) E^T + b      the MLM head, tied to the token embedding (B, T, V)

Training is masked-LM: 15 % of each row's tokens are chosen (at least one), and of those 80 %
become <mask>, 10 % a random token and 10 % stay; the loss is the cross-entropy at the chosen
positions only. Each row is `<s> w1 .. wk </s>`; <s> and <pad> are never chosen. </s> is chosen
like a word, because scoring asks the model for it (docs/design.md 2 counts the end of every line).

A bidirectional model has no left-to-right factorisation, so it has no perplexity. It is scored
by pseudo-log-likelihood (Salazar et al. 2020): PLL(line) = sum_t log P(w_t | line with w_t
masked), each term one masked copy of the line; the copies of lines of about the same length
share a forward pass, which computes the first block's projections once per line and the last
block and the output layer only at the masked positions (`masked_copies`). Everything evaluate()
reports for it is therefore a pseudo-perplexity (base.evaluate flags it from `is_causal`).
It generates by Gibbs sampling (Wang & Cho 2019): masks after the prompt, resampled in sweeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base import join_sample, most_probable, note, scoring_bar
from ..errors import ConfigError, LangmodelsError
from ..options import RUN, check_text
from ..sampling import sample_next
from ..tokenizers import Vocabulary
from .attention import Block, PositionEncoding, TransformerConfig, init_transformer_weights
from .core import NeuralLM, map_batches
from .data import IGNORE, Batch
from .output import OutputLayer

# Markers a user may write for the token to fill in `fill_mask`.
MASK_MARKER = re.compile(r"\[MASK\]|<mask>")
# Ids that are never chosen for masking, never drawn as replacements, and never sampled.
NOT_TEXT = (Vocabulary.bos_id, Vocabulary.pad_id, Vocabulary.mask_id)
N_SPECIALS = len(Vocabulary.SPECIALS)


@dataclass
class MaskedLMConfig(TransformerConfig):
    """MaskedLM's settings: the shared ones, the architecture (attention.py) and masking."""

    lr: float = 1e-3
    mask_prob: float = 0.15  # share of each row's tokens chosen for prediction (Devlin et al. 2019)
    mask_token_prob: float = 0.8  # of the chosen: replaced by <mask>
    random_token_prob: float = 0.1  # of the chosen: replaced by a random token (the rest stay)
    n_segments: int = 2  # segment (sentence A / B) embeddings; single lines use segment 0
    gibbs_sweeps: int = 4  # passes over the generated positions in `generate`
    pll_batch_tokens: int = 4096  # copies x width per forward pass when scoring: small passes stay in cache

    def check(self, *, machine: bool = False) -> None:
        super().check(machine=machine)
        if self.context < 3:
            raise ConfigError(f"context must be >= 3 (<s>, a token and </s>), got {self.context!r}")
        check_masking(self)


def padding_mask(idx: torch.Tensor) -> torch.Tensor | None:
    """(B, T) True for real tokens, False for <pad>; None where nothing is padded (SDPA's fastest path)."""
    real = idx != Vocabulary.pad_id  # (B, T)
    return None if bool(real.all()) else real


class BertEncoder(nn.Module):
    """ids (B, T) -> logits (B, T, V) for the token at each position, attending both ways."""

    def __init__(self, vocab_size: int, config: MaskedLMConfig):
        super().__init__()
        C = config.n_embd
        self.token_embedding = nn.Embedding(vocab_size, C)  # E, also the MLM output layer
        self.position = PositionEncoding(config.positions, config.context, C)
        self.segment_embedding = nn.Embedding(config.n_segments, C)
        self.embedding_scale = float(C) ** 0.5 if config.positions == "sinusoidal" else 1.0  # as in gpt.py
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            [Block(C, config.n_head, config.dropout, config.bias) for _ in range(config.n_layer)]
        )
        self.ln_f = nn.LayerNorm(C, bias=config.bias)
        # BERT's MLM head: a dense GELU transform and a LayerNorm before the tied output layer.
        self.head_dense = nn.Linear(C, C, bias=config.bias)
        self.head_ln = nn.LayerNorm(C, bias=config.bias)
        self.output = OutputLayer(vocab_size, C, softmax=config.softmax, tied=self.token_embedding)
        init_transformer_weights(self, config.n_layer)

    def embed(self, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) -> the first block's input (B, T, C): token + position + segment (0 by default)."""
        T = idx.size(1)
        x = self.token_embedding(idx) * self.embedding_scale + self.position(0, T)  # (B, T, C)
        if segments is None:
            x = x + self.segment_embedding.weight[0]  # (B, T, C): every token in segment 0
        else:
            x = x + self.segment_embedding(segments)  # (B, T, C)
        return self.drop(x)

    def hidden(
        self, idx: torch.Tensor, segments: torch.Tensor | None = None, need_weights: bool = False,
        at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """idx (B, T) -> final hidden states (B, T, C) and each layer's weights (or Nones).

        <pad> positions are hidden from every query (the padding mask); segments default to 0.
        at: (B,) one position per row: the final states there only, (B, 1, C), the last block
        run for those queries alone (scoring reads nothing else of it).
        """
        x = self.embed(idx, segments)  # (B, T, C)
        key_padding_mask = padding_mask(idx)
        weights = []
        for layer, block in enumerate(self.blocks):
            last = layer == len(self.blocks) - 1
            x, w = block(x, key_padding_mask=key_padding_mask, need_weights=need_weights,
                         at=at if last else None)  # (B, T, C), or (B, 1, C) at the end with `at`
            weights.append(w)
        return self.ln_f(x), weights

    def masked_copies(self, idx: torch.Tensor, row_of: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        """The final state at the masked position of each masked copy of some rows, (R, C).

        idx (N, T): rows, <pad>-filled on the right; copy r is row row_of[r] with position at[r]
        replaced by <mask>. Equal to hidden(copies, at=at)[0][:, 0], computed without repeating
        what the copies share: a row's embeddings and first-block projections (LayerNorm and
        q, k, v act on each position alone) are computed once per row and once for <mask> at
        each position, then gathered per copy; attention and everything after it run per copy.
        """
        R, T = len(at), idx.size(1)
        copies = torch.arange(R, device=idx.device)
        x = self.embed(idx)  # (N, T, C)
        masks = self.embed(torch.full((1, T), Vocabulary.mask_id, device=idx.device))[0]  # (T, C): <mask> anywhere
        first = self.blocks[0]
        shared = first.attn.qkv(first.ln_1(torch.cat([x.flatten(0, 1), masks])))  # (N T + T, 3C)
        qkv = shared[: x.size(0) * T].view(*idx.shape, -1)[row_of]  # (R, T, 3C)
        qkv[copies, at] = shared[x.size(0) * T :][at]
        x = x[row_of]  # (R, T, C)
        x[copies, at] = masks[at]
        key_padding_mask = padding_mask(idx)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask[row_of]  # (R, T)
        for layer, block in enumerate(self.blocks):
            last = layer == len(self.blocks) - 1
            x, _ = block(x, key_padding_mask=key_padding_mask, at=at if last else None,
                         qkv=qkv if layer == 0 else None)  # (R, T, C), (R, 1, C) after the last block
        return self.ln_f(x[:, 0])  # (R, C)

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., C) -> what the output layer reads (..., C)."""
        return self.head_ln(F.gelu(self.head_dense(h)))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., C) -> token scores (..., V), by default through the tied embedding matrix."""
        return self.output(self.transform(h))

    def forward(self, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V)."""
        return self.head(self.hidden(idx, segments)[0])



# ---- masked-LM training data ----------------------------------------------------------------


def full_rows(batch: Batch, pad: int) -> torch.Tensor:
    """A causal batch (inputs <s> w1..wk, targets w1..wk </s>) as whole rows <s> w1..wk </s> (B, T+1)."""
    rest = torch.where(batch.targets == IGNORE, torch.full_like(batch.targets, pad), batch.targets)  # (B, T)
    return torch.cat([batch.inputs[:, :1], rest], dim=1)  # (B, T + 1)


def check_masking(settings) -> None:
    """ConfigError unless settings' mask_prob, mask_token_prob and random_token_prob (MaskedLMConfig's
    names) are probabilities that mask_tokens can use."""
    if not 0 < settings.mask_prob < 1:
        raise ConfigError(f"mask_prob must be in (0, 1), got {settings.mask_prob!r}")
    for name in ("mask_token_prob", "random_token_prob"):
        if not 0 <= getattr(settings, name) <= 1:
            raise ConfigError(f"{name} must be in [0, 1], got {getattr(settings, name)!r}")
    if settings.mask_token_prob + settings.random_token_prob > 1:
        raise ConfigError(
            f"mask_token_prob + random_token_prob must be <= 1, got "
            f"{settings.mask_token_prob!r} + {settings.random_token_prob!r}"
        )


def mask_tokens(
    rows: torch.Tensor, generator: torch.Generator, vocab_size: int, config: MaskedLMConfig, *,
    not_text=NOT_TEXT, mask_id: int = Vocabulary.mask_id, random_from: int = N_SPECIALS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of rows (B, T) -> (inputs (B, T), targets (B, T)); targets are IGNORE off the chosen.

    In each row, round(mask_prob * n) of its n maskable tokens (at least one) are chosen uniformly,
    as in BERT's create_pretraining_data.py; each chosen token becomes <mask> with probability
    mask_token_prob, a random non-special token with random_token_prob, and stays otherwise.
    not_text, mask_id, random_from: the ids never chosen, the mask and the first id a random token
    is drawn from, by default our Vocabulary's (hf.py passes a transformers tokenizer's).
    """
    candidates = torch.ones_like(rows, dtype=torch.bool)
    for special in not_text:
        candidates &= rows != special  # (B, T)
    n_candidates = candidates.sum(dim=1)  # (B,)
    n_chosen = torch.clamp(torch.round(n_candidates * config.mask_prob), min=1)
    n_chosen = torch.minimum(n_chosen, n_candidates)  # (B,)
    # A uniformly random subset of k candidates: the k smallest of uniform keys.
    keys = torch.rand(rows.shape, generator=generator).masked_fill(~candidates, 2.0)  # (B, T)
    rank = keys.argsort(dim=1).argsort(dim=1)  # (B, T): each position's rank among its row's keys
    chosen = rank < n_chosen[:, None]  # (B, T)

    action = torch.rand(rows.shape, generator=generator)  # (B, T)
    to_mask = chosen & (action < config.mask_token_prob)
    replace_until = config.mask_token_prob + config.random_token_prob
    to_random = chosen & (action >= config.mask_token_prob) & (action < replace_until)
    low = random_from if vocab_size > random_from else 0
    random_tokens = torch.randint(low, vocab_size, rows.shape, generator=generator)  # (B, T)

    inputs = torch.where(to_mask, torch.full_like(rows, mask_id), rows)
    inputs = torch.where(to_random, random_tokens, inputs)
    targets = torch.where(chosen, rows, torch.full_like(rows, IGNORE))
    return inputs, targets


def step_generator(seed: int, step: int, purpose: int = 0) -> torch.Generator:
    """The torch generator of one step's masks: the same (seed, step) always masks the same way.
    purpose 0 is training, 1 validation (other masks than any training step's)."""
    state = np.random.SeedSequence([seed, step, purpose]).generate_state(1, dtype=np.uint32)[0]
    return torch.Generator().manual_seed(int(state))


# ---- the model ------------------------------------------------------------------------------


class MaskedLM(NeuralLM):
    """A bidirectional transformer encoder trained by masked-LM; scored by pseudo-log-likelihood."""

    Config = MaskedLMConfig
    is_causal = False

    @property
    def name(self) -> str:
        c = self.config
        return f"masked LM {c.n_layer}x{c.n_embd}"

    def build_module(self, vocab_size: int) -> BertEncoder:
        self.config.check()
        return BertEncoder(vocab_size, self.config)

    # ---- training ------------------------------------------------------------------------------

    def stream_block(self) -> int:
        """Rows are one token longer than their predictions (<s> .. </s> whole), so windows hold
        context - 1 predictions to fit the encoder's `context` positions."""
        return self.config.context - 1

    line_pieces = stream_block

    def training_batch(self, data, step: int) -> Batch:
        """The step's rows (drawn from (seed, step) as for every model), masked from (seed, step)."""
        rows = full_rows(data.sample(self.config.batch_size, self.config.seed, step), Vocabulary.pad_id)
        generator = step_generator(self.config.seed, step)
        inputs, targets = mask_tokens(rows, generator, len(self.tokenizer.vocab), self.config)
        return Batch(inputs, targets)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy at the chosen positions; the output layer runs only there."""
        module = self._fitted_module()
        targets = batch.targets.to(self.device)  # (B, T)
        h, _ = module.hidden(batch.inputs.to(self.device))  # (B, T, C)
        chosen = targets != IGNORE  # (B, T)
        return module.output.loss(module.transform(h[chosen]), targets[chosen])

    @torch.no_grad()
    def validation_loss(self, lines, mode: str) -> float:
        """Masked-LM cross-entropy (nats per chosen token) over every row of a split, once.

        Deterministic (the masks come from the seed), and far cheaper than the pseudo-perplexity
        (one pass over the text instead of one per token), so early stopping can watch it.
        """
        module = self._fitted_module()
        module.eval()
        data = self.training_data(lines, mode)
        if mode == "stream":
            width = self.config.context  # non-overlapping windows of the stream, the last one shorter
            rows = [torch.from_numpy(data.data[start : start + width]) for start in range(0, len(data.data) - 1, width)]
            batches = [
                torch.nn.utils.rnn.pad_sequence(rows[i : i + self.config.batch_size], batch_first=True,
                                                padding_value=Vocabulary.pad_id)
                for i in range(0, len(rows), self.config.batch_size)
            ]
        else:
            batches = [full_rows(batch, Vocabulary.pad_id) for batch in data.in_order(self.config.batch_size)]
        total, count = 0.0, 0
        for index, rows in enumerate(batches):
            inputs, targets = mask_tokens(rows, step_generator(self.config.seed, index, 1),
                                          len(self.tokenizer.vocab), self.config)
            batch = Batch(inputs, targets)
            total += self.loss(batch).item() * batch.n_targets
            count += batch.n_targets
        return total / max(count, 1)

    # ---- pseudo-log-likelihood -----------------------------------------------------------------

    def _copies(self, sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The masked copies of `sequence` (unmasked yet), one per position after <s>:
        (rows (N, W), row of each copy (R,), its masked position in that row (R,)), in target order.

        A sequence that fits the context is one row with every position masked in turn; a longer
        one gives each target the window of `context` tokens centred on it (clipped to the
        sequence), one row per distinct window.
        """
        window = self.config.context
        targets = np.arange(1, len(sequence))
        if len(sequence) <= window:
            return sequence[None], np.zeros(len(targets), dtype=np.int64), targets
        start = np.clip(targets - window // 2, 0, len(sequence) - window)  # (R,)
        starts, row_of = np.unique(start, return_inverse=True)
        return sequence[starts[:, None] + np.arange(window)[None, :]], row_of, targets - start

    @torch.inference_mode()
    def _score_copies(self, rows: np.ndarray, row_of: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """log P(true token | its masked copy) for copies given as in `_copies`, (R,) float64."""
        module = self._fitted_module()
        module.eval()
        idx = torch.from_numpy(rows).to(self.device)
        row_of, at = torch.from_numpy(row_of).to(self.device), torch.from_numpy(positions).to(self.device)
        h = module.masked_copies(idx, row_of, at)  # (R, C)
        return self.output_logprobs(module.transform(h), idx[row_of, at])

    def _pll(self, sequences: list[np.ndarray], progress: bool | None = False) -> list[np.ndarray]:
        """Per sequence (starting with <s>), the PLL term of every position after the first.

        The sequences are taken by length, so that the masked copies of sequences of about the
        same length share a forward pass, their rows padded to a common width, while copies x
        width stay within pll_batch_tokens (a sequence with more copies is split). The passes are
        shared out among CPU threads (core.map_batches).
        """
        budget = self.config.pll_batch_tokens
        order = np.argsort([len(sequence) for sequence in sequences], kind="stable")
        chunks = []  # (rows (N, W), row of each copy (R,), positions (R,)), in target order
        for i in order:
            rows, row_of, positions = self._copies(sequences[i])
            step = max(budget // rows.shape[1], 1)
            for first in range(0, len(positions), step):
                used, inverse = np.unique(row_of[first : first + step], return_inverse=True)
                chunks.append((rows[used], inverse, positions[first : first + step]))
        passes, group, copies, width = [], [], 0, 0

        def close_pass():
            offsets = np.cumsum([0] + [len(rows) for rows, _, _ in group])
            padded = np.full((offsets[-1], width), Vocabulary.pad_id, dtype=np.int64)  # (N, W)
            for (rows, _, _), offset in zip(group, offsets):
                padded[offset : offset + len(rows), : rows.shape[1]] = rows
            row_of = np.concatenate([inverse + offset for (_, inverse, _), offset in zip(group, offsets)])
            passes.append((padded, row_of, np.concatenate([positions for _, _, positions in group])))

        for rows, inverse, positions in chunks:
            if group and (copies + len(positions)) * max(width, rows.shape[1]) > budget:
                close_pass()
                group, copies, width = [], 0, 0
            group.append((rows, inverse, positions))
            copies += len(positions)
            width = max(width, rows.shape[1])
        if group:
            close_pass()
        bar = partial(scoring_bar, name=self.name, progress=progress, unit="pass")
        scored = map_batches(lambda batch: self._score_copies(*batch), passes, self.device, progress=bar)
        flat = np.concatenate(scored) if scored else np.zeros(0)
        by_length = np.split(flat, np.cumsum([len(sequences[i]) - 1 for i in order])[:-1])
        results: list[np.ndarray | None] = [None] * len(sequences)
        for i, terms in zip(order, by_length):
            results[i] = terms
        return results

    def score_ids(self, batch) -> list[np.ndarray]:
        """Pseudo-log-likelihood terms (Salazar et al. 2020) of each line: entry i is
        log P(ids[i] | <s> ids </s> with position i masked), the last the same for </s>."""
        vocab = self._check_fitted().vocab
        return self._pll(
            [np.concatenate([[vocab.bos_id], np.asarray(ids, dtype=np.int64), [vocab.eos_id]]) for ids in batch]
        )

    def score_lines(self, flat, lengths, *, progress: bool | None = None) -> np.ndarray:
        """score_ids of every line at once (one set of passes, lines of like length together)."""
        vocab = self._check_fitted().vocab
        flat = np.asarray(flat, dtype=np.int64)
        ends = np.cumsum(lengths)
        sequences = [np.concatenate([[vocab.bos_id], flat[end - length : end], [vocab.eos_id]])
                     for end, length in zip(ends, lengths)]
        scored = self._pll(sequences, progress)
        return np.concatenate(scored) if scored else np.zeros(0)

    def score_stream(self, ids) -> np.ndarray:
        """PLL terms of each token of a stream, each masked in the window of `context` around it."""
        bos = self._check_fitted().vocab.bos_id
        return self._pll([np.concatenate([[bos], np.asarray(ids, dtype=np.int64)])])[0]

    # ---- next-token distribution, fill-mask, generation ----------------------------------------

    @torch.no_grad()
    def _logprobs_at(self, sequence: list[int], positions: list[int]) -> torch.Tensor:
        """log P(token at each position | the sequence), (len(positions), V) float64."""
        module = self._fitted_module()
        module.eval()
        h, _ = module.hidden(torch.tensor([sequence], device=self.device))  # (1, T, C)
        logits = module.head(h[0, positions]).float()  # (P, V)
        return self.log_softmax(logits).double().cpu()

    def next_logprobs(self, context_ids) -> np.ndarray:
        """The distribution at a <mask> after <s> + context and before </s>.

        An approximation: a bidirectional model has no next-token distribution, so this asks it
        for the last word of a line that ends right after the mask. It lets top_next (and the
        generic sampler) work; scoring never uses it.
        """
        vocab = self._check_fitted().vocab
        sequence = [vocab.bos_id, *[int(i) for i in context_ids], vocab.mask_id, vocab.eos_id]
        window = self.config.context
        if len(sequence) > window:
            note(f"the context has {len(sequence) - 2} tokens; {self.name} sees the last {window - 2}")
            sequence = sequence[-window:]
        return self._logprobs_at(sequence, [len(sequence) - 2])[0].numpy()

    def fill_mask(self, text: str, k: int = 5) -> list[list[tuple[str, float]]]:
        """The k most probable tokens for each [MASK] (or <mask>) in `text`, most probable first.

        Returns one list of (token, probability) per mask, in the order of the masks, each
        predicted from the text with all masks in place (as in BERT's evaluation).
        """
        tokenizer = self._check_fitted()
        RUN["k"].check(k)
        check_text(text, "fill_mask's text")
        pieces = MASK_MARKER.split(text)
        if len(pieces) == 1:
            raise LangmodelsError(f"no [MASK] to fill in {text!r}; write [MASK] (or <mask>) where a token is missing")
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            if i:
                ids.append(tokenizer.vocab.mask_id)
            if tokenizer.level == "subword" and i < len(pieces) - 1 and piece.endswith(" "):
                piece = piece[:-1]  # a BPE word carries its space: " cat" fills "the [MASK]"
            ids.extend(self.encode_context(piece))
        sequence = [tokenizer.vocab.bos_id, *ids, tokenizer.vocab.eos_id]
        if len(sequence) > self.config.context:
            raise LangmodelsError(
                f"the text has {len(sequence)} tokens with <s> and </s>; "
                f"{self.name} reads at most {self.config.context}"
            )
        positions = [i for i, token in enumerate(sequence) if token == tokenizer.vocab.mask_id]
        logprobs = self._logprobs_at(sequence, positions).numpy()  # (masks, V)
        logprobs[:, list(NOT_TEXT)] = -np.inf  # markers are not answers
        return [most_probable(row, tokenizer, k) for row in logprobs]

    def draw_sample(self, prompt: str, max_tokens: int, *, temperature: float, top_k: int | None,
                    top_p: float | None, rng: np.random.Generator) -> str:
        """Gibbs sampling (Wang & Cho 2019): <s> prompt, then max_tokens <mask>s, then </s>.

        Each sweep visits the generated positions left to right, masks one, and redraws it from
        the model's distribution there given everything else (the first sweep fills the masks in
        order). After `gibbs_sweeps` sweeps the text is cut at the first </s>, if any. The length
        is chosen up front, so a continuation ends at max_tokens unless the model places a </s>.
        """
        tokenizer = self._check_fitted()
        vocab = tokenizer.vocab
        context = self.encode_context(prompt, "prompt")
        if max_tokens == 0:
            return prompt
        window = self.config.context
        if max_tokens > window - 2:
            note(f"{self.name} reads {window} tokens at once: generating {window - 2}, not {max_tokens}")
            max_tokens = window - 2
        room = window - 2 - max_tokens
        if len(context) > room:
            note(f"the prompt has {len(context)} tokens; {self.name} conditions on the last {room}")
            context = context[len(context) - room :]
        sequence = [vocab.bos_id, *context, *[vocab.mask_id] * max_tokens, vocab.eos_id]
        positions = range(1 + len(context), 1 + len(context) + max_tokens)
        for _ in range(self.config.gibbs_sweeps):
            for position in positions:
                sequence[position] = vocab.mask_id
                logprobs = self._logprobs_at(sequence, [position])[0].numpy()
                logprobs[list(NOT_TEXT)] = -np.inf
                sequence[position] = sample_next(logprobs, rng, temperature, top_k, top_p)
        generated = [sequence[p] for p in positions]
        if vocab.eos_id in generated:
            generated = generated[: generated.index(vocab.eos_id)]
        return join_sample(tokenizer, prompt, generated)

    # ---- inspection ------------------------------------------------------------------------------

    @torch.no_grad()
    def attention(self, text: str) -> np.ndarray:
        """Attention weights over <s> + the text's tokens + </s>, (layers, heads, T, T), float32.

        Row i is how position i distributes its attention over the whole line (both directions).
        Longer texts keep their last context - 2 tokens, with a note.
        """
        vocab = self._check_fitted().vocab
        ids = self.encode_context(text)
        room = self.config.context - 2
        if len(ids) > room:
            note(f"the text has {len(ids)} tokens; {self.name} shows the last {room}")
            ids = ids[len(ids) - room :]
        module = self._fitted_module()
        module.eval()
        _, weights = module.hidden(torch.tensor([[vocab.bos_id, *ids, vocab.eos_id]], device=self.device),
                                   need_weights=True)
        return torch.stack([w[0] for w in weights]).float().cpu().numpy()  # (layers, H, T, T)
