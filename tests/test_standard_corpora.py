"""The field's standard test files are recognised by their bytes, never by their names, and bring
their published figures into `evaluate --json` and the report (issue 12, item 5).

The real PTB and WikiText-2 files are not shipped, so each test registers the sha256 of a file it
writes as a standard one: what is tested is the recognition, not the table of hashes."""

import hashlib
import json
import warnings

import pytest
from cli_checks import bench, run

from langmodels import standard_corpora
from langmodels.bench.references import STANDARD_PUBLISHED
from langmodels.corpora import CorpusNote
from langmodels.standard_corpora import STANDARD_FILES, StandardFile, identify

pytestmark = pytest.mark.filterwarnings("ignore::langmodels.ngram.smoothing.DiscountFallbackWarning")

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "of", "and", "in", "to"]


@pytest.fixture(autouse=True)
def quiet_notes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusNote)
        yield


def lines(n, seed):
    import random

    rng = random.Random(seed)
    return "".join(" " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) + " \n" for _ in range(n))


@pytest.fixture
def ptb_folder(tmp_path, monkeypatch):
    """A PTB-shaped folder whose test file is registered as PTB test."""
    folder = tmp_path / "ptb"
    folder.mkdir()
    (folder / "ptb.train.txt").write_text(lines(300, 1), encoding="utf-8")
    (folder / "ptb.valid.txt").write_text(lines(40, 2), encoding="utf-8")
    test = lines(50, 3).encode("utf-8")
    (folder / "ptb.test.txt").write_bytes(test)
    digest = hashlib.sha256(test).hexdigest()
    monkeypatch.setitem(STANDARD_FILES, digest, StandardFile("ptb", "test", "Penn Treebank test (registered)"))
    return folder


def test_the_four_published_hashes_name_their_files():
    names = {(f.corpus, f.split) for f in STANDARD_FILES.values()}
    assert names == {("ptb", "test"), ("ptb", "valid"), ("wikitext-2", "test"), ("wikitext-2", "valid")}
    assert identify("dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0").corpus == "ptb"
    assert identify("0" * 64) is None and identify(None) is None


def test_evaluate_names_the_standard_test_file_by_its_bytes(capsys, tmp_path, ptb_folder):
    model = tmp_path / "kn3"
    code, _, err = run(capsys, "train", "ngram", "--corpus", ptb_folder, "--out", model, "--set", "order=3")
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", model, "--corpus", ptb_folder, "--json")
    assert code == 0, err
    assert json.loads(out)["benchmark"] == "ptb"
    # valid is not a standard file here
    code, out, err = run(capsys, "evaluate", model, "--corpus", ptb_folder, "--split", "valid", "--json")
    assert json.loads(out)["benchmark"] is None
    # a renamed copy is still PTB test; an edited copy, under the standard name, is not
    renamed = tmp_path / "heldout.txt"
    renamed.write_bytes((ptb_folder / "ptb.test.txt").read_bytes())
    code, out, err = run(capsys, "evaluate", model, "--corpus", renamed, "--split", "all", "--json")
    assert code == 0, err
    assert json.loads(out)["benchmark"] == "ptb"
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("ptb.train.txt", "ptb.valid.txt"):
        (edited / name).write_bytes((ptb_folder / name).read_bytes())
    (edited / "ptb.test.txt").write_bytes((ptb_folder / "ptb.test.txt").read_bytes() + b" the cat \n")
    code, out, err = run(capsys, "evaluate", model, "--corpus", edited, "--json")
    assert json.loads(out)["benchmark"] is None
    # part of a file is never the file: 80/10/10 of the test file's bytes is not PTB test
    code, out, err = run(capsys, "evaluate", model, "--corpus", renamed, "--json")
    assert json.loads(out)["benchmark"] is None


BENCH = """
name = "ptb"
[[corpus]]
name = "{source}"
label = "ptb"
[measure]
sample_seeds = [0]
[[model]]
name = "kn3"
kind = "ngram"
settings = {{ order = 3 }}
"""


def test_the_report_lists_the_published_rows_of_a_recognised_test_file(capsys, tmp_path, ptb_folder):
    config = tmp_path / "ptb.toml"
    config.write_text(BENCH.format(source=ptb_folder), encoding="utf-8")
    code, err = bench(capsys, config, "--out", tmp_path / "out")
    assert code == 0, err
    report = (tmp_path / "out" / "REPORT.md").read_text(encoding="utf-8")
    assert "Penn Treebank test (registered)" in report
    cited = [line for line in report.splitlines() if "Merity et al. 2017" in line]
    expected = [ref for ref in STANDARD_PUBLISHED if ref.corpus == "ptb"]
    assert len(cited) == len(expected) == 2  # PTB's rows, not WikiText-2's
    for ref, line in zip(expected, cited):
        assert line.startswith(f"| {ref.label} |") and f"{ref.value:g} word perplexity" in line


def test_an_unrecognised_folder_gets_no_published_rows(capsys, tmp_path, ptb_folder, monkeypatch):
    monkeypatch.setattr(standard_corpora, "STANDARD_FILES", {})
    config = tmp_path / "ptb.toml"
    config.write_text(BENCH.format(source=ptb_folder), encoding="utf-8")
    code, err = bench(capsys, config, "--out", tmp_path / "out")
    assert code == 0, err
    report = (tmp_path / "out" / "REPORT.md").read_text(encoding="utf-8")
    assert "AWD-LSTM" not in report
