"""MLPLM (Bengio et al. 2003) and LSTMLM against the contract, causality, their own reference
computations (one pass vs chunks, one token at a time vs batched) and bad input. Tiny models."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import langmodels
from langmodels.corpora import Split
from langmodels.errors import CheckpointError, ConfigError
from langmodels.neural.core import NeuralLM, torch_threads
from langmodels.neural.data import IGNORE, StreamBatches
from langmodels.neural.lstm import LSTMLM, SCORE_LINES
from langmodels.neural.mlp import MLPLM
from langmodels.neural.output import SOFTMAXES, OutputLayer
from langmodels.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

TOY = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat saw the dog",
    "a dog sat",
]
# Every token (and the start of line) fixes the next one: learnt, the corpus has probability 1.
DETERMINISTIC = ["a b c d e f g h i j k l"] * 3

TINY = {
    MLPLM: {"order": 3, "n_embd": 6, "hidden": 10, "dropout": 0.0, "context": 8},
    LSTMLM: {"n_embd": 6, "hidden": 10, "n_layer": 2, "dropout": 0.0, "context": 8},  # hidden != n_embd: projected
}
# One thread: tiny models ran many times slower on two threads while another process held a core.
FAST = {"batch_size": 4, "lr": 1e-2, "warmup_steps": 5, "eval_every": 1000, "threads": 1}
MODELS = list(TINY)


def untrained(cls, lines=TOY, tokenizer=None, seed=0, **settings):
    """A randomly initialised model with a fitted tokenizer, built without the trainer."""
    torch.manual_seed(seed)
    model = cls(**{**TINY[cls], **settings})
    model.tokenizer = (tokenizer or WordTokenizer()).fit(lines)
    model.module_ = model.build_module(len(model.tokenizer.vocab)).eval()
    return model


def trained(cls, lines=TOY, steps=60, **settings):
    return cls(**{**TINY[cls], **FAST, **settings}).fit(lines, max_steps=steps, progress=False)


def ids_of(model, text):
    return model.tokenizer.encode(text)


def train_losses(model):
    return [point["train_loss"] for point in model.curve_]


# ---- the contract ------------------------------------------------------------------------------


@pytest.mark.parametrize("softmax", SOFTMAXES)
@pytest.mark.parametrize("cls", MODELS)
def test_every_next_token_distribution_sums_to_one(cls, softmax):
    model = untrained(cls, softmax=softmax)
    vocab = model.tokenizer.vocab
    for context in ([], ids_of(model, "the"), ids_of(model, "the cat sat on the mat the dog"), [vocab.eos_id]):
        logprobs = model.next_logprobs(context)
        assert logprobs.shape == (len(vocab),)
        assert abs(np.logaddexp.reduce(logprobs)) < 1e-5


@pytest.mark.parametrize("softmax", SOFTMAXES)
@pytest.mark.parametrize("cls", MODELS)
def test_token_by_token_equals_batched_score_ids_with_padding(cls, softmax):
    model = untrained(cls, softmax=softmax)
    # Different lengths in one batch (padding), an empty line, one longer than `context`.
    lines = [ids_of(model, text) for text in ["a dog sat", "the cat sat on the mat the dog sat on the log", "", "cat"]]
    scored = model.score_ids(lines)
    eos = model.tokenizer.vocab.eos_id
    for ids, scores in zip(lines, scored):
        assert len(scores) == len(ids) + 1
        expected = [model.next_logprobs(ids[:k])[target] for k, target in enumerate([*ids, eos])]
        np.testing.assert_allclose(scores, expected, atol=1e-5)
        alone = model.score_ids([ids])[0]  # padding must not leak into a line's scores
        np.testing.assert_allclose(scores, alone, atol=1e-5)


@pytest.mark.parametrize("softmax", SOFTMAXES)
@pytest.mark.parametrize("cls", MODELS)
def test_a_later_token_never_changes_an_earlier_score(cls, softmax):
    model = untrained(cls, softmax=softmax)
    generator = torch.Generator().manual_seed(1)
    V = len(model.tokenizer.vocab)
    idx = torch.randint(5, V, (3, 12), generator=generator)  # (B, T)
    with torch.no_grad():
        before = model.module_(idx)  # (B, T, V)
        for k in (0, 4, 11):
            changed = idx.clone()
            changed[:, k] = (changed[:, k] - 5 + 1) % (V - 5) + 5
            after = model.module_(changed)
            torch.testing.assert_close(after[:, :k], before[:, :k], rtol=0, atol=1e-6)
            assert not torch.allclose(after[:, k], before[:, k])  # the change is seen where it should be
    ids = ids_of(model, "the cat sat on the mat")
    original = model.score_ids([ids])[0]
    for k in range(len(ids)):
        edited = list(ids)
        edited[k] = model.tokenizer.vocab["dog"]
        np.testing.assert_allclose(model.score_ids([edited])[0][:k], original[:k], atol=1e-6)


def test_mlp_position_depends_only_on_its_window():
    order = 4
    model = untrained(MLPLM, order=order)
    V = len(model.tokenizer.vocab)
    idx = torch.randint(5, V, (2, 10), generator=torch.Generator().manual_seed(2))  # (B, T)
    with torch.no_grad():
        before = model.module_(idx)  # (B, T, V)
        for k in range(10):
            changed = idx.clone()
            changed[:, k] = (changed[:, k] - 5 + 1) % (V - 5) + 5
            after = model.module_(changed)
            inside = slice(k, min(k + order - 1, 10))  # the positions whose window holds token k
            outside = [t for t in range(10) if not inside.start <= t < inside.stop]
            torch.testing.assert_close(after[:, outside], before[:, outside], rtol=0, atol=0)
            assert not torch.allclose(after[:, inside], before[:, inside])
    # The distribution after a long context is the one after its last order-1 tokens.
    ids = ids_of(model, "the cat sat on the mat")
    np.testing.assert_allclose(model.next_logprobs(ids), model.next_logprobs([9, *ids]), atol=0)


def test_mlp_window_scoring_equals_the_padded_forward_pass():
    model = untrained(MLPLM, order=4)
    lines = [ids_of(model, text) for text in ["a dog sat", "the cat sat on the mat the dog sat on the log", "", "cat"]]
    for ours, core in zip(model.score_ids(lines), NeuralLM.score_ids(model, lines)):  # padded (B, T) batches
        np.testing.assert_allclose(ours, core, atol=1e-5)
    flat, lengths = model.tokenizer.encode_lines(TOY)
    np.testing.assert_allclose(model.score_lines(flat, lengths), np.concatenate(model.score_ids(
        [ids_of(model, line) for line in TOY])), atol=0)
    stream = model._stream_ids(TOY * 2)
    # The core scores a stream in half-overlapping windows of `context` (8 >= 2 * 3 here: exact too).
    np.testing.assert_allclose(model.score_stream(stream), NeuralLM.score_stream(model, stream), atol=1e-5)


def test_mlp_windows_start_with_padding_then_start_of_line():
    model = untrained(MLPLM, order=4)
    vocab = model.tokenizer.vocab
    module = model.module_
    ids = torch.tensor([[vocab.bos_id, vocab["the"], vocab["cat"]]])
    explicit = torch.tensor([[vocab.pad_id, vocab.pad_id, vocab.bos_id, vocab["the"], vocab["cat"]]])
    with torch.no_grad():
        torch.testing.assert_close(module(ids)[0], module(explicit)[0, 2:], rtol=0, atol=1e-6)


def test_lstm_sorted_batches_equal_the_padded_forward_pass():
    model = untrained(LSTMLM)
    lines = [ids_of(model, text) for text in [*TOY, "", "the cat sat on the mat the dog sat on the log", "cat"]]
    for ours, core in zip(model.score_ids(lines), NeuralLM.score_ids(model, lines)):
        np.testing.assert_allclose(ours, core, atol=1e-5)
    flat, lengths = model.tokenizer.encode_lines(TOY)
    np.testing.assert_allclose(model.score_lines(flat, lengths), np.concatenate(model.score_ids(
        [ids_of(model, line) for line in TOY])), atol=1e-6)


def test_lstm_chunked_stream_equals_one_pass():
    model = untrained(LSTMLM, context=5)
    vocab = model.tokenizer.vocab
    stream = model._stream_ids(TOY * 2)  # 60 tokens, </s> after each line
    chunked = model.score_stream(stream)
    sequence = torch.from_numpy(np.concatenate([[vocab.bos_id], stream]))
    one_pass = model.token_logprobs(sequence[None, :-1], sequence[None, 1:])[0]
    assert chunked.shape == (len(stream),)
    np.testing.assert_allclose(chunked, one_pass, atol=1e-5)
    # The stream keeps its history: scoring the second half alone gives other numbers.
    assert not np.allclose(model.score_stream(stream[30:]), chunked[30:], atol=1e-3)


def test_lstm_carried_state_equals_one_pass_over_both_windows():
    model = untrained(LSTMLM, context=4, batch_size=2)
    vocab = model.tokenizer.vocab
    data = StreamBatches(model._stream_ids(TOY), bos=vocab.bos_id, block=4)
    first, second = model.training_batch(data, 0), model.training_batch(data, 1)
    assert not first.continues and second.continues
    assert torch.equal(second.inputs[:, 0], first.targets[:, -1])  # each column continues
    model.module_.eval()
    with torch.no_grad():
        model.loss(first)
        state = model.training_state()  # what a training checkpoint between the two steps keeps
        carried = model.loss(second)
        both = torch.cat([first.inputs, second.inputs], dim=1)  # (B, 2T) one pass
        logits = model.module_(both)[:, 4:]
        expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), second.targets.flatten())
    torch.testing.assert_close(carried, expected, rtol=1e-5, atol=1e-6)
    assert state["h"].shape == (2, 2, 10)
    fresh = untrained(LSTMLM, context=4, batch_size=2)
    fresh.load_training_state(state)
    fresh.module_.load_state_dict(model.module_.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh.loss(second), carried)
    with pytest.raises(CheckpointError):
        fresh.load_training_state({"h": state["h"]})


def test_lstm_kept_state_is_not_reused_after_the_weights_change():
    model = untrained(LSTMLM)
    ids = ids_of(model, "the cat sat on the")
    model.next_logprobs(ids)
    with torch.no_grad():
        model.module_.lstm.weight_hh_l0.add_(0.5)  # as an optimiser step would, in place
    longer = [*ids, model.tokenizer.vocab["mat"]]
    expected = model.score_ids([longer])[0]
    got = [model.next_logprobs(longer[:k])[target] for k, target in enumerate([*longer, model.tokenizer.vocab.eos_id])]
    np.testing.assert_allclose(got, expected, atol=1e-5)


# ---- training, sampling, checkpoints --------------------------------------------------------------


@pytest.mark.parametrize("softmax", SOFTMAXES)
@pytest.mark.parametrize("cls", MODELS)
def test_a_tiny_model_overfits_a_tiny_corpus(cls, softmax):
    model = trained(cls, DETERMINISTIC, steps=200, n_embd=16, hidden=32, weight_decay=0.0, eval_every=50,
                    softmax=softmax)
    assert model.curve_[-1]["train_loss"] < 0.05  # the mean over the last 50 steps
    assert model.evaluate(DETERMINISTIC).nats_per_token < 0.05


@pytest.mark.parametrize("softmax", SOFTMAXES)
@pytest.mark.parametrize("cls", MODELS)
def test_save_load_same_scores_and_seeded_samples(cls, softmax, tmp_path):
    model = trained(cls, softmax=softmax)
    model.save(tmp_path / "model")
    loaded = langmodels.load(tmp_path / "model")
    assert type(loaded) is cls and loaded.get_params() == model.get_params()
    lines = [ids_of(model, text) for text in TOY]
    for ours, theirs in zip(model.score_ids(lines), loaded.score_ids(lines)):
        np.testing.assert_array_equal(ours, theirs)
    assert loaded.generate("the", 12, seed=3) == model.generate("the", 12, seed=3)
    samples = {model.generate(max_tokens=12, seed=seed) for seed in range(8)}
    assert len(samples) > 1  # seeds matter
    assert loaded.curve_ == model.curve_


@pytest.mark.parametrize("cls", MODELS)
def test_same_seed_same_loss_curve(cls):
    settings = {"dropout": 0.3, "eval_every": 10}
    first, second = trained(cls, steps=30, **settings), trained(cls, steps=30, **settings)
    assert len(first.curve_) == 3
    assert train_losses(first) == train_losses(second)
    assert train_losses(first) != train_losses(trained(cls, steps=30, seed=1, **settings))


@pytest.mark.parametrize("softmax", SOFTMAXES)
@pytest.mark.parametrize("cls", MODELS)
def test_loss_on_real_positions_equals_the_padded_cross_entropy(cls, softmax):
    # The training loss runs the output layer on real targets only (and an adaptive softmax only
    # the tails its targets need); it must equal the cross-entropy of the full padded forward pass.
    model = untrained(cls, dropout=0.0, softmax=softmax)
    assert model.module_.output.is_adaptive == (softmax == "adaptive")
    batch = model.training_data(TOY, "lines").make(range(5))  # lines of 3 to 6 words, padded
    assert batch.n_targets < batch.targets.numel()
    with torch.no_grad():
        scores = model.module_(batch.inputs)  # (B, T, V)
        padded = F.cross_entropy(scores.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE)
        torch.testing.assert_close(model.loss(batch), padded, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(NeuralLM.loss(model, batch), padded, rtol=1e-6, atol=1e-6)


def test_lstm_scores_many_batches_on_worker_threads_as_it_scores_each_line_alone():
    # More lines than one scoring batch, of mixed lengths: the batches are shared out among two
    # worker threads, and every line must still get its own scores back.
    model = untrained(LSTMLM)
    lines = [ids_of(model, TOY[i % len(TOY)])[: i % 7] for i in range(3 * SCORE_LINES + 5)]
    with torch_threads(2):
        many = model.score_many(lines)
        assert torch.get_num_threads() == 2  # put back after scoring
    for ids, scores in zip(lines, many):
        np.testing.assert_allclose(scores, model.score_ids([ids])[0], atol=1e-6)


def test_adaptive_target_logprobs_equal_the_full_distribution_renormalised():
    # Scoring runs the adaptive head once and each tail on its own targets only; it must equal
    # log_softmax over all V ids with the never-next ids removed. 9,000 ids give a head of 2,000
    # and two tail clusters (2,000-7,999 and 8,000-8,999).
    torch.manual_seed(0)
    output = OutputLayer(9000, 32, softmax="adaptive").eval()
    assert output.cutoffs == [2000, 8000]
    targets = torch.tensor([0, 5, 1999, 2000, 4321, 7999, 8000, 8999] * 4)
    h = torch.randn(len(targets), 32)
    excluded = [1, 3, 4]
    with torch.no_grad():
        scores = output(h).float()  # (N, V) log P over every id
        scores[:, excluded] = -torch.inf
        expected = torch.log_softmax(scores, dim=-1).gather(-1, targets[:, None])[:, 0]
        torch.testing.assert_close(output.target_logprobs(h, targets, excluded), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(output.target_logprobs(h, targets, []), output(h).gather(-1, targets[:, None])[:, 0],
                                   rtol=1e-5, atol=1e-5)


def interrupted_and_resumed(stop_training_at, cls, data, folder, **settings):
    """(an uninterrupted run, a run stopped at step 25 and resumed from its step-20 checkpoint)."""
    settings = {**TINY[cls], **FAST, "eval_every": 10, "dropout": 0.2, **settings}
    uninterrupted = cls(**settings).fit(data, max_steps=40, progress=False)
    interrupted = stop_training_at(cls(**settings), 25)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, max_steps=40, checkpoint=folder, progress=False)
    resumed = cls(**settings).fit(data, max_steps=40, checkpoint=folder, resume=True, progress=False)
    return uninterrupted, resumed


@pytest.mark.parametrize("cls", MODELS)
def test_resume_continues_the_same_curve_on_lines(cls, tmp_path, stop_training_at):
    uninterrupted, resumed = interrupted_and_resumed(stop_training_at, cls, TOY, tmp_path / "run")
    assert train_losses(resumed) == train_losses(uninterrupted)


def test_resume_continues_the_same_curve_on_a_stream_with_the_carried_state(tmp_path, stop_training_at):
    text = "\n".join(TOY * 4) + "\n"
    train = Split.from_text(text, name="train", corpus="toy", level="char", mode="stream")
    uninterrupted, resumed = interrupted_and_resumed(stop_training_at, LSTMLM, train, tmp_path / "run", context=8)
    assert train_losses(resumed) == train_losses(uninterrupted)


def test_lstm_trains_on_a_character_stream_with_bptt():
    text = "\n".join(TOY * 4) + "\n"
    train = Split.from_text(text, name="train", corpus="toy", level="char", mode="stream")
    model = trained(LSTMLM, train, steps=40, tokenizer="auto", context=16)
    assert isinstance(model.tokenizer, CharTokenizer) and model.mode_ == "stream"
    evaluation = model.evaluate(train)
    assert evaluation.mode == "stream" and evaluation.n_tokens == len(text)
    assert evaluation.nats_per_token < np.log(len(model.tokenizer.vocab))


def test_mlp_direct_connections():
    model = untrained(MLPLM, direct=True)
    assert model.module_.direct is not None
    assert abs(np.logaddexp.reduce(model.next_logprobs(ids_of(model, "the cat")))) < 1e-5
    assert len(model.embeddings().nearest("cat", k=3)) == 3


def test_embeddings_are_the_tied_output_for_the_lstm():
    model = untrained(LSTMLM)
    assert model.module_.token_embedding.weight.shape == (len(model.tokenizer.vocab), 6)
    assert len(model.embeddings().nearest("cat", k=3)) == 3


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("tokenizer", "kind"), [("char", CharTokenizer), ("bpe", BPETokenizer)])
def test_character_and_bpe_tokenizers(cls, tokenizer, kind):
    model = trained(cls, TOY, steps=5, tokenizer=tokenizer, bpe_vocab_size=280)
    assert isinstance(model.tokenizer, kind)
    ids = ids_of(model, "a cat")
    scores = model.score_ids([ids])[0]
    assert scores.shape == (len(ids) + 1,) and np.all(scores < 0)
    assert model.generate("the", 5, seed=0).startswith("the")


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "settings", "field"),
    [
        (MLPLM, {"order": 1}, "order"),
        (MLPLM, {"hidden": 0}, "hidden"),
        (MLPLM, {"n_embd": -2}, "n_embd"),
        (MLPLM, {"dropout": -0.1}, "dropout"),
        (MLPLM, {"dropout": 1.0}, "dropout"),
        (MLPLM, {"context": 0}, "context"),
        (MLPLM, {"hidden": "10"}, "hidden"),
        (MLPLM, {"direct": 1}, "direct"),
        (MLPLM, {"direct": True, "softmax": "adaptive"}, "direct"),
        (LSTMLM, {"softmax": "hierarchical"}, "softmax"),
        (MLPLM, {"order": 3.0}, "order"),
        (LSTMLM, {"dropout": -0.5}, "dropout"),
        (LSTMLM, {"hidden": 0}, "hidden"),
        (LSTMLM, {"n_layer": 0}, "n_layer"),
        (LSTMLM, {"n_layer": True}, "n_layer"),
        (LSTMLM, {"n_embd": None}, "n_embd"),
        (LSTMLM, {"lr": 0}, "lr"),
    ],
)
def test_bad_configs_name_the_field(cls, settings, field):
    with pytest.raises(ConfigError, match=field):
        cls(**{**TINY[cls], **settings}).fit(TOY, max_steps=1, progress=False)


@pytest.mark.parametrize("cls", MODELS)
def test_an_unknown_setting_is_refused(cls):
    with pytest.raises(ConfigError, match="hiden"):
        cls(hiden=3)


@pytest.mark.parametrize("cls", MODELS)
def test_weights_that_do_not_match_the_config(cls, tmp_path):
    model = untrained(cls)
    model.save(tmp_path / "model")
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["params"]["hidden"] = 12  # an edit of config.json, its checksum in manifest.json updated to match
    config_path.write_text(json.dumps(config))
    manifest_path = tmp_path / "model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["config.json"] = hashlib.sha256(config_path.read_bytes()).hexdigest()
    manifest["sizes"]["config.json"] = config_path.stat().st_size
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="weights.safetensors"):
        langmodels.load(tmp_path / "model")
    wider = untrained(cls, hidden=14)
    with pytest.raises(CheckpointError):
        wider.restore_state(model.state_files(), {})
