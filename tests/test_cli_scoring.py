"""`langmodels score` against KenLM's own query (the `kenlm` module reading our ARPA file),
`compare` against `evaluate`, greedy and several-sample generation on the command line, BPE
pieces shown as text, and the help of every command but train and evaluate (issue 14)."""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import warnings

import kenlm
import pytest
from cli_checks import TOY, assert_one_line_error, run, write_corpus

from langmodels import NGramLM, cli, load
from langmodels.corpora import Split
from langmodels.ngram import write_arpa

PEER_TOLERANCE = 2e-4  # ARPA keeps 6-7 significant digits of each log10 probability


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    corpus = write_corpus(root / "words.txt", lines=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lines = corpus.read_text().splitlines()
        NGramLM(3).fit(lines).save(root / "kn3")
        NGramLM(2, "witten-bell").fit(lines).save(root / "wb2")
        NGramLM(4, level="char").fit(lines).save(root / "char4")
        stream = Split(TOY * 4, name="train", corpus="toy", level="char", mode="stream")
        NGramLM(5, level="char").fit(stream).save(root / "stream5")
        NGramLM(3, level="bpe", bpe_vocab_size=300).fit(lines).save(root / "bpe3")
    return root


def test_score_prints_what_kenlm_query_prints_for_our_arpa_file(capsys, folders, tmp_path):
    model = load(folders / "kn3")
    write_arpa(model, tmp_path / "kn3.arpa")
    peer = kenlm.Model(str(tmp_path / "kn3.arpa"))
    lines = ["the cat sat on the mat", "a zebra ran fast and slow", "red red red"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "score", folders / "kn3", tmp_path / "in.txt")
    assert code == 0, err
    printed = out.splitlines()
    assert "note: 1 token(s)" in err and "not in the vocabulary" in err  # one note for the whole file
    for line, text in zip(lines, printed):
        fields = text.split("\t")
        words = [*line.split(), "</s>"]
        theirs = list(peer.full_scores(line))  # (log10 p, ngram_length, oov) per word and </s>
        assert len(fields) == len(words) + 1
        oov = 0
        for word, field, (prob, length, is_oov) in zip(words, fields, theirs):
            match = re.fullmatch(r"(.+)=(\d+) (\d+) (\S+)", field)
            assert match and match[1] == word, field
            assert (match[2] == "0") == is_oov  # KenLM's and our <unk> are both id 0
            assert int(match[3]) == length
            assert float(match[4]) == pytest.approx(prob, abs=PEER_TOLERANCE)
            oov += is_oov
        total = re.fullmatch(r"Total: (\S+) OOV: (\d+)", fields[-1])
        assert float(total[1]) == pytest.approx(peer.score(line), abs=PEER_TOLERANCE) and int(total[2]) == oov
    summary = dict(text.split(":\t") for text in printed[len(lines):])
    n_tokens = sum(len(line.split()) + 1 for line in lines)
    assert int(summary["Tokens"]) == n_tokens and int(summary["OOVs"]) == 1
    expected = 10 ** (-sum(peer.score(line) for line in lines) / n_tokens)
    assert float(summary["Perplexity including OOVs"]) == pytest.approx(expected, rel=1e-3)


def test_score_json_and_stdin_and_the_newline_of_a_stream_model(capsys, folders, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("the cat sat\na dog\n"))
    code, out, err = run(capsys, "score", folders / "stream5", "-", "--json")
    assert code == 0, err
    rows = [json.loads(text) for text in out.splitlines()]
    model = load(folders / "stream5")
    assert len(rows) == 2
    for row, line in zip(rows, ["the cat sat", "a dog"]):
        assert set(row) >= {"tokens", "log10", "oov", "total_log10"}
        assert row["tokens"] == [*line, "\n"]  # its characters, then the newline it learned
        assert row["total_log10"] == pytest.approx(model.logprob(line) / math.log(10))
        assert row["log10"][-1] > -math.inf and not any(row["oov"])


def test_score_refuses_what_it_cannot_read(capsys, folders, tmp_path):
    code, _, err = run(capsys, "score", folders / "kn3", tmp_path / "missing.txt")
    assert_one_line_error(code, err, "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    code, _, err = run(capsys, "score", folders / "kn3", tmp_path / "latin1.txt")
    assert_one_line_error(code, err, "UTF-8")


def test_compare_prints_evaluates_figures(capsys, folders):
    corpus = folders / "words.txt"
    checkpoints = [folders / "kn3", folders / "wb2", folders / "char4"]
    code, out, err = run(capsys, "compare", *checkpoints, "--corpus", corpus, "--split", "valid", "--json")
    assert code == 0, err
    compared = json.loads(out)
    for folder, row in zip(checkpoints, compared):
        code, out, err = run(capsys, "evaluate", folder, "--corpus", corpus, "--split", "valid", "--json")
        alone = json.loads(out)
        for key in ("word_perplexity", "bits_per_char", "perplexity", "n_unk", "n_tokens", "mode"):
            assert row[key] == alone[key], (folder, key)
        assert row["unk_rate"] == alone["n_unk"] / alone["n_tokens"]
    code, out, err = run(capsys, "compare", *checkpoints, "--corpus", corpus, "--split", "valid")
    assert code == 0, err
    table = out.splitlines()
    for folder, row in zip(checkpoints, compared):
        text = next(line for line in table if line.startswith(str(folder)))
        assert f"{row['word_perplexity']:.2f}" in text and f"{row['bits_per_char']:.4f}" in text
        assert f"{row['perplexity']:.2f}" in text


def test_generate_temperature_zero_is_top_k_one_and_num_matches_python(capsys, folders):
    code, greedy, err = run(capsys, "generate", folders / "kn3", "--prompt", "the", "--temperature", "0", "--seed", "4")
    assert code == 0, err
    code, top1, _ = run(capsys, "generate", folders / "kn3", "--prompt", "the", "--top-k", "1", "--seed", "9")
    assert greedy == top1
    code, out, _ = run(capsys, "generate", folders / "kn3", "--prompt", "the", "--seed", "5", "--num", "3")
    model = load(folders / "kn3")
    assert out.splitlines() == model.generate("the", seed=5, num=3)
    code, _, err = run(capsys, "generate", folders / "kn3", "--temperature", "-1")
    assert_one_line_error(code, err, "temperature")


def test_complete_shows_bpe_pieces_as_text(capsys, folders):
    code, out, err = run(capsys, "complete", folders / "bpe3", "the", "-k", "10")
    assert code == 0, err
    labels = [line.split("\t")[0] for line in out.splitlines()]
    assert labels and not any("Ġ" in label for label in labels)
    assert any(label.startswith(" ") for label in labels)  # a next word after a space


HELP_EXEMPT = {"train", "evaluate"}  # issue 14 items 1-4: their help is written with the trainer's options


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(set(subparsers()) - HELP_EXEMPT))
def test_every_option_says_what_it_does_and_its_default(command):
    parser = subparsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help) > 10, (command, name)
        has_default = action.default not in (None, False, [], "", argparse.SUPPRESS) and not action.required
        if has_default:
            assert "default" in action.help, (command, name, action.help)
            shown = action.default if not isinstance(action.default, list) else action.default[0]
            assert f"{shown:g}" in action.help if isinstance(shown, float) else str(shown) in action.help, \
                (command, name, action.help)
        elif action.option_strings and not action.required and action.nargs != 0:
            assert "default" in action.help, (command, name, action.help)  # says what happens without it
    # and argparse renders it (no stray % in a help text)
    assert parser.format_help()
