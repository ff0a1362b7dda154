"""The shared Trainer and neural core, on a two-token-window toy model."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch._dynamo  # AdamW imports it on first use (seconds): import time, outside the budgets timed here
import torch.nn.functional as F
from torch import nn

from langmodels import load
from langmodels.errors import ConfigError, LangmodelsError
from langmodels.neural.core import NeuralConfig, NeuralLM
from langmodels.neural.data import IGNORE, LineBatches
from langmodels.neural.output import OutputLayer
from langmodels.neural.trainer import TrainingDivergedError, learning_rate

TRAIN = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 5


@dataclass
class PairConfig(NeuralConfig):
    n_embd: int = 16


class PairModule(nn.Module):
    """Next-token logits from the current and previous token embeddings (shapes (B, T, V))."""

    def __init__(self, vocab_size: int, n_embd: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.mix = nn.Linear(2 * n_embd, n_embd)
        self.output = OutputLayer(vocab_size, n_embd, tied=self.token_embedding, bias=False)

    def features(self, idx):
        current = self.token_embedding(idx)  # (B, T, C)
        previous = F.pad(current, (0, 0, 1, 0))[:, :-1]  # (B, T, C), zeros before the first
        return torch.tanh(self.mix(torch.cat([current, previous], -1)))

    def forward(self, idx):
        return self.output(self.features(idx))


class PairLM(NeuralLM):
    Config = PairConfig

    def build_module(self, vocab_size):
        return PairModule(vocab_size, self.config.n_embd)


def small(**settings):
    return PairLM(**{"batch_size": 4, "eval_every": 10, "warmup_steps": 5, "threads": 1, **settings})


def losses(model):
    return [point["train_loss"] for point in model.curve_]


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [learning_rate(step, 1.0, 10, 110) for step in range(120)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[110] == pytest.approx(0.1) and rates[119] == pytest.approx(0.1)


def test_same_seed_same_curve_and_samples():
    first, second = small().fit(TRAIN, max_steps=30, progress=False), small().fit(TRAIN, max_steps=30, progress=False)
    assert losses(first) == losses(second)
    assert first.generate("the", 6, seed=3) == second.generate("the", 6, seed=3)
    assert losses(small(seed=1).fit(TRAIN, max_steps=30, progress=False)) != losses(first)


def test_training_learns_and_the_curve_is_recorded():
    model = small().fit(TRAIN, valid=TRAIN[:3], max_steps=60, progress=False)
    assert [p["step"] for p in model.curve_] == [10, 20, 30, 40, 50, 60]
    assert model.curve_[-1]["train_loss"] < model.curve_[0]["train_loss"] / 2
    assert all(p["valid_loss"] is not None for p in model.curve_)
    tokens = [p["tokens"] for p in model.curve_]
    assert tokens == sorted(tokens) and tokens[0] > 0


def test_every_step_trains_in_training_mode_after_validation_passes():
    model = small(eval_every=2)
    real_loss, modes = model.loss, []

    def recording(batch):
        modes.append(model.module_.training)  # dropout on?
        return real_loss(batch)

    model.loss = recording
    model.fit(TRAIN, valid=TRAIN[:3], max_steps=7, progress=False)
    assert modes == [True] * 7 and len(model.curve_) == 4
    assert not model.module_.training  # a fitted model is left ready to score


def test_an_interrupted_run_resumes_on_the_same_curve(tmp_path, stop_training_at):
    """Ctrl-C at step 25 leaves a checkpoint of those 25 steps; --resume then draws the same
    losses, step by step, as an uninterrupted run, and ends with the same weights."""
    uninterrupted = small(eval_every=1).fit(TRAIN, max_steps=40, progress=False)
    interrupted = stop_training_at(small(eval_every=1), 25)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(TRAIN, max_steps=40, checkpoint=tmp_path / "run", progress=False)
    assert load(tmp_path / "run").curve_[-1]["step"] == 25  # written when the interrupt came
    resumed = small(eval_every=1).fit(TRAIN, max_steps=40, checkpoint=tmp_path / "run", resume=True, progress=False)
    assert [p["step"] for p in resumed.curve_] == list(range(1, 41))
    assert losses(resumed) == losses(uninterrupted)
    lines = [resumed.tokenizer.encode(line) for line in TRAIN[:3]]
    for a, b in zip(resumed.score_ids(lines), uninterrupted.score_ids(lines)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_checkpoints_every_n_steps_resume_mid_window(tmp_path, stop_training_at):
    """A checkpoint written between curve points (every 7 steps, points every 10) resumes with
    the partial window's losses, so the curve's mean train losses are those of a whole run."""
    uninterrupted = small().fit(TRAIN, max_steps=40, progress=False)
    interrupted = stop_training_at(small(), 23)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(TRAIN, max_steps=40, checkpoint=tmp_path / "run", checkpoint_every=7, progress=False)
    resumed = small().fit(TRAIN, max_steps=40, checkpoint=tmp_path / "run", resume=True, progress=False)
    assert losses(resumed) == pytest.approx(losses(uninterrupted), rel=1e-12)


def test_budgets_in_tokens_and_seconds():
    by_tokens = small().fit(TRAIN, max_tokens=200, progress=False)
    assert 200 <= by_tokens.curve_[-1]["tokens"] < 200 + 4 * 8
    # A time budget bounds the whole call, validation and the final pass over valid included.
    start = time.perf_counter()
    by_time = small(patience=0).fit(TRAIN, valid=TRAIN[:6], max_seconds=1.0, progress=False)
    assert 0.8 <= time.perf_counter() - start <= 1.1
    assert by_time.valid_evaluation_.n_tokens == sum(len(line.split()) + 1 for line in TRAIN[:6])
    # The cosine schedule spans the budget, whatever it is counted in: it has decayed at the end.
    for budget in ({"max_tokens": 1000}, {"max_seconds": 1.0}):
        model = small(warmup_steps=0).fit(TRAIN, **budget, progress=False)
        assert model.curve_[-1]["lr"] < 0.15 * model.config.lr
    with pytest.raises(LangmodelsError, match="budget"):
        small().fit(TRAIN)


def test_warm_up_and_validations_follow_the_budget():
    """With eval_every 0 and warmup_fraction 0.1, a 200-step run validates ten times and warms up
    for 20 steps, whatever warmup_steps' (smaller) floor."""
    model = small(eval_every=0, warmup_fraction=0.1, warmup_steps=3).fit(TRAIN, valid=TRAIN[:3], max_steps=200,
                                                                         progress=False)
    assert [p["step"] for p in model.curve_] == list(range(20, 201, 20))
    assert model.curve_[0]["lr"] == pytest.approx(model.config.lr)  # step 20 ends the warm-up
    rates = [learning_rate(step, 1.0, 20, 200) for step in range(20)]
    assert rates == sorted(rates) and rates[0] == pytest.approx(1 / 20)


def test_early_stopping_restores_the_best_weights():
    model = small(lr=0.5, patience=1, warmup_steps=0).fit(TRAIN, valid=TRAIN[:3], max_steps=200, progress=False)
    valid = [p["valid_loss"] for p in model.curve_]
    assert len(valid) < 20  # stopped before the budget
    assert model.evaluate(TRAIN[:3], progress=False).nats_per_token == pytest.approx(min(valid), rel=1e-5)


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    good = small().fit(TRAIN, max_steps=20, checkpoint=tmp_path / "run", progress=False)
    before = load(tmp_path / "run").evaluate(TRAIN[:3]).nll
    broken = small()
    real_loss = broken.loss
    broken.loss = lambda batch: real_loss(batch) * float("nan")
    with pytest.raises(TrainingDivergedError, match="step 0"):
        broken.fit(TRAIN, max_steps=20, checkpoint=tmp_path / "run", progress=False)
    assert load(tmp_path / "run").evaluate(TRAIN[:3]).nll == pytest.approx(before)
    assert good.evaluate(TRAIN[:3]).nll == pytest.approx(before)


def test_distribution_scoring_and_stream_windows_agree():
    model = small(context=4).fit(TRAIN, max_steps=20, progress=False)
    vocab = model.tokenizer.vocab
    ids = model.tokenizer.encode("the cat sat on the log and a dog sat")
    assert math.isclose(np.logaddexp.reduce(model.next_logprobs(ids[:3])), 0.0, abs_tol=1e-5)
    # The pair model sees one token back, so windows of 4 overlapping by 2 lose nothing.
    scored = model.score_ids([ids])[0]
    one_by_one = [model.next_logprobs(ids[:k])[t] for k, t in enumerate(ids + [vocab.eos_id])]
    np.testing.assert_allclose(scored, one_by_one, atol=1e-5)
    stream = model.score_stream(np.array(ids))
    np.testing.assert_allclose(stream, scored[:-1], atol=1e-5)


def test_bad_settings_and_tiny_corpora():
    with pytest.raises(ConfigError, match="unknown"):
        PairLM(layers=3)
    with pytest.raises(ConfigError, match="batch_size"):
        PairLM(batch_size=0).fit(TRAIN, max_steps=1)
    with pytest.raises(ConfigError, match="lr"):
        PairLM(lr="fast").fit(TRAIN, max_steps=1)
    with pytest.raises(LangmodelsError, match="fewer than one batch"):
        PairLM(batch_size=64).fit(["a b"], max_steps=1)


def test_line_batches_are_bucketed_by_length_and_repeat_with_the_seed():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=500)
    data = LineBatches(rng.integers(5, 50, size=int(lengths.sum())), lengths, bos=1, eos=2, pad=3, max_len=None)
    assert data.n_tokens == int(lengths.sum()) + len(lengths)  # every word and one </s> per line
    seen = set()
    for step in range(50):
        batch = data.sample(16, seed=7, step=step)
        assert batch.inputs.shape[0] == 16
        real = (batch.targets != IGNORE).sum(dim=1)  # each row's length
        assert int(real.max() - real.min()) <= 3  # neighbours in length order: almost no padding
        torch.testing.assert_close(data.sample(16, seed=7, step=step).inputs, batch.inputs)
        seen.add(int(real.min()))
    assert len(seen) > 10  # and the batches range over the lengths


def test_the_progress_bar_shows_loss_speed_valid_perplexity_and_time_left(capsys):
    small(patience=0).fit(TRAIN, valid=TRAIN[:3], max_seconds=1.0, progress=True)
    err = capsys.readouterr().err
    for figure in ("training PairLM", "loss ", "tok/s", "valid ppl", "s left"):
        assert figure in err, figure
    small().fit(TRAIN, max_steps=5, progress=False)
    assert capsys.readouterr().err == ""


def test_a_valid_split_too_long_for_the_budget_is_scored_as_far_as_it_fits():
    long_valid = [f"{line} {i % 7}" for i, line in enumerate(TRAIN * 4000)]  # 60,000 lines
    start = time.perf_counter()
    model = small(patience=0).fit(TRAIN, valid=long_valid, max_seconds=1.5, progress=False)
    assert time.perf_counter() - start <= 1.5 * 1.1
    evaluation = model.valid_evaluation_
    first = int(evaluation.split.split("first ")[1].split(" lines")[0].replace(",", ""))
    assert 0 < first < len(long_valid)
    expected = model.evaluate(long_valid[:first], progress=False)
    assert evaluation.n_tokens == expected.n_tokens and evaluation.nll == pytest.approx(expected.nll, rel=1e-9)
