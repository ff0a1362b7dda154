"""The fitted n-gram model as stored: memory-mapped checkpoints, their checks, ARPA out and in."""

from __future__ import annotations

import io
import itertools
import json
import math
import mmap
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langmodels import ArpaLM, NGramLM, corpora, load
from langmodels import checkpoint as ckpt
from langmodels.errors import CheckpointError
from langmodels.ngram import arpa, probing
from langmodels.ngram.tables import BackoffTables, OrderTable


@pytest.fixture(scope="module")
def brown():
    return corpora.load("brown")


@pytest.fixture(scope="module")
def model(brown):
    return NGramLM(4, "kneser-ney").fit(brown.train[:4000])


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("store") / "kn4"
    model.save(folder)
    return folder


def encoded(model, lines):
    return [model.tokenizer.encode(line) for line in lines]


def is_mapped(array) -> bool:
    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
    return isinstance(base, mmap.mmap)


def in_memory_copy(model) -> NGramLM:
    """The same model with every table read into ordinary memory (no file behind it)."""
    tables = model.tables_
    orders = [OrderTable(*(np.array(getattr(t, f)) for f in ("keys", "logprob", "logbackoff", "is_context")))
              for t in tables.orders]
    copy = BackoffTables(orders, tables.vocab_size, np.array(tables.support), bos_id=tables.bos_id,
                         lower=tables.lower, unseen_context_logbackoff=tables.unseen_context_logbackoff)
    return NGramLM.from_tables(copy, model.tokenizer, counts=[np.array(c) for c in model.counts_],
                               smoothing=model.smoothing)


def test_loaded_tables_are_memory_mapped_and_score_as_in_memory(model, saved, brown):
    loaded = load(saved)
    for table in loaded.tables_.orders:
        assert all(is_mapped(getattr(table, field)) for field in ("keys", "logprob", "logbackoff", "is_context"))
    for n in range(2, loaded.order + 1):
        assert is_mapped(loaded.tables_.index(n).slots)  # the hash index is stored, not rebuilt
    lines = list(brown.test[:500])
    memory = in_memory_copy(loaded)
    for a, b, c in zip(loaded.score_ids(encoded(loaded, lines)), memory.score_ids(encoded(memory, lines)),
                       model.score_ids(encoded(model, lines))):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    stream = model.tokenizer.encode(" ".join(lines[:50]))
    np.testing.assert_array_equal(loaded.score_stream(stream), memory.score_stream(stream))


def test_fast_scorer_equals_the_general_one(model, brown):
    """The back-off scorer over positions (score_targets) against the general masked walk."""
    lines = list(brown.test[:800]) + ["", "zzz qqq", "the the the the the"]
    flat, lengths = model.tokenizer.encode_lines(lines)
    tables = model.tables_
    fast = tables.score_lines(flat, lengths, model.tokenizer.vocab.eos_id)
    from langmodels.ngram.counting import NGramCounts

    tokens, position = NGramCounts.pad(np.asarray(flat, dtype=np.int64), lengths, tables.bos_id,
                                       model.tokenizer.vocab.eos_id)
    np.testing.assert_allclose(fast, tables._score_padded(tokens, position), rtol=0, atol=1e-12)


def test_two_threads_give_the_single_thread_scores(model, brown, monkeypatch):
    from langmodels.ngram import tables as tables_module

    flat, lengths = model.tokenizer.encode_lines(list(brown.test[:3000]))
    monkeypatch.setattr(tables_module, "PARALLEL_POSITIONS", 1 << 40)
    single = model.score_lines(flat, lengths)
    monkeypatch.setattr(tables_module, "PARALLEL_POSITIONS", 1000)
    np.testing.assert_array_equal(model.score_lines(flat, lengths), single)
    ids = model.tokenizer.encode(" ".join(brown.test[:400]))
    split = model.score_stream(ids)
    monkeypatch.setattr(tables_module, "PARALLEL_POSITIONS", 1 << 40)
    np.testing.assert_array_equal(model.score_stream(ids), split)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "witten-bell", "stupid-backoff", "laplace"])
def test_round_trip_keeps_scores_and_views(smoothing, brown, tmp_path):
    lm = NGramLM(3, smoothing).fit(brown.train[:1500])
    lm.save(tmp_path / "m")
    again = load(tmp_path / "m")
    lines = list(brown.test[:200])
    for a, b in zip(lm.score_ids(encoded(lm, lines)), again.score_ids(encoded(again, lines))):
        np.testing.assert_array_equal(a, b)
    assert again.top_next("of the", k=5) == lm.top_next("of the", k=5)
    assert again.generate("The", 12, seed=3) == lm.generate("The", 12, seed=3)


def test_graph_of_a_mapped_model_reads_only_chosen_contexts(model, saved):
    loaded = load(saved)
    small = loaded.graph(max_contexts=5)
    assert small.number_of_edges() > 0
    # The 5 contexts are the ones whose continuations were counted most: compare with counting them all.
    table, counts = model.tables_.orders[-1], np.asarray(model.counts_[-1])
    totals = np.bincount(table.keys // model.tables_.vocab_size, weights=counts)
    expected_rows = np.argsort(-totals, kind="stable")[:5]
    joiner = " "
    tokens = model.tokenizer.vocab.tokens
    expected = {joiner.join(tokens[t] for t in row) for row in model.tables_.row_tokens(model.order - 1, expected_rows)}
    sources = {source for source, _ in small.edges}
    assert sources == expected
    for source in sources:  # every seen continuation of a chosen context is an edge, with its P
        out = [d["probability"] for _, _, d in small.out_edges(source, data=True)]
        assert 0 < sum(out) <= 1 + 1e-9
    whole = model.graph()
    for source, target, data in small.edges(data=True):
        assert whole[source][target]["probability"] == pytest.approx(data["probability"], rel=1e-12)


def test_kenlm_reads_our_arpa_and_gives_our_scores(model, brown, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    path = tmp_path / "model.arpa"
    model.to_arpa(path)
    oracle = kenlm.Model(str(path))
    lines = list(brown.test[:400])
    ours = model.score_ids(encoded(model, lines))
    for line, scores in zip(lines, ours):
        theirs = np.array([prob for prob, _, _ in oracle.full_scores(line, bos=True, eos=True)])
        np.testing.assert_allclose(scores / math.log(10), theirs, atol=1e-5)  # KenLM holds float32


def same_values(theirs, ours):
    """float32 tables come back from ARPA exactly (9 digits); float64 ones to the last bit or two
    (log10 = ln / ln 10 and back is not an exact round trip in binary)."""
    theirs, ours = np.asarray(theirs), np.asarray(ours)
    if ours.dtype == np.float32:
        np.testing.assert_array_equal(theirs, ours)
    else:
        np.testing.assert_allclose(theirs, ours, rtol=1e-15, atol=1e-15)


def test_arpa_read_back_gives_identical_tables(model, tmp_path):
    path = tmp_path / "model.arpa"
    model.to_arpa(path)
    again = ArpaLM.read(path)
    ids = np.array([again.tokenizer.vocab[token] for token in model.tokenizer.vocab.tokens])
    ours, theirs = model.tables_, again.tables_
    lp = np.asarray(ours.orders[0].logprob)
    seen = np.isfinite(lp)
    same_values(np.asarray(theirs.orders[0].logprob)[ids][seen], lp[seen])
    for n in range(2, model.order + 1):
        grams = ids[ours.row_tokens(n, np.arange(len(ours.orders[n - 1].keys)))]
        rows = np.arange(len(grams))
        context = grams[:, 0]
        for column in range(1, n - 1):
            context = theirs.lookup(column + 1, context, grams[:, column])
        found = theirs.lookup(n, context, grams[:, -1])
        assert (found >= 0).all()
        same_values(np.asarray(theirs.orders[n - 1].logprob)[found], np.asarray(ours.orders[n - 1].logprob)[rows])
        same_values(np.asarray(theirs.orders[n - 1].logbackoff)[found],
                    np.asarray(ours.orders[n - 1].logbackoff)[rows])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e30, max_value=1e30).filter(lambda x: x == 0 or abs(x) > 1e-30),
                min_size=1, max_size=40), st.booleans())
def test_arpa_numbers_give_back_every_float(values, wide):
    """Log-probabilities and back-offs of any size an ARPA file holds (|x| in 1e-30 .. 1e30)."""
    values = np.array(values, dtype=np.float64 if wide else np.float32)
    digits = arpa.digits_for(values.dtype)
    chars, start, length = arpa.format_numbers(values.astype(np.float64), digits, ord("\n"))
    for row, first, size, value in zip(chars, start, length, values):
        text = bytes(row[first : first + size]).decode("ascii")
        assert text.endswith("\n") and text.count("\n") == 1 and " " not in text
        assert values.dtype.type(float(text)) == value
        if digits == arpa.FLOAT32_DIGITS and 1e-4 <= abs(float(value)) < 10:  # lmplz's fixed notation
            assert "e" not in text and not text.rstrip("\n").endswith("0"), text


@pytest.mark.parametrize("prune", [None, [0, 0, 0, 1000]])  # the second: no 4-gram left, an empty section
def test_arpa_files_from_one_process_and_from_forked_workers_are_the_same_bytes(model, brown, prune, tmp_path,
                                                                                monkeypatch):
    fitted = model if prune is None else NGramLM(4, "kneser-ney", prune=prune).fit(brown.train[:2000])
    monkeypatch.setattr(arpa, "BLOCK_ROWS", 1000)  # many blocks, some orders ending in a short one
    tokens, tables = list(fitted.tokenizer.vocab.tokens), fitted.tables_
    files = [arpa.write_tables(tables, tokens, tmp_path / f"{workers}.arpa", bos_id=fitted.tokenizer.vocab.bos_id,
                               workers=workers) for workers in (1, 2, 3)]
    assert files[0].read_bytes() == files[1].read_bytes() == files[2].read_bytes()
    assert files[0].read_bytes().endswith(b"\n\\4-grams:\n" * (prune is not None) + b"\n\\end\\\n")
    again = ArpaLM.read(files[1])
    assert [len(table.keys) for table in again.tables_.orders] == [len(table.keys) for table in tables.orders]


def test_arpa_module_does_not_import_the_model():
    source = Path(arpa.__file__).read_text(encoding="utf-8")
    assert "from .model" not in source and "import model" not in source


def damageable_copy(model, folder):
    """A checkpoint of `model` whose files are its own (a large saved file may be a hard link to
    the model's table: damaging it would damage the model too)."""
    model.save(folder.with_name("linked"))
    shutil.copytree(folder.with_name("linked"), folder)
    return folder


def test_damaged_tables_are_caught_on_load(model, tmp_path):
    folder = damageable_copy(model, tmp_path / "m")
    target = folder / "logprob_3.npy"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load(folder)
    shutil.rmtree(folder)
    damageable_copy(model, folder)
    with open(folder / "keys_2.npy", "r+b") as handle:
        handle.truncate(handle.seek(0, 2) - 8)
    with pytest.raises(CheckpointError, match="truncated"):
        load(folder)


def test_large_files_are_checked_by_samples_and_in_full_on_demand(model, tmp_path, monkeypatch):
    """Over FULL_CHECK_BYTES a table's load check reads sampled blocks only; verify_checkpoint
    reads everything."""
    monkeypatch.setattr(ckpt, "FULL_CHECK_BYTES", 1024)
    monkeypatch.setattr(ckpt, "SAMPLE_BYTES", 256)
    monkeypatch.setattr(ckpt, "SAMPLE_BLOCKS", 8)
    folder = damageable_copy(model, tmp_path / "m")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "keys_3.npy" in manifest["samples"]
    target = folder / "keys_3.npy"
    size = target.stat().st_size
    offsets = ckpt.sample_offsets(size)
    inside = offsets[3] + 5  # a byte inside a sampled block
    outside = next(o + 256 + 7 for o, p in itertools.pairwise(offsets) if p - o > 300)  # between two blocks

    def flip(position):
        with open(target, "r+b") as handle:
            handle.seek(position)
            byte = handle.read(1)
            handle.seek(position)
            handle.write(bytes([byte[0] ^ 0x10]))

    reads = []
    real = ckpt.file_sha256
    monkeypatch.setattr(ckpt, "file_sha256", lambda path, **kw: reads.append(path.name) or real(path, **kw))
    load(folder)
    assert "keys_3.npy" not in reads  # the big file was not hashed whole
    flip(inside)
    with pytest.raises(CheckpointError, match="checksum"):
        load(folder)
    flip(inside)
    flip(outside)
    load(folder)  # a single flipped byte between samples passes the load check...
    with pytest.raises(CheckpointError, match="checksum"):
        ckpt.verify_checkpoint(folder)  # ...and not the deep one


def test_loading_takes_milliseconds(brown, tmp_path):
    lm = NGramLM(5, "kneser-ney").fit(brown.train)
    lm.save(tmp_path / "kn5")
    total = sum(path.stat().st_size for path in (tmp_path / "kn5").iterdir())
    assert total > 2 * ckpt.FULL_CHECK_BYTES  # large tables: checked by samples
    best = min(_seconds(lambda: load(tmp_path / "kn5")) for _ in range(3))
    assert best < 0.5, f"loading {total / 2**20:.0f} MiB took {best:.2f} s"
    loaded = load(tmp_path / "kn5")
    assert loaded.top_next("of the", k=3) == lm.top_next("of the", k=3)


def _seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def test_checkpoints_of_the_single_file_layout_still_load(model, tmp_path):
    """A checkpoint from before the .npy tables (weights.npz) loads into memory and scores the same."""
    config, files = model.checkpoint_contents()
    arrays = {}
    for name in list(files):
        if name.endswith(".npy") and not name.startswith("index_"):
            value = files.pop(name)
            data = value if isinstance(value, bytes) else value.read_bytes()
            arrays[name[: -len(".npy")]] = np.load(io.BytesIO(data), allow_pickle=False)
        elif name.startswith("index_"):
            files.pop(name)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files["weights.npz"] = buffer.getvalue()
    ckpt.write_checkpoint(tmp_path / "old", config, files)
    old = load(tmp_path / "old")
    ids = encoded(model, ["the jury said", "it was a good day"])
    for a, b in zip(old.score_ids(ids), model.score_ids(ids)):
        np.testing.assert_array_equal(a, b)


def test_an_index_hashed_another_way_is_rebuilt_not_trusted(model, tmp_path, brown):
    folder = tmp_path / "m"
    model.save(folder)
    config, files = ckpt.read_checkpoint(folder)
    assert config["fitted"]["index_scheme"] == probing.SCHEME
    config["fitted"]["index_scheme"] = "probing-power-of-two-load0.25"  # as saved by an earlier layout
    ckpt.write_checkpoint(folder, config, files)
    loaded = load(folder)
    ids = encoded(model, list(brown.test[:200]))
    for a, b in zip(loaded.score_ids(ids), model.score_ids(ids)):
        np.testing.assert_array_equal(a, b)
    assert not is_mapped(loaded.tables_.index(2).slots)  # built anew, in memory


def test_tables_are_hashed_as_they_are_written_and_the_digest_is_the_files(model, saved):
    """The fit records each table file's sha256 from the bytes it wrote (external_sort.NpyWriter);
    the checkpoint's manifest takes it from there, and it equals a fresh hash of the file."""
    tables = [Path(path) for name, path in model.tables_.sources.items() if not name.startswith("index_")]
    assert len(tables) == 5 * 4 + 2  # keys, logprob, logbackoff, is_context, count per order; support, scalars
    for path in tables:
        remembered = ckpt._DIGESTS.get(ckpt._digest_key(path))
        assert remembered == ckpt.file_sha256(path, cached=False), path.name
    manifest = json.loads((saved / ckpt.MANIFEST_FILE).read_text())
    for path in tables:
        assert manifest["files"][path.name] == ckpt.file_sha256(path, cached=False), path.name
