"""The strict ARPA reader: KenLM's checks, one ArpaFormatError line for each kind of damage, a
file without <unk> scored as KenLM scores it, .arpa.gz read too, and a property test over random
edits of a valid file (a model with finite distributions, or one ArpaFormatError line)."""

from __future__ import annotations

import gzip
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langmodels import NGramLM
from langmodels.base import LangmodelsWarning
from langmodels.errors import ArpaFormatError
from langmodels.ngram import read_arpa, write_arpa

TRAIN = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog sat",
    "the mat was on the log",
    "a dog ran",
]


@pytest.fixture(scope="module")
def valid_text(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("arpa") / "kn3.arpa"
    write_arpa(NGramLM(3, "kneser-ney", discount=[0.5, 0.9, 1.2]).fit(TRAIN), path)
    return path.read_text(encoding="utf-8")


def line_of(text: str, pattern: str) -> int:
    """The 1-based number of the first line matching `pattern`."""
    return next(i for i, line in enumerate(text.split("\n"), start=1) if re.search(pattern, line))


def entry_line(text: str, n: int, index: int = 0) -> int:
    """The line number of the index-th entry of the n-gram section."""
    return line_of(text, rf"^\\{n}-grams:$") + 1 + index


def replace_line(text: str, number: int, new: str | None) -> str:
    lines = text.split("\n")
    if new is None:
        del lines[number - 1]
    else:
        lines[number - 1] = new
    return "\n".join(lines)


def set_field(text: str, number: int, column: int, value: str) -> str:
    fields = text.split("\n")[number - 1].split("\t")
    fields[column] = value
    return replace_line(text, number, "\t".join(fields))


def declared(text: str, n: int) -> int:
    return int(re.search(rf"ngram {n}=(\d+)", text).group(1))


# Each case: (what it damages, edit of the valid text -> (damaged text, the line the error names), words in the message)
CASES = {
    "count line without '='": (lambda t: (t.replace("ngram 2=", "ngram 2 ", 1), line_of(t, "ngram 2=")),
                               "malformed count line"),
    "count line not a number": (lambda t: (t.replace("ngram 2=", "ngram 2=x", 1), line_of(t, "ngram 2=")),
                                "malformed count line"),
    "orders not 1, 2, 3": (lambda t: (t.replace("ngram 2=", "ngram 4=", 1), line_of(t, "ngram 2=")),
                           "orders are declared 1, 2, 3"),
    "no \\data\\": (lambda t: (t.replace("\\data\\", "data", 1), 1), "expected \\data\\"),
    "declared count above the entries": (
        lambda t: (t.replace(f"ngram 2={declared(t, 2)}", f"ngram 2={declared(t, 2) + 1}"),
                   line_of(t, r"^\\3-grams:$") - 1), "header declares ngram 2="),
    "declared count below the entries": (
        lambda t: (t.replace(f"ngram 2={declared(t, 2)}", f"ngram 2={declared(t, 2) - 1}"),
                   line_of(t, r"^\\3-grams:$") - 1), "header declares ngram 2="),
    "duplicate bigram": (lambda t: (replace_line(t, entry_line(t, 2, 1), t.split("\n")[entry_line(t, 2) - 1]),
                                    entry_line(t, 2, 1)), "listed twice (first at line"),
    "duplicate unigram": (lambda t: (replace_line(t, entry_line(t, 1, 4), t.split("\n")[entry_line(t, 1, 3) - 1]),
                                     entry_line(t, 1, 4)), "listed twice"),
    "nan probability": (lambda t: (set_field(t, entry_line(t, 2), 0, "nan"), entry_line(t, 2)), "not a finite"),
    "inf probability": (lambda t: (set_field(t, entry_line(t, 3), 0, "-inf"), entry_line(t, 3)), "not a finite"),
    "float32 overflow probability": (lambda t: (set_field(t, entry_line(t, 2), 0, "-1e40"), entry_line(t, 2)),
                                     "-1e40 is not a finite 32-bit float"),
    "positive probability": (lambda t: (set_field(t, entry_line(t, 1, 5), 0, "0.25"), entry_line(t, 1, 5)),
                             "is positive"),
    "nan back-off": (lambda t: (set_field(t, entry_line(t, 1, 5), 2, "nan"), entry_line(t, 1, 5)),
                     "back-off nan is not a finite 32-bit float"),
    "probability not a number": (lambda t: (set_field(t, entry_line(t, 2), 0, "-0.3x"), entry_line(t, 2)),
                                 "is not a number"),
    "entry with a missing word": (lambda t: (set_field(t, entry_line(t, 3), 1, "the"), entry_line(t, 3)),
                                  "needs a log10 probability, 3 word(s)"),
    "declared order with no section": (
        lambda t: (t[: t.index("\\3-grams:")] + "\\end\\\n", line_of(t, r"^\\3-grams:$")),
        "\\end\\ before the \\3-grams: section"),
    "file cut before a declared section": (
        lambda t: (t[: t.index("\\3-grams:")], line_of(t, r"^\\3-grams:$") - 1), "ends before the \\3-grams:"),
    "file cut inside a section": (
        lambda t: (t[: t.index("\n", t.index("\\3-grams:") + 12) + 1], line_of(t, r"^\\3-grams:$") + 1),
        "cut short"),
    "missing \\end\\": (lambda t: (t.replace("\\end\\", ""), line_of(t, r"^\\end\\$")), "no \\end\\"),  # its last line
    "text after \\end\\": (lambda t: (t + "more\n", line_of(t, r"^\\end\\$") + 1), "text after \\end\\"),
    "undeclared section": (
        lambda t: (t.replace("\\end\\", "\\4-grams:\n-0.5\ta b c d\n\n\\end\\"), line_of(t, r"^\\end\\$")),
        "does not declare"),
    "word that is not a unigram": (lambda t: (set_field(t, entry_line(t, 2), 1, "the zebra"), entry_line(t, 2)),
                                   "not a unigram"),
    "back-off on the highest order": (lambda t: (t.replace(t.split("\n")[entry_line(t, 3) - 1],
                                                           t.split("\n")[entry_line(t, 3) - 1] + "\t-0.5"),
                                                 entry_line(t, 3)), "highest order"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_kind_of_damage_is_one_line_naming_file_line_and_problem(case, valid_text, tmp_path):
    edit, words = CASES[case]
    text, line = edit(valid_text)
    path = tmp_path / "damaged.arpa"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArpaFormatError) as raised:
        read_arpa(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_the_valid_file_reads_and_kenlm_agrees(valid_text, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    path = tmp_path / "valid.arpa"
    path.write_text(valid_text, encoding="utf-8")
    model = read_arpa(path)
    oracle = kenlm.Model(str(path))
    for line in ["the cat sat on the log", "a dog and the mat", "the"]:
        ours = model.score_ids([model.tokenizer.encode(line)])[0].sum() / math.log(10)
        assert ours == pytest.approx(oracle.score(line, bos=True, eos=True), abs=1e-4)


def without_unk(text: str) -> str:
    unk = line_of(text, r"\t<unk>(\t|$)")
    text = replace_line(text, unk, None)
    return text.replace(f"ngram 1={declared(text, 1)}", f"ngram 1={declared(text, 1) - 1}")


def test_a_file_without_unk_scores_unknown_words_as_kenlm_does_with_one_note(valid_text, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    path = tmp_path / "no-unk.arpa"
    path.write_text(without_unk(valid_text), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = read_arpa(path)
    notes = [w for w in caught if issubclass(w.category, LangmodelsWarning)]
    assert len(notes) == 1 and "<unk>" in str(notes[0].message) and "-100" in str(notes[0].message)
    oracle = kenlm.Model(str(path))
    lines = ["the zebra sat on the mat", "zebra", "a dog ran to the moon"]
    for line in lines:
        ours = model.score_ids([model.tokenizer.encode(line)])[0]
        assert np.isfinite(ours).all()
        assert ours.sum() / math.log(10) == pytest.approx(oracle.score(line, bos=True, eos=True), abs=1e-3)
    assert np.isfinite(model.evaluate(lines).perplexity)


def test_gzipped_arpa_reads_the_same(valid_text, tmp_path):
    plain, packed = tmp_path / "m.arpa", tmp_path / "m.arpa.gz"
    plain.write_text(valid_text, encoding="utf-8")
    with gzip.open(packed, "wt", encoding="utf-8") as out:
        out.write(valid_text)
    lines = ["the cat sat on the log", "a dog and the mat"]
    assert read_arpa(packed).evaluate(lines).nll == read_arpa(plain).evaluate(lines).nll
    broken = tmp_path / "broken.arpa.gz"
    broken.write_bytes(packed.read_bytes()[:-20])
    with pytest.raises(ArpaFormatError, match="broken.arpa.gz"):
        read_arpa(broken)


EDITS = st.lists(
    st.tuples(
        # Field replacements keep the declared counts, so the value checks are reached too.
        st.sampled_from(["delete", "duplicate", "swap", "replace-field", "replace-field", "replace-field",
                         "insert", "truncate"]),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.sampled_from(["nan", "inf", "-inf", "0.5", "-1e40", "x", "", "-99", "-0", "\\end\\", "ngram 2=3",
                         "\\2-grams:", "<unk>", "the", "-0.5\tthe cat", "#", "1e-300", "-1.5"]),
    ),
    min_size=1,
    max_size=4,
)


def edited(text: str, edits) -> str:
    lines = text.split("\n")
    for kind, a, b, token in edits:
        i, j = a % max(len(lines), 1), b % max(len(lines), 1)
        if kind == "delete" and lines:
            del lines[i]
        elif kind == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif kind == "swap" and lines:
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "replace-field" and lines:
            fields = lines[i].split("\t")
            fields[b % len(fields)] = token
            lines[i] = "\t".join(fields)
        elif kind == "insert":
            lines.insert(i, token)
        elif kind == "truncate":
            cut = "\n".join(lines)[: a % (len("\n".join(lines)) + 1)]
            lines = cut.split("\n")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_random_edits_give_a_finite_model_or_one_format_error(edits, valid_text, tmp_path):
    path = tmp_path / "edited.arpa"
    path.write_text(edited(valid_text, edits), encoding="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangmodelsWarning)
            model = read_arpa(path)
    except ArpaFormatError as error:
        assert "\n" not in str(error) and str(error).startswith(f"{path}:")
        return
    vocab = model.tokenizer.vocab
    support = np.asarray(model.tables_.support)
    for context in ([], ["the"], ["the", "cat"], ["zebra"], ["<s>"]):
        distribution = model.logprobs_after(vocab.ids(context))
        assert np.isfinite(distribution[support]).all()
    assert np.isfinite(model.evaluate(["the cat sat on the zebra", "a dog"]).nll)


def test_export_format_arpa_writes_what_kenlm_scores_as_the_checkpoint_does(tmp_path, capsys):
    from cli_checks import assert_one_line_error, run

    kenlm = pytest.importorskip("kenlm")
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(TRAIN * 4) + "\n", encoding="utf-8")
    code, _, _ = run(capsys, "train", "trigram", "--corpus", str(corpus), "--out", str(tmp_path / "kn3"))
    assert code == 0
    code, out, _ = run(capsys, "export", str(tmp_path / "kn3"), "--format", "arpa", "--out", str(tmp_path / "kn3.arpa"))
    assert code == 0 and "wrote" in out
    model, oracle = NGramLM.load(tmp_path / "kn3"), kenlm.Model(str(tmp_path / "kn3.arpa"))
    for line in ["the cat sat on the log", "a dog and the mat", "zebra"]:
        ours = model.score_ids([model.tokenizer.encode(line)])[0].sum() / math.log(10)
        assert ours == pytest.approx(oracle.score(line, bos=True, eos=True), abs=1e-4)
    code, _, err = run(capsys, "export", str(tmp_path / "kn3"), "--format", "arpa", "--out", str(tmp_path / "kn3.txt"))
    assert_one_line_error(code, err, "ends in .arpa")
