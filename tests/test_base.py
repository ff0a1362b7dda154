"""The shared machinery: metric conventions, sampling, checkpoint files, the derived methods."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from langmodels import NGramLM, load
from langmodels.checkpoint import read_checkpoint, write_checkpoint
from langmodels.corpora import split_text
from langmodels.errors import CheckpointError, ConfigError, LangmodelsError
from langmodels.metrics import Evaluation, TextCounts, bits_per_char, count_words
from langmodels.sampling import check_sampling_options, sample_next, shape_distribution

TOY = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]


# ---- metrics ---------------------------------------------------------------------------------


def test_one_nll_three_normalisations():
    text = "the cat sat\non the mat\n"  # 6 words + 2 end-of-lines, 23 characters
    evaluation = Evaluation.from_nll(
        20.0, n_tokens=8, counts=TextCounts.of_text(text), seconds=2.0, model="m", corpus="c", split="test",
        mode="lines"
    )
    assert evaluation.n_words == 8 and evaluation.n_chars == 23
    assert evaluation.perplexity == pytest.approx(math.exp(20.0 / 8))
    assert evaluation.word_perplexity == pytest.approx(math.exp(20.0 / 8))
    assert evaluation.bits_per_char == pytest.approx(20.0 / (23 * math.log(2)))
    assert evaluation.tokens_per_second == pytest.approx(4.0)


def test_word_and_char_counts_follow_the_conventions():
    assert count_words("a b\nc\n") == 3 + 2
    assert count_words("our kingdom\nends") == 3 + 2  # a last line without newline still ends
    # counted block by block (each block ending at a newline) as counted whole
    for text in ("a b\nc\n", "our kingdom\nends", "été\n\nx y\n", ""):
        *ended, tail = text.split("\n")
        blocks = [line + "\n" for line in ended] + ([tail] if tail else [])
        assert TextCounts.of_blocks(blocks) == TextCounts.of_text(text)
    assert bits_per_char(math.log(2) * 10, 10) == pytest.approx(1.0)


def test_evaluate_counts_tokens_words_and_chars():
    lm = NGramLM(2, "kneser-ney").fit(TOY)
    lines = ["the cat sat on the log", "a dog"]
    evaluation = lm.evaluate(lines)
    assert evaluation.n_tokens == 6 + 2 + 2 and evaluation.n_words == 10
    assert evaluation.n_chars == len("\n".join(lines) + "\n")
    total = sum(lm.score_ids([lm.tokenizer.encode(line) for line in lines])[i].sum() for i in range(2))
    assert evaluation.nll == pytest.approx(-total)
    assert evaluation.perplexity == pytest.approx(math.exp(-total / 10))
    assert lm.perplexity(lines) == pytest.approx(evaluation.perplexity)
    assert lm.logprob("a dog") == pytest.approx(lm.score_ids([lm.tokenizer.encode("a dog")])[0].sum())


def test_words_counted_from_the_tokens_equal_words_counted_from_the_text():
    # A whitespace word tokenizer's evaluate counts words from its own token counts; any other
    # tokenizer counts them from the text. Both must agree, also on empty lines and odd spacing.
    lines = ["the  cat\tsat", "", "  a dog  ", "the"]
    word = NGramLM(2, "laplace").fit(TOY)
    char = NGramLM(2, "laplace", level="char").fit(TOY)
    assert word.evaluate(lines).n_words == char.evaluate(lines).n_words == count_words(split_text(lines)) == 6 + 4


def test_stream_mode_scores_every_token_once_with_context_across_lines():
    lm = NGramLM(3, "kneser-ney").fit(TOY)
    lines = ["the cat sat", "on the mat"]
    stream = lm.evaluate(lines, mode="stream")
    assert stream.mode == "stream" and stream.n_tokens == 3 + 1 + 3 + 1  # words and a </s> per line
    ids = lm._stream_ids(lines)
    expected = sum(lm.next_logprobs(ids[:k])[ids[k]] for k in range(len(ids)))
    assert stream.nll == pytest.approx(-expected)
    with pytest.raises(LangmodelsError, match="mode"):
        lm.evaluate(lines, mode="sentences")


# ---- sampling ----------------------------------------------------------------------------------


def test_temperature_matches_torch_softmax():
    logprobs = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    for temperature in (0.5, 1.0, 2.0):
        expected = torch.softmax(torch.tensor(logprobs) / temperature, dim=0).numpy()
        np.testing.assert_allclose(shape_distribution(logprobs, temperature), expected, rtol=1e-12)


def test_top_k_and_top_p_keep_the_right_tokens():
    logprobs = np.log(np.array([0.05, 0.5, 0.15, 0.3]))
    assert np.flatnonzero(shape_distribution(logprobs, top_k=2)).tolist() == [1, 3]
    # top-p 0.7: 0.5 alone is short of 0.7, 0.5 + 0.3 reaches it.
    kept = shape_distribution(logprobs, top_p=0.7)
    assert np.flatnonzero(kept).tolist() == [1, 3]
    assert kept[1] == pytest.approx(0.5 / 0.8)
    assert np.flatnonzero(shape_distribution(logprobs, top_p=1.0)).tolist() == [0, 1, 2, 3]


def test_samples_follow_the_distribution_and_repeat_with_a_seed():
    probs = np.array([0.1, 0.0, 0.6, 0.3])
    with np.errstate(divide="ignore"):
        logprobs = np.log(probs)
    draws = [sample_next(logprobs, np.random.default_rng(seed)) for seed in range(4000)]
    frequencies = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(frequencies, probs, atol=0.03)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert [sample_next(logprobs, rng_a) for _ in range(20)] == [sample_next(logprobs, rng_b) for _ in range(20)]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"temperature": -1}, "temperature"), ({"temperature": math.inf}, "temperature"), ({"top_k": 0}, "top-k"),
     ({"top_p": 0}, "top-p"), ({"top_p": 1.5}, "top-p")],
)
def test_bad_sampling_options(options, message):
    with pytest.raises(ConfigError, match=message):
        check_sampling_options(**{"temperature": 1.0, "top_k": None, "top_p": None, **options})
    lm = NGramLM(2).fit(TOY)
    with pytest.raises(ConfigError, match=message):
        lm.generate("the", 5, **options)


# ---- checkpoints -------------------------------------------------------------------------------


def test_checkpoint_holds_config_tokenizer_weights_and_metrics(tmp_path):
    lm = NGramLM(2).fit(TOY)
    lm.metrics_ = lm.evaluate(TOY).to_dict()
    lm.save(tmp_path / "ckpt")
    names = sorted(os.listdir(tmp_path / "ckpt"))
    tables = {f"{field}_{n}.npy" for field in ("keys", "logprob", "logbackoff", "is_context", "count") for n in (1, 2)}
    assert set(names) == {"config.json", "manifest.json", "config_sha256.npy", "metrics.json", "tokenizer.json",
                          "index_2.npy", "support.npy", "scalars.npy", *tables}
    config, _files = read_checkpoint(tmp_path / "ckpt")
    assert config["class"] == "NGramLM" and config["params"]["order"] == 2
    assert load(tmp_path / "ckpt").metrics_["perplexity"] == pytest.approx(lm.metrics_["perplexity"])


def test_a_crash_while_saving_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    good = NGramLM(2).fit(TOY)
    good.save(tmp_path / "ckpt")
    before = good.evaluate(TOY).nll
    other = NGramLM(3, "witten-bell").fit(TOY[:1])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("langmodels.checkpoint._write_file", crash)
    with pytest.raises(KeyboardInterrupt):
        other.save(tmp_path / "ckpt")
    monkeypatch.undo()
    assert load(tmp_path / "ckpt").evaluate(TOY).nll == pytest.approx(before)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no staging folder left behind


def test_checkpoint_from_another_version_or_class_is_refused(tmp_path):
    import json

    NGramLM(2).fit(TOY).save(tmp_path / "ckpt")
    saved, files = read_checkpoint(tmp_path / "ckpt")
    write_checkpoint(tmp_path / "other", {**saved, "class": "os.system"}, files)  # checksums agree
    with pytest.raises(CheckpointError, match="os.system"):
        load(tmp_path / "other")
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    config["format_version"] = 99
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="version 99"):
        load(tmp_path / "ckpt")
    (tmp_path / "other" / "keys_2.npy").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load(tmp_path / "other")
