"""A recurrent language model: embedding, stacked LSTM, dropout, output tied to the embedding.

    x_t = dropout(E[w_t])                          (B, T, n_embd)
    h_t = LSTM^n_layer(x_t, state_{t-1})           (B, T, hidden), dropout between layers
    logits_t = E · P(dropout(h_t)) + b             (B, T, V)

The output matrix is the input embedding E (Press & Wolf 2017; Inan et al. 2017), or an adaptive
softmax of its own with softmax="adaptive" (output.py). Tying needs
the output side to be n_embd wide: when `hidden` differs from `n_embd` a linear projection P
(hidden -> n_embd) sits between the last LSTM layer and the output; when they are equal P is
the identity and there is no extra layer.

The context is unbounded: the state carries every earlier token. Lines are scored whole, in
batches of lines of similar length (little padding); a stream is scored in chunks of `context`
tokens carrying (h, c) from chunk to chunk, so memory stays bounded and every token keeps its
whole history. The output layer only ever runs on real (unpadded) positions.
Training on a stream reads it as `batch_size` parallel columns in consecutive windows of
`context` tokens, carrying the detached state from one step to the next (truncated
backpropagation through time, Zaremba et al. 2014). Training on lines reads each line whole (as
it is scored) from a fresh state; right padding never reaches a real position (the LSTM reads
leftwards only) and padded targets are ignored by the loss, so no packing is needed (the final
state of a padded row is never used).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from ..base import scoring_bar
from ..errors import CheckpointError
from .core import NeuralConfig, NeuralLM, map_batches, with_targets
from .data import IGNORE, Batch, StreamBatches, pad_rows
from .output import OutputLayer

SCORE_LINES = 64  # lines per scoring batch
State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layer, B, hidden)


@dataclass
class LSTMConfig(NeuralConfig):
    n_embd: int = 256  # embedding width, also the width the tied output layer reads
    hidden: int = 256  # LSTM units per layer (a projection to n_embd is added when they differ)
    n_layer: int = 2
    dropout: float = 0.25  # on the embeddings, between layers and on the last layer's output
    softmax: str = "auto"  # adaptive for a word vocabulary, full (tied) for characters and subwords (output.py)
    # Brown, default settings, valid perplexity after 40 / 300 steps: lr 3e-3 460 / 278, 6e-3 371 / 207,
    # 1e-2 373 / 215 (fit(max_steps=N) on the train split, the whole valid split scored).
    lr: float = 6e-3
    # `context` (from NeuralConfig) is the BPTT length in stream training and the chunk length of
    # stream scoring; lines are trained whole, and nothing limits what the model sees in scoring.


class LSTMModule(nn.Module):
    """ids (B, T) and an optional state -> next-token logits (B, T, V) and the state after."""

    def __init__(self, vocab_size: int, config: LSTMConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.n_embd, config.hidden, num_layers=config.n_layer, batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.projection = nn.Linear(config.hidden, config.n_embd) if config.hidden != config.n_embd else nn.Identity()
        self.output = OutputLayer(vocab_size, config.n_embd, softmax=config.softmax, tied=self.token_embedding)
        # A tied matrix serves as input and output: a small scale keeps the first logits near
        # uniform (the default N(0, 1) would start the loss far above log V).
        nn.init.normal_(self.token_embedding.weight, std=config.n_embd**-0.5)
        # Forget-gate biases at 1 so the cell remembers from the start (Jozefowicz et al. 2015);
        # torch orders each layer's gates input, forget, cell, output.
        for name, bias in self.lstm.named_parameters():
            if name.startswith("bias_ih"):
                with torch.no_grad():
                    bias[config.hidden : 2 * config.hidden].fill_(1.0)

    def encode(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) -> the output-side vectors (B, T, n_embd) and the state after the last step."""
        x = self.drop(self.token_embedding(idx))  # (B, T, n_embd)
        h, state = self.lstm(x, state)  # (B, T, hidden); state: (n_layer, B, hidden) twice
        return self.projection(self.drop(h)), state  # (B, T, n_embd)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> output-side vectors (B, T, n_embd), from a fresh state."""
        return self.encode(idx)[0]

    def run(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        h, state = self.encode(idx, state)
        return self.output(h), state  # (B, T, V)

    def forward(self, idx: torch.Tensor, state: State | None = None) -> torch.Tensor:
        return self.run(idx, state)[0]


class LSTMLM(NeuralLM):
    """Embedding, stacked LSTM, dropout, tied output; unbounded context through its state."""

    Config = LSTMConfig

    def __init__(self, **settings):
        super().__init__(**settings)
        self._carried: State | None = None  # training state handed from one BPTT step to the next
        self._prefix: tuple | None = None  # (module, versions, ids, state, logits) of the last next_logprobs

    @property
    def name(self) -> str:
        return f"LSTM {self.config.n_layer}x{self.config.hidden}"

    @property
    def context_size(self) -> None:
        return None

    def build_module(self, vocab_size: int) -> LSTMModule:
        self.config.check()
        return LSTMModule(vocab_size, self.config)

    # ---- training ------------------------------------------------------------------------------

    def fit(self, train, valid=None, **budget) -> LSTMLM:
        self._carried = None
        return super().fit(train, valid, **budget)

    def line_pieces(self) -> None:
        """Lines are trained whole, as they are scored: a line cut into pieces
        would start each later piece from a fresh state and never learn long histories."""
        return

    def training_batch(self, data, step: int) -> Batch:
        """Streams are read in order (truncated BPTT); lines are drawn at random as by the core."""
        if isinstance(data, StreamBatches):
            return data.bptt(self.config.batch_size, step)
        return super().training_batch(data, step)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over the real targets; a batch that continues the previous one
        starts from its final state."""
        module = self._fitted_module()
        device = self.device
        state = self._carried if batch.continues else None
        if state is not None and state[0].shape[1] != batch.inputs.shape[0]:
            state = None
        h, state = module.encode(batch.inputs.to(device), state)  # (B, T, n_embd)
        self._carried = (state[0].detach(), state[1].detach())  # no gradient flows into the past
        return module.output.loss(*with_targets(h, batch.targets.to(device)))

    def training_state(self) -> dict[str, torch.Tensor]:
        """The carried BPTT state, for a training checkpoint (empty when there is none)."""
        if self._carried is None:
            return {}
        return {"h": self._carried[0].cpu().contiguous(), "c": self._carried[1].cpu().contiguous()}

    def load_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore `training_state()` so a resumed stream run continues from the same state."""
        if not tensors:
            self._carried = None
            return
        try:
            h, c = tensors["h"], tensors["c"]
        except KeyError as missing:
            raise CheckpointError(f"the carried LSTM state lacks {missing}") from None
        if h.shape != c.shape or h.shape[0] != self.config.n_layer or h.shape[-1] != self.config.hidden:
            raise CheckpointError(f"the carried LSTM state has shape {tuple(h.shape)}, not (n_layer, B, hidden)")
        self._carried = (h.to(self.device), c.to(self.device))

    # ---- scoring -------------------------------------------------------------------------------

    def score_many(self, lines: list[np.ndarray], progress: bool | None = False) -> list[np.ndarray]:
        """score_ids for any number of lines: batches of lines of similar length (little padding),
        the output layer run on real positions only, the batches shared out among CPU threads
        (core.map_batches)."""
        vocab = self._check_fitted().vocab
        module = self._fitted_module()
        module.eval()
        device = self.device
        order = np.argsort([len(line) for line in lines], kind="stable")

        @torch.no_grad()  # grad mode is per thread
        def score_batch(rows: np.ndarray) -> np.ndarray:
            full = [np.concatenate([[vocab.bos_id], np.asarray(lines[i], dtype=np.int64), [vocab.eos_id]])
                    for i in rows]
            inputs = torch.from_numpy(pad_rows([line[:-1] for line in full], vocab.pad_id)).to(device)  # (B, T)
            targets = torch.from_numpy(pad_rows([line[1:] for line in full], IGNORE)).to(device)  # (B, T)
            real = targets != IGNORE
            h, _ = module.encode(inputs)  # (B, T, n_embd)
            return self.output_logprobs(h[real], targets[real])  # the rows' scores, one after another

        batches = [order[begin : begin + SCORE_LINES] for begin in range(0, len(lines), SCORE_LINES)]
        bar = partial(scoring_bar, name=self.name, progress=progress, unit="batch")
        results: list[np.ndarray | None] = [None] * len(lines)
        for rows, scores in zip(batches, map_batches(score_batch, batches, device, progress=bar)):
            lengths = [len(lines[i]) + 1 for i in rows]  # each line's tokens and its </s>
            for i, row_scores in zip(rows, np.split(scores, np.cumsum(lengths)[:-1])):
                results[i] = row_scores
        return results

    def score_ids(self, batch) -> list[np.ndarray]:
        return self.score_many(list(batch))

    def score_lines(self, flat, lengths, *, progress: bool | None = None) -> np.ndarray:
        lines = np.split(np.asarray(flat, dtype=np.int64), np.cumsum(lengths)[:-1]) if len(lengths) else []
        scored = self.score_many(lines, progress)
        return np.concatenate(scored) if scored else np.zeros(0)

    @torch.no_grad()
    def score_stream(self, ids) -> np.ndarray:
        """log P of each token of a stream, run in chunks of `context` tokens carrying (h, c)."""
        vocab = self._check_fitted().vocab
        module = self._fitted_module()
        module.eval()
        device = self.device
        sequence = torch.as_tensor(np.concatenate([[vocab.bos_id], np.asarray(ids, dtype=np.int64)]))
        inputs, targets = sequence[:-1].to(device), sequence[1:].to(device)  # (N,) each
        state, scored = None, []
        for start in range(0, len(inputs), self.config.context):
            chunk = slice(start, start + self.config.context)
            h, state = module.encode(inputs[None, chunk], state)  # (1, L, n_embd)
            scored.append(self.output_logprobs(h[0], targets[chunk]))
        return np.concatenate(scored) if scored else np.zeros(0)

    @torch.no_grad()
    def next_logprobs(self, context_ids) -> np.ndarray:
        """The distribution after start + context. The state after the previous call's context is
        kept, so extending it by one token (as generation does) costs one step, not the prefix."""
        vocab = self._check_fitted().vocab
        module = self._fitted_module()
        module.eval()
        sequence = (vocab.bos_id, *[int(i) for i in context_ids])
        # The same module object with the same parameter version counters (bumped by every
        # in-place update: an optimiser step, load_state_dict) means the same weights.
        versions = tuple(p._version for p in module.parameters())
        state, done, logits = None, 0, None
        if self._prefix is not None:
            kept_module, kept_versions, kept_ids, kept_state, kept_logits = self._prefix
            same_weights = kept_module is module and kept_versions == versions
            if same_weights and len(kept_ids) <= len(sequence) and sequence[: len(kept_ids)] == kept_ids:
                state, done, logits = kept_state, len(kept_ids), kept_logits
        if done < len(sequence):
            new = torch.tensor([sequence[done:]], device=self.device)  # (1, L)
            out, state = module.run(new, state)  # (1, L, V)
            logits = out[0, -1].float()
        self._prefix = (module, versions, sequence, state, logits)
        return self.log_softmax(logits).double().cpu().numpy()
