"""InterpolatedLM: EM never lowers the held-out likelihood and finds the weights of a known
mixture, the mixture is a distribution, mixes a model with itself into the model, beats its
components on held-out text, lines up with the evaluation mode, saves and loads exactly, and
refuses components it cannot mix. Tiny models on slices of Brown and Tiny Shakespeare."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from cli_checks import run

import langmodels
from langmodels import InterpolatedLM, NGramLM, corpora
from langmodels.corpora import Split
from langmodels.errors import CheckpointError, ConfigError, LangmodelsError
from langmodels.mixture import fit_mixture_weights, mix_logprobs
from langmodels.neural.gpt import GPTLM
from langmodels.neural.lstm import LSTMLM


def brown_slice(lines, name):
    return Split(lines, name=name, corpus="brown", level="word", mode="lines")


@pytest.fixture(scope="module")
def brown():
    """2,000 lines of Brown's train split to learn from, the next 300 as held-out text for EM, and
    the 300 after as test text."""
    train = corpora.load("brown").train
    return (brown_slice(train[:2000], "train"), brown_slice(train[2000:2300], "valid"),
            brown_slice(train[2300:2600], "test"))


@pytest.fixture(scope="module")
def kn3(brown):
    return NGramLM(order=3, smoothing="kneser-ney").fit(brown[0])


@pytest.fixture(scope="module")
def lstm(brown):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = LSTMLM(n_embd=32, hidden=32, n_layer=1, dropout=0.0, batch_size=32, lr=2e-2, warmup_steps=10,
                       eval_every=1000, threads=1)
        return model.fit(brown[0], max_steps=150, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mixture(lstm, kn3, brown):
    return InterpolatedLM([lstm, kn3]).fit_weights(brown[1])


@pytest.fixture(scope="module")
def shakespeare():
    """Tiny Shakespeare at the character level: 60,000 characters to learn from, the next 10,000
    held out, as streams."""
    text = corpora.load("shakespeare").train.text()
    pieces = (text[:60_000], text[60_000:70_000])
    return [Split.from_text(piece, name=name, corpus="shakespeare", level="char", mode="stream")
            for piece, name in zip(pieces, ("train", "valid"))]


# ---- EM ------------------------------------------------------------------------------------------


def test_em_never_lowers_the_heldout_likelihood(mixture):
    history = np.array(mixture.em_history_)
    assert len(history) >= 3
    assert np.all(np.diff(history) >= 0)
    assert history[-1] > history[0]  # uniform weights were not already the best


def test_em_never_lowers_the_likelihood_of_random_components():
    rng = np.random.default_rng(0)
    logp = np.log(rng.dirichlet(np.ones(50), size=(4000, 3))[:, :, 0])  # (T, K) probabilities of the seen tokens
    for start in ([1 / 3] * 3, [0.98, 0.01, 0.01], [0.0, 0.5, 0.5]):
        weights, history = fit_mixture_weights(logp, np.array(start), tol=0.0, max_iter=200)
        assert np.all(np.diff(history) >= 0)
        assert np.isclose(weights.sum(), 1) and np.all(weights >= 0)
    assert weights[0] == 0  # a component that starts with weight 0 keeps it (EM's fixed point)


def test_mixed_log_probabilities_do_not_underflow():
    logp = np.array([[-1000.0, -2000.0, -np.inf], [-1001.0, -np.inf, -np.inf]])  # (K=2, 3 tokens)
    mixed = mix_logprobs(logp, np.log([0.5, 0.5]))
    expected = [np.log(0.5) + np.logaddexp(-1000.0, -1001.0), np.log(0.5) - 2000.0, -np.inf]
    np.testing.assert_allclose(mixed, expected, rtol=1e-12)


def test_em_recovers_the_weights_of_a_known_mixture(brown):
    """Tokens drawn from 0.3 * unigram MLE + 0.7 * uniform-over-seen-tokens (both context-free, so
    the draw is i.i.d.): EM on them, started from equal weights, lands near (0.3, 0.7)."""
    mle = NGramLM(order=1, smoothing="mle").fit(brown[0])
    uniform = NGramLM(order=1, smoothing="uniform").fit(brown[0])
    truth = np.array([0.3, 0.7])
    probabilities = truth @ np.exp(np.stack([mle.next_logprobs([]), uniform.next_logprobs([])]))
    ids = np.random.default_rng(1).choice(len(probabilities), size=30_000, p=probabilities / probabilities.sum())
    eos = mle.tokenizer.vocab.eos_id
    ends = np.flatnonzero(ids == eos)
    lines = [mle.tokenizer.decode(line) for line in np.split(ids[: ends[-1]], ends[:-1] + 1)]
    mixed = InterpolatedLM([mle, uniform]).fit_weights(lines)
    assert np.all(np.diff(mixed.em_history_) >= 0)
    np.testing.assert_allclose(mixed.weights_, truth, atol=0.02)


# ---- the mixture is a language model ---------------------------------------------------------------


def test_every_next_token_distribution_sums_to_one(mixture):
    vocab = mixture.tokenizer.vocab
    contexts = ([], mixture.tokenizer.encode("The jury said"), mixture.tokenizer.encode("the the of ."), [vocab.unk_id])
    for context in contexts:
        logprobs = mixture.next_logprobs(context)
        assert logprobs.shape == (len(vocab),)
        assert np.isclose(np.logaddexp.reduce(logprobs), 0.0, atol=1e-6)  # the LSTM computes in float32
        assert logprobs[vocab.bos_id] == -np.inf  # never the next token in either component


def test_mixture_scores_are_the_weighted_sum_of_the_components(mixture, brown):
    tokenizer = mixture.tokenizer
    flat, lengths = tokenizer.encode_lines(brown[2][:40])
    components = np.exp(np.stack([model.score_lines(flat, lengths) for model in mixture.models]))
    np.testing.assert_allclose(np.exp(mixture.score_lines(flat, lengths)), mixture.weights_ @ components, rtol=1e-10)
    ids = tokenizer.encode(brown[2][0])
    by_line = mixture.score_ids([ids])[0]
    one_at_a_time = [mixture.next_logprobs(ids[:k])[target] for k, target in enumerate([*ids, tokenizer.vocab.eos_id])]
    np.testing.assert_allclose(by_line, one_at_a_time, atol=1e-5)  # float32 LSTM, batched vs one by one


def test_a_model_mixed_with_itself_is_the_model(kn3, brown, shakespeare):
    for weights in ([0.3, 0.7], None):
        double = InterpolatedLM([kn3, kn3], weights=weights)
        if weights is None:
            double.fit_weights(brown[1])
            assert np.all(np.diff(double.em_history_) >= 0)
        flat, lengths = kn3.tokenizer.encode_lines(brown[2])
        np.testing.assert_allclose(double.score_lines(flat, lengths), kn3.score_lines(flat, lengths), atol=1e-12)
        np.testing.assert_allclose(double.next_logprobs([5, 6]), kn3.next_logprobs([5, 6]), atol=1e-12)
        assert double.evaluate(brown[2]).perplexity == pytest.approx(kn3.evaluate(brown[2]).perplexity, rel=1e-12)
    chars = NGramLM(order=4).fit(shakespeare[0])
    single = InterpolatedLM([chars], weights=[1.0])
    assert single.evaluate(shakespeare[1]).perplexity == pytest.approx(chars.evaluate(shakespeare[1]).perplexity)


def test_mixture_of_lstm_and_kneser_ney_beats_both_on_heldout_text(mixture, lstm, kn3, brown):
    test = brown[2]
    mixed, neural, counted = (model.evaluate(test).perplexity for model in (mixture, lstm, kn3))
    assert mixed < neural and mixed < counted, (mixed, neural, counted)
    assert np.all(mixture.weights_ > 0.05)  # each component carries part of the mixture


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_em_scores_the_tokens_that_evaluate_scores(mode, kn3, brown, shakespeare):
    """The held-out log-likelihood EM ends at is the one `evaluate` then measures on the same text,
    in the split's own mode (lines for Brown, a stream of characters for Tiny Shakespeare)."""
    if mode == "lines":
        models, valid = [kn3, NGramLM(order=2).fit(brown[0])], brown[1]
    else:
        models, valid = [NGramLM(order=n).fit(shakespeare[0]) for n in (3, 6)], shakespeare[1]
    mixed = InterpolatedLM(models).fit_weights(valid)
    evaluation = mixed.evaluate(valid)
    assert evaluation.mode == mode == mixed.mode_
    assert evaluation.nats_per_token == pytest.approx(-mixed.em_history_[-1], rel=1e-9)
    for model, loglik in zip(models, mixed.component_logliks_):
        assert model.evaluate(valid).nats_per_token == pytest.approx(-loglik, rel=1e-9)


def test_stream_trained_character_models_mix_on_plain_lines(shakespeare):
    """A character GPT and a character 5-gram trained on a stream end a line with the newline they
    learned; their mixture scores a list of lines (finite perplexity), each token's probability the
    weighted sum of the components' next-character probabilities (read one prefix at a time)."""
    gpt = GPTLM(n_layer=1, n_head=2, n_embd=16, context=32, batch_size=8, dropout=0.0, threads=1)
    gpt.fit(shakespeare[0], max_steps=5, progress=False)
    char5 = NGramLM(order=5).fit(shakespeare[0])
    lines = ["ROMEO: The king", "First Citizen:", "Speak, speak."]
    for weights in ([0.3, 0.7], None):
        mixed = InterpolatedLM([gpt, char5], weights=weights)
        if weights is None:
            mixed.fit_weights(lines)  # EM on plain lines scores them as evaluate does
            assert np.all(np.diff(mixed.em_history_) >= 0)
        newline = gpt.tokenizer.vocab["\n"]
        expected = []
        for line in lines:
            ids = gpt.tokenizer.encode(line)
            for k, target in enumerate([*ids, newline]):
                p = [np.exp(model.next_logprobs(ids[:k])[target]) for model in (gpt, char5)]
                expected.append(np.log(mixed.mixture_weights() @ p))
        evaluation = mixed.evaluate(lines)
        assert np.isfinite(evaluation.perplexity) and evaluation.n_zero_prob == 0
        assert evaluation.nll == pytest.approx(-np.sum(expected), rel=1e-5)
        assert mixed.logprob(lines[0]) == pytest.approx(np.sum(expected[: len(lines[0]) + 1]), rel=1e-5)


def test_generate_is_repeatable_with_a_seed(mixture):
    first = mixture.generate("The", max_tokens=12, seed=3)
    assert first.startswith("The") and first == mixture.generate("The", max_tokens=12, seed=3)
    assert mixture.top_next("The", k=3)[0][1] > 0


def test_fit_trains_unfitted_components_and_needs_heldout_text(brown):
    mixed = InterpolatedLM([NGramLM(order=2), NGramLM(order=3)])
    with pytest.raises(LangmodelsError, match="held-out text"):
        mixed.fit(brown[0])
    assert mixed.fit(brown[0], brown[1]) is mixed
    assert all(model.tokenizer is not None for model in mixed.models)
    assert mixed.weights_.shape == (2,) and np.isclose(mixed.weights_.sum(), 1)


# ---- checkpoints ---------------------------------------------------------------------------------


def test_save_then_load_gives_identical_scores(mixture, brown, tmp_path):
    mixture.save(tmp_path / "mix")
    assert (tmp_path / "mix" / "component-0" / "config.json").is_file()
    assert (tmp_path / "mix" / "component-1" / "keys_1.npy").is_file()
    config = json.loads((tmp_path / "mix" / "config.json").read_text())
    assert config["class"] == "InterpolatedLM"
    assert [c["class"] for c in config["fitted"]["components"]] == ["LSTMLM", "NGramLM"]
    loaded = langmodels.load(tmp_path / "mix")
    assert isinstance(loaded, InterpolatedLM)
    np.testing.assert_array_equal(loaded.weights_, mixture.weights_)
    assert loaded.em_history_ == mixture.em_history_
    np.testing.assert_array_equal(loaded.component_logliks_, mixture.component_logliks_)
    flat, lengths = mixture.tokenizer.encode_lines(brown[2][:60])
    np.testing.assert_allclose(loaded.score_lines(flat, lengths), mixture.score_lines(flat, lengths), atol=1e-12)
    assert loaded.generate("The", max_tokens=10, seed=5) == mixture.generate("The", max_tokens=10, seed=5)


def test_a_tampered_component_file_is_refused(kn3, brown, tmp_path):
    InterpolatedLM([kn3, NGramLM(order=2).fit(brown[0])], weights=[0.5, 0.5]).save(tmp_path / "mix")
    tables = tmp_path / "mix" / "component-1" / "logprob_2.npy"
    data = bytearray(tables.read_bytes())
    data[-10] ^= 0xFF
    tables.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="component-1/logprob_2.npy"):
        langmodels.load(tmp_path / "mix")


# ---- components it cannot mix --------------------------------------------------------------------


def test_components_with_different_tokenizers_are_refused(kn3, brown, shakespeare):
    other_words = NGramLM(order=3).fit(brown[1])  # same settings, another text: another vocabulary
    characters = NGramLM(order=3).fit(shakespeare[0])
    for other in (other_words, characters):
        with pytest.raises(ConfigError, match="tokenize differently") as error:
            InterpolatedLM([kn3, other], weights=[0.5, 0.5]).evaluate(brown[2])
        assert "1 (kneser-ney 3-gram" in str(error.value) and "2 (kneser-ney 3-gram" in str(error.value)
        assert "\n" not in str(error.value)


def test_masked_and_unnormalised_components_are_refused(kn3, brown):
    from langmodels.neural.bert import MaskedLM

    with pytest.raises(ConfigError, match="pseudo-likelihoods"):
        InterpolatedLM([kn3, MaskedLM()]).fit(brown[0], brown[1], max_steps=1)
    backoff = NGramLM(order=3, smoothing="stupid-backoff").fit(brown[0])
    with pytest.raises(ConfigError, match="unnormalised"):
        InterpolatedLM([kn3, backoff]).fit_weights(brown[1])


@pytest.mark.parametrize("weights, fragment", [
    ([1.0], "1 entries for 2 models"), ([0.5, -0.1], ">= 0"), ([0, 0], "not all 0"), (["a", 1], "numbers"),
])
def test_bad_weights_are_refused(kn3, brown, weights, fragment):
    with pytest.raises(ConfigError, match=fragment):
        InterpolatedLM([kn3, kn3], weights=weights).evaluate(brown[2])


def test_weights_are_needed_before_scoring(kn3, brown):
    with pytest.raises(LangmodelsError, match="fit_weights"):
        InterpolatedLM([kn3, kn3]).evaluate(brown[2])
    with pytest.raises(ConfigError, match="at least one model"):
        InterpolatedLM([]).fit_weights(brown[1])


# ---- the command line ------------------------------------------------------------------------------


def test_mix_on_the_command_line(capsys, tmp_path, kn3, brown):
    corpus_file = tmp_path / "text.txt"
    corpus_file.write_text("\n".join(corpora.load("brown").train[:3000]) + "\n", encoding="utf-8")
    for order in (2, 3):
        assert run(capsys, "train", "ngram", "--corpus", corpus_file, "--out", tmp_path / f"kn{order}",
                   "--set", f"order={order}")[0] == 0
    code, out, err = run(capsys, "mix", tmp_path / "kn2", tmp_path / "kn3", "--corpus", corpus_file,
                         "--out", tmp_path / "mix")
    assert code == 0, err
    assert "kneser-ney 2-gram" in out and "kneser-ney 3-gram" in out and "mixture valid perplexity" in out
    mixed = langmodels.load(tmp_path / "mix")
    assert isinstance(mixed, InterpolatedLM) and np.isclose(mixed.weights_.sum(), 1)
    printed = float(re.search(r"mixture valid perplexity per token ([0-9.]+)", out).group(1))
    code, out, _ = run(capsys, "evaluate", tmp_path / "mix", "--corpus", corpus_file, "--split", "valid", "--json")
    assert code == 0 and json.loads(out)["model"] == mixed.name
    assert json.loads(out)["perplexity"] == pytest.approx(printed, abs=0.006)  # EM's figure is evaluate's

    kn3.save(tmp_path / "other")  # trained on other lines: another vocabulary
    for argv, fragment in (
        (["mix", tmp_path / "kn2", "--corpus", corpus_file, "--out", tmp_path / "x"], "two or more"),
        (["mix", tmp_path / "kn2", tmp_path / "other", "--corpus", corpus_file, "--out", tmp_path / "x"],
         "tokenize differently"),
        (["mix", tmp_path / "kn2", tmp_path / "kn3", "--corpus", corpus_file, "--out", tmp_path / "kn3"],
         "one of the checkpoints being mixed"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and len(err.splitlines()) == 1 and fragment in err, err


@pytest.mark.filterwarnings("ignore::langmodels.ngram.smoothing.DiscountFallbackWarning")
def test_mix_notes_that_shakespeare_fits_the_weights_on_its_test_split(capsys, tmp_path):
    train = corpora.load("shakespeare").train
    for order in (2, 3):
        NGramLM(order=order).fit(train).save(tmp_path / f"c{order}")
    code, out, err = run(capsys, "mix", tmp_path / "c2", tmp_path / "c3", "--corpus", "shakespeare",
                         "--out", tmp_path / "mix")
    assert code == 0, err
    assert "valid split is its test split" in err and "stream mode" in out
