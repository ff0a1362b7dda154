"""Every writer beside a final file or in a scratch folder (the id cache, ARPA files, n-gram
tables and hash indexes, spilled blocks, DOT files): its temporaries carry its pid, the next
writer there removes those of dead processes and keeps those of live ones; a full disk is one
line naming the path, nothing half-written is left, and what was there before is intact."""

import errno
import io
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_checks import WORDS, assert_one_line_error, run

import langmodels.token_ids as token_ids_module
from langmodels import checkpoint
from langmodels.corpora import split_sha256
from langmodels.errors import DiskFullError, LangmodelsError
from langmodels.ngram import NGramLM, arpa, external_sort
from langmodels.tokenizers import WordTokenizer

pytestmark = pytest.mark.filterwarnings("ignore::langmodels.ngram.smoothing.DiscountFallbackWarning")
NO_SPACE = OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name


def lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


LINES = lines(token_ids_module.MIN_CACHED_LINES + 200, seed=0)  # long enough to be cached
OTHER_LINES = lines(token_ids_module.MIN_CACHED_LINES + 200, seed=1)


class FullDisk(io.FileIO):
    def write(self, data):
        raise NO_SPACE


def full_disk_open(path, mode="r", *args, **kwargs):
    """open(), whose files opened for writing fail as on a full disk."""
    return FullDisk(path, mode) if set(mode) & set("wxa+") else open(path, mode, *args, **kwargs)


def no_space(*args, **kwargs):
    raise NO_SPACE


def dead_pid() -> int:
    """The pid of a process that has exited (the kernel does not hand it out again at once)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tokenizer() -> WordTokenizer:
    return WordTokenizer().fit(LINES)


def fitted(tmp_dir=None, text=LINES[:300], **params) -> NGramLM:
    return NGramLM(3, tmp_dir=None if tmp_dir is None else str(tmp_dir), **params).fit(text)


@dataclass
class Writer:
    """One writer: where it writes (the folder its temporaries go to, and the name they carry),
    how to run it, where a full disk is simulated, and what a full disk's message names.
    `before` makes a previous result and returns a check that it is intact."""

    folder: Callable[[Path], Path]
    name: Callable[[Path], str]
    write: Callable[[Path], object]
    full_disk: Callable[[pytest.MonkeyPatch], None]
    named: Callable[[Path], str]
    before: Callable[[Path], Callable[[], None]]


def cache_entry(tmp_path: Path) -> str:
    return f"{split_sha256(LINES)}-{token_ids_module.tokenizer_sha256(tokenizer())}"


def cached_before(tmp_path: Path):
    """Another text's entry in the id cache: still read back whole afterwards."""
    tok = tokenizer()
    first = np.array(token_ids_module.token_ids(OTHER_LINES, tok).ids)

    def check():
        again = token_ids_module.read_entry(token_ids_module.token_ids(OTHER_LINES, tok).path)
        assert again is not None and np.array_equal(np.array(again.ids), first)
    return check


def file_before(path_of: Callable[[Path], Path]):
    """A finished file at the writer's path: the same bytes afterwards."""
    def make(tmp_path):
        path = path_of(tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"the previous result\n")
        return lambda: path.read_bytes() == b"the previous result\n" or pytest.fail(f"{path} changed")
    return make


def model_before(tmp_path: Path):
    """A model fitted earlier with the same scratch folder: its tables (memory-mapped from
    there) are intact and score as before."""
    model = fitted(tmp_path / "scratch")
    folder = model._tables_folder.path
    scores = [model.logprob(line) for line in LINES[:20]]  # (builds the hash indexes there)
    saved = tree(folder)

    def check():
        assert tree(folder) == saved
        assert [model.logprob(line) for line in LINES[:20]] == scores
    return check


_MODELS: dict = {}


def index_model(tmp_path: Path) -> NGramLM:
    """A fitted model whose bigram hash index is not built yet (built on first use, in its tables' folder)."""
    if tmp_path not in _MODELS:
        _MODELS[tmp_path] = fitted()
    return _MODELS[tmp_path]


def index_folder(tmp_path: Path) -> Path:
    return Path(index_model(tmp_path).tables_.index_folder)


WRITERS = {
    "token ids": Writer(
        folder=lambda tmp: tmp / "cache" / "ids",
        name=cache_entry,
        write=lambda tmp: token_ids_module.token_ids(LINES, tokenizer()),
        full_disk=lambda mp: mp.setattr(token_ids_module, "open", FullDisk, raising=False),
        named=lambda tmp: str(tmp / "cache" / "ids" / cache_entry(tmp)),
        before=cached_before),
    "arpa": Writer(
        folder=lambda tmp: tmp,
        name=lambda tmp: "model.arpa",
        write=lambda tmp: arpa.write_arpa(index_model(tmp), tmp / "model.arpa"),
        full_disk=lambda mp: mp.setattr(os, "pwrite", no_space),  # in the forked workers too
        named=lambda tmp: str(tmp / "model.arpa"),
        before=file_before(lambda tmp: tmp / "model.arpa")),
    "hash index": Writer(
        folder=index_folder,
        name=lambda tmp: "index_2.npy",
        write=lambda tmp: index_model(tmp).tables_.index(2),
        full_disk=lambda mp: mp.setattr(os, "pwrite", no_space),
        named=lambda tmp: str(index_folder(tmp) / "index_2.npy"),
        before=file_before(lambda tmp: index_folder(tmp) / "index_2.npy")),
    "n-gram tables": Writer(
        folder=lambda tmp: tmp / "scratch",
        name=lambda tmp: "langmodels-ngram-tables",
        write=lambda tmp: fitted(tmp / "scratch"),
        full_disk=lambda mp: mp.setattr(external_sort, "open", full_disk_open, raising=False),
        named=lambda tmp: "keys_1.npy",
        before=model_before),
    "spilled blocks": Writer(
        folder=lambda tmp: tmp / "scratch",
        name=lambda tmp: "langmodels-ngram",
        write=lambda tmp: fitted(tmp / "scratch", LINES, memory="1M"),  # 1 MiB: this corpus spills
        full_disk=lambda mp: mp.setattr(external_sort, "open", full_disk_open, raising=False),
        named=lambda tmp: str(tmp / "scratch" / ".langmodels-ngram.tmp-"),
        before=model_before),
    "dot": Writer(
        folder=lambda tmp: tmp,
        name=lambda tmp: "model.dot",
        write=lambda tmp: index_model(tmp).to_dot(tmp / "model.dot"),
        full_disk=lambda mp: mp.setattr(checkpoint, "open", FullDisk, raising=False),
        named=lambda tmp: str(tmp / "model.dot"),
        before=file_before(lambda tmp: tmp / "model.dot")),
}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGMODELS_CACHE", str(tmp_path / "cache"))
    yield
    _MODELS.pop(tmp_path, None)


@pytest.mark.parametrize("kind", WRITERS)
def test_dead_writers_temporaries_go_and_live_ones_stay(kind, tmp_path):
    writer = WRITERS[kind]
    folder, name = writer.folder(tmp_path), writer.name(tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    dead = folder / f".{name}.tmp-{dead_pid()}-0123abcd"
    live = folder / f".{name}.tmp-{os.getpid()}-0123abcd"
    dead.mkdir()
    (dead / "half-written").write_bytes(b"\0" * 100)
    live.write_bytes(b"a live writer's half-written file")
    writer.write(tmp_path)
    assert not dead.exists()
    assert live.read_bytes() == b"a live writer's half-written file"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
@pytest.mark.parametrize("kind", WRITERS)
def test_a_full_disk_names_the_path_and_leaves_nothing_half_written(kind, code, tmp_path, monkeypatch):
    writer = WRITERS[kind]
    folder = writer.folder(tmp_path)
    intact = writer.before(tmp_path)
    listed = sorted(os.listdir(folder))
    monkeypatch.setattr(sys.modules[__name__], "NO_SPACE", OSError(code, os.strerror(code)))
    writer.full_disk(monkeypatch)
    with pytest.raises(DiskFullError) as caught:
        writer.write(tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, LangmodelsError) and "\n" not in message
    assert os.strerror(code) in message and writer.named(tmp_path) in message, message
    monkeypatch.undo()
    assert sorted(os.listdir(folder)) == listed  # no temporary, no scratch folder left behind
    intact()


def test_a_full_disk_while_caching_ids_is_one_line_on_the_command_line(tmp_path, capsys, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES + OTHER_LINES) + "\n", encoding="utf-8")  # train: 80 %, cached
    monkeypatch.setattr(token_ids_module, "open", FullDisk, raising=False)
    code, _, err = run(capsys, "train", "bigram", "--corpus", corpus, "--out", tmp_path / "model")
    assert_one_line_error(code, err, str(tmp_path / "cache" / "ids"), "No space left on device")
    assert not (tmp_path / "model").exists()
    assert [p.name for p in (tmp_path / "cache" / "ids").iterdir()] == []


def test_ctrl_c_while_writing_tables_leaves_no_scratch_folder(tmp_path, monkeypatch):
    def interrupted(self, piece):
        raise KeyboardInterrupt

    monkeypatch.setattr(external_sort.NpyWriter, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitted(tmp_path / "scratch", LINES, memory="1M")
    assert os.listdir(tmp_path / "scratch") == []
