"""Seeing inside the models: transition graphs against hand counts, attention maps (rows are
distributions, causal for GPT), analogies on an embedding whose answers are known, temperature
and truncation against sampling.py, and every figure command end to end."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from cli_checks import TOY, assert_one_line_error, assert_png, run

from langmodels import corpora
from langmodels.inside import (
    analogy_accuracy,
    attention_maps,
    close_words,
    embedding_projection,
    next_token_distributions,
    read_analogies,
    successor_graph,
    temperature_samples,
)
from langmodels.inside.embeddings import AnalogyQuestion
from langmodels.neural.bert import MaskedLM
from langmodels.neural.core import Embeddings
from langmodels.neural.gpt import GPTLM
from langmodels.ngram import NGramLM
from langmodels.sampling import shape_distribution
from langmodels.tokenizers import Vocabulary

TINY = {"n_layer": 2, "n_head": 2, "n_embd": 16, "context": 16, "batch_size": 4, "threads": 1, "eval_every": 1000}


@pytest.fixture(scope="module")
def bigram():
    return NGramLM(2, "witten-bell").fit(TOY)


@pytest.fixture(scope="module")
def gpt():
    return GPTLM(**TINY).fit(TOY, max_steps=3, progress=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, bigram, gpt):
    """Checkpoint folders of the fixtures' models, for the command line."""
    root = tmp_path_factory.mktemp("inside")
    bigram.save(root / "bigram")
    gpt.save(root / "gpt")
    return root





# ---- transition graphs ----------------------------------------------------------------------------


def test_counted_and_uniform_graphs_match_hand_counts(bigram):
    pairs = Counter((u, v) for line in TOY for u, v in zip(line.split(), line.split()[1:] + ["</s>"]))
    after_the = {v: c for (u, v), c in pairs.items() if u == "the"}
    counted = successor_graph(bigram, "the", depth=1, k=10, weights="counted")
    uniform = successor_graph(bigram, "the", depth=1, k=10, weights="uniform")
    assert set(counted.successors("the")) == set(after_the) == set(uniform.successors("the"))
    for word, count in after_the.items():
        assert counted.edges["the", word]["probability"] == pytest.approx(count / sum(after_the.values()))
        assert counted.edges["the", word]["count"] == count
        assert uniform.edges["the", word]["probability"] == pytest.approx(1 / len(after_the))


def test_model_graph_uses_the_models_probabilities_and_expands_to_depth(bigram):
    graph = successor_graph(bigram, "the", depth=2, k=2)
    assert graph.out_degree("the") == 2
    for source, target, data in graph.edges(data=True):
        assert data["probability"] == pytest.approx(bigram.score(data["token"], [source]))
    assert max(layer for _, layer in graph.nodes(data="layer")) == 2


def test_trigram_states_are_word_pairs():
    trigram = NGramLM(3, "mle").fit(TOY)
    graph = successor_graph(trigram, "the dog", depth=2, k=3)
    assert graph.graph["root"] == "the dog"
    assert set(graph.successors("the dog")) == {"dog sat", "dog ate"}
    assert graph.edges["the dog", "dog sat"]["probability"] == pytest.approx(0.5)


def test_graph_command_writes_png_and_uniform_svg(capsys, folders, tmp_path):
    code, out, err = run(capsys, "graph", folders / "bigram", "--word", "the", "--depth", "2", "-k", "3",
                         "--out", tmp_path / "g.png")
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'g.png'} (")
    assert_png(tmp_path / "g.png")
    code, _, err = run(capsys, "graph", folders / "bigram", "--word", "the", "--uniform", "--out", tmp_path / "u.svg")
    assert code == 0, err
    assert b"<svg" in (tmp_path / "u.svg").read_bytes()[:1000]


def test_graph_unknown_word_suggests_close_ones(capsys, folders, tmp_path):
    code, _, err = run(capsys, "graph", folders / "bigram", "--word", "dgo", "--out", tmp_path / "g.png")
    assert_one_line_error(code, err, "'dgo' is not in the vocabulary", "'dog'")
    assert not (tmp_path / "g.png").exists()


def test_graph_of_a_neural_checkpoint_is_refused(capsys, folders, tmp_path):
    code, _, err = run(capsys, "graph", folders / "gpt", "--word", "the", "--out", tmp_path / "g.png")
    assert_one_line_error(code, err, "not an n-gram model")


def test_close_words_prefer_other_case_and_frequent_words():
    vocab = Vocabulary(["the", "The", "then", "them", "cat"])
    assert close_words("THE", vocab)[0] == "the"
    assert close_words("cta", vocab) == ["cat"]
    assert close_words("zzzz", vocab) == []


# ---- attention maps ---------------------------------------------------------------------------------


def test_gpt_attention_rows_are_causal_distributions(gpt, tmp_path):
    weights, tokens = attention_maps(gpt, "the cat sat on the mat", path=tmp_path / "a.png")
    L, H, T, _ = weights.shape
    assert (L, H) == (TINY["n_layer"], TINY["n_head"])
    assert tokens == ["<s>", "the", "cat", "sat", "on", "the", "mat"] and T == len(tokens)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    above = np.triu_indices(T, k=1)  # key after query: hidden from a causal model
    assert np.all(weights[..., above[0], above[1]] == 0)
    assert_png(tmp_path / "a.png")


def test_masked_encoder_attention_covers_both_directions():
    bert = MaskedLM(**TINY).fit(TOY, max_steps=1, progress=False)
    weights, tokens = attention_maps(bert, "a cat saw a dog")
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and len(tokens) == weights.shape[-1]
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    assert np.any(np.triu(weights, k=1) > 0)


def test_attention_command(capsys, folders, tmp_path):
    code, _, err = run(capsys, "attention", folders / "gpt", "the dog sat", "--out", tmp_path / "a.png")
    assert code == 0, err
    assert_png(tmp_path / "a.png")


def test_attention_of_an_ngram_model_is_one_line(capsys, folders, tmp_path):
    code, _, err = run(capsys, "attention", folders / "bigram", "the cat", "--out", tmp_path / "a.png")
    assert_one_line_error(code, err, "no attention")


def test_a_figure_must_be_png_or_svg(capsys, folders, tmp_path):
    code, _, err = run(capsys, "attention", folders / "gpt", "the cat", "--out", tmp_path / "a.pdf")
    assert_one_line_error(code, err, ".png or .svg")


# ---- embeddings ---------------------------------------------------------------------------------------


def constructed_embeddings() -> Embeddings:
    """Gender and royalty as two orthogonal directions, and a plural direction: every analogy
    along them has one exact answer."""
    words = ["man", "woman", "king", "queen", "boy", "girl", "dog", "dogs", "cat", "cats", "apple"]
    gender, royal, young, plural, animal, fruit = np.eye(6)
    vectors = {
        "man": np.zeros(6), "woman": gender, "king": royal, "queen": royal + gender,
        "boy": young, "girl": young + gender,
        "dog": animal, "dogs": animal + plural, "cat": animal + 0.5 * young, "cats": animal + 0.5 * young + plural,
        "apple": fruit,
    }
    # A shared offset keeps 'man' from being the zero vector (unit length is taken of each).
    matrix = np.vstack([np.full(6, 0.0)] * 5 + [vectors[w] + 0.3 for w in words])
    return Embeddings(matrix, Vocabulary(words))


def test_analogy_accuracy_solves_a_constructed_embedding():
    embeddings = constructed_embeddings()
    questions = [
        ("gender", "man", "woman", "king", "queen"),
        ("gender", "man", "woman", "boy", "girl"),
        ("gender", "king", "queen", "boy", "girl"),
        ("plural", "dog", "dogs", "cat", "cats"),
        ("plural", "cat", "cats", "dog", "dogs"),
        ("plural", "dog", "dogs", "apple", "apples"),  # 'apples' is not in the vocabulary: skipped
        ("wrong", "man", "woman", "king", "apple"),  # the embedding answers 'queen': counted wrong
    ]
    result = analogy_accuracy(embeddings, questions)
    assert (result["correct"], result["answered"], result["skipped"], result["questions"]) == (5, 6, 1, 7)
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["categories"]["gender"] == {"accuracy": 1.0, "correct": 3, "answered": 3, "skipped": 0}
    assert result["categories"]["plural"]["skipped"] == 1 and result["categories"]["plural"]["accuracy"] == 1.0
    assert result["categories"]["wrong"]["accuracy"] == 0.0
    for _, a, b, c, d in questions[:5]:  # the one-question answer of Embeddings.analogy agrees
        assert embeddings.analogy(a, b, c, k=1)[0][0] == d


def test_shipped_analogies_use_only_brown_training_words():
    questions = read_analogies()
    assert len(questions) == 3180 and len({q.category for q in questions}) == 10
    assert all(isinstance(q, AnalogyQuestion) for q in questions)
    vocabulary = {word for line in corpora.load("brown").train for word in line.split()}
    missing = {w for q in questions for w in q[1:]} - vocabulary
    assert not missing


def test_projection_returns_the_plotted_coordinates(gpt, tmp_path):
    words = ["the", "cat", "dog", "mat", "log", "bird"]
    pca = embedding_projection(gpt, words, path=tmp_path / "p.png")
    assert list(pca) == words and all(len(xy) == 2 for xy in pca.values())
    assert_png(tmp_path / "p.png")
    tsne = embedding_projection(gpt, words, method="tsne")
    assert np.all(np.isfinite(list(tsne.values())))


def test_embeddings_command(capsys, folders, tmp_path):
    code, out, err = run(capsys, "embeddings", folders / "gpt", "--words", "the,cat,dog,mat", "--out",
                         tmp_path / "e.png", "--nearest", "cat", "-k", "3", "--analogy", "cat,dog,mat", "--analogies")
    assert code == 0, err
    assert_png(tmp_path / "e.png")
    assert "nearest to cat:" in out and "cat : dog :: mat : ?" in out
    assert out.splitlines()[-1].split()[:5] == ["all", "-", "0", "0", "3180"]  # toy words: all skipped


def test_embeddings_unknown_word_suggests_close_ones(capsys, folders):
    code, _, err = run(capsys, "embeddings", folders / "gpt", "--nearest", "bidr")
    assert_one_line_error(code, err, "'bidr' is not in the vocabulary", "'bird'")


def test_embeddings_of_an_ngram_model_are_refused(capsys, folders):
    code, _, err = run(capsys, "embeddings", folders / "bigram", "--nearest", "the")
    assert_one_line_error(code, err, "no embeddings")


# ---- temperature and truncation ------------------------------------------------------------------------


def test_distributions_are_those_generate_samples_from(gpt, tmp_path):
    tokens, settings = next_token_distributions(gpt, "the", temperatures=(0.5, 1.0, 2.0), top_k=3, top_p=0.5,
                                                n_tokens=5, path=tmp_path / "t.png")
    assert_png(tmp_path / "t.png")
    logprobs = gpt.next_logprobs(gpt.encode_context("the"))
    shown = [gpt.tokenizer.vocab[t] for t in tokens]
    assert len(tokens) == 5 and np.all(np.diff(logprobs[shown]) <= 0)
    by_label = {s.label.split(" (")[0]: s for s in settings}
    np.testing.assert_allclose(by_label["T = 1"].probabilities[:-1], np.exp(logprobs[shown]), rtol=1e-6)
    for setting in settings:
        expected = shape_distribution(logprobs, setting.temperature, setting.top_k, setting.top_p)
        np.testing.assert_allclose(setting.probabilities[:-1], expected[shown])
        assert setting.probabilities.sum() == pytest.approx(1.0)
    assert by_label["T = 0.5"].entropy_bits < by_label["T = 1"].entropy_bits < by_label["T = 2"].entropy_bits
    assert by_label["top-k = 3"].kept == 3


def test_samples_at_each_temperature_are_seeded(gpt):
    samples = temperature_samples(gpt, "the", temperatures=(0.5, 2.0), samples=2, seed=7, max_tokens=5)
    assert list(samples) == [0.5, 2.0] and all(len(texts) == 2 for texts in samples.values())
    assert samples[2.0][1] == gpt.generate("the", 5, temperature=2.0, seed=8)


def test_temperature_command(capsys, folders, tmp_path):
    code, out, err = run(capsys, "temperature", folders / "bigram", "the", "--out", tmp_path / "t.png",
                         "--temperatures", "0.5,1,3", "--top-k", "2", "--samples", "2", "--seed", "1")
    assert code == 0, err
    assert_png(tmp_path / "t.png")
    assert "--- temperature 3 ---" in out and "(rest)" in out


@pytest.mark.parametrize("temperatures", ["0.5,x", "1,nan", "-1"])
def test_temperature_command_refuses_bad_temperatures(capsys, folders, temperatures):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = run(capsys, "temperature", folders / "bigram", "the", "--temperatures", temperatures)
    assert_one_line_error(code, err, "temperature")
