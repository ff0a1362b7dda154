"""Masked-LM scoring: the batched pseudo-log-likelihood equals masking one position at a time."""

import numpy as np
import pytest
import torch

from langmodels.neural.bert import MaskedLM
from langmodels.neural.core import torch_threads
from langmodels.tokenizers import Vocabulary

TOY = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog ate the cat food",
       "a bird sang in the tree", "the bird saw the cat"]


def one_masked_copy_at_a_time(model, ids) -> list[float]:
    """The straightforward PLL: per position, one copy with that position masked (in the window of
    `context` tokens centred on it, for a long line) through the whole encoder, every position."""
    sequence = [Vocabulary.bos_id, *ids, Vocabulary.eos_id]
    window = model.config.context
    terms = []
    for position in range(1, len(sequence)):
        start = min(max(position - window // 2, 0), max(len(sequence) - window, 0))
        masked = sequence[start : start + window]
        masked[position - start] = Vocabulary.mask_id
        with torch.no_grad():
            logits = model.module_(torch.tensor([masked]))[0, position - start]
        terms.append(float(model.log_softmax(logits)[sequence[position]]))
    return terms


@pytest.mark.parametrize("n_layer, softmax", [(1, "full"), (2, "adaptive"), (3, "full")])
def test_batched_pll_equals_one_masked_copy_at_a_time(n_layer, softmax):
    """Several lines' masked copies share each forward pass (their first block's projections
    computed once per line, the last block run only at the masked positions, the head only
    there), passes shared out among threads; each term equals the copy run alone."""
    model = MaskedLM(n_layer=n_layer, n_head=2, n_embd=16, context=8, batch_size=4, threads=1, dropout=0.0,
                     softmax=softmax, pll_batch_tokens=40).fit(TOY, max_steps=20, progress=False)
    texts = [*TOY, "a", "the cat sat on the log and the dog sat", "the"]  # 11 + 2 > 8: windows
    lines = [model.tokenizer.encode(line) for line in texts]
    with torch_threads(2):  # two workers share the passes out
        batched = model.score_ids(lines)
    for ids, scores in zip(lines, batched):
        np.testing.assert_allclose(scores, one_masked_copy_at_a_time(model, ids), atol=1e-5)
    flat = np.concatenate(lines)
    lengths = np.array([len(ids) for ids in lines])
    np.testing.assert_array_equal(model.score_lines(flat, lengths, progress=False), np.concatenate(batched))


def test_the_last_block_at_chosen_positions_equals_the_full_pass():
    model = MaskedLM(n_layer=2, n_head=2, n_embd=16, context=16, threads=1).fit(TOY, max_steps=2, progress=False)
    idx = torch.randint(5, len(model.tokenizer.vocab), (6, 9))
    idx[4, 7:] = Vocabulary.pad_id  # a padded row too
    at = torch.tensor([0, 3, 8, 1, 6, 2])
    with torch.no_grad():
        full, _ = model.module_.hidden(idx)
        chosen, _ = model.module_.hidden(idx, at=at)
    torch.testing.assert_close(chosen[:, 0], full[torch.arange(6), at], atol=1e-5, rtol=1e-5)
