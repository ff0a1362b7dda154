"""Masked-LM scoring: the batched pseudo-log-likelihood equals masking one position at a time."""

import numpy as np
import torch

from langmodels.neural.bert import MaskedLM
from langmodels.tokenizers import Vocabulary

TOY = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog ate the cat food",
       "a bird sang in the tree", "the bird saw the cat"]


def test_batched_pll_equals_one_masked_copy_at_a_time():
    """Several lines' masked copies share each forward pass (and its last block runs only at the
    masked positions); each term equals the line run alone with that one position masked."""
    model = MaskedLM(n_layer=2, n_head=2, n_embd=16, context=16, batch_size=4, threads=1, dropout=0.0,
                     pll_batch_tokens=100).fit(TOY, max_steps=20, progress=False)
    lines = [model.tokenizer.encode(line) for line in [*TOY, "a", "the cat sat on the log and the dog sat"]]
    batched = model.score_ids(lines)
    module = model.module_
    for ids, scores in zip(lines, batched):
        sequence = [Vocabulary.bos_id, *ids, Vocabulary.eos_id]
        alone = []
        for position in range(1, len(sequence)):
            masked = list(sequence)
            masked[position] = Vocabulary.mask_id
            with torch.no_grad():
                logits = module(torch.tensor([masked]))[0, position]  # the whole encoder, every position
            alone.append(float(model.log_softmax(logits)[sequence[position]]))
        np.testing.assert_allclose(scores, alone, atol=1e-5)


def test_the_last_block_at_chosen_positions_equals_the_full_pass():
    model = MaskedLM(n_layer=2, n_head=2, n_embd=16, context=16, threads=1).fit(TOY, max_steps=2, progress=False)
    idx = torch.randint(5, len(model.tokenizer.vocab), (6, 9))
    idx[4, 7:] = Vocabulary.pad_id  # a padded row too
    at = torch.tensor([0, 3, 8, 1, 6, 2])
    with torch.no_grad():
        full, _ = model.module_.hidden(idx)
        chosen, _ = model.module_.hidden(idx, at=at)
    torch.testing.assert_close(chosen[:, 0], full[torch.arange(6), at], atol=1e-5, rtol=1e-5)
