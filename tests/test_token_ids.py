"""The id cache (langmodels.token_ids) and the tokenizers' block passes it is built on."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langmodels import token_ids as token_ids_module
from langmodels.corpora import Split, split_text
from langmodels.errors import ConfigError, CorpusError
from langmodels.token_ids import TokenIds, fit_token_ids, id_dtype, token_ids
from langmodels.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer, block_lines, text_blocks

LINES = [
    "the cat sat on the mat",
    "  the dog  sat on the log ",
    "a cat and a dog",
    "the <unk> was here",
    "héllo wörld 😀 ok",
]
# Lines as they may come from a user: blank ones, edge and inner whitespace of several kinds
# (tab, no-break space, the line separator U+2028, which str.split treats as space), NUL.
LINE = st.text(alphabet=" \t\xa0\u2028\x00abcé😀", max_size=12)
LINE_LISTS = st.lists(LINE, max_size=10)


def fitted(kind):
    training = LINES + ["a b c é \x00 😀"]
    if kind == "word":
        return WordTokenizer().fit(training)
    if kind == "char":
        return CharTokenizer().fit(training)
    return BPETokenizer(vocab_size=300, min_frequency=1).fit(training)


TOKENIZERS = {kind: fitted(kind) for kind in ("word", "char", "bpe")}
FIRST_SEEN_PARTS = token_ids_module._first_seen_parts


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, and caching for texts of any length."""
    monkeypatch.setenv("LANGMODELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(token_ids_module, "MIN_CACHED_LINES", 0)
    return tmp_path / "cache" / "ids"


def count_encodes(monkeypatch, tokenizer):
    """A list that grows by one each time `tokenizer` encodes a block."""
    calls = []
    real = tokenizer.encode_block

    def counted(block, dtype=np.int64):
        calls.append(len(block))
        return real(block, dtype)

    monkeypatch.setattr(tokenizer, "encode_block", counted)
    return calls


# ----------------------------------------------------------------------------------------------
# The ids are encode_lines' ids


@settings(deadline=None, max_examples=60)
@given(LINE_LISTS, st.sampled_from(["word", "char", "bpe"]), st.integers(1, 40))
def test_ids_equal_encode_lines_for_any_block_size(lines, kind, block_chars):
    tokenizer = TOKENIZERS[kind]
    flat, lengths = tokenizer.encode_lines(lines)
    for size in (block_chars, 1 << 22):
        got = token_ids(lines, tokenizer, cache=False, block_chars=size)
        assert got.ids.tolist() == flat.tolist()
        assert got.lengths.tolist() == lengths.tolist()
        assert got.offsets.dtype == np.int64 and got.offsets[0] == 0
        assert [got.line(i).tolist() for i in range(len(lines))] == [tokenizer.encode(line) for line in lines]


@settings(deadline=None, max_examples=40)
@given(LINE_LISTS, st.sampled_from(["word", "char", "bpe"]))
def test_encode_block_equals_encode_lines_of_its_lines(lines, kind):
    tokenizer = TOKENIZERS[kind]
    for block in ("\n".join(lines) + "\n", "\n".join(lines)):  # with and without a final newline
        ids, lengths = tokenizer.encode_block(block)
        flat, expected = tokenizer.encode_lines(block_lines(block))
        assert ids.tolist() == flat.tolist() and lengths.tolist() == expected.tolist()


def test_char_stream_comes_back_with_its_newlines():
    tokenizer = TOKENIZERS["char"]
    for final in (True, False):
        split = Split(LINES, name="train", corpus="x", level="char", mode="stream", trailing_newline=final)
        got = token_ids(split, tokenizer, cache=False, block_chars=8)
        assert got.final_newline is final
        stream = got.with_line_ends(tokenizer.vocab["\n"], final=got.final_newline)
        assert stream.tolist() == tokenizer.encode(split_text(split))


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, min_size=1, max_size=12), st.integers(1, 30))
def test_vocabulary_pass_over_blocks_equals_one_pass(lines, block_chars):
    text = "\n".join(lines) + "\n"
    one = [WordTokenizer().fit(lines), CharTokenizer().fit(lines),
           BPETokenizer(vocab_size=300, min_frequency=1).fit(lines)]
    blocks = [WordTokenizer(), CharTokenizer(), BPETokenizer(vocab_size=300, min_frequency=1)]
    for whole, piecewise in zip(one, blocks):
        piecewise.fit_blocks(text_blocks(text, block_chars))
        assert piecewise.to_dict() == whole.to_dict()


def test_text_blocks_rejoin_to_the_text():
    split = Split(LINES, name="train", corpus="x", level="word", mode="lines", trailing_newline=False)
    for size in (1, 7, 1 << 20):
        blocks = list(text_blocks(split, size))
        assert "".join(blocks) == split_text(split)
        assert all(block.endswith("\n") for block in blocks[:-1])
        assert "".join(text_blocks(LINES, size)) == split_text(LINES)


def test_a_line_with_a_newline_is_refused():
    with pytest.raises(CorpusError, match="contains a newline"):
        token_ids(["one line", "two\nlines"], TOKENIZERS["word"], cache=False)


# ----------------------------------------------------------------------------------------------
# Width of the ids


def test_uint16_where_the_vocabulary_fits_else_uint32():
    assert id_dtype(65_535) == np.uint16 and id_dtype(65_536) == np.uint32
    words = [f"w{i}" for i in range(65_535 - 5 + 1)]  # 65,536 tokens with the five specials
    lines = [" ".join(words[i : i + 1000]) for i in range(0, len(words), 1000)]
    big = WordTokenizer().fit(lines)
    small = WordTokenizer().fit(lines[1:])
    assert len(big.vocab) == 65_536 and len(small.vocab) < 65_536
    got = token_ids(lines, big, cache=False)
    assert got.ids.dtype == np.uint32 and int(got.ids.max()) == 65_535
    assert got.ids.tolist() == big.encode_lines(lines)[0].tolist()
    assert token_ids(lines, small, cache=False).ids.dtype == np.uint16


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(alphabet=" abcé<>s\x00", max_size=10).filter(lambda line: "\n" not in line),
                      min_size=1, max_size=40),
       min_count=st.integers(1, 3), block_chars=st.integers(1, 64))
def test_one_pass_in_processes_equals_fit_then_encode(cache, monkeypatch, lines, min_count, block_chars):
    """fit_token_ids (two forked workers counting and encoding alternate blocks, renumbered into
    the vocabulary after) gives fit()'s vocabulary and token_ids' ids; a block holding NUL (the
    line marker) sends it down the plain path."""
    monkeypatch.setattr(token_ids_module, "PARALLEL_MIN_LINES", 0)
    made = []
    monkeypatch.setattr(token_ids_module, "_first_seen_parts",
                        lambda *args: made.append(FIRST_SEEN_PARTS(*args)) or made[-1])
    ours = WordTokenizer(min_count=min_count)
    try:
        reference = WordTokenizer(min_count=min_count).fit(lines)
    except ConfigError:  # every word below min_count: both paths refuse the text alike
        with pytest.raises(ConfigError, match="maps every token"):
            fit_token_ids(lines, ours, workers=2, block_chars=block_chars)
        return
    got = fit_token_ids(lines, ours, workers=2, block_chars=block_chars)
    assert made and (made[0] is None) == any("\x00" in line for line in lines)  # the workers' path, unless NUL
    assert ours.vocab.tokens == reference.vocab.tokens
    expected = token_ids(lines, reference, cache=False, block_chars=block_chars)
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_array_equal(got.offsets, expected.offsets)
    assert got.ids.dtype == expected.ids.dtype


# ----------------------------------------------------------------------------------------------
# The cache


def test_cached_ids_are_reused(cache, monkeypatch):
    tokenizer = TOKENIZERS["word"]
    calls = count_encodes(monkeypatch, tokenizer)
    first = token_ids(LINES, tokenizer)
    assert first.path is not None and first.path.parent == cache and calls
    assert isinstance(first.ids, np.memmap) and first.ids.dtype == np.uint16
    made = (first.path / "ids.npy").stat().st_mtime_ns
    done = len(calls)
    again = token_ids(list(LINES), tokenizer)
    assert len(calls) == done  # not tokenized again
    assert again.path == first.path and (again.path / "ids.npy").stat().st_mtime_ns == made
    assert again.ids.tolist() == tokenizer.encode_lines(LINES)[0].tolist()
    meta = json.loads((first.path / "meta.json").read_text())
    assert meta["n_lines"] == len(LINES) and meta["n_tokens"] == len(first.ids)


def test_a_changed_text_or_tokenizer_gets_new_ids(cache):
    tokenizer = TOKENIZERS["word"]
    first = token_ids(LINES, tokenizer)
    changed = LINES[:-1] + [LINES[-1] + " more"]
    other_text = token_ids(changed, tokenizer)
    refit = WordTokenizer(min_count=2).fit(LINES)
    other_tokenizer = token_ids(LINES, refit)
    assert len({first.path, other_text.path, other_tokenizer.path}) == 3
    assert other_text.ids.tolist() == tokenizer.encode_lines(changed)[0].tolist()
    assert other_tokenizer.ids.tolist() == refit.encode_lines(LINES)[0].tolist()
    assert first.ids.tolist() != other_tokenizer.ids.tolist()  # 'the' keeps its id, rare words are <unk>


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {
    "flipped id": lambda folder: flip_last_byte(folder / "ids.npy"),
    "flipped offset": lambda folder: flip_last_byte(folder / "offsets.npy"),
    "truncated ids": lambda folder: (folder / "ids.npy").write_bytes((folder / "ids.npy").read_bytes()[:-3]),
    "empty ids": lambda folder: (folder / "ids.npy").write_bytes(b""),
    "missing offsets": lambda folder: (folder / "offsets.npy").unlink(),
    "missing meta": lambda folder: (folder / "meta.json").unlink(),
    "garbled meta": lambda folder: (folder / "meta.json").write_text("{not json"),
    "lying meta": lambda folder: (folder / "meta.json").write_text(
        (folder / "meta.json").read_text().replace('"n_lines": 5', '"n_lines": 4')),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_entry_is_rebuilt(cache, monkeypatch, damage):
    tokenizer = TOKENIZERS["bpe"]
    expected = tokenizer.encode_lines(LINES)
    first = token_ids(LINES, tokenizer)
    calls = count_encodes(monkeypatch, tokenizer)
    DAMAGES[damage](first.path)
    rebuilt = token_ids(LINES, tokenizer)
    assert calls  # tokenized again
    assert rebuilt.path == first.path
    assert rebuilt.ids.tolist() == expected[0].tolist() and rebuilt.lengths.tolist() == expected[1].tolist()
    done = len(calls)
    token_ids(LINES, tokenizer)
    assert len(calls) == done  # and the rebuilt entry is intact


def test_an_unwritable_cache_gives_ids_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LANGMODELS_CACHE", str(blocker))
    monkeypatch.setattr(token_ids_module, "MIN_CACHED_LINES", 0)
    got = token_ids(LINES, TOKENIZERS["char"])
    assert got.path is None
    assert got.ids.tolist() == TOKENIZERS["char"].encode_lines(LINES)[0].tolist()


def test_short_texts_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGMODELS_CACHE", str(tmp_path))
    got = token_ids(LINES, TOKENIZERS["word"])
    assert isinstance(got, TokenIds) and got.path is None and not (tmp_path / "ids").exists()


def test_empty_text(cache):
    got = token_ids([], TOKENIZERS["word"])
    assert got.n_lines == 0 and got.n_tokens == 0 and got.offsets.tolist() == [0]
    assert token_ids([], TOKENIZERS["word"]).path == got.path


# ----------------------------------------------------------------------------------------------
# n-grams on BPE tokens (issue 12, item 6)


@pytest.fixture(scope="module")
def brown_part():
    from langmodels import corpora

    brown = corpora.load("brown")
    return brown.train[:3000], brown.valid[:300]


@pytest.fixture(scope="module")
def bpe_trigram(brown_part):
    from langmodels import NGramLM

    return NGramLM(order=3, smoothing="kneser-ney", level="bpe", bpe_vocab_size=600).fit(brown_part[0])


def test_a_bpe_ngram_counts_bpe_pieces(bpe_trigram, brown_part):
    tokenizer = bpe_trigram.tokenizer
    assert isinstance(tokenizer, BPETokenizer) and len(tokenizer.vocab) == 600
    line = brown_part[1][0]
    ids = tokenizer.encode(line)
    assert tokenizer.decode(ids) == line and len(ids) > len(line.split())  # pieces, not words
    for context in ([], ids[:1], ids[:5], [tokenizer.vocab.unk_id] * 3):
        probabilities = np.exp(bpe_trigram.next_logprobs(context))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)


def test_a_bpe_ngram_scores_saves_and_loads(bpe_trigram, brown_part, tmp_path):
    from langmodels import NGramLM, load

    valid = brown_part[1]
    result = bpe_trigram.evaluate(valid)
    flat, lengths = bpe_trigram.tokenizer.encode_lines(list(valid))
    assert result.n_tokens == len(flat) + len(lengths)  # every piece and every end of line
    unigram = NGramLM(order=1, smoothing="laplace", level="bpe", bpe_vocab_size=600)
    assert result.perplexity < unigram.fit(brown_part[0]).evaluate(valid).perplexity
    bpe_trigram.save(tmp_path / "kn3-bpe")
    again = load(tmp_path / "kn3-bpe")
    assert again.bpe_vocab_size == 600
    assert again.evaluate(valid).nll == result.nll
    assert again.tokenizer.to_dict() == bpe_trigram.tokenizer.to_dict()


def test_cli_trains_a_bpe_ngram(tmp_path, capsys):
    from cli_checks import TOY, run

    corpus = tmp_path / "toy.txt"
    corpus.write_text("\n".join(TOY * 4) + "\n")
    code, out, err = run(capsys, "train", "ngram", "--corpus", corpus, "--out", tmp_path / "bpe",
                         "--set", "level=bpe", "--set", "order=2", "--set", "bpe_vocab_size=300")
    assert code == 0, err
    assert "valid perplexity" in out
    code, out, err = run(capsys, "evaluate", tmp_path / "bpe", "--corpus", corpus, "--json")
    assert code == 0, err
    assert json.loads(out)["n_tokens"] > 0


# ----------------------------------------------------------------------------------------------
# The models read the ids


def test_evaluation_reads_the_cached_ids(cache, monkeypatch):
    from langmodels import NGramLM

    train = Split(LINES * 3, name="train", corpus="toy", level="word", mode="lines")
    test = Split(LINES[::-1], name="test", corpus="toy", level="word", mode="lines")
    lm = NGramLM(order=2, smoothing="witten-bell").fit(train)
    calls = count_encodes(monkeypatch, lm.tokenizer)
    first = lm.evaluate(test)
    done = len(calls)
    assert done and len(list(cache.iterdir())) >= 1
    second = lm.evaluate(test)
    assert len(calls) == done  # the second evaluation tokenized nothing
    assert second.nll == first.nll and second.n_tokens == first.n_tokens
    flat, lengths = lm.tokenizer.encode_lines(list(test))
    assert first.n_tokens == len(flat) + len(lengths)


@pytest.mark.parametrize("level", ["word", "char"])
def test_stream_ids_are_the_texts_ids(level):
    from langmodels import NGramLM

    for final in (True, False):
        split = Split(LINES, name="train", corpus="toy", level=level, mode="stream", trailing_newline=final)
        lm = NGramLM(order=2, smoothing="witten-bell").fit(split)
        stream = lm._stream_ids(split)
        if level == "char":  # the exact text, newlines included
            assert stream.tolist() == lm.tokenizer.encode(split_text(split))
        else:  # words with </s> after every line
            eos = lm.tokenizer.vocab.eos_id
            assert stream.tolist() == [i for line in LINES for i in [*lm.tokenizer.encode(line), eos]]


@pytest.mark.parametrize("max_len", [None, 1, 3])
def test_training_rows_are_the_lines_ids(max_len):
    from langmodels.neural.data import IGNORE, LineBatches

    tokenizer = TOKENIZERS["char"]
    ids = token_ids(LINES + [""], tokenizer, cache=False)
    bos, eos, pad = 1, 2, 3
    data = LineBatches(ids.ids, ids.lengths, bos=bos, eos=eos, pad=pad, max_len=max_len)
    rows = []  # (inputs, targets) of every piece, padding dropped
    for batch in data.in_order(4):
        for inputs, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
            real = [t != IGNORE for t in targets]
            assert all(i == pad for i, keep in zip(inputs, real) if not keep)
            rows.append(([i for i, keep in zip(inputs, real) if keep], [t for t in targets if t != IGNORE]))
    expected = []
    for line in [*LINES, ""]:
        full = [bos, *tokenizer.encode(line), eos]
        piece = max_len or len(full) - 1
        windows = [full[s : s + piece + 1] for s in range(0, len(full) - 1, piece)]
        expected += [(window[:-1], window[1:]) for window in windows]
    assert rows == expected
    assert data.n_tokens == ids.n_tokens + ids.n_lines
    assert data.target_ids().tolist() == [t for _, targets in expected for t in targets]


def test_the_tokenizer_hash_is_kept_only_while_the_tokenizer_is_unchanged():
    """tokenizer_sha256 is reused from the tokenizer between calls (it keys the id cache of
    every evaluate), and computed afresh once a fit, a load or a setting rebinds an attribute."""
    import hashlib

    from langmodels.token_ids import tokenizer_sha256

    def uncached(tokenizer):
        data = json.dumps(tokenizer.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()

    first, second = ["a b c", "a b"], ["x y", "y z z"]
    tokenizer = WordTokenizer().fit(first)
    digests = [tokenizer_sha256(tokenizer)]
    assert tokenizer_sha256(tokenizer) == digests[0] == uncached(tokenizer)
    for change in (lambda: tokenizer.fit(second), lambda: setattr(tokenizer, "min_count", 2),
                   lambda: tokenizer._load_state(WordTokenizer().fit(first)._state())):
        change()
        digests.append(tokenizer_sha256(tokenizer))
        assert digests[-1] == uncached(tokenizer) == tokenizer_sha256(tokenizer)
    assert len(set(digests)) == len(digests)
