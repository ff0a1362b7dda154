"""Shipped corpora, path corpora, split conventions and the Brown cache."""

import gzip
import hashlib
import subprocess
import sys
from collections import Counter

import pytest
from cli_checks import one_line_error

from langmodels import corpora
from langmodels.corpora import Split, split_mode, split_sha256, split_text
from langmodels.errors import CorpusError, InputError

# Published facts, not our own output: docs/design.md section 4 and the corpora README.
BROWN = {
    "train": ("4aaa7e0179d817d30abf025ff2e3a686b86f9bb0c4472bd7f5b4cd8e67a69a3a", 35_523, 800_001),
    "valid": ("643ec40d2e0f5a15f7047677b317b448b4cd9107f545cf938b8eaa18754e2539", 11_690, 200_021),
    "test": ("406580772dc1d0038adb6bafdd0b38b8961b3b0b228b09e08dd6395e9d009fb4", 10_127, 161_170),
}
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
BROWN_ZIP_SHA256 = "9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6"
# How a path was split is a note (CorpusNote) for the CLI to print; test_user_data.py checks it.
pytestmark = pytest.mark.filterwarnings("ignore::langmodels.corpora.CorpusNote")


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def brown_cache(tmp_path_factory):
    """A fresh cache folder, filled by one cold build of Brown through nltk."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANGMODELS_CACHE", str(folder))
        corpus = corpora.load("brown")
    return folder, corpus


@pytest.fixture
def brown(brown_cache, monkeypatch):
    folder, corpus = brown_cache
    monkeypatch.setenv("LANGMODELS_CACHE", str(folder))
    return corpus


@pytest.fixture(scope="module")
def shakespeare_source():
    data = gzip.decompress((corpora.corpora_dir() / "tinyshakespeare.txt.gz").read_bytes())
    assert hashlib.sha256(data).hexdigest() == SHAKESPEARE_SHA256
    return data.decode("utf-8")


# ----------------------------------------------------------------------------------------------
# Brown


@pytest.mark.parametrize("name", ["train", "valid", "test"])
def test_brown_splits_match_published_checksums(brown, name):
    digest, lines, words = BROWN[name]
    split = brown.split(name)
    assert sha256(split.text()) == digest
    assert len(split) == lines
    assert sum(len(line.split()) for line in split) == words
    assert (split.name, split.corpus, split.level, split.mode) == (name, "brown", "word", "lines")


def test_brown_vocabulary_is_train_words_seen_more_than_three_times(brown):
    counts = Counter(word for line in brown.train for word in line.split())
    assert len(counts) == 14_114
    assert "<unk>" in counts
    assert all(count > 3 for word, count in counts.items() if word != "<unk>")
    # valid and test use only train's vocabulary (everything else became <unk>)
    for split in (brown.valid, brown.test):
        assert {w for line in split for w in line.split()} <= set(counts)


def test_brown_describe(brown):
    described = brown.describe()
    assert (described["name"], described["level"], described["mode"]) == ("brown", "word", "lines")
    for name, (_, lines, words) in BROWN.items():
        assert described["splits"][name] == {
            "lines": lines, "words": words, "chars": len(brown.text(name))}


def test_brown_all_is_every_line_once(brown):
    whole = brown.split("all")
    assert whole.text() == "".join(brown.text(name) for name in corpora.SPLITS)
    assert len(whole) == sum(lines for _, lines, _ in BROWN.values()) and whole.name == "all"
    assert whole.source is None and whole.source_sha256 is None  # built, not a file as distributed


def test_brown_is_read_from_cache_without_nltk(brown_cache, monkeypatch):
    folder, _ = brown_cache
    monkeypatch.setenv("LANGMODELS_CACHE", str(folder))
    assert sorted(p.name for p in (folder / "corpora" / "brown").iterdir()) == [
        "test.txt", "train.txt", "valid.txt"]

    def no_build(zip_path):
        raise AssertionError("an intact cache must not be rebuilt")

    monkeypatch.setattr(corpora.shipped, "_build_brown", no_build)
    assert sha256(corpora.load("brown").text("train")) == BROWN["train"][0]


def test_corrupted_brown_cache_is_rebuilt(brown, tmp_path, monkeypatch):
    good = {name: brown.text(name) for name in corpora.SPLITS}
    monkeypatch.setenv("LANGMODELS_CACHE", str(tmp_path))
    folder = tmp_path / "corpora" / "brown"
    folder.mkdir(parents=True)
    for name, text in good.items():
        (folder / f"{name}.txt").write_text(text)
    (folder / "valid.txt").write_text(good["valid"].replace("the", "teh", 1))
    calls = []

    def build(zip_path):
        calls.append(zip_path)
        return dict(good)

    monkeypatch.setattr(corpora.shipped, "_build_brown", build)
    corpus = corpora.load("brown")
    assert len(calls) == 1
    assert sha256(corpus.text("valid")) == BROWN["valid"][0]
    assert (folder / "valid.txt").read_text() == good["valid"]  # the cache was repaired
    corpora.load("brown")
    assert len(calls) == 1


def test_unwritable_cache_is_skipped(brown, tmp_path, monkeypatch):
    good = {name: brown.text(name) for name in corpora.SPLITS}
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("LANGMODELS_CACHE", str(not_a_folder))
    monkeypatch.setattr(corpora.shipped, "_build_brown", lambda zip_path: dict(good))
    assert sha256(corpora.load("brown").text("test")) == BROWN["test"][0]


def test_damaged_brown_zip_is_an_error(brown, tmp_path, monkeypatch):
    good = {name: brown.text(name) for name in corpora.SPLITS}
    monkeypatch.setenv("LANGMODELS_CACHE", str(tmp_path))
    monkeypatch.setattr(
        corpora.shipped, "_build_brown", lambda zip_path: {**good, "test": good["test"][:-10] + "\n"})
    with pytest.raises(CorpusError, match=r"brown\.zip.*damaged"):
        corpora.load("brown")


def test_unreadable_brown_zip_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "brown.zip").write_bytes(b"PK not really a zip file")
    monkeypatch.setenv("LANGMODELS_CORPORA", str(tmp_path))
    monkeypatch.setenv("LANGMODELS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CorpusError, match=r"brown\.zip is damaged or unreadable"):
        corpora.load("brown")


# ----------------------------------------------------------------------------------------------
# Tiny Shakespeare


def test_shakespeare_is_split_like_nanogpt(shakespeare_source):
    corpus = corpora.load("shakespeare")
    n = len(shakespeare_source)
    assert n == 1_115_394
    cut = int(n * 0.9)  # nanoGPT data/shakespeare_char/prepare.py
    assert cut == 1_003_854
    assert corpus.text("train") == shakespeare_source[:cut]
    assert corpus.text("valid") == shakespeare_source[cut:]
    assert len(corpus.text("valid")) == 111_540
    assert (corpus.level, corpus.mode) == ("char", "stream")


def test_shakespeare_valid_is_test(shakespeare_source):
    corpus = corpora.load("shakespeare")
    assert corpus.valid == corpus.test
    assert corpus.text("valid") == corpus.text("test")
    assert (corpus.valid.name, corpus.test.name) == ("valid", "test")
    assert corpus.valid is not corpus.test
    assert "nanoGPT" in corpus.describe()["note"]


def test_shakespeare_boundary_falls_mid_line(shakespeare_source):
    corpus = corpora.load("shakespeare")
    assert not corpus.train.trailing_newline
    assert corpus.valid.trailing_newline
    assert corpus.train[-1] + corpus.valid[0] in shakespeare_source.split("\n")
    assert "" in corpus.train  # blank lines are text in a character stream
    assert corpus.train.text().count("\n") == shakespeare_source[:1_003_854].count("\n")


def test_shakespeare_at_word_level(shakespeare_source):
    corpus = corpora.load("shakespeare", level="word")
    assert (corpus.level, corpus.mode, corpus.train.mode) == ("word", "lines", "lines")
    assert corpus.text("train") == shakespeare_source[:1_003_854]


# ----------------------------------------------------------------------------------------------
# Files and folders


def test_file_corpus_split_80_10_10(tmp_path):
    lines = [f"line {i} of the file" for i in range(20)]
    text = "\r\n".join(lines[:10]) + "\r\n\r\n   \n" + "\n".join(lines[10:])  # no final newline
    path = tmp_path / "data.txt"
    path.write_bytes(text.encode("utf-8"))
    corpus = corpora.load(str(path))
    assert corpus.train == lines[:16]
    assert corpus.valid == lines[16:18]
    assert corpus.test == lines[18:]
    assert (corpus.name, corpus.level, corpus.mode) == (str(path), "word", "lines")
    assert corpus.text("valid") == "line 16 of the file\nline 17 of the file\n"
    assert corpora.load(path).train == corpus.train  # a Path works too, and the split is fixed


@pytest.mark.parametrize("n, sizes", [(3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1)),
                                      (10, (8, 1, 1)), (11, (8, 1, 2)), (101, (80, 10, 11))])
def test_every_split_is_non_empty_and_contiguous(tmp_path, n, sizes):
    lines = [f"w{i}" for i in range(n)]
    (tmp_path / "f.txt").write_text("\n".join(lines) + "\n")
    corpus = corpora.load(tmp_path / "f.txt")
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == sizes
    assert corpus.train + corpus.valid + corpus.test == lines


def test_char_level_path_corpus_streams(tmp_path):
    (tmp_path / "f.txt").write_text("ab\ncd\nef\n")
    corpus = corpora.load(tmp_path / "f.txt", level="char")
    assert (corpus.level, corpus.mode, corpus.train.level, corpus.train.mode) == (
        "char", "stream", "char", "stream")


def test_folder_corpus_reads_text_files_in_path_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("b2 one\nb2 two\n")
    (tmp_path / "b" / "1.md").write_text("b1\n")
    (tmp_path / "a.txt").write_text("a one\n\na two")  # no final newline
    (tmp_path / "b-c.txt").write_text("b-c\n")
    (tmp_path / ".hidden").write_text("hidden\n")
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\x00\x00\xff")
    corpus = corpora.load(tmp_path)
    everything = corpus.train + corpus.valid + corpus.test
    assert everything == ["a one", "a two", "b1", "b2 one", "b2 two", "b-c"]


# ----------------------------------------------------------------------------------------------
# Mistakes


def test_unknown_corpus_name_lists_shipped_ones():
    message = one_line_error(corpora.load, "browm")
    assert "'browm'" in message and "brown, shakespeare" in message


def test_missing_path():
    message = one_line_error(corpora.load, "no/such/file.txt")
    assert "no/such/file.txt" in message


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n\t\n"])
def test_empty_file(tmp_path, content):
    (tmp_path / "empty.txt").write_bytes(content)
    message = one_line_error(corpora.load, tmp_path / "empty.txt")
    assert "empty.txt" in message and "empty" in message


def test_too_few_lines_to_split_but_whole_file_is_fine(tmp_path):
    (tmp_path / "two.txt").write_text("one\n\ntwo\n")
    corpus = corpora.load(tmp_path / "two.txt")  # a short file can still be scored whole
    assert corpus.split("all") == ["one", "two"]
    for name in corpora.SPLITS:
        message = one_line_error(corpus.split, name)
        assert "two.txt" in message and "too few lines" in message and "--split all" in message


def test_empty_folder(tmp_path):
    message = one_line_error(corpora.load, tmp_path)
    assert str(tmp_path) in message and "no text files" in message


def test_folder_of_binary_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(bytes(range(256)))
    message = one_line_error(corpora.load, tmp_path)
    assert "no text files" in message


def test_folder_of_blank_files(tmp_path):
    (tmp_path / "x.txt").write_text("\n\n")
    message = one_line_error(corpora.load, tmp_path)
    assert "empty" in message


def test_non_utf8_file_names_file_and_offset(tmp_path):
    data = "ok line\nna\u00efve\n".encode("utf-8") + "caf\u00e9\n".encode("latin-1")
    path = tmp_path / "latin1.txt"
    path.write_bytes(data)
    message = one_line_error(corpora.load, path)
    offset = data.index(b"\xe9")
    assert str(path) in message and f"offset {offset}" in message and "UTF-8" in message


def test_non_utf8_file_in_folder_is_named(tmp_path):
    (tmp_path / "good.txt").write_text("fine\nfine\nfine\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.txt").write_bytes(b"abc\xff\n")
    message = one_line_error(corpora.load, tmp_path)
    assert "bad.txt" in message and "offset 3" in message


def test_bad_level():
    message = one_line_error(corpora.load, "brown", level="byte")
    assert "'byte'" in message


def test_unknown_split(tmp_path):
    (tmp_path / "f.txt").write_text("a\nb\nc\n")
    corpus = corpora.load(tmp_path / "f.txt")
    message = one_line_error(corpus.split, "dev")
    assert "'dev'" in message and "train, valid, test" in message
    one_line_error(corpus.text, "dev")


def test_missing_shipped_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGMODELS_CORPORA", str(tmp_path))
    message = one_line_error(corpora.load, "shakespeare")
    assert "tinyshakespeare.txt.gz" in message


# ----------------------------------------------------------------------------------------------
# Conventions shared with model code


def test_text_conventions():
    split = Split(["a b", "c"], name="test", corpus="x", level="word", mode="lines")
    assert split.text() == "a b\nc\n"
    assert split_text(split) == "a b\nc\n"
    assert split_text(["a b", "c"]) == "a b\nc\n"
    assert split_text(("a b", "c")) == "a b\nc\n"
    assert split_text([]) == ""
    assert split_mode(split) == "lines"
    assert split_mode(["x"]) == "lines"
    assert split_mode(["x"], default="stream") == "stream"
    with pytest.raises(InputError, match="split_text takes a list of lines"):
        split_text("a str is not a list of lines")
    with pytest.raises(InputError, match="split_text takes lines of text .str., got a line 1"):
        split_text([1, 2])
    with pytest.raises(InputError, match="takes lines of text .str., got a line None"):
        split_sha256(["a", None])


@pytest.mark.parametrize("text", ["", "a", "a\n", "a\n\nb", "\n", "\n\n", "x\ny\n"])
def test_split_from_text_round_trips(text):
    split = Split.from_text(text, name="train", corpus="x", level="char", mode="stream")
    assert split.text() == text
    assert split_text(split) == text


def test_split_behaves_like_a_read_only_list():
    split = Split(["a", "b"], name="train", corpus="x", level="word", mode="lines")
    assert split == ["a", "b"] and ["a", "b"] == split and split != ["a"]
    assert list(split) == ["a", "b"] and len(split) == split.n_lines == 2
    assert split + ["c"] == ["a", "b", "c"] and ["z"] + split == ["z", "a", "b"]
    assert "b" in split and split.index("b") == 1 and list(reversed(split)) == ["b", "a"]
    assert "\n".join(split) == "a\nb"  # str.join sees the lines (it would not see a lazy list's)
    assert "lines=2" in repr(split)


def test_available_and_corpora_dir():
    assert corpora.available() == ["brown", "shakespeare"]
    folder = corpora.corpora_dir()
    assert (folder / "brown.zip").is_file() and (folder / "tinyshakespeare.txt.gz").is_file()


def test_sources_md_records_the_checksums():
    folder = corpora.corpora_dir()
    sources = (folder / "SOURCES.md").read_text()
    assert hashlib.sha256((folder / "brown.zip").read_bytes()).hexdigest() == BROWN_ZIP_SHA256
    for digest in [BROWN_ZIP_SHA256, SHAKESPEARE_SHA256] + [d for d, _, _ in BROWN.values()]:
        assert digest in sources


def test_importable_without_torch():
    code = "import sys, langmodels.corpora; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_slice_of_a_split_is_a_split_of_the_same_kind():
    split = Split.from_text("to be\nor not\nto b", name="train", corpus="toy", level="char", mode="stream")
    head = split[:2]
    assert isinstance(head, Split) and list(head) == ["to be", "or not"]
    assert (head.corpus, head.name, head.level, head.mode) == ("toy", "train", "char", "stream")
    assert head.text() == "to be\nor not\n"  # whole lines
    assert split[1:].text() == "or not\nto b"  # still ends mid-line, as the split does
    assert split[::-1][0] == "to b" and split[0] == "to be" and split[5:] == []
