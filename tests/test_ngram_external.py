"""N-gram estimation within a memory limit (estimate.py, external_sort.py): a fit that spills
sorted blocks to disk equals the in-memory fit, stays within its memory limit, and prunes
and limits the vocabulary as KenLM's lmplz does."""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langmodels import NGramLM, corpora
from langmodels.cli import parse_settings
from langmodels.errors import ConfigError, DiskFullError
from langmodels.ngram.counting import NGramCounts
from langmodels.ngram.estimate import LinePositions, PaddedCorpus
from langmodels.ngram.external_sort import BackgroundWriter, Column, Workspace, count_keys, merge_runs, parse_memory
from langmodels.ngram.smoothing import SMOOTHINGS, DiscountFallbackWarning

TABLE_FIELDS = ("keys", "logprob", "logbackoff", "is_context")


@pytest.fixture(scope="module")
def brown():
    return corpora.load("brown")


def quiet_fit(lm, lines):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        return lm.fit(lines)


def in_memory_tables(lm, lines):
    """The estimation as it was before this pipeline, an independent path to the same tables:
    every order counted at once in memory (NGramCounts), each estimator's alpha and gamma over
    whole orders (Smoothing.alpha_gamma, per-context sums by bincount), then Chen & Goodman's
    P = alpha + gamma P_lower, lowest order first. Returns per order (keys, logprob,
    logbackoff, is_context) and the counts."""
    tokenizer = lm.make_tokenizer(lines)
    flat, lengths = tokenizer.fit_encode_lines(list(lines))
    vocab = tokenizer.vocab
    counts = NGramCounts.from_lines(flat, lengths, lm.order, len(vocab), vocab.bos_id, vocab.eos_id)
    support = np.ones(len(vocab), dtype=bool)
    support[[vocab.bos_id, vocab.pad_id, vocab.mask_id]] = False
    smoothing, size = lm.make_smoothing(), int(support.sum())
    probs, gammas = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        for n in range(1, lm.order + 1):
            table = counts[n]
            alpha, gamma = smoothing.alpha_gamma(counts, n, size)
            lower = np.full(len(table), 1 / size) if smoothing.lower == "uniform" or n == 1 else probs[-1][table.suffix]
            backed = gamma[table.context] * lower
            prob = alpha + backed if smoothing.interpolated else np.where(table.count > 0, alpha, backed)
            probs.append(np.where(support, prob, 0.0) if n == 1 else prob)
            gammas.append(gamma)
    tables = []
    for n in range(1, lm.order + 1):
        table = counts[n]
        is_context = np.zeros(len(table), dtype=bool)
        logbackoff = np.zeros(len(table))
        if n < lm.order:
            is_context = np.bincount(counts[n + 1].context, minlength=len(table)) > 0
            with np.errstate(divide="ignore"):
                logbackoff = np.where(is_context, np.log(np.where(is_context, gammas[n], 1.0)), 0.0)
        with np.errstate(divide="ignore"):
            tables.append((table.context * len(vocab) + table.word, np.log(probs[n - 1]), logbackoff, is_context))
    return tables, counts


# ---- the external pipeline equals the in-memory one -------------------------------------------


@pytest.mark.parametrize("smoothing", list(SMOOTHINGS))
def test_spilling_fit_equals_in_memory_fit(brown, smoothing):
    lines = list(brown.train[:1500])
    for order in range(1, 6):
        spilled = quiet_fit(NGramLM(order, smoothing, memory="1M"), lines)
        assert spilled.estimation_["blocks"] > 1 and (order == 1 or spilled.estimation_["spilled_bytes"] > 0)
        whole = quiet_fit(NGramLM(order, smoothing, memory="1G"), lines)
        assert whole.estimation_["blocks"] == 1 and whole.estimation_["spilled_bytes"] == 0
        reference, counts = in_memory_tables(NGramLM(order, smoothing), lines)
        for n in range(order):
            a, b, r = spilled.tables_.orders[n], whole.tables_.orders[n], dict(zip(TABLE_FIELDS, reference[n]))
            for field in TABLE_FIELDS:  # spilled or not: the same numbers, bit for bit
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=f"{order} {n} {field}")
            np.testing.assert_array_equal(a.keys, r["keys"])
            np.testing.assert_array_equal(a.is_context, r["is_context"])
            np.testing.assert_array_equal(spilled.counts_[n], counts.orders[n].count)
            for field in ("logprob", "logbackoff"):  # float32 tables: the float64 values rounded once
                ours, theirs = np.asarray(getattr(a, field)), r[field]
                assert ours.dtype == np.float32
                np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
                finite = np.isfinite(theirs)
                # per-context sums may differ in float64's last bit, which can move the rounding by one step
                np.testing.assert_array_max_ulp(ours[finite], theirs[finite].astype(np.float32), maxulp=1)


def test_spilling_stream_fit_equals_in_memory_fit():
    """Character data is one stream: the blocks cut through its single line."""
    text = corpora.load("shakespeare").train[:2000]
    spilled = quiet_fit(NGramLM(5, "kneser-ney", memory="1M"), text)
    whole = quiet_fit(NGramLM(5, "kneser-ney", memory="1G"), text)
    assert spilled.estimation_["blocks"] > 1
    for a, b in zip(spilled.tables_.orders, whole.tables_.orders):
        for field in TABLE_FIELDS:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert spilled.evaluate(text[:200]).perplexity == whole.evaluate(text[:200]).perplexity


@settings(max_examples=30, deadline=None)
@given(lines=st.lists(st.integers(0, 6), min_size=1, max_size=8), block=st.integers(1, 20), final=st.booleans(),
       stream=st.booleans())
def test_padded_blocks_lay_out_the_corpus(lines, block, final, stream):
    """Blocks of any size cut through lines and give the layout NGramCounts.pad gives in memory
    (lines mode), or <s> then the lines joined by a separator (stream mode, as _stream_ids)."""
    offsets = np.concatenate([[0], np.cumsum(lines)])
    flat = 10 + np.arange(offsets[-1]) % 7
    LinePositions.STRIDE = 2  # every other line's position kept: the reads between them are tested too
    try:
        check_layout(lines, offsets, flat, block, final, stream)
    finally:
        LinePositions.STRIDE = 4096


def check_layout(lines, offsets, flat, block, final, stream):
    if stream:
        pieces = [np.append(flat[a:b], 99) for a, b in itertools.pairwise(offsets)]
        joined = np.concatenate(pieces)[: None if final else -1]
        expected, position = np.concatenate([[1], joined]), np.arange(joined.size + 1)
        corpus = PaddedCorpus(flat, offsets, 1, None, 3, 100, separator=99, final=final)
    else:
        expected, position = NGramCounts.pad(flat, np.array(lines), 1, 2)
        corpus = PaddedCorpus(flat, offsets, 1, 2, 3, 100)
    assert corpus.size == expected.size
    parts = [corpus.block(start, min(start + block, corpus.size)) for start in range(0, corpus.size, block)]
    np.testing.assert_array_equal(np.concatenate([tokens for tokens, _ in parts]), expected)
    np.testing.assert_array_equal(np.concatenate([depth for _, depth in parts]), np.minimum(position, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(st.lists(st.integers(0, 40), max_size=60), min_size=1, max_size=6), budget=st.integers(1, 4096))
def test_merge_of_sorted_runs_equals_counting_everything_at_once(runs, budget):
    with Workspace(1 << 20) as workspace:
        columns, rows_expected = [], []
        everything = np.concatenate([np.array(run, dtype=np.int64) for run in runs])
        unique, counts = np.unique(everything, return_counts=True)
        for run in runs:
            keys, run_counts = np.unique(np.array(run, dtype=np.int64), return_counts=True)
            columns.append((Column.of(workspace, keys), Column.of(workspace, run_counts),
                            Column.of(workspace, keys * 7)))
            rows_expected.append(np.searchsorted(unique, keys))
        keys, merged, payload, rows = merge_runs(workspace, columns, budget)
        np.testing.assert_array_equal(keys.read(), unique)
        np.testing.assert_array_equal(merged.read(), counts)
        np.testing.assert_array_equal(payload.read(), unique * 7)
        for got, expected in zip(rows, rows_expected):
            np.testing.assert_array_equal(got.read(), expected)


@pytest.mark.parametrize("spilled", [False, True])
def test_merge_rounds_on_a_thread_pool_give_the_serial_merge(spilled):
    """Many rounds (slices of 1024 entries a run), merged two at a time on threads."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    runs = [np.unique(rng.integers(0, 50_000, size)) for size in (9000, 4000, 12000, 1, 7000)]
    everything = np.concatenate(runs)
    unique, counts = np.unique(everything, return_counts=True)
    with Workspace(1 << 10 if spilled else 1 << 26) as workspace, ThreadPoolExecutor(2) as pool:
        results = []
        for threads in (None, pool):
            columns = [(Column.of(workspace, keys), Column.of(workspace, np.full(keys.size, 2, dtype=np.int32)),
                        Column.of(workspace, keys * 3)) for keys in runs]
            results.append([column.read() for column in flatten(merge_runs(workspace, columns, 1, np.int32,
                                                                           pool=threads))])
        for serial, threaded in zip(*results):
            np.testing.assert_array_equal(serial, threaded)
        keys, merged, payload, *rows = results[1]
        np.testing.assert_array_equal(keys, unique)
        np.testing.assert_array_equal(merged, 2 * counts)
        np.testing.assert_array_equal(payload, unique * 3)
        for got, run in zip(rows, runs):
            np.testing.assert_array_equal(got, np.searchsorted(unique, run))


def flatten(merged):
    keys, counts, payload, rows = merged
    return [keys, counts, payload, *rows]


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.integers(0, 2**40), max_size=3000), parts=st.integers(1, 3))
def test_count_keys_is_unique_with_counts_and_inverse(keys, parts):
    from concurrent.futures import ThreadPoolExecutor

    keys = np.array(keys, dtype=np.int64)
    with ThreadPoolExecutor(2) as pool:
        unique, counts, first, inverse = count_keys(keys.copy(), pool, parts)
    expected, expected_inverse, expected_counts = np.unique(keys, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(inverse, expected_inverse)
    np.testing.assert_array_equal(keys[first], unique)


# ---- memory ------------------------------------------------------------------------------------

CHILD = """
import json, sys, warnings
import numpy as np
from langmodels.ngram.estimate import estimate
from langmodels.ngram.smoothing import KneserNey

def status(field):  # VmRSS: resident now; VmHWM: its peak (ru_maxrss also counts the parent's before exec)
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))

ids_path, offsets_path, out, memory, order, vocab_size = sys.argv[1:7]
flat = np.load(ids_path, mmap_mode="r")
offsets = np.load(offsets_path)
support = np.ones(int(vocab_size), dtype=bool)
support[[1, 3, 4]] = False
before = status("VmRSS:")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = estimate(flat, offsets, out, order=int(order), vocab_size=int(vocab_size), bos_id=1, eos_id=2,
                      smoothing=KneserNey(), support=support, memory=int(memory), progress=False, threads=1)
print(json.dumps({"extra": status("VmHWM:") - before, "blocks": result.blocks, "spilled": result.spilled_bytes}))
"""
CONSTANT = 32 << 20  # allocator slack and small per-line arrays, on top of the limit


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc to read the resident set")
def test_peak_memory_of_a_fit_stays_within_the_limit(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 35, 100_000)
    vocab_size = 2000  # Zipf-distributed words: a long tail of distinct trigrams
    ids = (5 + np.minimum(rng.zipf(1.3, int(lengths.sum())), vocab_size - 6)).astype(np.uint16)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))

    def extra(memory):
        command = [sys.executable, "-c", CHILD, str(tmp_path / "ids.npy"), str(tmp_path / "offsets.npy"),
                   str(tmp_path / f"out-{memory}"), str(memory), "3", str(vocab_size)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    limit = 16 << 20
    bounded, unbounded = extra(limit), extra(4 << 30)
    assert bounded["blocks"] > 10 and bounded["spilled"] > 3 * limit  # the corpus does not fit the limit
    assert bounded["extra"] <= limit + CONSTANT
    assert unbounded["extra"] > 3 * limit  # what the same estimation takes when it may
    for name in ("keys_3.npy", "logprob_3.npy", "count_2.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / f"out-{limit}" / name),
                                      np.load(tmp_path / f"out-{4 << 30}" / name))


def test_a_dropped_columns_spill_file_is_written_over_and_the_kept_files_stay_within_the_limit(tmp_path):
    workspace = Workspace(1 << 20, tmp_path, resident_share=0)  # every column spills
    first = Column.of(workspace, np.arange(100_000), "first")
    path = first.path
    first.drop()
    second = Column.of(workspace, np.arange(50_000) * 3, "second")
    assert second.path == path  # the dropped column's file, written over from its start
    np.testing.assert_array_equal(second.read(), np.arange(50_000) * 3)  # its longer old content unread
    large = [Column.of(workspace, np.arange(200_000), f"large-{i}") for i in range(3)]  # 1.6 MB each
    paths = [column.path for column in large]
    for column in large:
        column.drop()
    assert sum(p.exists() for p in paths) == 1  # kept while they hold at most 2 x 1 MiB
    workspace.close()
    assert not list(tmp_path.iterdir())


class RecordingFile:
    """A file handle that records what is written to it, and by which thread, slowly."""

    def __init__(self, log, fail=False):
        self.log, self.fail = log, fail

    def write(self, data):
        time.sleep(0.002)
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.log.append((threading.current_thread().name, bytes(data)))


class Owner:
    def __init__(self, name):
        self.path = Path(name)


def test_the_background_writer_keeps_each_owners_order_and_writes_owners_side_by_side():
    writer = BackgroundWriter(1 << 10)  # a few pieces queued at a time: submit waits
    owners = [Owner(f"column-{k}") for k in range(4)]
    logs = {owner: [] for owner in owners}
    handles = {owner: RecordingFile(logs[owner]) for owner in owners}
    try:
        for i in range(30):
            for k, owner in enumerate(owners):
                writer.submit(owner, handles[owner], np.full(64, i * 4 + k, dtype=np.uint8))
        for owner in owners:
            writer.wait(owner)
    finally:
        writer.close()
    for k, owner in enumerate(owners):
        assert [data[0] for _, data in logs[owner]] == [i * 4 + k for i in range(30)]
    assert len({thread for log in logs.values() for thread, _ in log}) == 2


def test_a_failed_write_is_raised_for_its_owner_only():
    writer = BackgroundWriter(1 << 20)
    good, bad, log = Owner("good"), Owner("bad"), []
    try:
        for i in range(5):
            writer.submit(good, RecordingFile(log), np.full(8, i, dtype=np.uint8))
            writer.submit(bad, RecordingFile([], fail=True), np.zeros(8, dtype=np.uint8))
        writer.wait(good)
        with pytest.raises(DiskFullError, match="bad"):
            writer.wait(bad)
    finally:
        writer.close()
    assert [data[0] for _, data in log] == list(range(5))


REUSE_CHILD = r"""
import ctypes, ctypes.util, json
import numpy as np
from langmodels.ngram.external_sort import reused_memory

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = Info
switch = np._core.multiarray._set_madvise_hugepage

def mapped_bytes_of_a_block():  # what one 64 MiB array adds to the allocator's mmapped bytes
    before = libc.mallinfo2().hblkhd
    block = np.ones(8 << 20)
    added = libc.mallinfo2().hblkhd - before
    del block
    return added

facts = {"before": mapped_bytes_of_a_block()}
switch(True)
with reused_memory():
    with reused_memory():
        facts["inner"] = mapped_bytes_of_a_block()
    facts["outer"] = mapped_bytes_of_a_block()
    facts["huge_inside"] = switch(False)
    switch(False)
facts["after"] = mapped_bytes_of_a_block()
facts["huge_after"] = switch(True)
print(json.dumps(facts))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (mallinfo2, mallopt)")
def test_reused_memory_serves_large_blocks_from_the_heap_and_restores_the_settings():
    done = subprocess.run([sys.executable, "-c", REUSE_CHILD], check=False, capture_output=True, text=True)
    if "mallinfo2" in done.stderr:
        pytest.skip("this C library has no mallinfo2")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["before"] >= 64 << 20  # by default a 64 MiB array is mapped on its own
    assert facts["inner"] == 0 and facts["outer"] == 0  # within the block (nested too): from the heap
    assert facts["after"] >= 64 << 20  # past 32 MiB, mapped again once the outermost block ends
    assert facts["huge_inside"] is False  # numpy asks for no huge pages within the block ...
    assert facts["huge_after"] is True  # ... and its setting comes back after it


# ---- pruning and vocabulary limits -----------------------------------------------------------


def find_lmplz() -> str | None:
    for candidate in (os.environ.get("LMPLZ"), shutil.which("lmplz")):
        if candidate and Path(candidate).is_file():
            return candidate
    built = sorted(Path.home().glob(".cache/langmodels/tools/kenlm-*/build/bin/lmplz"))
    return str(built[-1]) if built else None


@pytest.fixture(scope="module")
def stand_in_text(brown, tmp_path_factory):
    """Brown train and test with the corpus's literal <unk> renamed (lmplz refuses to count it)."""
    folder = tmp_path_factory.mktemp("lmplz")
    train = [line.replace("<unk>", "UNKWORD") for line in brown.train[:8000]]
    test = [line.replace("<unk>", "UNKWORD") for line in brown.test[:2000]]
    (folder / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    words = {}
    for line in train:
        for word in line.split():
            words[word] = words.get(word, 0) + 1
    common = sorted(words, key=lambda w: (-words[w], w))[:1500]
    (folder / "vocab.txt").write_text("\n".join(common) + "\n", encoding="utf-8")
    return folder, train, test


@pytest.mark.parametrize(
    ("order", "prune", "limit"),
    [(3, "0 1 1", False), (5, "0 0 1 2", False), (3, None, True), (4, "0 1", True)],
)
def test_pruned_and_limited_models_match_lmplz(stand_in_text, order, prune, limit, tmp_path):
    lmplz = find_lmplz()
    if lmplz is None:
        pytest.skip("lmplz not found ($LMPLZ, PATH or ~/.cache/langmodels/tools/kenlm-*/build/bin)")
    kenlm = pytest.importorskip("kenlm")
    folder, train, test = stand_in_text
    arpa = tmp_path / "lmplz.arpa"
    command = [lmplz, "-o", str(order), "-S", "200M", "-T", str(tmp_path), "--text", str(folder / "train.txt"),
               "--arpa", str(arpa)]
    if prune:
        command += ["--prune", *prune.split()]
    if limit:
        command += ["--limit_vocab_file", str(folder / "vocab.txt")]
    subprocess.run(command, check=True, capture_output=True)
    lm = NGramLM(order, prune=prune, limit_vocab=str(folder / "vocab.txt") if limit else None, memory="4M").fit(train)
    ours = lm.evaluate(test)
    oracle = kenlm.Model(str(arpa))
    theirs = math.exp(-sum(oracle.score(line, bos=True, eos=True) for line in test) * math.log(10) / ours.n_tokens)
    assert ours.perplexity == pytest.approx(theirs, rel=1e-4)
    header = arpa.read_text(encoding="utf-8").split("\n\n")[0]
    sizes = [int(line.split("=")[1]) for line in header.splitlines() if line.startswith("ngram ")]
    # Our order 1 also lists <pad> and <mask> (never predicted); every other order has lmplz's n-grams.
    assert [len(table.keys) for table in lm.tables_.orders] == [sizes[0] + 2, *sizes[1:]]


limits = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True)
corpus = st.lists(st.lists(st.sampled_from("abcdefg"), min_size=0, max_size=9), min_size=1, max_size=10).filter(
    lambda lines: any(lines)
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=corpus,
    order=st.integers(2, 4),
    thresholds=st.lists(st.integers(0, 2), min_size=1, max_size=3),
    words=st.none() | limits,
    smoothing=st.sampled_from(["kneser-ney", "witten-bell", "absolute", "mle", "laplace"]),
)
def test_pruned_models_still_normalise(lines, order, thresholds, words, smoothing):
    prune = [0, *sorted(thresholds)][:order]
    text = [" ".join(line) for line in lines]
    lm = quiet_fit(NGramLM(order, smoothing, prune=prune, limit_vocab=words, memory="1M"), text)
    vocab = lm.tokenizer.vocab
    if words is not None:
        assert set(vocab.tokens[5:]) <= set(words)
    tables = lm.tables_
    for n in range(2, order + 1):  # every n-gram's context is an (n-1)-gram of the model
        context = np.asarray(tables.orders[n - 1].keys) // tables.vocab_size
        assert np.all(context < len(tables.orders[n - 2].keys))
        assert np.all(np.diff(np.asarray(tables.orders[n - 1].keys)) > 0)
    for line in lines[:3]:
        ids = [vocab[token] for token in line]
        for k in range(len(ids) + 1):
            total = np.logaddexp.reduce(lm.next_logprobs(ids[:k]))
            assert abs(total) < 1e-6  # float32 logs: off by |L| * 2**-24 each


# ---- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"memory": "lots"}, "memory"),
        ({"memory": "10K"}, "at least"),
        ({"prune": "0 2 1"}, "non-decreasing"),
        ({"prune": "1 1"}, "unigrams"),
        ({"prune": [0, 1, 1, 1]}, "order 3"),
        ({"prune": "0 x"}, "whole-number"),
        ({"limit_vocab": "/no/such/words.txt"}, "no word list"),
        ({"limit_vocab": 7}, "limit_vocab"),
    ],
)
def test_bad_estimation_options_are_one_clear_error(options, message):
    with pytest.raises(ConfigError, match=message):
        NGramLM(3, **options).fit(["a b c", "b c d"])


def test_memory_sizes_read_as_lmplz_reads_them():
    assert parse_memory("2G") == 2 << 30
    assert parse_memory("500M") == 500 << 20
    assert parse_memory(64 << 20) == 64 << 20
    assert 0 < parse_memory("10%") < parse_memory(None)  # the default: half of what is available


def test_settings_reach_the_model_from_the_command_line(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("a b\nc\n", encoding="utf-8")
    params = parse_settings("ngram", NGramLM, ["memory=64M", "prune=0,1", f"limit_vocab={words}",
                                               f"tmp_dir={tmp_path}", "order=2"])
    lm = quiet_fit(NGramLM(**params), ["a b c d", "a b c", "a b"])
    assert lm.prune_thresholds() == [0, 1]
    assert set(lm.tokenizer.vocab.tokens[5:]) == {"a", "b", "c"}
    assert lm.estimation_["memory"] == 64 << 20
    assert "pruned 0 1" in lm.name


def test_limited_character_model_reads_other_characters_as_unk():
    text = corpora.load("shakespeare").train[:3000]
    lm = quiet_fit(NGramLM(3, limit_vocab=list("etaoin \n"), memory="1M"), text)
    vocab = lm.tokenizer.vocab
    assert set(vocab.tokens[5:]) == set("etaoin \n")
    assert lm.tokenizer.encode("tax") == [vocab["t"], vocab["a"], vocab.unk_id]
    assert abs(np.logaddexp.reduce(lm.next_logprobs(lm.tokenizer.encode("tea")))) < 1e-6  # float32 logs
