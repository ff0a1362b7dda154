"""A user's own data (issue 12): split folders, whole files (`--split all`), compressed input,
and splits that stream their text from the files."""

import bz2
import csv
import gzip
import hashlib
import json
import lzma
import random
import warnings

import pytest
from cli_checks import assert_one_line_error, bench, one_line_error, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langmodels import corpora
from langmodels.corpora import CorpusNote, Split, split_blocks, split_named, split_sha256
from langmodels.corpora.files import FileLines
from langmodels.corpora.reading import scan
from langmodels.ngram import NGramLM

COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def plain_lines(path):
    """A file's non-blank lines, read the plain Python way (the reference for the reader)."""
    return [line for line in path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n") if line.strip()]


@pytest.fixture(autouse=True)
def quiet_notes():
    """The reading notes are what the CLI prints; in the library they are warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusNote)
        yield


# ---- the split-name table -----------------------------------------------------------------------


@pytest.mark.parametrize("filename, split", [
    ("train.txt", "train"), ("ptb.train.txt", "train"), ("wiki.train.tokens", "train"), ("TRAIN.TXT", "train"),
    ("my_train_set.txt", "train"), ("train", "train"), ("train.txt.gz", "train"),
    ("valid.txt", "valid"), ("ptb.valid.txt", "valid"), ("wiki.valid.tokens", "valid"),
    ("validation.jsonl", "valid"), ("dev.txt.gz", "valid"), ("en-dev.txt", "valid"), ("val.bin.txt", "valid"),
    ("test.txt", "test"), ("ptb.test.txt", "test"), ("wiki.test.raw", "test"), ("data-test.txt.xz", "test"),
    ("ptb.char.test.txt", "test"),
    # no split name: the word must be a whole part between separators
    ("training.txt", None), ("trainset.txt", None), ("contest.txt", None), ("latest.txt", None),
    ("devices.txt", None), ("valid2.txt", None), ("README", None), ("ptb.txt", None), ("attest.md", None),
])
def test_split_name_table(filename, split):
    assert split_named(filename) == split


@pytest.mark.parametrize("filename", ["train-test.txt", "dev.test.txt", "valid_train.txt"])
def test_a_name_with_two_splits_is_refused(filename):
    message = one_line_error(split_named, filename)
    assert filename in message and "two splits" in message


def write_lines(path, lines, compress=None):
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(COMPRESSORS[compress](data) if compress else data)
    return path


@pytest.mark.parametrize("files, fragments", [
    ({"a.train.txt": ["x"], "b.train.txt": ["y"], "test.txt": ["z"]}, ["2 files for the train split",
                                                                      "a.train.txt", "b.train.txt"]),
    ({"dev.txt": ["x"], "valid.txt": ["y"], "train.txt": ["z"]}, ["valid split", "dev.txt", "valid.txt"]),
    ({"ptb.test.txt": ["x"]}, ["ptb.test.txt", "no train file"]),
    ({"ptb.test.txt": ["x"], "ptb.valid.txt": ["y"], "notes.txt": ["n"]},
     ["ptb.test.txt", "ptb.valid.txt", "no train file"]),
    ({"train.txt": ["x"], "test.txt": ["   "]}, ["test.txt", "empty"]),
    ({"train.txt": ["only one"], "test.txt": ["t"]}, ["train.txt", "1 line", "valid"]),
    ({"train-test.txt": ["x"]}, ["train-test.txt", "two splits"]),
])
def test_split_folder_mistakes_are_one_line_naming_the_files(tmp_path, files, fragments):
    for name, lines in files.items():
        write_lines(tmp_path / name, lines)
    message = one_line_error(corpora.load, tmp_path)
    for fragment in fragments:
        assert fragment in message, message


# ---- split folders: each split is its file -------------------------------------------------------


def distinct_lines(prefix, n, rng):
    return [f"{prefix}{i} " + " ".join(rng.choice("abcdefg") for _ in range(rng.randint(1, 6))) for i in range(n)]


def test_no_line_of_a_test_file_reaches_train(tmp_path):
    rng = random.Random(0)
    train, valid, test = distinct_lines("tr", 50, rng), distinct_lines("va", 7, rng), distinct_lines("te", 9, rng)
    # Sorted by name, the files come test, train, valid: the old reader concatenated and re-split them.
    write_lines(tmp_path / "ptb.train.txt", train)
    write_lines(tmp_path / "ptb.valid.txt", valid)
    write_lines(tmp_path / "ptb.test.txt", test)
    (tmp_path / "README").write_text("about the corpus\n")
    corpus = corpora.load(tmp_path)
    assert (list(corpus.train), list(corpus.valid), list(corpus.test)) == (train, valid, test)
    assert not set(corpus.train) & set(test) and not set(corpus.valid) & set(test)
    assert list(corpus.split("all")) == train + valid + test  # README is not read
    assert corpus.test.source == str(tmp_path / "ptb.test.txt")
    assert not corpus.valid_is_test


def test_without_a_valid_file_valid_is_the_end_of_train(tmp_path):
    rng = random.Random(1)
    train, test = distinct_lines("tr", 45, rng), distinct_lines("te", 5, rng)
    write_lines(tmp_path / "train.txt", train)
    write_lines(tmp_path / "test.txt", test)
    corpus = corpora.load(tmp_path)
    with pytest.warns(CorpusNote, match="no valid file: valid is the last 4 lines of train.txt"):
        corpus.split("train")
    assert list(corpus.train) == train[:41]
    assert list(corpus.valid) == train[41:] and list(corpus.test) == test
    assert list(corpus.split("all")) == train + test
    # train and valid are parts of train.txt: neither is the file as distributed
    assert corpus.train.source_sha256 is None and corpus.valid.source_sha256 is None
    assert corpus.split("all").source_sha256 is None  # two files
    assert corpus.test.source_sha256 == sha256((tmp_path / "test.txt").read_bytes())


def test_without_a_test_file_test_is_valid(tmp_path):
    rng = random.Random(2)
    train, valid = distinct_lines("tr", 20, rng), distinct_lines("va", 4, rng)
    write_lines(tmp_path / "train.txt", train)
    write_lines(tmp_path / "val.txt", valid)
    corpus = corpora.load(tmp_path)
    assert list(corpus.test) == valid == list(corpus.valid) and corpus.test.name == "test"
    assert corpus.valid_is_test  # neural models then train with fixed budgets (no early stopping)
    assert list(corpus.split("all")) == train + valid  # valid once


def test_a_train_file_alone(tmp_path):
    train = distinct_lines("tr", 30, random.Random(3))
    write_lines(tmp_path / "train.txt", train)
    corpus = corpora.load(tmp_path)
    assert list(corpus.train) == train[:27] and list(corpus.valid) == list(corpus.test) == train[27:]


# ---- plain files and folders: 80/10/10 with one note, or the whole file --------------------------


def test_a_plain_file_is_split_80_10_10_with_one_note(tmp_path):
    lines = [f"line {i}" for i in range(40)]
    write_lines(tmp_path / "data.txt", lines)
    corpus = corpora.load(tmp_path / "data.txt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (32, 4, 4)
        list(corpus.test), corpus.split("valid")
    notes = [str(w.message) for w in caught if w.category is CorpusNote]
    assert len(notes) == 1
    assert "80/10/10" in notes[0] and "train 32 lines, valid 4 lines, test 4 lines" in notes[0]
    assert "--split all" in notes[0]


def test_split_all_is_the_whole_file_even_one_line(tmp_path):
    path = tmp_path / "one.txt"
    path.write_bytes(b"\xef\xbb\xbfjust one line\r\n\r\n")
    corpus = corpora.load(path)
    whole = corpus.split("all")
    assert list(whole) == ["just one line"] and whole.name == "all"
    assert whole.source_sha256 == sha256(path.read_bytes())  # the bytes as distributed, BOM and all
    assert "too few lines" in one_line_error(corpus.split, "train")


def test_all_of_the_shipped_corpora_is_their_text_once():
    shakespeare = corpora.load("shakespeare")
    source = gzip.decompress((corpora.corpora_dir() / "tinyshakespeare.txt.gz").read_bytes()).decode("utf-8")
    assert shakespeare.split("all").text() == source  # train + test (valid is test)
    assert shakespeare.split("all").source_sha256 is None and shakespeare.test.source_sha256 is None


# ---- compressed input ------------------------------------------------------------------------------


def corpus_text(rng, n):
    """Lines with blank lines, CRLF ends, trailing spaces and non-ASCII words, no final newline."""
    out = []
    for i in range(n):
        line = " ".join(rng.choice(["naïve", "café", "the", "a", "日本", "x"]) for _ in range(rng.randint(1, 8)))
        out.append(line + rng.choice(["\n", "\r\n", "  \n", "\n\n", "\n \t\n"]))
    return "".join(out).rstrip("\n")


def figures(corpus):
    return {name: (corpus.text(name), corpus.split(name).sha256(), corpus.split(name).source_sha256,
                   corpus.split(name).figures()) for name in ("train", "valid", "test", "all")}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_a_compressed_file_reads_as_its_text(tmp_path, suffix):
    data = corpus_text(random.Random(4), 300).encode("utf-8")
    (tmp_path / "plain.txt").write_bytes(data)
    (tmp_path / f"packed.txt{suffix}").write_bytes(COMPRESSORS[suffix](data))
    plain, packed = corpora.load(tmp_path / "plain.txt"), corpora.load(tmp_path / f"packed.txt{suffix}")
    assert figures(plain) == figures(packed)
    assert packed.split("all").source_sha256 == sha256(data)
    assert list(packed.split("all")) == plain_lines(tmp_path / "plain.txt")


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_a_compressed_split_folder_reads_as_the_plain_one(tmp_path, suffix):
    rng = random.Random(5)
    texts = {name: corpus_text(rng, n).encode("utf-8") for name, n in (("train", 200), ("dev", 30), ("test", 30))}
    for folder, pack in (("plain", lambda b: b), ("packed", COMPRESSORS[suffix])):
        (tmp_path / folder).mkdir()
        for name, data in texts.items():
            (tmp_path / folder / f"wiki.{name}.tokens{suffix if folder == 'packed' else ''}").write_bytes(pack(data))
    plain, packed = corpora.load(tmp_path / "plain"), corpora.load(tmp_path / "packed")
    assert figures(plain) == figures(packed)
    assert packed.test.source_sha256 == sha256(texts["test"])


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_a_bad_byte_in_a_compressed_file_is_reported_at_its_decompressed_offset(tmp_path, suffix):
    good = "".join(f"line {i} café\n" for i in range(20_000)).encode("utf-8")
    data = good + b"caf\xe9\n" + good[:100]
    path = tmp_path / f"latin.txt{suffix}"
    path.write_bytes(COMPRESSORS[suffix](data))
    offset = len(good) + 3
    message = one_line_error(corpora.load, path)
    assert str(path) in message and "UTF-8" in message and "0xe9" in message
    assert f"offset {offset} of its decompressed bytes" in message
    # the same offset when the bad byte is blocks away from the start
    assert f"offset {offset} " in one_line_error(scan, path, 1000)


PIECES = ["a", "b c", " ", "\t", "\n", "\r", "\r\n", "é", "日本", "\u2028", "\x85", "\ufeff", "\u3000"]


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.sampled_from(["", *sorted(COMPRESSORS)]),
       st.integers(1, 12), st.data())
def test_reading_in_blocks_is_reading_the_whole_file(tmp_path, pieces, suffix, block_bytes, data):
    """Any block size, any compression: the lines of Python's whole-file reading (a BOM at the start
    dropped, CRLF as LF, blank lines dropped), and any line range of them."""
    raw = "".join(pieces).encode("utf-8")
    path = tmp_path / f"f.txt{suffix}"
    path.write_bytes(COMPRESSORS[suffix](raw) if suffix else raw)
    text = raw.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    scanned = scan(path, block_bytes)
    assert scanned.n_lines == len(lines) and scanned.source_sha256 == sha256(raw)
    start = data.draw(st.integers(0, len(lines)))
    stop = data.draw(st.integers(start, len(lines)))
    part = FileLines.whole([scanned]).slice(start, stop)
    assert "".join(part.blocks(block_bytes)) == "".join(line + "\n" for line in lines[start:stop])


def test_damaged_compressed_file_is_one_line(tmp_path):
    path = tmp_path / "broken.txt.gz"
    path.write_bytes(gzip.compress(b"some text\n" * 100)[:-30])
    message = one_line_error(corpora.load, path)
    assert "broken.txt.gz" in message and ".gz" in message


def test_binary_and_hidden_files_are_skipped_compressed_too(tmp_path):
    write_lines(tmp_path / "a.txt", ["one", "two", "three"])
    (tmp_path / "b.bin.gz").write_bytes(gzip.compress(bytes(range(256))))
    write_lines(tmp_path / ".hidden.txt.gz", ["secret"], compress=".gz")
    write_lines(tmp_path / "c.txt.xz", ["four"], compress=".xz")
    assert list(corpora.load(tmp_path).split("all")) == ["one", "two", "three", "four"]


# ---- contract C-1: blocks, sha256, n_lines, lazy lines ---------------------------------------------


def test_a_file_split_streams_its_blocks_without_loading_its_lines(tmp_path):
    lines = [f"{i} " + "word " * (i % 7) for i in range(5000)]
    write_lines(tmp_path / "big.txt", lines)
    test = corpora.load(tmp_path / "big.txt").test
    expected = "".join(line + "\n" for line in lines[4500:])
    blocks = list(test.blocks(1000))
    assert len(blocks) > 10 and all(block.endswith("\n") for block in blocks)
    assert "".join(blocks) == expected
    assert test.sha256() == sha256(expected.encode("utf-8")) and test.n_lines == len(test) == 500
    assert test._lines is None  # nothing above needed the lines as a list
    assert test[0] == lines[4500] and test._lines is not None
    assert test.text() == expected and test == lines[4500:]


def test_slices_of_a_file_split_are_splits_of_the_same_lines(tmp_path):
    lines = [f"w{i}" for i in range(100)]
    write_lines(tmp_path / "f.txt", lines)
    train = corpora.load(tmp_path / "f.txt").train
    head = train[:10]
    assert isinstance(head, Split) and list(head) == lines[:10] and head.text() == "".join(f"w{i}\n" for i in range(10))
    assert list(train[5:75:10]) == lines[5:75:10]


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(-60, 60) | st.none(), st.integers(-60, 60) | st.none(), st.sampled_from([None, 1, 2, -1, -3]))
def test_a_file_split_slices_as_its_list_of_lines(tmp_path, start, stop, step):
    lines = [f"line {i}" for i in range(50)]
    write_lines(tmp_path / "f.txt", lines)
    whole = corpora.load(tmp_path / "f.txt").split("all")
    taken, expected = whole[start:stop:step], lines[start:stop:step]
    assert isinstance(taken, Split) and list(taken) == expected and len(taken) == len(expected)
    assert taken.text() == "".join(line + "\n" for line in expected)


@pytest.mark.parametrize("lines", [[], ["a"], ["a b", "", "c"], ["x" * 50] * 30])
def test_list_helpers_agree_with_split_text(lines):
    text = "".join(line + "\n" for line in lines)
    assert "".join(split_blocks(lines, 64)) == text
    assert split_sha256(lines) == sha256(text.encode("utf-8"))
    split = Split(lines, name="test", corpus="x", level="word", mode="lines")
    assert "".join(split.blocks(64)) == text and split.sha256() == split_sha256(lines)
    assert all(block.endswith("\n") for block in split.blocks(64))


def test_shakespeare_blocks_end_mid_line_only_at_the_end():
    train = corpora.load("shakespeare").train
    blocks = list(train.blocks(1 << 16))
    assert "".join(blocks) == train.text() and all(block.endswith("\n") for block in blocks[:-1])
    assert not blocks[-1].endswith("\n")


# ---- the command line -------------------------------------------------------------------------------


def test_split_all_counts_every_word_of_the_file(capsys, tmp_path):
    path = tmp_path / "story.txt"
    path.write_bytes(corpus_text(random.Random(6), 200).encode("utf-8"))
    model = tmp_path / "model"
    assert run(capsys, "train", "bigram", "--corpus", path, "--out", model)[0] == 0
    code, out, err = run(capsys, "evaluate", model, "--corpus", path, "--split", "all", "--json")
    assert code == 0 and "80/10/10" not in err  # nothing was split
    result = json.loads(out)
    raw = path.read_text(encoding="utf-8")
    n_lines = len(plain_lines(path))
    assert result["split"] == "all"
    assert result["n_words"] == len(raw.split()) + n_lines  # the file's own words and line ends
    assert result["n_tokens"] == result["n_words"]  # a word model predicts each word and each </s>
    # a one-line file is scored whole too
    (tmp_path / "one.txt").write_text("the café\n", encoding="utf-8")
    code, out, err = run(capsys, "evaluate", model, "--corpus", tmp_path / "one.txt", "--split", "all", "--json")
    assert code == 0, err
    assert json.loads(out)["n_words"] == 3
    code, _, err = run(capsys, "train", "bigram", "--corpus", tmp_path / "one.txt", "--out", tmp_path / "m1")
    assert_one_line_error(code, err, "too few lines", "--split all")


def test_commands_that_split_a_file_say_so_once(capsys, tmp_path):
    path = tmp_path / "text.txt"
    write_lines(path, [f"the cat {i}" for i in range(50)])
    code, _, err = run(capsys, "train", "bigram", "--corpus", path, "--out", tmp_path / "m")
    assert code == 0
    notes = [line for line in err.splitlines() if "80/10/10" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "--split all" in notes[0]


def test_corpora_shows_how_a_path_is_read(capsys, tmp_path):
    write_lines(tmp_path / "ptb.train.txt", ["a b c", "d e"])
    write_lines(tmp_path / "ptb.valid.txt.gz", ["a"], compress=".gz")
    write_lines(tmp_path / "ptb.test.txt", ["b c", "c", "e e e"])
    code, out, _ = run(capsys, "corpora", tmp_path)
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.split()}
    assert rows["train"][1:] == ["2", "5", "10", str(tmp_path / "ptb.train.txt")]
    assert rows["valid"][1:] == ["1", "1", "2", str(tmp_path / "ptb.valid.txt.gz")]
    assert rows["test"][1:] == ["3", "6", "12", str(tmp_path / "ptb.test.txt")]
    code, out, _ = run(capsys, "corpora", tmp_path, "--json")
    described = json.loads(out)
    test_file = tmp_path / "ptb.test.txt"
    assert described["splits"]["test"] == {"lines": 3, "words": 6, "chars": 12, "files": [str(test_file)],
                                           "source_sha256": sha256(test_file.read_bytes())}
    assert "split folder" in described["note"]
    code, _, err = run(capsys, "corpora", tmp_path / "nothing.txt")
    assert_one_line_error(code, err, "nothing.txt")


PTB_BENCH = """
name = "ptb-like"
[[corpus]]
name = "ptb"
[measure]
sample_seeds = [0]
[[model]]
name = "kn3"
kind = "ngram"
settings = { order = 3 }
"""


def write_ptb_like(folder):
    """PTB's layout and conventions (lower case, <unk>, one sentence per line, a leading space)."""
    rng = random.Random(7)
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "<unk>", "N", "and", "of"]
    words += [f"w{i}" for i in range(300)]

    def lines(n, extra=()):
        return [" " + " ".join(rng.choice(words + list(extra)) for _ in range(rng.randint(2, 12))) + " "
                for _ in range(n)]

    folder.mkdir()
    write_lines(folder / "ptb.train.txt", lines(400))
    write_lines(folder / "ptb.valid.txt", lines(50))
    write_lines(folder / "ptb.test.txt", lines(60, extra=["zebra"]))  # a word train never saw
    return folder


@pytest.mark.filterwarnings("ignore::langmodels.ngram.smoothing.DiscountFallbackWarning")
def test_a_ptb_like_folder_gives_the_figures_of_its_files(capsys, tmp_path):
    folder = write_ptb_like(tmp_path / "ptb")
    train, test = plain_lines(folder / "ptb.train.txt"), plain_lines(folder / "ptb.test.txt")
    expected = NGramLM(order=3).fit(train).evaluate(test)
    # the command line
    model = tmp_path / "kn3"
    code, _, err = run(capsys, "train", "ngram", "--corpus", folder, "--out", model, "--set", "order=3")
    assert code == 0, err
    assert "split folder" in err and "80/10/10" not in err
    code, out, err = run(capsys, "evaluate", model, "--corpus", folder, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["split"] == "test"
    assert (result["n_tokens"], result["n_words"], result["n_chars"]) == (
        expected.n_tokens, expected.n_words, expected.n_chars)
    assert result["nll"] == pytest.approx(expected.nll, rel=1e-12)
    # the benchmark
    (tmp_path / "ptb.toml").write_text(PTB_BENCH, encoding="utf-8")
    code, err = bench(capsys, tmp_path / "ptb.toml", "--out", tmp_path / "out")
    assert code == 0, err
    with open(tmp_path / "out" / "results.csv", newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["nll"]) == pytest.approx(expected.nll, rel=1e-12)
    assert float(row["word_perplexity"]) == pytest.approx(expected.word_perplexity, rel=1e-12)
    assert int(row["n_tokens"]) == expected.n_tokens
