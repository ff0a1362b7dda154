"""The samples' figures (langmodels/sample_metrics.py, issue 18): each metric on a hand-computed
example, self-BLEU against nltk's BLEU called directly, the judge perplexity against the judge's
own `evaluate`, seeded samples that repeat; `langmodels samples` end to end on tiny n-gram models;
and a tiny benchmark whose results.csv and REPORT.md carry the figures, cached on a second run."""

import csv
import json
import math

import pytest
from cli_checks import TOY, assert_one_line_error, bench, run, write_corpus
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

from langmodels import load
from langmodels.errors import ConfigError
from langmodels.ngram import NGramLM
from langmodels.sample_metrics import (
    check_judge,
    distinct_n,
    draw_samples,
    ends_in_loop,
    judge_perplexity,
    line_lengths,
    reference_samples,
    repetition,
    sample_figures,
    sample_lines,
    self_bleu,
    zipf_coefficient,
)

SMOOTHING = SmoothingFunction().method1


def words(text: str) -> list[str]:
    return text.split()


# ---- each metric by hand ------------------------------------------------------------------------


def test_distinct_n_counts_ngrams_inside_lines():
    lines = [["a", "b", "a", "b"], ["a", "b", "c"]]
    # unigrams: a b a b a b c = 7, distinct {a, b, c} = 3
    assert distinct_n(lines, 1) == pytest.approx(3 / 7)
    # bigrams: ab ba ab | ab bc = 5 (no 'b a' across the line break), distinct {ab, ba, bc} = 3
    assert distinct_n(lines, 2) == pytest.approx(3 / 5)
    # trigrams: aba bab | abc = 3, all distinct
    assert distinct_n(lines, 3) == 1.0
    assert distinct_n([["a", "b"]], 3) is None  # no line has three words


def test_self_bleu_by_hand_and_against_nltk_called_directly():
    a, b = words("a b c d"), words("a b c e")
    # a against [b]: p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1 -> epsilon 0.1 (method 1); equal
    # lengths, so no brevity penalty: BLEU = (3/4 * 2/3 * 1/2 * 0.1) ** (1/4); b against [a] alike.
    assert self_bleu([a, b]) == pytest.approx((3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25, rel=1e-12)
    assert self_bleu([a, a]) == pytest.approx(1.0)
    assert self_bleu([a]) is None  # no other sample to be a reference
    samples = [line.split() for line in TOY] + [["the", "cat"], []]
    expected = []
    for i, hypothesis in enumerate(samples):
        others = samples[:i] + samples[i + 1:]
        one = sentence_bleu(others, hypothesis, smoothing_function=SMOOTHING)
        assert corpus_bleu([others], [hypothesis], smoothing_function=SMOOTHING) == pytest.approx(one)
        expected.append(one)
    assert self_bleu(samples) == pytest.approx(sum(expected) / len(expected), rel=1e-12)


def test_a_loop_is_one_kgram_three_times_at_the_end():
    assert ends_in_loop(words("and then of the of the of the"))  # k = 2
    assert ends_in_loop(words("no no no"))  # k = 1
    assert ends_in_loop(words("x a b c d a b c d a b c d"))  # k = 4
    assert not ends_in_loop(words("what are you doing ? ?"))  # two copies: Brown's doubled punctuation
    assert not ends_in_loop(words("a b c d e a b c d e a b c d e"))  # k = 5 is past the rule
    assert not ends_in_loop(words("of the of the of the end"))  # a loop it left is no loop at the end
    # 2 of the 4 samples end in a loop
    assert repetition([["no", "no", "no"], ["a", "b"], words("x y x y x y"), []]) == 0.5


def test_zipf_coefficient_is_minus_the_slope_of_log_frequency_on_log_rank():
    # frequencies 12, 6, 4, 3 at ranks 1-4: f = 12 / r exactly, so log f = log 12 - 1 * log r: slope -1
    words = ["a"] * 12 + ["b"] * 6 + ["c"] * 4 + ["d"] * 3
    assert zipf_coefficient(words) == pytest.approx(1.0, abs=1e-12)
    # f = 16 / r^2 at ranks 1, 2, 4... here 16, 4: two points, slope -2 exactly
    assert zipf_coefficient(["a"] * 16 + ["b"] * 4) == pytest.approx(2.0, abs=1e-12)
    # the rank range: only the 2 most frequent types are fitted with max_rank = 2
    assert zipf_coefficient(["a"] * 16 + ["b"] * 4 + ["c"] * 4, max_rank=2) == pytest.approx(2.0, abs=1e-12)
    assert zipf_coefficient(["a", "a"]) is None


def test_line_lengths_mean_and_population_spread():
    assert line_lengths([["a", "b"], ["a", "b", "c", "d"]]) == (3.0, 1.0)  # (2 + 4) / 2, sqrt((1 + 1) / 2)
    assert line_lengths([]) == (None, None)


def test_sample_lines_and_the_reference_cut_like_samples():
    assert sample_lines("the cat sat", "word") == ["the cat sat"]
    # a subword model on a line corpus can spell a newline: its line ends there
    assert sample_lines("the cat\nsat on", "word") == ["the cat"]
    assert sample_lines("ROMEO:\nI am\nhe sa", "char") == ["ROMEO:", "I am"]  # the cut-off tail left out
    assert sample_lines("no newline yet", "char") == ["no newline yet"]
    test = ["a b c d e f", "g h", "i j k", "l"]
    words = reference_samples(test, 4, "word", max_tokens=3, seed=0)
    assert sorted(words) == sorted([["a b c"], ["g h"], ["i j k"], ["l"]])  # every line once, cut to 3 words
    # characters: the whole lines that fit a 12-character window (newlines counted)
    chars = reference_samples(test, 4, "char", max_tokens=12, seed=0)
    assert sorted(chars) == sorted([["a b c d e f"], ["g h", "i j k", "l"], ["i j k", "l"], ["l"]])


# ---- the judge and the seeds ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    lines = TOY * 4
    return NGramLM(order=2, smoothing="witten-bell").fit(lines), NGramLM(order=3, smoothing="witten-bell").fit(lines)


def test_judge_perplexity_is_the_judges_own_evaluate(models):
    bigram, trigram = models
    samples = draw_samples(bigram, 6, temperature=1.3, max_tokens=12, seed=3)
    lines = [line for text in samples for line in sample_lines(text, "word")]
    evaluation = trigram.evaluate(lines)
    assert judge_perplexity(trigram, lines, "lines") == evaluation.word_perplexity
    # exp(NLL / (words + one end-of-line per line))
    n_words = sum(len(line.split()) for line in lines) + len(lines)
    assert evaluation.word_perplexity == pytest.approx(math.exp(evaluation.nll / n_words), rel=1e-12)
    figures = sample_figures([sample_lines(text, "word") for text in samples], trigram, "lines")
    assert figures["judge_word_perplexity"] == evaluation.word_perplexity
    assert figures["words"] == n_words - len(lines) and figures["lines"] == len(lines) == 6


def test_the_same_seed_gives_the_same_samples_and_figures(models):
    bigram, trigram = models
    first = draw_samples(bigram, 8, temperature=0.7, top_p=0.9, max_tokens=10, seed=5)
    again = draw_samples(bigram, 8, temperature=0.7, top_p=0.9, max_tokens=10, seed=5)
    assert first == again
    assert first == [bigram.generate("", 10, temperature=0.7, top_p=0.9, seed=5 + i) for i in range(8)]
    figures = [sample_figures([sample_lines(t, "word") for t in texts], trigram) for texts in (first, again)]
    assert figures[0] == figures[1]
    other = draw_samples(bigram, 8, temperature=0.7, top_p=0.9, max_tokens=10, seed=50)
    assert other != first


def test_a_judge_must_give_probabilities():
    unnormalised = NGramLM(order=2, smoothing="stupid-backoff").fit(TOY)
    with pytest.raises(ConfigError, match="unnormalised"):
        check_judge(unnormalised)


# ---- langmodels samples ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    work = tmp_path_factory.mktemp("samples")
    corpus = write_corpus(work / "words.txt", lines=300)
    from langmodels import cli

    for model, settings in (("bigram", []), ("trigram", []), ("ngram", ["--set", "smoothing=stupid-backoff"])):
        assert cli.main(["train", model, "--corpus", str(corpus), "--out", str(work / model), *settings]) == 0
    return work


def test_the_samples_command_prints_the_figures_of_the_module(checkpoints, capsys):
    bigram, trigram = checkpoints / "bigram", checkpoints / "trigram"
    code, out, err = run(capsys, "samples", bigram, "--judge", trigram, "--num", 5, "--temperature", 0.5, 1.3,
                         "--top-p", 0.95, "--max-tokens", 7, "--seed", 2, "--corpus", checkpoints / "words.txt",
                         "--json")
    assert code == 0, err
    printed = json.loads(out)
    model, judge = load(bigram), load(trigram)
    assert [row["setting"] for row in printed["settings"]] == ["T=0.5, top-p=0.95", "T=1.3, top-p=0.95"]
    for row, temperature in zip(printed["settings"], (0.5, 1.3)):
        texts = [model.generate("", 7, temperature=temperature, top_p=0.95, seed=2 + i) for i in range(5)]
        assert row["samples"] == texts
        lines = [text for text in texts]  # a word sample is one line
        assert row["figures"]["judge_word_perplexity"] == pytest.approx(judge.evaluate(lines).word_perplexity,
                                                                        rel=1e-12)
        assert row["figures"]["distinct_2"] == distinct_n([line.split() for line in lines], 2)
        assert row["figures"]["self_bleu"] == pytest.approx(self_bleu([line.split() for line in lines]))
    assert printed["reference"]["figures"]["samples"] == 5
    code, out, err = run(capsys, "samples", bigram, "--judge", trigram, "--num", 5, "--temperature", 0.5, 1.3,
                         "--top-p", 0.95, "--max-tokens", 7, "--seed", 2, "--corpus", checkpoints / "words.txt")
    assert code == 0, err
    rows = out.splitlines()
    assert "judge ppl" in rows[1] and rows[2].startswith("T=0.5, top-p=0.95") and rows[4].startswith("test text")
    judged = printed["settings"][0]["figures"]["judge_word_perplexity"]
    assert f"{judged:.2f}" in rows[2]


@pytest.mark.parametrize("argv, fragments", [
    (["samples", "{missing}", "--judge", "{trigram}"], ["no checkpoint folder"]),
    (["samples", "{bigram}", "--judge", "{missing}"], ["no checkpoint folder"]),
    (["samples", "{bigram}", "--judge", "{ngram}"], ["unnormalised"]),
    (["samples", "{bigram}", "--judge", "{trigram}", "--num", "0"], ["--num", "from 1 to"]),
    (["samples", "{bigram}", "--judge", "{trigram}", "--temperature", "-1"], ["temperature", ">= 0"]),
    (["samples", "{bigram}", "--judge", "{trigram}", "--top-p", "1.5"], ["top-p", "(0, 1]"]),
    (["samples", "{bigram}", "--judge", "{trigram}", "--max-tokens", "0"], ["max-tokens", "from 1 to"]),
    (["samples", "{bigram}", "--judge", "{trigram}", "--seed", "x"], ["seed"]),
    (["samples", "{bigram}"], ["--judge"]),
    (["samples", "{bigram}", "--judge", "{trigram}", "--corpus", "no-such-corpus"], ["no-such-corpus"]),
], ids=["missing-dir", "missing-judge", "unnormalised-judge", "num", "temperature", "top-p", "max-tokens", "seed",
        "no-judge", "corpus"])
def test_samples_mistakes_are_one_line(checkpoints, capsys, argv, fragments):
    paths = {"missing": checkpoints / "missing", "bigram": checkpoints / "bigram",
             "trigram": checkpoints / "trigram", "ngram": checkpoints / "ngram"}
    code, _, err = run(capsys, *[arg.format(**paths) for arg in argv])
    assert_one_line_error(code, err, *fragments)


# ---- the benchmark ----------------------------------------------------------------------------------

TINY = """
name = "tiny"
[[corpus]]
name = "words.txt"
[measure]
temperatures = [1.0]
sample_seeds = [0]
samples_per_setting = 6
sample_max_tokens = 12
sample_settings = [{ temperature = 0.5 }, { temperature = 1.0 }, { temperature = 1.0, top_p = 0.9 }]
[[model]]
name = "bigram"
kind = "bigram"
[[model]]
name = "trigram"
kind = "trigram"
[[model]]
name = "ngram"
kind = "ngram"
settings = { order = 2, smoothing = "witten-bell" }
"""
COLUMNS = ["sample_judge_word_perplexity", "sample_distinct_1", "sample_distinct_2", "sample_distinct_3",
           "sample_self_bleu", "sample_repetition", "sample_zipf", "sample_mean_length"]


def test_a_benchmark_scores_every_runs_samples_with_the_best_model_as_judge(tmp_path, capsys):
    write_corpus(tmp_path / "words.txt", lines=300)
    (tmp_path / "tiny.toml").write_text(TINY, encoding="utf-8")
    out = tmp_path / "out"
    code, err = bench(capsys, tmp_path / "tiny.toml", "--out", out)
    assert code == 0, err
    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    judge_row = min(rows, key=lambda row: float(row["word_perplexity"]))
    judge = load(next((out / "runs").glob(f"words-{judge_row['model']}-*")) / "model")
    for row in rows:
        assert all(row[column] != "" for column in COLUMNS), row
        stored = json.loads(next((out / "runs").glob(f"samples-words-{row['model']}-*.json")).read_text("utf-8"))
        at_one = stored["settings"][1]  # T = 1 without truncation: the summary's setting
        assert at_one["temperature"] == 1.0 and at_one["top_p"] is None and len(at_one["texts"]) == 6
        model = load(next((out / "runs").glob(f"words-{row['model']}-*")) / "model")
        assert at_one["texts"] == [model.generate("", 12, seed=i) for i in range(6)]
        assert float(row["sample_judge_word_perplexity"]) == pytest.approx(
            judge.evaluate(at_one["texts"]).word_perplexity, rel=1e-12)
        assert float(row["sample_distinct_2"]) == pytest.approx(distinct_n([t.split() for t in at_one["texts"]], 2))
    report = (out / "REPORT.md").read_text("utf-8")
    section = report.split("## Sample quality\n", 1)[1].split("## Autocomplete", 1)[0]
    assert f"Judge: {judge_row['model']} (" in section
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| model | judge word perplexity | distinct-1 |")
    assert table[2].startswith("| *test text* |") and len(table) == 2 + 1 + len(rows) + 1 + 1 + len(rows)
    assert "![words: judge word perplexity against distinct-2" in section
    assert (out / "plots" / "sample_quality-words.png").is_file()

    code, err = bench(capsys, tmp_path / "tiny.toml", "--out", out)  # everything cached: nothing redrawn
    assert code == 0 and "samples at each of" not in err and "judged" not in err, err
    assert (out / "REPORT.md").read_text("utf-8") == report


def test_bad_sample_settings_are_one_line(tmp_path, capsys):
    write_corpus(tmp_path / "words.txt", lines=50)
    for bad, fragment in ((TINY.replace("{ temperature = 0.5 }", "{ temperature = 0 }"),
                           "measure.sample_settings[0].temperature: must be a number > 0"),
                          (TINY.replace("top_p = 0.9", "top_p = 2"), "measure.sample_settings[2].top_p"),
                          (TINY.replace("samples_per_setting = 6", "samples_per_setting = -1"),
                           "measure.samples_per_setting"),
                          (TINY.replace("{ temperature = 0.5 }", "{ temp = 0.5 }"), "unknown key 'temp'")):
        (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
        code, err = bench(capsys, tmp_path / "bad.toml", "--out", tmp_path / "out")
        assert_one_line_error(code, err, fragment)
        assert not (tmp_path / "out").exists()
