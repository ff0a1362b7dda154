"""The transformers: attention against a plain formula and torch's own MultiheadAttention, the
contract's primitives (normalised, causal, token-by-token == batched), the KV cache, training,
checkpoints, and the masked LM's masking, pseudo-log-likelihood, fill-mask and Gibbs sampling."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_checks import TOY

import langmodels
from langmodels.base import LangmodelsWarning
from langmodels.corpora import Split
from langmodels.errors import ConfigError, LangmodelsError
from langmodels.neural.attention import Block, KVCache, SelfAttention, sinusoidal_positions
from langmodels.neural.bert import MaskedLM, MaskedLMConfig, mask_tokens, step_generator
from langmodels.neural.core import torch_threads
from langmodels.neural.data import IGNORE
from langmodels.neural.gpt import GPTLM
from langmodels.tokenizers import Vocabulary, WordTokenizer

TINY = {"n_layer": 2, "n_head": 4, "n_embd": 32, "context": 16, "batch_size": 8, "threads": 1, "eval_every": 1000}
# Two lines that share no prefix: after the first word everything is determined, so a model
# that memorises them gives every later token probability near 1.
OVERFIT = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine"]


def untrained(cls, lines=TOY, **settings):
    """A randomly initialised model with a fitted word tokenizer (no training needed)."""
    torch.manual_seed(settings.pop("init_seed", 0))
    model = cls(**{**TINY, **settings})
    model.tokenizer = WordTokenizer().fit(lines)
    model.module_ = model.build_module(len(model.tokenizer.vocab)).eval()
    return model


def encode(model, line):
    return model.tokenizer.encode(line)


@pytest.fixture(scope="module")
def gpt():
    model = GPTLM(**{**TINY, "dropout": 0.0, "lr": 1e-2, "warmup_steps": 10, "eval_every": 20})
    return model.fit(OVERFIT, max_steps=120, progress=False)


@pytest.fixture(scope="module")
def bert():
    model = MaskedLM(**{**TINY, "dropout": 0.0, "lr": 3e-3, "warmup_steps": 10})
    return model.fit(OVERFIT + TOY, max_steps=400, progress=False)


# ---- attention ------------------------------------------------------------------------------


def reference_attention(attention: SelfAttention, x: torch.Tensor, allowed: torch.Tensor):
    """softmax(Q K^T / sqrt(d)) V per head, written out; allowed (B, T, S) bool."""
    B, T, C = x.shape
    H = attention.n_head
    D = C // H
    q, k, v = (x @ attention.qkv.weight.T + attention.qkv.bias).split(C, dim=-1)

    def heads(t):
        return t.reshape(B, T, H, D).permute(0, 2, 1, 3)  # (B, H, T, D)

    q, k, v = heads(q), heads(k), heads(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # (B, H, T, T)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    y = (weights @ v).permute(0, 2, 1, 3).reshape(B, T, C)
    return y @ attention.proj.weight.T + attention.proj.bias, weights


def random_attention(dtype=torch.float64):
    torch.manual_seed(1)
    attention = SelfAttention(n_embd=16, n_head=4, dropout=0.3).to(dtype).eval()
    for parameter in attention.parameters():  # non-zero biases too
        torch.nn.init.normal_(parameter, std=0.5)
    x = torch.randn(3, 7, 16, dtype=dtype)
    lengths = torch.tensor([7, 4, 1])
    real = torch.arange(7)[None, :] < lengths[:, None]  # (B, T) padding mask: True for real tokens
    return attention, x, real


@pytest.mark.parametrize("causal", [True, False])
def test_attention_equals_the_formula_and_sdpa_equals_the_explicit_path(causal):
    attention, x, real = random_attention()
    T = x.size(1)
    if causal:
        allowed = torch.ones(T, T, dtype=torch.bool).tril().expand(3, T, T)
        options = {"causal": True}
    else:
        allowed = real[:, None, :].expand(3, T, T)
        options = {"key_padding_mask": real}
    expected, expected_weights = reference_attention(attention, x, allowed)
    fused, none = attention(x, **options)
    explicit, weights = attention(x, **options, need_weights=True)
    assert none is None
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(explicit, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, T, dtype=x.dtype))


@pytest.mark.parametrize("causal", [True, False])
def test_attention_agrees_with_torch_multihead_attention(causal):
    """The trusted peer: torch.nn.MultiheadAttention with the same weights."""
    attention, x, real = random_attention(torch.float32)
    T = x.size(1)
    peer = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        peer.in_proj_weight.copy_(attention.qkv.weight)
        peer.in_proj_bias.copy_(attention.qkv.bias)
        peer.out_proj.weight.copy_(attention.proj.weight)
        peer.out_proj.bias.copy_(attention.proj.bias)
    if causal:
        ours, weights = attention(x, causal=True, need_weights=True)
        blocked = ~torch.ones(T, T, dtype=torch.bool).tril()  # peer's convention: True = may not attend
        theirs, their_weights = peer(x, x, x, attn_mask=blocked, need_weights=True, average_attn_weights=False)
    else:
        ours, weights = attention(x, key_padding_mask=real, need_weights=True)
        theirs, their_weights = peer(x, x, x, key_padding_mask=~real, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights, their_weights, rtol=1e-5, atol=1e-6)


def test_kv_cache_in_a_block_equals_the_full_pass():
    torch.manual_seed(2)
    block = Block(16, 4, dropout=0.2).double().eval()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    full, _ = block(x, causal=True)
    # prompt of 4 positions, then one at a time, then two at once (a causal mask with an offset)
    cache = KVCache(capacity=9)
    out, _ = block(x[:, :4], causal=True, cache=cache)
    pieces = [out]
    for t in range(4, 7):
        out, _ = block(x[:, t : t + 1], causal=True, cache=cache)
        pieces.append(out)
    out, _ = block(x[:, 7:], causal=True, cache=cache)
    pieces.append(out)
    assert cache.length == 9 and cache.rows.shape == (2, 9, 3 * 16)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="do not fit"):
        block(x[:, :1], causal=True, cache=cache)


def test_sinusoidal_positions_follow_vaswani_et_al():
    table = sinusoidal_positions(50, 12)
    for pos in (0, 1, 17, 49):
        for i in range(6):
            angle = pos / 10000 ** (2 * i / 12)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_positions(5, 7).shape == (5, 7)  # an odd width drops the last cosine


# ---- GPT: the contract's primitives ------------------------------------------------------------


def test_windows_and_lines_scored_on_worker_threads_equal_one_thread(gpt):
    # A stream longer than the context is scored in overlapping windows, lines in batches; on two
    # torch threads the batches go to two one-thread workers, and every score must come back in place.
    ids = encode(gpt, " ".join(OVERFIT * 20))
    lines = [encode(gpt, line) for line in (OVERFIT + TOY) * 3]
    windows = len(ids) // (gpt.config.context // 2)  # they overlap by half
    assert windows > 2 * gpt.config.batch_size and len(lines) > 2 * gpt.config.batch_size
    alone = gpt.score_stream(ids), gpt.score_ids(lines)
    with torch_threads(2):
        shared = gpt.score_stream(ids), gpt.score_ids(lines)
    np.testing.assert_allclose(shared[0], alone[0], atol=1e-5)
    for ours, reference in zip(shared[1], alone[1], strict=True):
        np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize(
    ("positions", "softmax"), [("learned", "full"), ("sinusoidal", "full"), ("learned", "adaptive")]
)
def test_gpt_token_by_token_equals_batched_scores_and_distributions_sum_to_one(positions, softmax):
    model = untrained(GPTLM, positions=positions, dropout=0.1, softmax=softmax)
    assert model.module_.output.is_adaptive == (softmax == "adaptive")
    lines = [encode(model, line) for line in TOY] + [[]]
    batched = model.score_ids(lines)  # padded to the longest line in one batch
    for ids, scores in zip(lines, batched):
        assert scores.shape == (len(ids) + 1,)
        for k, target in enumerate([*ids, model.tokenizer.vocab.eos_id]):
            logprobs = model.next_logprobs(ids[:k])
            assert logprobs.shape == (len(model.tokenizer.vocab),)
            assert abs(np.exp(logprobs).sum() - 1) < 1e-5
            assert abs(logprobs[target] - scores[k]) < 1e-5


def test_softmax_auto_is_adaptive_for_a_word_vocabulary_only():
    from langmodels.neural.output import AUTO_ADAPTIVE_VOCAB, OutputLayer

    assert OutputLayer(AUTO_ADAPTIVE_VOCAB, 32, softmax="auto").is_adaptive
    assert not OutputLayer(AUTO_ADAPTIVE_VOCAB - 1, 32, softmax="auto").is_adaptive
    assert GPTLM.Config().softmax == "auto" and langmodels.LSTMLM.Config().softmax == "auto"


def test_an_adaptive_gpt_starts_at_the_unigram_distribution():
    """Its head has a bias, set before the first step to the training tokens' add-one log
    frequencies and each tail cluster's log mass: what the output layer gives a zero vector (the
    part of the first distributions the random weights do not move) is that unigram, uniform
    inside a tail cluster (whose layers have no bias), with <s>, <pad> and <mask> excluded."""
    model = GPTLM(**{**TINY, "softmax": "adaptive", "lr": 1e-12}).fit(TOY, max_steps=1, progress=False)
    vocab = model.tokenizer.vocab
    targets = np.concatenate([[*encode(model, line), vocab.eos_id] for line in TOY])
    counts = np.bincount(targets, minlength=len(vocab)) + 1.0
    counts[[vocab.bos_id, vocab.pad_id, vocab.mask_id]] = 0
    bounds = [*model.module_.output.cutoffs, len(vocab)]
    for low, high in itertools.pairwise(bounds):  # a tail cluster: its mass shared out evenly
        counts[low:high] = counts[low:high].mean()
    with torch.no_grad():
        start = model.log_softmax(model.module_.output(torch.zeros(1, TINY["n_embd"])))[0]
    np.testing.assert_allclose(np.exp(start.double().numpy()), counts / counts.sum(), atol=1e-6)


def test_a_gpt_saved_before_its_adaptive_head_had_a_bias_loads_as_the_same_model():
    model = untrained(GPTLM, softmax="adaptive")
    with torch.no_grad():
        model.module_.output.adaptive.head.bias.zero_()
    state = {k: v for k, v in model.module_.state_dict().items() if k != "output.adaptive.head.bias"}
    rebuilt = untrained(GPTLM, softmax="adaptive", init_seed=1)
    rebuilt.module_.load_state_dict(state)
    ids = encode(model, TOY[0])
    np.testing.assert_array_equal(rebuilt.next_logprobs(ids), model.next_logprobs(ids))


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_gpt_is_causal(softmax):
    model = untrained(GPTLM, softmax=softmax)
    ids = encode(model, "the cat sat on the mat")
    before = model.score_ids([ids])[0]
    for k in range(len(ids)):
        changed = ids[:k] + [encode(model, "bird")[0]] * (len(ids) - k)
        after = model.score_ids([changed, ids[:2]])[0]  # padded alongside a shorter line
        np.testing.assert_array_equal(after[:k], before[:k])
    idx = torch.tensor([ids])
    logits = model.module_(idx)
    idx[0, 4:] = 7
    torch.testing.assert_close(model.module_(idx)[:, :4], logits[:, :4], rtol=0, atol=0)


def test_gpt_state_dict_has_one_embedding_matrix():
    model = untrained(GPTLM, positions="sinusoidal")
    names = list(model.module_.state_dict())
    assert "token_embedding.weight" in names
    assert not any("table" in name or "lm_head" in name for name in names)
    shapes = [tuple(t.shape) for t in model.module_.state_dict().values()]
    assert shapes.count((len(model.tokenizer.vocab), 32)) == 1


def test_gpt_prompt_longer_than_the_context_is_truncated_with_a_note():
    model = untrained(GPTLM, context=6)
    ids = encode(model, "the cat sat on the mat the dog sat on the log")
    with pytest.warns(LangmodelsWarning, match="sees the last 6"):
        long = model.next_logprobs(ids)
    # what it sees is the last 6 tokens (no <s>): the same as the module on that window
    window = torch.tensor([ids[-6:]])
    expected = model.log_softmax(model.module_(window)[0, -1]).double().detach().numpy()
    np.testing.assert_allclose(long, expected, atol=1e-6)
    with pytest.warns(LangmodelsWarning, match="sees the last 6"):
        model.generate("the cat sat on the mat the dog", max_tokens=2, seed=0)


# ---- GPT: the KV cache --------------------------------------------------------------------------


@pytest.mark.parametrize("one_position", ["forward_cached", "step"])
@pytest.mark.parametrize("softmax", ["full", "adaptive"])
@pytest.mark.parametrize("bias", [True, False])
def test_kv_cache_logits_equal_full_recompute(softmax, bias, one_position):
    """A 3-token prompt through forward_cached, then one token at a time through forward_cached
    or through the generation step (Block.step on the gathered weights)."""
    model = untrained(GPTLM, dropout=0.1, positions="sinusoidal", softmax=softmax, bias=bias)
    module = model.module_.eval()
    idx = torch.tensor([[1, *encode(model, "the dog ate the cat food")]])  # (1, T)
    full = module(idx)  # (1, T, V)
    caches, weights = module.new_caches(), module.step_weights()
    steps = [module.forward_cached(idx[:, :3], caches)]
    for t in range(3, idx.size(1)):
        if one_position == "step":
            steps.append(module.step(int(idx[0, t]), caches, weights)[None, None])
        else:
            steps.append(module.forward_cached(idx[:, t : t + 1], caches))
    assert caches[0].length == idx.size(1)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_a_block_step_equals_its_cached_forward():
    torch.manual_seed(3)
    block = Block(16, 4, dropout=0.2).double().eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)  # two rows, each its own sequence
    forward_cache, step_cache = KVCache(capacity=7), KVCache(capacity=7)
    block(x[:, :3], causal=True, cache=forward_cache)
    block(x[:, :3], causal=True, cache=step_cache)
    weights = block.step_weights()
    for t in range(3, 7):
        expected, _ = block(x[:, t : t + 1], causal=True, cache=forward_cache)  # (2, 1, 16)
        torch.testing.assert_close(Block.step(x[:, t], step_cache, weights), expected[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(step_cache.rows, forward_cache.rows, rtol=0, atol=0)


@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 5}, {"top_p": 0.9}])
@pytest.mark.parametrize("prompt", ["the cat", "the cat sat on the mat the dog sat"])
def test_cached_and_uncached_generation_give_the_same_text(options, prompt):
    model = untrained(GPTLM, context=8)  # random weights: varied tokens; the long prompt crosses the context
    for seed in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangmodelsWarning)  # the context note, tested above
            cached = model.generate(prompt, max_tokens=20, seed=seed, **options)
            plain = model.generate(prompt, max_tokens=20, seed=seed, use_cache=False, **options)
        assert cached == plain and cached.startswith(prompt)


# ---- GPT: training, checkpoints, sampling -----------------------------------------------------


def test_a_tiny_gpt_memorises_a_tiny_corpus(gpt):
    # The floor is 2 ln 2 / 17 = 0.08 nats per target: only each line's first word is uncertain.
    assert gpt.curve_[-1]["train_loss"] < 0.15
    for line, scores in zip(OVERFIT, gpt.score_ids([encode(gpt, line) for line in OVERFIT])):
        assert scores[0] == pytest.approx(math.log(0.5), abs=0.15)  # the first word: one line in two
        assert np.all(scores[1:] > math.log(0.9)), line  # the rest is determined


def test_save_and_load_give_identical_scores_and_samples(gpt, tmp_path):
    gpt.save(tmp_path / "gpt")
    loaded = langmodels.load(tmp_path / "gpt")
    assert type(loaded) is GPTLM and loaded.get_params() == gpt.get_params()
    ids = [encode(gpt, line) for line in OVERFIT + TOY]
    for a, b in zip(gpt.score_ids(ids), loaded.score_ids(ids)):
        np.testing.assert_array_equal(a, b)
    assert loaded.generate(seed=3) == gpt.generate(seed=3)


def test_same_seed_same_samples(gpt):
    samples = [gpt.generate(max_tokens=12, seed=seed, temperature=2.0) for seed in range(5)]
    assert samples == [gpt.generate(max_tokens=12, seed=seed, temperature=2.0) for seed in range(5)]
    assert len(set(samples)) > 1
    assert gpt.generate("the quick", seed=0) == "the quick brown fox jumps over the lazy dog"


def test_attention_maps(gpt, bert):
    maps = gpt.attention("the quick brown fox")
    assert maps.shape == (2, 4, 5, 5) and maps.dtype == np.float32  # <s> + 4 tokens
    np.testing.assert_allclose(maps.sum(-1), 1, atol=1e-5)
    assert np.all(np.triu(maps, k=1) == 0)  # nothing attends to the future
    maps = bert.attention("the quick brown fox")
    assert maps.shape == (2, 4, 6, 6)  # <s> + 4 tokens + </s>
    np.testing.assert_allclose(maps.sum(-1), 1, atol=1e-5)
    assert np.any(np.triu(maps, k=1) > 0)  # both directions


def test_embeddings_of_both_transformers(gpt, bert):
    for model in (gpt, bert):
        neighbours = model.embeddings().nearest("fox", k=3)
        assert len(neighbours) == 3 and all(token != "fox" for token, _ in neighbours)


# ---- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [GPTLM, MaskedLM])
@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ({"n_embd": 30, "n_head": 4}, "n_embd"),
        ({"n_head": 0}, "n_head"),
        ({"n_layer": 0}, "n_layer"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": 1.0}, "dropout"),
        ({"n_layer": "2"}, "n_layer"),
        ({"bias": "yes"}, "bias"),
        ({"positions": "rotary"}, "positions"),
    ],
)
def test_bad_configs_name_the_field(cls, setting, field):
    model = cls(**{**TINY, **setting})
    with pytest.raises(ConfigError, match=field):
        model.fit(TOY, max_steps=1, progress=False)
    with pytest.raises(ConfigError, match=field):
        model.build_module(10)


def test_bad_masked_lm_settings_and_unknown_settings():
    with pytest.raises(ConfigError, match="mask_prob"):
        MaskedLMConfig(mask_prob=0.0).check()
    with pytest.raises(ConfigError, match="mask_token_prob"):
        MaskedLMConfig(mask_token_prob=0.95, random_token_prob=0.1).check()
    with pytest.raises(ConfigError, match="n_heads"):
        GPTLM(n_heads=4)


# ---- the masked LM --------------------------------------------------------------------------------


def test_masking_statistics_follow_bert():
    generator = step_generator(0, 0)
    V, B, T = 1000, 400, 120
    config = MaskedLMConfig()
    rows = torch.randint(Vocabulary.mask_id + 1, V, (B, T), generator=generator)
    lengths = torch.randint(1, T - 1, (B,), generator=generator)
    rows[:, 0] = Vocabulary.bos_id
    rows[torch.arange(B), lengths + 1] = Vocabulary.eos_id
    rows[torch.arange(T)[None, :] > (lengths + 1)[:, None]] = Vocabulary.pad_id
    inputs, targets = mask_tokens(rows, step_generator(0, 1), V, config)

    chosen = targets != IGNORE
    maskable = (rows != Vocabulary.bos_id) & (rows != Vocabulary.pad_id)
    assert not (chosen & ~maskable).any()  # <s> and <pad> never chosen
    assert chosen.sum(1).min() >= 1  # at least one per row
    expected = torch.clamp(torch.round(maskable.sum(1) * 0.15), min=1)
    assert torch.equal(chosen.sum(1), expected.long())  # round(15 %) of each row, as BERT
    assert torch.equal(targets[chosen], rows[chosen])  # targets are the original tokens
    assert torch.equal(inputs[~chosen], rows[~chosen])  # nothing else changes

    n = chosen.sum().item()
    masked = (inputs[chosen] == Vocabulary.mask_id).float().mean().item()
    kept = (inputs[chosen] == rows[chosen]).float().mean().item()
    assert n > 3000
    assert masked == pytest.approx(0.8, abs=0.03)
    assert kept == pytest.approx(0.1 + 0.1 / V, abs=0.02)  # unchanged, or a random draw of itself
    randomised = inputs[chosen & (inputs != Vocabulary.mask_id) & (inputs != rows)]
    assert randomised.numel() / n == pytest.approx(0.1, abs=0.02)
    assert randomised.min() >= len(Vocabulary.SPECIALS)  # random tokens are never specials

    again, _ = mask_tokens(rows, step_generator(0, 1), V, config)
    other, _ = mask_tokens(rows, step_generator(0, 2), V, config)
    assert torch.equal(inputs, again) and not torch.equal(inputs, other)


def test_masked_training_batches_repeat_and_loss_reads_only_chosen_positions():
    model = untrained(MaskedLM)
    data = model.training_data(TOY, "lines")
    first, again = model.training_batch(data, 5), model.training_batch(data, 5)
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)
    assert torch.all(first.inputs[:, 0] == Vocabulary.bos_id)
    assert first.inputs.size(1) <= model.config.context
    loss = model.loss(first)
    logits = model.module_(first.inputs)  # (B, T, V): the full head, the oracle
    expected = F.cross_entropy(logits.flatten(0, 1), first.targets.flatten(), ignore_index=IGNORE)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_masked_lm_training_repeats_with_its_seed():
    def curve(seed):
        model = MaskedLM(**{**TINY, "eval_every": 4, "seed": seed}).fit(TOY, max_steps=12, progress=False)
        return [(point["step"], point["train_loss"]) for point in model.curve_]

    first = curve(0)
    assert first == curve(0) and first != curve(1)


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_masked_lm_validation_loss_is_a_deterministic_full_pass(mode):
    model = untrained(MaskedLM, dropout=0.1)
    loss = model.validation_loss(TOY * 3, mode)
    assert loss == model.validation_loss(TOY * 3, mode)
    assert abs(loss - math.log(len(model.tokenizer.vocab))) < 1.0  # an untrained model: about uniform


def one_at_a_time_pll(model, ids):
    """Mask each position of <s> ids </s> alone, run the encoder on that one copy, read log P."""
    vocab = model.tokenizer.vocab
    sequence = [vocab.bos_id, *ids, vocab.eos_id]
    window = model.config.context
    terms = []
    for p in range(1, len(sequence)):
        start = 0 if len(sequence) <= window else min(max(p - window // 2, 0), len(sequence) - window)
        copy = sequence[start : start + window]
        copy[p - start] = vocab.mask_id
        with torch.no_grad():
            logits = model.module_(torch.tensor([copy]))[0, p - start]
        terms.append(model.log_softmax(logits).double()[sequence[p]].item())
    return np.array(terms)


@pytest.mark.parametrize("pll_batch_tokens", [32768, 40])
def test_pseudo_log_likelihood_equals_masked_log_probs_one_at_a_time(pll_batch_tokens):
    model = untrained(MaskedLM, dropout=0.1, pll_batch_tokens=pll_batch_tokens)
    lines = [encode(model, line) for line in TOY] + [[], encode(model, " ".join(TOY[:3]))]  # 17 > 16: windows
    assert len(lines[-1]) + 2 > model.config.context
    for ids, terms in zip(lines, model.score_ids(lines)):
        np.testing.assert_allclose(terms, one_at_a_time_pll(model, ids), rtol=0, atol=1e-5)


def test_masked_lm_distributions_and_its_pseudo_perplexity(bert):
    assert not bert.is_causal
    for context in ([], encode(bert, "the quick brown")):
        assert abs(np.exp(bert.next_logprobs(context)).sum() - 1) < 1e-5
    with pytest.warns(LangmodelsWarning, match="sees the last"):
        logprobs = bert.next_logprobs(encode(bert, " ".join(TOY)))
    assert abs(np.exp(logprobs).sum() - 1) < 1e-5
    assert bert.top_next("the quick brown", k=1)[0][0] != "<mask>"
    evaluation = bert.evaluate(TOY)
    assert evaluation.pseudo and math.isfinite(evaluation.perplexity)
    assert evaluation.n_tokens == sum(len(line.split()) + 1 for line in TOY)
    stream = bert.evaluate(TOY * 3, mode="stream")  # one sequence longer than the context: windows
    assert stream.pseudo and math.isfinite(stream.nll)


def test_fill_mask(bert):
    answers = bert.fill_mask("the quick brown [MASK] jumps over the lazy dog", k=5)
    assert len(answers) == 1 and len(answers[0]) == 5
    probs = [p for _, p in answers[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert "fox" in [token for token, _ in answers[0][:3]]
    assert bert.fill_mask("the [MASK] sat on the mat", k=2)[0][0][0] in ("cat", "dog")
    two = bert.fill_mask("a stitch in <mask> saves [MASK]", k=3)
    assert [len(a) for a in two] == [3, 3]
    assert all(token not in ("<s>", "<pad>", "<mask>") for a in two for token, _ in a)
    with pytest.raises(LangmodelsError, match="MASK"):
        bert.fill_mask("no mask here")
    with pytest.raises(LangmodelsError, match="k must be"):
        bert.fill_mask("the [MASK]", k=0)


def test_gibbs_generation_is_seeded_and_bounded(bert):
    first = bert.generate("the quick", max_tokens=8, seed=4)
    assert first == bert.generate("the quick", max_tokens=8, seed=4)
    assert first.startswith("the quick ") and len(first.split()) <= 2 + 8
    assert bert.generate("the", max_tokens=0) == "the"
    with pytest.warns(LangmodelsWarning, match="generating 14"):
        assert len(bert.generate(max_tokens=40, seed=0).split()) <= 14


def test_masked_lm_save_and_load(bert, tmp_path):
    bert.save(tmp_path / "bert")
    loaded = langmodels.load(tmp_path / "bert")
    assert type(loaded) is MaskedLM
    ids = [encode(bert, line) for line in TOY]
    for a, b in zip(bert.score_ids(ids), loaded.score_ids(ids)):
        np.testing.assert_array_equal(a, b)
    assert loaded.fill_mask("the [MASK] sat") == bert.fill_mask("the [MASK] sat")


@pytest.mark.parametrize("cls", [GPTLM, MaskedLM])
@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_character_and_bpe_tokenizers(cls, tokenizer):
    settings = dict(TINY, tokenizer=tokenizer, bpe_vocab_size=300, context=24)
    model = cls(**settings).fit(TOY * 4, max_steps=3, progress=False)
    assert model.tokenizer.level == ("char" if tokenizer == "char" else "subword")
    evaluation = model.evaluate(TOY[:2])
    assert math.isfinite(evaluation.nll) and evaluation.pseudo is (cls is MaskedLM)
    assert isinstance(model.generate("the", max_tokens=5, seed=0), str)


def test_a_character_stream_has_no_end_of_line_token():
    """A stream of characters (newlines included) never contains </s>: the model gives it
    probability zero, so a sample runs to max_tokens, and every distribution still sums to 1."""
    stream = Split(TOY * 4, name="train", corpus="toy", level="char", mode="stream")
    model = GPTLM(**{**TINY, "tokenizer": "char"}).fit(stream, max_steps=3, progress=False)
    vocab = model.tokenizer.vocab
    for context in ("", "the c", "a bird\n"):
        logprobs = model.next_logprobs(model.encode_context(context))
        assert logprobs[vocab.eos_id] == -np.inf
        assert np.exp(logprobs).sum() == pytest.approx(1.0, abs=1e-6)
    for seed in range(3):
        with pytest.warns(LangmodelsWarning, match="sees the last 16"):  # 40 tokens outgrow the context
            sample = model.generate("", max_tokens=40, seed=seed)
        assert len(sample) - 4 * sample.count("<unk>") == 40  # 40 characters, an <unk> printed as 5
    lines = GPTLM(**{**TINY, "tokenizer": "char"}).fit(TOY * 4, max_steps=3, progress=False)
    assert lines.next_logprobs([])[lines.tokenizer.vocab.eos_id] > -np.inf  # lines do end
