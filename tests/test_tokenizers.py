"""Vocabulary, word / character / byte-level BPE tokenizers, and their JSON files."""

import json
import os
import random
import subprocess
import sys
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langmodels.errors import CheckpointError, ConfigError
from langmodels.tokenizers import (
    BYTE_SYMBOLS,
    PRETOKEN,
    BPETokenizer,
    CharTokenizer,
    Vocabulary,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_dict,
)

LINES = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the <unk> was here",
]

SENTENCES = st.lists(st.text(alphabet=" abcdé😀\t", max_size=30), max_size=8)


# ----------------------------------------------------------------------------------------------
# Vocabulary


def test_specials_have_fixed_ids():
    vocab = Vocabulary(["x", "y"])
    assert vocab.tokens[:5] == ["<unk>", "<s>", "</s>", "<pad>", "<mask>"]
    assert (vocab.unk_id, vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.mask_id) == (0, 1, 2, 3, 4)
    assert (Vocabulary.UNK, Vocabulary.BOS, Vocabulary.EOS, Vocabulary.PAD, Vocabulary.MASK) == (
        "<unk>", "<s>", "</s>", "<pad>", "<mask>")
    assert [vocab[s] for s in Vocabulary.SPECIALS] == [0, 1, 2, 3, 4]
    assert vocab["x"] == 5 and vocab.token(6) == "y"
    assert vocab["never seen"] == vocab.unk_id
    assert "x" in vocab and "never seen" not in vocab
    assert len(vocab) == 7


def test_from_counts_orders_by_count_then_string():
    counts = {"b": 3, "a": 3, "c": 5, "d": 1, "<unk>": 9}
    vocab = Vocabulary.from_counts(counts)
    assert vocab.tokens[5:] == ["c", "a", "b", "d"]  # <unk> is the special, not a new entry
    assert len(vocab) == 9


def test_min_count_and_max_size():
    counts = {"a": 5, "b": 3, "c": 3, "d": 2, "e": 1}
    assert Vocabulary.from_counts(counts, min_count=3).tokens[5:] == ["a", "b", "c"]
    assert Vocabulary.from_counts(counts, max_size=7).tokens[5:] == ["a", "b"]
    assert len(Vocabulary.from_counts(counts, max_size=5)) == 5


def test_min_count_agrees_with_nltk_lm():
    from nltk.lm import Vocabulary as NltkVocabulary

    words = " ".join(LINES * 3 + ["rare words only once", "the the"]).split()
    for cutoff in (1, 2, 4, 7):
        ours = Vocabulary.from_counts(Counter(words), min_count=cutoff)
        theirs = NltkVocabulary(words, unk_cutoff=cutoff)
        assert set(ours.tokens[5:]) | {"<unk>"} == set(theirs) - {"<UNK>"} | {"<unk>"}


def test_token_out_of_range():
    with pytest.raises(IndexError):
        Vocabulary(["a"]).token(6)
    with pytest.raises(IndexError):
        Vocabulary(["a"]).token(-1)


def test_vocabulary_dict_round_trip():
    vocab = Vocabulary.from_counts(Counter(["the", "cat", "and", "the", "hat"]))
    again = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again == vocab and again.tokens == vocab.tokens


@pytest.mark.parametrize("data", [
    None, [], {}, {"tokens": "abc"}, {"tokens": ["<unk>", "<s>"]},
    {"tokens": ["<s>", "<unk>", "</s>", "<pad>", "<mask>"]},
    {"tokens": ["<unk>", "<s>", "</s>", "<pad>", "<mask>", "a", "a"]},
    {"tokens": ["<unk>", "<s>", "</s>", "<pad>", "<mask>", 7]},
])
def test_malformed_vocabulary(data):
    with pytest.raises(CheckpointError):
        Vocabulary.from_dict(data)


# ----------------------------------------------------------------------------------------------
# Words


def test_word_tokenizer_basics():
    tok = WordTokenizer().fit(LINES)
    assert tok.level == "word"
    ids = tok.encode("the cat sat on the zebra")
    assert len(ids) == 6  # no boundary markers
    assert ids[-1] == tok.vocab.unk_id
    assert tok.vocab.tokens[5] == "the"  # the most frequent word comes first
    assert tok.encode("<unk>") == [tok.vocab.unk_id]
    assert tok.decode(ids) == "the cat sat on the <unk>"
    assert tok.decode([1, *tok.encode("a dog"), 2, 3, 3]) == "a dog"
    assert tok.tokenize("  a\tdog \n") == ["a", "dog"]


def test_word_min_count_and_max_size():
    tok = WordTokenizer(min_count=2).fit(LINES)
    assert set(tok.vocab.tokens[5:]) == {"the", "cat", "sat", "on", "dog", "a"}
    tok = WordTokenizer(max_size=7).fit(LINES)
    assert tok.vocab.tokens[5:] == ["the", "a"]  # 'a' wins the tie with 'cat' etc. by spelling


@given(SENTENCES)
def test_word_encode_lines_agrees_with_encode(lines):
    tok = WordTokenizer().fit(LINES + ["a b c d é"])
    flat, lengths = tok.encode_lines(lines)
    assert flat.dtype == np.int64 and lengths.dtype == np.int64
    assert lengths.tolist() == [len(tok.encode(line)) for line in lines]
    assert flat.tolist() == [i for line in lines for i in tok.encode(line)]


def test_nltk_mode_works_offline(tmp_path):
    # A clean HOME and no NLTK_DATA: no punkt model anywhere to be found.
    code = (
        "from langmodels.tokenizers import WordTokenizer\n"
        "tok = WordTokenizer(mode='nltk').fit([\"Hello, world! Don't panic.\"])\n"
        "print(tok.tokenize(\"Don't panic, world.\"))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "['Do', \"n't\", 'panic', ',', 'world', '.']"


def test_bad_word_params():
    with pytest.raises(ConfigError, match="mode"):
        WordTokenizer(mode="spaces").fit(LINES)
    with pytest.raises(ConfigError, match="min_count"):
        WordTokenizer(min_count=0).fit(LINES)
    with pytest.raises(ConfigError, match="max_size"):
        WordTokenizer(max_size=3).fit(LINES)


def test_unfitted_tokenizer():
    with pytest.raises(ConfigError, match="not fitted"):
        WordTokenizer().encode("a")
    with pytest.raises(ConfigError, match="not fitted"):
        BPETokenizer().decode([5])


# ----------------------------------------------------------------------------------------------
# Characters


def test_char_tokenizer_basics():
    tok = CharTokenizer().fit(["ab", "ba", "c"])
    assert tok.level == "char"
    assert "\n" in tok.vocab  # the newlines between lines are characters too
    assert tok.encode("abz") == [tok.vocab["a"], tok.vocab["b"], tok.vocab.unk_id]
    assert tok.decode(tok.encode("ab\nc")) == "ab\nc"
    assert tok.tokenize("ab") == ["a", "b"]


def test_char_min_count():
    tok = CharTokenizer(min_count=2).fit("aab")
    assert tok.vocab.tokens[5:] == ["a"]
    assert tok.encode("b") == [0]


@settings(max_examples=200)
@given(st.text())
def test_char_round_trip(text):
    tok = CharTokenizer().fit(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


@given(SENTENCES, st.text(max_size=20))
def test_char_encode_lines_agrees_with_encode(lines, seen):
    tok = CharTokenizer().fit(seen + "abc ")
    flat, lengths = tok.encode_lines(lines)
    assert flat.dtype == np.int64 and lengths.dtype == np.int64
    assert lengths.tolist() == [len(line) for line in lines]
    assert flat.tolist() == [i for line in lines for i in tok.encode(line)]
    assert flat.tolist() == [tok.vocab[c] for line in lines for c in line]


# ----------------------------------------------------------------------------------------------
# Byte-level BPE


@pytest.fixture(scope="module")
def training_lines():
    from langmodels import corpora

    return list(corpora.load("shakespeare").train[:4000])


@pytest.fixture(scope="module")
def bpe(training_lines):
    return BPETokenizer(vocab_size=261 + 300).fit(training_lines)


def test_bpe_layout(bpe):
    assert bpe.level == "subword"
    assert len(bpe.vocab) == 561
    assert bpe.vocab.tokens[:5] == list(Vocabulary.SPECIALS)
    assert bpe.vocab.tokens[5:261] == BYTE_SYMBOLS
    assert bpe.vocab.tokens[5 + ord(" ")] == "Ġ" and bpe.vocab.tokens[5 + ord("\n")] == "Ċ"
    assert len(bpe.merges) == 300
    assert bpe.encode("A") == [5 + ord("A")]


def test_bpe_learns_common_words(bpe):
    assert bpe.tokenize(" the") == ["Ġthe"]
    assert bpe.tokenize(" and") == ["Ġand"]
    assert len(bpe.encode(" the king's")) < len(" the king's")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_bpe_round_trips_any_text(bpe, text):
    ids = bpe.encode(text)
    assert all(i >= 5 for i in ids)  # encode never emits a special
    assert bpe.decode(ids) == text


def test_bpe_round_trips_unseen_scripts_and_emoji(bpe):
    for text in ["😀🎉 naïve café", "日本語のテキスト", "\x00\x7f\r\n\t ", "<unk> <s></s>"]:
        assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=200)
@given(st.text())
def test_pretokens_cover_the_text(text):
    pieces = PRETOKEN.findall(text)
    assert "".join(pieces) == text
    assert all(piece for piece in pieces)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SENTENCES)
def test_bpe_encode_lines_agrees_with_encode(bpe, lines):
    flat, lengths = bpe.encode_lines(lines)
    assert flat.dtype == np.int64 and lengths.dtype == np.int64
    assert lengths.tolist() == [len(bpe.encode(line)) for line in lines]
    assert flat.tolist() == [i for line in lines for i in bpe.encode(line)]


def test_bpe_is_deterministic_and_order_free(training_lines):
    assert (BPETokenizer(vocab_size=400).fit(training_lines).merges
            == BPETokenizer(vocab_size=400).fit(training_lines).merges)
    # Merges depend on the table of pre-tokens, not on the order of the lines. (Blank lines
    # and edge spaces are left out: where they fall changes the whitespace pre-tokens.)
    lines = [line for line in training_lines if line and line.strip() == line]
    shuffled = list(lines)
    random.Random(0).shuffle(shuffled)
    assert shuffled != lines
    assert (BPETokenizer(vocab_size=400).fit(lines).merges
            == BPETokenizer(vocab_size=400).fit(shuffled).merges)


def reference_bpe(words, vocab_size, min_frequency):
    """Sennrich et al. (2016), Algorithm 1, recounting every pair at every step."""
    table = [s.encode() for s in Vocabulary.SPECIALS] + [bytes([b]) for b in range(256)]
    words = {tuple(b + 5 for b in word.encode()): count for word, count in Counter(words).items()}
    merges, banned = [], set()
    while len(table) < vocab_size:
        pairs = Counter()
        for symbols, count in words.items():
            for pair in pairwise(symbols):
                if pair not in banned:
                    pairs[pair] += count
        if not pairs:
            break
        pair = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[pair] < min_frequency:
            break
        spelled = table[pair[0]] + table[pair[1]]
        if spelled in {s.encode() for s in Vocabulary.SPECIALS}:
            banned.add(pair)
            continue
        new = table.index(spelled) if spelled in table[5:] else len(table)
        if new == len(table):
            table.append(spelled)
        merges.append(pair)
        merged_words = {}
        for symbols, count in words.items():
            out, i = [], 0
            while i < len(symbols):
                if tuple(symbols[i:i + 2]) == pair:
                    out.append(new)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged_words[tuple(out)] = merged_words.get(tuple(out), 0) + count
        words = merged_words
    return merges


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab<unk>s ", min_size=1, max_size=12), min_size=1, max_size=15),
       st.integers(1, 3))
def test_bpe_training_agrees_with_naive_reference(lines, min_frequency):
    tok = BPETokenizer(vocab_size=300, min_frequency=min_frequency).fit(lines)
    pieces = PRETOKEN.findall("\n".join(lines) + "\n")
    assert tok.merges == reference_bpe(pieces, 300, min_frequency)


def replay_merges(tok, text):
    """Encode by applying every merge in the order learned (the definition of BPE encoding)."""
    ids = []
    for piece in PRETOKEN.findall(text):
        symbols = [b + 5 for b in piece.encode()]
        for pair in tok.merges:
            merged = tok._ranks[pair][1]
            out, i = [], 0
            while i < len(symbols):
                if tuple(symbols[i:i + 2]) == pair:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            symbols = out
        ids.extend(symbols)
    return ids


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="theking ,.\nabcdwlo", max_size=60))
def test_bpe_encoding_replays_merges_in_order(bpe, text):
    assert bpe.encode(text) == replay_merges(bpe, text)


def test_bpe_never_learns_a_special_token():
    tok = BPETokenizer(vocab_size=400).fit(["<unk> <unk> <s>"] * 50 + ["<unk>"] * 50)
    assert tok.vocab.tokens.count("<unk>") == 1
    assert tok.decode(tok.encode("<unk> <s>")) == "<unk> <s>"
    assert "Ġ<unk>" in tok.vocab


def test_bpe_stops_at_min_frequency():
    tok = BPETokenizer(vocab_size=10_000, min_frequency=2).fit(["abab cdcd xy"])
    assert len(tok.vocab) < 10_000
    assert tok.encode("xy") == [5 + ord("x"), 5 + ord("y")]


def test_bad_bpe_params():
    with pytest.raises(ConfigError, match="vocab_size"):
        BPETokenizer(vocab_size=260).fit(LINES)
    with pytest.raises(ConfigError, match="min_frequency"):
        BPETokenizer(min_frequency=0).fit(LINES)


# ----------------------------------------------------------------------------------------------
# Saving and loading


@pytest.fixture(scope="module")
def fitted(bpe, training_lines):
    return {
        "word": WordTokenizer(min_count=2).fit(training_lines),
        "char": CharTokenizer().fit(training_lines),
        "bpe": bpe,
    }


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_save_and_load_give_identical_encodings(fitted, kind, tmp_path, training_lines):
    tok = fitted[kind]
    path = tmp_path / "tokenizer.json"
    save_tokenizer(tok, path)
    again = load_tokenizer(path)
    assert type(again) is type(tok)
    assert again.get_params() == tok.get_params()
    assert again.vocab == tok.vocab
    sample = "\n".join(training_lines[:300]) + "\nunseen 😀 words"
    assert again.encode(sample) == tok.encode(sample)
    for a, b in zip(again.encode_lines(training_lines), tok.encode_lines(training_lines)):
        assert np.array_equal(a, b)
    assert again.decode(tok.encode(sample)) == tok.decode(tok.encode(sample))
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary left


def test_missing_tokenizer_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(CheckpointError, match="nope.json"):
        load_tokenizer(path)


def test_truncated_tokenizer_file(fitted, tmp_path):
    path = tmp_path / "tokenizer.json"
    save_tokenizer(fitted["bpe"], path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="tokenizer.json.*not valid JSON"):
        load_tokenizer(path)


def tampered(data, **changes):
    data = json.loads(json.dumps(data))
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize("changes", [
    {"version": 99}, {"format": "other"}, {"type": "sentencepiece"}, {"params": {"mode": "x"}},
    {"params": {"mode": "nope", "min_count": 1, "max_size": None}},
    {"params": {"mode": "whitespace", "min_count": -1, "max_size": None}},
    {"vocab": None}, {"vocab": {"tokens": ["a", "b"]}},
])
def test_malformed_word_tokenizer_data(fitted, changes, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(tampered(fitted["word"].to_dict(), **changes)))
    with pytest.raises(CheckpointError) as caught:
        load_tokenizer(path)
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("merges", [
    "abc", [[5]], [[5, 6, 7]], [[5, 999]], [[0, 5]], [["a", "b"]], [[5, 6], [5, 6]],
    [[5 + ord("<"), 5 + ord("s")], [261, 5 + ord(">")]],  # would spell the special '<s>'
])
def test_malformed_bpe_merges(fitted, merges):
    with pytest.raises(CheckpointError, match="merges"):
        tokenizer_from_dict(tampered(fitted["bpe"].to_dict(), merges=merges))


def test_char_vocabulary_must_be_single_characters(fitted):
    data = fitted["char"].to_dict()
    data["vocab"]["tokens"].append("ab")
    with pytest.raises(CheckpointError, match="one character"):
        tokenizer_from_dict(data)


def test_to_dict_is_json(fitted):
    for tok in fitted.values():
        data = tok.to_dict()
        assert json.loads(json.dumps(data)) == data


def test_importable_without_torch():
    code = "import sys, langmodels.tokenizers; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("min_count", [1, 2])
def test_fit_encode_lines_equals_fit_then_encode_lines(min_count):
    lines = ["the cat sat", "", "the <unk> cat and the dog", "dog dog cat"]
    one_pass = WordTokenizer(min_count=min_count)
    flat, lengths = one_pass.fit_encode_lines(lines)
    two_pass = WordTokenizer(min_count=min_count).fit(lines)
    expected_flat, expected_lengths = two_pass.encode_lines(lines)
    assert one_pass.vocab == two_pass.vocab
    np.testing.assert_array_equal(flat, expected_flat)
    np.testing.assert_array_equal(lengths, expected_lengths)
    char = CharTokenizer()
    np.testing.assert_array_equal(char.fit_encode_lines(lines)[0], CharTokenizer().fit(lines).encode_lines(lines)[0])
