"""The n-gram family against properties, hand-worked examples, an independent reference
implementation of modified Kneser-Ney, nltk.lm where it defines the same thing, and KenLM."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langmodels import ArpaLM, BigramLM, NGramLM, TrigramLM, corpora, load
from langmodels.errors import CheckpointError, ConfigError, LangmodelsError
from langmodels.ngram.probing import ProbingIndex
from langmodels.ngram.smoothing import SMOOTHINGS, DiscountFallbackWarning

# The tables hold float32 logs (contract C-3, as KenLM's): a log L is off by up to |L| * 2**-24,
# so a probability by a relative 1e-6 (|L| < 16) and a distribution's sum by its entropy * 2**-24.
FLOAT32_REL = 1e-6

TOY = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat saw the dog",
    "a dog sat",
]

sentences = st.lists(st.lists(st.sampled_from("abcd"), min_size=0, max_size=7), min_size=1, max_size=8).filter(
    lambda lines: any(lines)
)
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fit(lines, order, smoothing, **options):
    """Fit on token lists, silencing the discount-fallback warning tiny random corpora trigger."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        return NGramLM(order, smoothing, **options).fit([" ".join(line) for line in lines])


# ---- properties ----------------------------------------------------------------------------


@fast
@given(lines=sentences, order=st.integers(1, 5), smoothing=st.sampled_from(list(SMOOTHINGS)))
def test_every_next_token_distribution_sums_to_one(lines, order, smoothing):
    lm = fit(lines, order, smoothing)
    vocab = lm.tokenizer.vocab
    seen = [vocab[token] for token in lines[0]]
    unseen = [vocab["d"], vocab["zzz"], vocab["a"], vocab["d"]]
    for context in ([], seen, seen[:1], unseen, [vocab.eos_id]):
        logprobs = lm.next_logprobs(context)
        assert logprobs.shape == (len(vocab),)
        assert abs(np.logaddexp.reduce(logprobs) - 0.0) < FLOAT32_REL
        assert np.all(np.isneginf(logprobs[[vocab.bos_id, vocab.pad_id, vocab.mask_id]]))


@fast
@given(lines=sentences, order=st.integers(1, 4), smoothing=st.sampled_from(list(SMOOTHINGS)))
def test_score_ids_agrees_with_next_logprobs(lines, order, smoothing):
    lm = fit(lines, order, smoothing)
    vocab = lm.tokenizer.vocab
    ids = [vocab[t] for t in ("a", "b", "zz", "c", "a", "d")]
    scores = lm.score_ids([ids, []])
    assert [len(s) for s in scores] == [len(ids) + 1, 1]
    expected = [lm.next_logprobs(ids[:k])[token] for k, token in enumerate(ids + [vocab.eos_id])]
    if lm.is_normalised:
        np.testing.assert_allclose(scores[0], expected, rtol=1e-12, atol=1e-12)
    else:  # stupid backoff: raw scores; next_logprobs renormalises them, so only the ranking agrees
        assert np.all(np.isfinite(scores[0]))
    assert scores[1][0] == pytest.approx(lm.next_logprobs([])[vocab.eos_id]) or not lm.is_normalised


# ---- an independent reference implementation of interpolated modified Kneser-Ney ------------


def reference_kneser_ney(lines, order):
    """Chen & Goodman (1998) eqs. 17 and 26 with KenLM's conventions, written with plain dicts."""
    grams = [Counter() for _ in range(order + 1)]
    for line in lines:
        tokens = ["<s>", *line, "</s>"]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                gram = tuple(tokens[i : i + n])
                if gram != ("<s>",):
                    grams[n][gram] += 1
    adjusted = {order: dict(grams[order])}
    for n in range(order - 1, 0, -1):
        left_extensions = Counter(gram[1:] for gram in grams[n + 1])
        adjusted[n] = {g: (c if g[0] == "<s>" else left_extensions[g]) for g, c in grams[n].items()}
    discounts = {}
    for n in range(1, order + 1):
        n_k = Counter(adjusted[n].values())
        estimate = None
        if all(n_k[k] for k in (1, 2, 3)):
            y = n_k[1] / (n_k[1] + 2 * n_k[2])
            estimate = [k - (k + 1) * y * n_k[k + 1] / n_k[k] for k in (1, 2, 3)]
            if not all(0 <= d <= k for k, d in enumerate(estimate, start=1)):
                estimate = None
        discounts[n] = estimate or [0.5, 1.0, 1.5]
    support = {w for line in lines for w in line} | {"</s>", "<unk>"}

    def prob(word, history):
        if len(history) == 0:
            n, lower = 1, 1 / len(support)
        else:
            n, lower = len(history) + 1, prob(word, history[1:])
        continuations = {g[-1]: a for g, a in adjusted[n].items() if g[:-1] == history}
        total = sum(continuations.values())
        if total == 0:
            return lower
        d1, d2, d3 = discounts[n]
        discount = {0: 0.0, 1: d1, 2: d2}
        released = sum(discount.get(a, d3) for a in continuations.values() if a > 0)
        a = continuations.get(word, 0)
        return (a - discount.get(a, d3) if a else 0.0) / total + released / total * lower

    def sentence_logprob(line):
        tokens = ["<s>", *[w if w in support else "<unk>" for w in line], "</s>"]
        return sum(math.log(prob(tokens[i], tuple(tokens[max(0, i - order + 1) : i]))) for i in range(1, len(tokens)))

    return sentence_logprob


@settings(max_examples=30, deadline=None)
@given(lines=sentences, order=st.integers(1, 4), test=st.lists(st.sampled_from("abcde"), max_size=6))
def test_kneser_ney_matches_reference_implementation(lines, order, test):
    lm = fit(lines, order, "kneser-ney")
    reference = reference_kneser_ney(lines, order)
    ours = lm.score_ids([lm.tokenizer.encode(" ".join(test))])[0].sum()
    assert ours == pytest.approx(reference(test), rel=FLOAT32_REL, abs=FLOAT32_REL)


def test_kneser_ney_hand_computed_bigram():
    # Corpus "<s> a b </s>", "<s> b </s>"; fixed discounts D1=0.5, D2=1, D3+=1.5; V = {a, b, </s>, <unk>}.
    # Unigram continuation counts: a 1 (<s>), b 2 (a, <s>), </s> 1 (b): total 4,
    #   gamma() = (0.5*2 + 1*1)/4 = 1/2, p(a) = 0.5/4 + 1/8 = 1/4, p(b) = 1/4 + 1/8 = 3/8, p(</s>) = 1/4.
    # Context <s>: a 1, b 1 (raw counts): gamma = (0.5*2)/2 = 1/2, p(a|<s>) = 0.25 + 0.5*0.25 = 3/8.
    # Context a: b 1: gamma = 0.5, p(b|a) = 0.5 + 0.5*(3/8) = 11/16.
    # Context b: </s> 2: gamma = (1*1)/2 = 1/2, p(</s>|b) = (2-1)/2 + 0.5*(1/4) = 5/8.
    lm = BigramLM("kneser-ney", discount=[0.5, 1.0, 1.5]).fit(["a b", "b"])
    vocab = lm.tokenizer.vocab
    # score() reads the context as nltk.lm does: no implied <s>, so no context is the unigram.
    assert lm.score("a") == pytest.approx(1 / 4)
    assert lm.score("<unk>") == pytest.approx(1 / 8)
    assert lm.score("a", ["<s>"]) == pytest.approx(3 / 8)
    assert np.exp(lm.next_logprobs([])[vocab["a"]]) == pytest.approx(3 / 8)  # after start-of-line
    # Unseen continuations of b back off to the unigram: p(b | b) = gamma(b) p(b).
    assert lm.score("b", ["b"]) == pytest.approx(0.5 * 3 / 8)
    assert lm.score("b", ["<s>"]) == pytest.approx(0.25 + 0.5 * 3 / 8)
    assert lm.score("</s>", ["b"]) == pytest.approx(5 / 8)
    assert math.exp(lm.logprob("a b")) == pytest.approx(3 / 8 * 11 / 16 * 5 / 8)
    assert lm.next_logprobs([vocab["b"]])[vocab["a"]] == pytest.approx(math.log(0.5 * 0.25))


# ---- agreement with nltk.lm ------------------------------------------------------------------


def nltk_model(cls, order, **options):
    """An nltk.lm model whose vocabulary has the same size as ours: the training words, </s>
    and nltk's <UNK> (nltk's '<s>' is then read as <UNK>, which the toy corpus never uses)."""
    from nltk.lm import Vocabulary
    from nltk.lm.preprocessing import padded_everygram_pipeline

    text = [line.split() for line in TOY]
    train, _ = padded_everygram_pipeline(order, text)
    words = [w for line in text for w in line] + ["</s>"]
    lm = cls(order=order, vocabulary=Vocabulary(words, unk_cutoff=1), **options)
    lm.fit(train)
    return lm


def seen_contexts(order):
    contexts = set()
    for line in TOY:
        tokens = ["<s>"] * (order - 1) + line.split()
        for i in range(order - 1, len(tokens)):
            history = tuple(tokens[i - order + 1 : i])
            if history.count("<s>") <= 1:
                contexts.add(history)
    return sorted(contexts)


def nltk_context(history):
    return tuple("<UNK>" if w == "<s>" else w for w in history)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize(
    ("ours", "theirs", "options"),
    [("mle", "MLE", {}), ("laplace", "Laplace", {}), ("lidstone", "Lidstone", {"gamma": 0.3})],
)
def test_flat_smoothings_match_nltk(order, ours, theirs, options):
    import nltk.lm

    reference = nltk_model(getattr(nltk.lm, theirs), order, **options)
    lm = NGramLM(order, ours, k=options.get("gamma", 0.5)).fit(TOY)
    words = sorted({w for line in TOY for w in line.split()}) + ["</s>"]
    for history in seen_contexts(order):
        for word in words:
            assert lm.score(word, history) == pytest.approx(reference.score(word, nltk_context(history)),
                                                            rel=FLOAT32_REL, abs=1e-12)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize(
    ("ours", "options", "theirs", "their_options"),
    [
        ("witten-bell", {}, "WittenBellInterpolated", {}),
        ("absolute", {"discount": 0.75}, "AbsoluteDiscountingInterpolated", {"discount": 0.75}),
    ],
)
def test_interpolation_step_matches_nltk(order, ours, options, theirs, their_options):
    """nltk ends its recursion at the raw unigram and we at the uniform distribution, so compare
    each interpolation step: P(w | h) = alpha(w | h) + gamma(h) P(w | h') with nltk's alpha, gamma."""
    import nltk.lm

    reference = nltk_model(getattr(nltk.lm, theirs), order, **their_options)
    lm = NGramLM(order, ours, **options).fit(TOY)
    words = sorted({w for line in TOY for w in line.split()}) + ["</s>"]
    for history in seen_contexts(order):
        for word in words:
            alpha, gamma = reference.estimator.alpha_gamma(word, nltk_context(history))
            expected = alpha + gamma * lm.score(word, history[1:])
            assert lm.score(word, history) == pytest.approx(expected, rel=FLOAT32_REL, abs=1e-12)


# ---- the figures KenLM gives on the shipped corpora --------------------------------------------


@pytest.fixture(scope="module")
def brown():
    return corpora.load("brown")


def test_brown_trigram_kneser_ney_matches_kenlm(brown):
    # KenLM lmplz -o 3 (modified KN, no pruning) on the same split: test perplexity 147.7010.
    evaluation = NGramLM(3, "kneser-ney").fit(brown.train).evaluate(brown.test)
    assert evaluation.n_tokens == 171_297
    assert evaluation.perplexity == pytest.approx(147.7010, abs=0.005)


def test_shakespeare_char_5gram_matches_kenlm():
    # KenLM lmplz -o 5 --discount_fallback on characters, the last 10 % scored as one stream: 4.764.
    shakespeare = corpora.load("shakespeare")
    with pytest.warns(DiscountFallbackWarning, match="order 1"):
        lm = NGramLM(5, "kneser-ney").fit(shakespeare.train)
    evaluation = lm.evaluate(shakespeare.test)
    assert evaluation.mode == "stream" and evaluation.n_tokens == 111_540
    assert evaluation.perplexity == pytest.approx(4.764, abs=0.0005)


# ---- ARPA, checkpoints, generation -----------------------------------------------------------


@pytest.fixture(scope="module")
def small_brown_model(brown):
    return NGramLM(3, "kneser-ney").fit(brown.train[:3000])


def test_arpa_export_import_gives_identical_scores(small_brown_model, brown, tmp_path):
    path = tmp_path / "model.arpa"
    small_brown_model.to_arpa(path)
    imported = ArpaLM.read(path)
    lines = list(brown.test[:300])
    ours = small_brown_model.evaluate(lines)
    theirs = imported.evaluate(lines)
    assert theirs.nll == pytest.approx(ours.nll, rel=1e-12)
    for context in ([], ["The"], ["of", "the"], ["zzz", "qqq"]):
        np.testing.assert_allclose(
            np.exp(imported.next_logprobs(imported.encode_context(context))),
            np.exp(small_brown_model.next_logprobs(small_brown_model.encode_context(context))),
            atol=1e-12,
        )


def test_kenlm_reads_our_arpa_and_agrees_per_sentence(small_brown_model, brown, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    path = tmp_path / "model.arpa"
    small_brown_model.to_arpa(path)
    oracle = kenlm.Model(str(path))
    lines = list(brown.test[:300])
    encoded = [small_brown_model.tokenizer.encode(line) for line in lines]
    ours = [scores.sum() / math.log(10) for scores in small_brown_model.score_ids(encoded)]
    theirs = [oracle.score(line, bos=True, eos=True) for line in lines]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)  # KenLM stores float32


def test_arpa_refuses_what_it_cannot_express(tmp_path):
    with pytest.raises(ConfigError, match="laplace"):
        NGramLM(2, "laplace").fit(TOY).to_arpa(tmp_path / "x.arpa")
    with pytest.raises(ConfigError, match="whitespace"):
        NGramLM(2, "kneser-ney", level="char").fit(TOY).to_arpa(tmp_path / "x.arpa")


@pytest.mark.parametrize("smoothing", list(SMOOTHINGS))
def test_save_then_load_gives_identical_scores(smoothing, tmp_path):
    lm = NGramLM(3, smoothing).fit(TOY)
    lm.save(tmp_path / "ckpt")
    again = load(tmp_path / "ckpt")
    assert type(again) is NGramLM and again.get_params() == lm.get_params()
    ids = [lm.tokenizer.encode(line) for line in TOY + ["the mat sat on a cat", "unknown words here"]]
    for a, b in zip(lm.score_ids(ids), again.score_ids(ids)):
        np.testing.assert_array_equal(a, b)


def test_bigram_and_trigram_classes_round_trip(tmp_path):
    for cls, order in ((BigramLM, 2), (TrigramLM, 3)):
        lm = cls("witten-bell").fit(TOY)
        assert lm.order == order
        lm.save(tmp_path / cls.__name__)
        assert type(load(tmp_path / cls.__name__)) is cls


def test_same_seed_same_text_and_sampling_options(small_brown_model):
    first = small_brown_model.generate("The", 25, seed=7, top_k=50, top_p=0.9, temperature=0.8)
    assert first == small_brown_model.generate("The", 25, seed=7, top_k=50, top_p=0.9, temperature=0.8)
    assert first.startswith("The ")
    samples = {small_brown_model.generate(max_tokens=25, seed=seed) for seed in range(5)}
    assert len(samples) > 1
    greedy = small_brown_model.generate("of the", 1, top_k=1)
    assert greedy == "of the " + small_brown_model.top_next("of the", k=1)[0][0]


def test_top_next_is_sorted_and_normalised(small_brown_model):
    best = small_brown_model.top_next("in the", k=10)
    probs = [p for _, p in best]
    assert probs == sorted(probs, reverse=True) and len(best) == 10
    everything = small_brown_model.top_next("in the", k=len(small_brown_model.tokenizer.vocab))
    assert sum(p for _, p in everything) == pytest.approx(1.0, abs=FLOAT32_REL)


def test_nltk_style_aliases(small_brown_model):
    assert small_brown_model.logscore("the", ["of"]) == pytest.approx(math.log2(small_brown_model.score("the", ["of"])))


# ---- the graph view ----------------------------------------------------------------------------


def test_uniform_bigram_graph_is_the_transition_graph():
    lm = BigramLM("uniform").fit(["a b c", "a c b", "b b"])
    graph = lm.graph()
    assert set(graph.successors("a")) == {"b", "c"}
    assert graph["a"]["b"]["probability"] == pytest.approx(1 / 2)
    assert set(graph.successors("b")) == {"c", "</s>", "b"}
    for node in graph:
        out = [d["probability"] for _, _, d in graph.out_edges(node, data=True)]
        if out:
            assert sum(out) == pytest.approx(1.0)
    dot = lm.to_dot()
    assert dot.startswith("digraph") and '"a" -> "b"' in dot


def test_trigram_graph_moves_between_contexts():
    graph = TrigramLM("mle").fit(["a b c"]).graph()
    assert graph.has_edge("a b", "b c") and graph["a b"]["b c"]["token"] == "c"


# ---- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"order": 0}, "order"),
        ({"order": "3"}, "order"),
        ({"smoothing": "good-turing"}, "unknown smoothing"),
        ({"smoothing": "lidstone", "k": 0}, "k > 0"),
        ({"smoothing": "kneser-ney", "discount": 0.5}, "three numbers"),
        ({"smoothing": "kneser-ney", "discount": [0.5, 3, 1]}, "discounts"),
        ({"smoothing": "absolute", "discount": 1.5}, "discount"),
        ({"smoothing": "stupid-backoff", "backoff": 2}, "backoff"),
        ({"level": "sentence"}, "level"),
    ],
)
def test_bad_options_are_one_clear_error(options, message):
    options = {"order": 2, **options}
    with pytest.raises(LangmodelsError, match=message):
        NGramLM(options.pop("order"), **options).fit(TOY)


def test_stupid_backoff_ranks_but_has_no_perplexity():
    lm = NGramLM(3, "stupid-backoff").fit(TOY)
    assert lm.top_next("the", k=1)[0][0] in {"cat", "dog", "mat", "log"}
    with pytest.raises(LangmodelsError, match="unnormalised"):
        lm.perplexity(TOY)
    with pytest.raises(LangmodelsError, match="unnormalised"):
        lm.logprob("the cat")


def test_mle_infinite_perplexity_is_announced():
    lm = NGramLM(2, "mle").fit(TOY)
    with pytest.warns(UserWarning, match="probability zero"):
        evaluation = lm.evaluate(["the mat sat"])
    assert math.isinf(evaluation.perplexity) and evaluation.n_zero_prob >= 1


def test_empty_training_text_and_unfitted_model():
    with pytest.raises(LangmodelsError, match="empty"):
        NGramLM(2).fit(["", "   "])
    with pytest.raises(LangmodelsError, match="not fitted"):
        NGramLM(2).perplexity(TOY)


def test_unknown_prompt_words_become_unk_with_a_note():
    lm = NGramLM(2).fit(TOY)
    with pytest.warns(UserWarning, match="not in the vocabulary"):
        text = lm.generate("zebra", 3, seed=1)
    assert text.startswith("zebra")


def test_damaged_checkpoints_are_refused_and_never_replace_a_good_one(tmp_path):
    lm = NGramLM(2).fit(TOY)
    good = tmp_path / "good"
    lm.save(good)
    weights = good / "logprob_2.npy"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load(good)
    lm.save(good)
    (good / "config.json").write_text((good / "config.json").read_text()[:40])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(good)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "missing")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        lm.save(other)
    assert (other / "mine.txt").read_text() == "keep me"


@settings(max_examples=60, deadline=None)
@given(
    keys=st.sets(st.integers(0, 2**40), max_size=300),
    absent=st.lists(st.integers(-5, 2**40), max_size=50),
    clustered=st.booleans(),
)
def test_probing_index_finds_exactly_the_stored_keys(keys, absent, clustered):
    keys = np.array(sorted(keys), dtype=np.int64)
    if clustered:  # consecutive keys, as n-gram keys of one context are
        keys = np.arange(keys.size, dtype=np.int64) + 7
    index = ProbingIndex(keys)
    query = np.concatenate([keys[::-1], np.array(absent, dtype=np.int64)])
    expected = np.array([{int(k): i for i, k in enumerate(keys)}.get(int(q), -1) for q in query])
    np.testing.assert_array_equal(index.find(query), expected)
    assert np.count_nonzero(index.slots >= 0) == keys.size  # every key stored once


def test_a_windowed_index_written_to_a_file_finds_every_key(tmp_path):
    """The build one window of slots at a time (many windows here), with keys whose homes are
    the last slots so that some wrap past the end to slot 0, written through the file path."""
    from langmodels.ngram.probing import slot_count
    from langmodels.ngram.tables import open_array, write_index

    rng = np.random.default_rng(0)
    n_keys = 40_000
    n_slots = slot_count(n_keys)
    candidates = rng.integers(0, 2**40, size=4_000_000)
    at_the_end = candidates[ProbingIndex.home(candidates, n_slots) >= n_slots - 8][:40]
    assert at_the_end.size == 40  # more keys than the last 8 slots hold: some must wrap
    keys = np.unique(np.concatenate([at_the_end, rng.integers(0, 2**40, size=n_keys - 40)]))
    path = tmp_path / "index.npy"
    write_index(path, np.asarray(keys), memory=1)  # the smallest window: 2^16 slots, three windows here
    slots = open_array(path)
    # With 1 MiB the keys' homes (4 bytes each) are hashed once and kept: the same windows, the same slots.
    write_index(tmp_path / "kept.npy", np.asarray(keys), memory=1 << 20)
    np.testing.assert_array_equal(open_array(tmp_path / "kept.npy"), slots)
    assert slots.size == slot_count(keys.size) > 2 * 2**16
    assert np.count_nonzero(slots[:8] >= 0) and sorted(slots[slots >= 0].tolist()) == list(range(keys.size))
    index = ProbingIndex(keys, slots)
    np.testing.assert_array_equal(index.find(keys[::-1]), np.arange(keys.size)[::-1])
    absent = np.setdiff1d(rng.integers(0, 2**40, size=5000), keys)
    assert (index.find(absent) == -1).all()


def test_no_lines_score_to_nothing():
    lm = NGramLM(3, "kneser-ney").fit(TOY)
    assert lm.score_ids([]) == []
    assert lm.score_lines(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)).size == 0
    assert lm.score_stream(np.zeros(0, dtype=np.int64)).size == 0
