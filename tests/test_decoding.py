"""Scoring plain lines with any model, string contexts read by the model's own tokenizer, greedy
and near-greedy decoding, several samples per call, and what users are shown (notes, BPE pieces
as text, samples without U+FFFD). Expected values come from the model's own next-token
distribution, token by token, or from numpy/torch formulas, never from earlier output."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from cli_checks import TOY

from langmodels import GPTLM, LSTMLM, NGramLM
from langmodels.base import LangmodelsWarning
from langmodels.corpora import Split
from langmodels.sampling import sample_next, shape_distribution
from langmodels.tokenizers import BPETokenizer

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "context": 16, "batch_size": 8, "threads": 1,
        "eval_every": 1000, "tokenizer": "char"}
STREAM = Split(TOY * 4, name="train", corpus="toy", level="char", mode="stream")


def stream_models():
    torch.manual_seed(0)
    return {
        "gpt": GPTLM(**TINY).fit(STREAM, max_steps=5, progress=False),
        "lstm": LSTMLM(**{key: TINY[key] for key in ("context", "batch_size", "threads", "eval_every", "tokenizer")},
                       n_embd=16, hidden=16, n_layer=1).fit(STREAM, max_steps=5, progress=False),
        "char 5-gram": NGramLM(5, level="char").fit(STREAM),
    }


@pytest.fixture(scope="module")
def stream_trained():
    return stream_models()


def next_token_sum(model, ids, end):
    """sum_k log P(ids[k] | start, ids[:k]) + log P(end | start, ids), from next_logprobs alone."""
    total = sum(model.next_logprobs(ids[:k])[ids[k]] for k in range(len(ids)))
    return total + model.next_logprobs(ids)[end]


# ---- item 5: every model scores plain lines ---------------------------------------------------


@pytest.mark.parametrize("name", ["gpt", "lstm", "char 5-gram"])
def test_a_stream_trained_character_model_ends_a_line_with_its_newline(stream_trained, name):
    model = stream_trained[name]
    newline = model.tokenizer.vocab["\n"]
    assert model.line_end_id() == newline
    line = "the dog sat"  # shorter than the context: scored in one window, as next_logprobs sees it
    ids = model.tokenizer.encode(line)
    logprob = model.logprob(line)
    assert math.isfinite(logprob)
    assert logprob == pytest.approx(next_token_sum(model, ids, newline), abs=1e-4)
    # A list of lines: each line's characters and its newline, every token counted once.
    lines = ["the cat sat", "a dog saw a bird"]
    evaluation = model.evaluate(lines)
    assert evaluation.n_tokens == sum(len(text) + 1 for text in lines)
    assert evaluation.nll == pytest.approx(-sum(model.logprob(text) for text in lines), abs=1e-4)
    assert math.isfinite(model.perplexity(lines))


def test_a_line_trained_model_still_ends_lines_with_end_of_line():
    model = NGramLM(3, level="char").fit(TOY)
    assert model.line_end_id() == model.tokenizer.vocab.eos_id
    ids = model.tokenizer.encode("the cat")
    assert model.logprob("the cat") == pytest.approx(next_token_sum(model, ids, model.tokenizer.vocab.eos_id))


def test_a_string_context_is_read_by_the_models_own_tokenizer(stream_trained):
    char5 = stream_trained["char 5-gram"]
    context = "the dog sat on the m"
    expected = dict(char5.top_next(context, k=len(char5.tokenizer.vocab)))
    assert char5.score("a", context) == pytest.approx(expected["a"])
    assert char5.logscore("a", context) == pytest.approx(math.log2(expected["a"]))
    ids = char5.tokenizer.encode(context)
    assert char5.score("a", context) == pytest.approx(math.exp(char5.next_logprobs(ids)[char5.tokenizer.vocab["a"]]))
    # A list keeps nltk.lm's reading: the tokens as given, without an implied start of line.
    words = NGramLM(2, "laplace").fit(TOY)
    after_the = words.logprobs_after(words.tokenizer.vocab.ids(["the"]))  # no <s> before 'the'
    assert words.score("cat", ["the"]) == pytest.approx(math.exp(after_the[words.tokenizer.vocab["cat"]]))
    assert words.score("cat", "the") == pytest.approx(dict(words.top_next("the", k=50))["cat"])
    # A greedy sample continues the context the way top_next reads it.
    assert char5.generate(context, max_tokens=1, temperature=0) == context + char5.top_next(context, k=1)[0][0]


# ---- item 6: decoding --------------------------------------------------------------------------


def test_temperature_zero_is_the_argmax_with_ties_to_the_lowest_id():
    logprobs = np.log(np.array([0.1, 0.3, 0.3, 0.2, 0.1]))
    for options in ({"temperature": 0}, {"top_k": 1}):
        probs = shape_distribution(logprobs, **options)
        assert probs.tolist() == [0, 1, 0, 0, 0]
        assert {sample_next(logprobs, np.random.default_rng(seed), **options) for seed in range(50)} == {1}
    unique = np.log(np.array([0.1, 0.25, 0.4, 0.25]))
    assert np.argmax(shape_distribution(unique, 0)) == np.argmax(unique) == 2


def test_tiny_temperatures_never_overflow():
    logprobs = np.log(np.array([0.2, 0.5, 0.3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning fails the test
        for temperature in (1e-308, 5e-324, 1e-30):
            assert shape_distribution(logprobs, temperature).tolist() == [0, 1, 0]
        # Near 1 the shape is the softmax of log p / T (torch as the reference).
        expected = torch.softmax(torch.tensor(logprobs) / 0.7, dim=0).numpy()
        np.testing.assert_allclose(shape_distribution(logprobs, 0.7), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["gpt", "char 5-gram"])
def test_greedy_generation_equals_top_k_one_and_the_argmax_chain(stream_trained, name):
    model = stream_trained[name]
    greedy = model.generate("the ", max_tokens=12, temperature=0, seed=1)
    assert greedy == model.generate("the ", max_tokens=12, top_k=1, seed=7)
    ids = model.tokenizer.encode("the ")
    for _ in range(12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangmodelsWarning)  # the context outgrows a 16-token window
            ids.append(int(np.argmax(model.next_logprobs(ids))))
    assert greedy == model.tokenizer.decode(ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert model.generate("the ", max_tokens=12, temperature=1e-308, seed=3) == greedy


def test_generate_num_returns_samples_seeded_seed_plus_i(stream_trained):
    gpt = stream_trained["gpt"]  # GPTLM.generate (the KV cache) hands num to the shared loop
    one_by_one = [gpt.generate("the", max_tokens=6, seed=seed) for seed in (2, 3)]
    assert gpt.generate("the", max_tokens=6, seed=2, num=2) == one_by_one
    model = NGramLM(3).fit(TOY)
    samples = model.generate("the", max_tokens=8, seed=5, num=3)
    assert samples == [model.generate("the", max_tokens=8, seed=5 + i) for i in range(3)]
    assert isinstance(model.generate("the", max_tokens=8, seed=5), str)
    assert len(model.generate("the", max_tokens=8, num=4)) == 4
    with pytest.raises(Exception, match="num"):
        model.generate("the", num=0)


# ---- item 8: what the user is shown ------------------------------------------------------------


def test_bpe_pieces_are_shown_as_text_and_samples_never_cut_a_character():
    lines = ["naïve café señor über"] * 20 + ["the cat sat on the mat"] * 20
    model = NGramLM(3, level="bpe", bpe_vocab_size=300).fit(lines)
    tokenizer = model.tokenizer
    labels = [label for label, _ in model.top_next("the", k=20)]
    assert labels and not any("Ġ" in label for label in labels)
    assert all(label == tokenizer.decode(tokenizer.encode(label)) or label.startswith(("\\x", "<")) for label in labels)
    for token_id in tokenizer.encode(" café señor"):  # whole characters as text, a lone byte as \\xNN
        shown = tokenizer.token_text(token_id)
        assert shown == tokenizer.decode([token_id]) if "\ufffd" not in tokenizer.decode([token_id]) else "\\x" in shown
    # 'é' is two bytes; a sample cut after its first byte shows no U+FFFD and no half character.
    raw = list(tokenizer.encode("caf")) + [5 + 0xC3]
    assert "\ufffd" in tokenizer.decode(raw)
    assert tokenizer.decode_sample(raw) == "caf"
    for seed in range(20):
        assert "\ufffd" not in model.generate("na", max_tokens=3, seed=seed)


def test_notes_name_the_text_and_point_at_the_callers_line():
    model = NGramLM(2).fit(TOY)
    with pytest.warns(LangmodelsWarning) as caught:
        model.logprob("the zebra sat")
    assert "prompt" not in str(caught[0].message) and "text" in str(caught[0].message)
    assert caught[0].filename == __file__
    with pytest.warns(LangmodelsWarning, match="1 prompt token") as caught:
        model.generate("the zebra", max_tokens=3, seed=0)
    assert caught[0].filename == __file__
    gpt = GPTLM(**TINY).fit(STREAM, max_steps=2, progress=False)
    with pytest.warns(LangmodelsWarning, match="sees the last") as caught:
        gpt.next_logprobs(gpt.tokenizer.encode("the cat sat on the mat and more"))
    assert caught[0].filename == __file__  # not torch's no_grad wrapper
    with pytest.warns(LangmodelsWarning, match=r"^2 tokens of the text are not in the vocabulary; read as <unk>$"):
        model.perplexity(["the zebra sat", "a gnu"])  # one note for the call, not one per line
    test = Split(["the zebra sat", "<unk> sat"], name="test", corpus="toy", level="word", mode="lines")
    with pytest.warns(LangmodelsWarning, match=r"^1 test token is not in the vocabulary"):  # a literal <unk> is not
        model.perplexity(test)


def test_bpe_tokenizer_token_text_matches_its_bytes():
    tokenizer = BPETokenizer(vocab_size=300).fit(["the cat the cat the cat"] * 5)
    for token_id in tokenizer.encode(" the cat"):
        assert tokenizer.token_text(token_id) == tokenizer.decode([token_id])


def test_a_tokenizer_without_bytes_drops_a_last_character_cut_short():
    from langmodels.tokenizers import Tokenizer

    class Pieces(Tokenizer):  # a stand-in for a byte-level tokenizer seen only through decode (hf.py's)
        PIECES = (b"caf", b"\xc3", b"\xa9", b" ok")

        def decode(self, ids):
            return b"".join(self.PIECES[i] for i in ids).decode("utf-8", errors="replace")

    pieces = Pieces()
    assert pieces.decode([0, 1]) == "caf\ufffd" and pieces.decode_sample([0, 1]) == "caf"
    assert pieces.decode_sample([0, 1, 2, 3]) == "café ok"
