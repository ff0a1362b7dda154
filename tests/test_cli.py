"""The `langmodels` command end to end: every command through main(argv), a real subprocess, and
every user mistake of docs/design.md section 7 as one line on stderr with a non-zero exit."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error, run, write_corpus

import langmodels
from langmodels import cli, corpora
from langmodels.ngram import NGramLM

REPO = Path(__file__).resolve().parents[1]
REQUIRED_KEYS = {
    "model", "corpus", "split", "n_tokens", "n_words", "n_chars", "nll", "perplexity",
    "word_perplexity", "bits_per_char", "seconds", "tokens_per_second",
}


def folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def small(work):
    return write_corpus(work / "small.txt")


@pytest.fixture(scope="module")
def trigram(work, small):
    """A kneser-ney trigram checkpoint of the small corpus, trained through the CLI."""
    out = work / "trigram"
    assert cli.main(["train", "trigram", "--corpus", str(small), "--out", str(out)]) == 0
    return out


# ---- corpora -------------------------------------------------------------------------------------


def test_corpora_lists_shipped_corpora_with_sizes(capsys):
    code, out, _ = run(capsys, "corpora")
    assert code == 0
    assert "brown" in out and "shakespeare" in out
    assert "35,523" in out  # Brown train lines, docs/design.md section 4


def test_corpora_json(capsys):
    code, out, _ = run(capsys, "corpora", "--json")
    assert code == 0
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert set(listed) == set(corpora.available())
    # Published sizes (docs/design.md section 4), not our own output.
    assert listed["brown"]["splits"]["train"]["lines"] == 35_523
    assert listed["brown"]["splits"]["test"]["words"] == 161_170
    assert listed["shakespeare"]["level"] == "char"
    assert listed["shakespeare"]["splits"]["train"]["chars"] == 1_003_854


# ---- train -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "cls", "order", "smoothing"),
    [
        (["bigram"], "BigramLM", 2, "kneser-ney"),
        (["trigram"], "TrigramLM", 3, "kneser-ney"),
        (["ngram", "--set", "order=4", "--set", "smoothing=witten-bell"], "NGramLM", 4, "witten-bell"),
    ],
)
def test_train_saves_a_loadable_checkpoint(capsys, tmp_path, small, argv, cls, order, smoothing):
    out = tmp_path / "model"
    code, stdout, err = run(capsys, "train", *argv, "--corpus", small, "--out", out)
    assert code == 0, err
    assert len(stdout.splitlines()) == 1
    assert f"{smoothing} {order}-gram" in stdout and "valid perplexity" in stdout
    model = langmodels.load(out)
    assert type(model).__name__ == cls
    assert (model.order, model.smoothing) == (order, smoothing)
    # The valid-split evaluation travels with the checkpoint.
    assert model.metrics_["split"] == "valid"
    expected = model.evaluate(corpora.load(str(small)).valid)
    assert model.metrics_["nll"] == pytest.approx(expected.nll)


def test_train_set_values_are_typed(capsys, tmp_path, small):
    out = tmp_path / "model"
    code, _, err = run(
        capsys, "train", "ngram", "--corpus", small, "--out", out,
        "--set", "discount=0.5,1,1.5", "--set", "min_count=2", "--set", "level=none", "--max-seconds", "60",
    )
    assert code == 0, err
    model = langmodels.load(out)
    assert model.discount == [0.5, 1.0, 1.5]
    assert model.min_count == 2 and model.level is None


def test_train_level_char_evaluates_as_a_stream(capsys, tmp_path, small):
    out = tmp_path / "chars"
    code, stdout, err = run(capsys, "train", "ngram", "--corpus", small, "--out", out,
                            "--set", "order=5", "--set", "level=char")
    assert code == 0, err
    assert "stream" in stdout
    code, stdout, _ = run(capsys, "evaluate", out, "--corpus", small, "--json")
    result = json.loads(stdout)
    assert result["mode"] == "stream"
    assert result["n_tokens"] == result["n_chars"]  # one token per character, newlines included
    # Character samples run across lines: with --num each gets a header naming its seed.
    code, stdout, _ = run(capsys, "generate", out, "--seed", "4", "--num", "2", "--max-tokens", "30")
    assert code == 0
    assert stdout.startswith("--- sample 1 (seed 4) ---\n") and "\n--- sample 2 (seed 5) ---\n" in stdout


def test_train_stupid_backoff_succeeds_but_evaluate_refuses(capsys, tmp_path, small):
    out = tmp_path / "sb"
    code, stdout, err = run(capsys, "train", "ngram", "--corpus", small, "--out", out,
                            "--set", "smoothing=stupid-backoff")
    assert code == 0, err
    assert "unnormalised" in stdout
    code, _, err = run(capsys, "evaluate", out, "--corpus", small)
    assert_one_line_error(code, err, "unnormalised")
    # It still ranks and samples.
    code, stdout, _ = run(capsys, "complete", out, "the", "-k", "2")
    assert code == 0 and len(stdout.splitlines()) == 2


def test_train_and_evaluate_on_brown(capsys, tmp_path):
    out = tmp_path / "brown2"
    code, stdout, err = run(capsys, "train", "bigram", "--corpus", "brown", "--out", out)
    assert code == 0, err
    code, stdout, _ = run(capsys, "evaluate", out, "--corpus", "brown", "--json")
    result = json.loads(stdout)
    assert (result["corpus"], result["split"], result["mode"]) == ("brown", "test", "lines")
    # Brown test: 161,170 words and 10,127 lines (docs/design.md 4); a word model predicts each and </s>.
    assert result["n_tokens"] == result["n_words"] == 161_170 + 10_127
    assert math.isfinite(result["perplexity"]) and result["perplexity"] > 1


# ---- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_json_has_every_key_and_consistent_numbers(capsys, trigram, small):
    code, stdout, err = run(capsys, "evaluate", trigram, "--corpus", small, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert REQUIRED_KEYS <= set(result)
    assert (result["corpus"], result["split"]) == (str(small), "test")
    assert result["perplexity"] == pytest.approx(math.exp(result["nll"] / result["n_tokens"]))
    assert result["word_perplexity"] == pytest.approx(math.exp(result["nll"] / result["n_words"]))
    assert result["bits_per_char"] == pytest.approx(result["nll"] / (result["n_chars"] * math.log(2)))
    test_text = corpora.load(str(small)).text("test")
    assert result["n_chars"] == len(test_text)
    assert result["n_words"] == len(test_text.split()) + test_text.count("\n")
    # The CLI reports what the library computes.
    assert result["nll"] == pytest.approx(langmodels.load(trigram).evaluate(corpora.load(str(small)).test).nll)


def test_evaluate_other_split_and_table(capsys, trigram, small):
    code, stdout, _ = run(capsys, "evaluate", trigram, "--corpus", small, "--split", "valid")
    assert code == 0
    assert "valid split" in stdout and "perplexity" in stdout and "bits per char" in stdout


def test_evaluate_infinite_perplexity_is_strict_json(capsys, tmp_path):
    # Under MLE a bigram never seen in training has probability zero.
    path = tmp_path / "abc.txt"
    path.write_text("a b\n" * 8 + "b a\nb a\n", encoding="utf-8")
    out = tmp_path / "mle"
    assert run(capsys, "train", "ngram", "--corpus", path, "--out", out,
               "--set", "order=2", "--set", "smoothing=mle")[0] == 0
    code, stdout, err = run(capsys, "evaluate", out, "--corpus", path, "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["perplexity"] is None and result["n_zero_prob"] > 0
    notes = err.splitlines()  # how the file was split, then the zero probabilities
    assert len(notes) == 2 and all(note.startswith("note: ") for note in notes) and "80/10/10" in notes[0]


# ---- generate and complete ------------------------------------------------------------------------------


def test_generate_is_repeatable_with_a_seed(capsys, trigram):
    first = run(capsys, "generate", trigram, "--seed", "7", "--num", "3")
    second = run(capsys, "generate", trigram, "--seed", "7", "--num", "3")
    assert first[0] == 0 and first == second
    samples = first[1].splitlines()
    assert len(samples) == 3
    # Sample i uses seed N + i, the same draw as the library's generate(seed=N + i).
    model = langmodels.load(trigram)
    assert samples == [model.generate("", 50, seed=7 + i) for i in range(3)]
    assert run(capsys, "generate", trigram, "--seed", "8")[1].splitlines() == samples[1:2]


def test_generate_options(capsys, trigram):
    code, stdout, err = run(capsys, "generate", trigram, "--prompt", "the cat", "--max-tokens", "5",
                            "--temperature", "0.7", "--top-k", "3", "--top-p", "0.9", "--seed", "1", "--num", "4")
    assert code == 0, err
    samples = stdout.splitlines()
    assert len(samples) == 4
    for sample in samples:
        assert sample.startswith("the cat")
        assert len(sample.split()) <= 2 + 5


def test_complete_prints_k_tokens_with_probabilities(capsys, trigram):
    code, stdout, err = run(capsys, "complete", trigram, "the cat", "-k", "4")
    assert code == 0, err
    rows = [line.split("\t") for line in stdout.splitlines()]
    assert len(rows) == 4
    probabilities = [float(p) for _, p in rows]
    assert all(0 < p <= 1 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    expected = langmodels.load(trigram).top_next("the cat", k=4)
    assert [token for token, _ in rows] == [token for token, _ in expected]


def test_notes_are_one_line_on_stderr(capsys, trigram):
    code, stdout, err = run(capsys, "complete", trigram, "zebra the", "-k", "2")
    assert code == 0
    assert len(stdout.splitlines()) == 2
    assert err.startswith("note: ") and "zebra" in err and len(err.splitlines()) == 1


def test_help_and_version(capsys):
    code, stdout, _ = run(capsys, "--help")
    assert code == 0 and "train" in stdout and "evaluate" in stdout
    code, stdout, _ = run(capsys, "--version")
    assert code == 0 and langmodels.__version__ in stdout


# ---- bad input: one line, non-zero exit, no traceback ---------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(work, trigram):
    empty = work / "empty.txt"
    empty.write_bytes(b"")
    latin1 = work / "latin1.txt"
    latin1.write_bytes("caf\u00e9 au lait\nthe cat\nthe dog\n".encode("latin-1"))  # 0xe9 at offset 3
    truncated = work / "truncated"
    shutil.copytree(trigram, truncated)
    config = (truncated / "config.json").read_bytes()
    (truncated / "config.json").write_bytes(config[: len(config) // 2])
    tampered = work / "tampered"
    shutil.copytree(trigram, tampered)
    weights = bytearray((tampered / "logprob_2.npy").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (tampered / "logprob_2.npy").write_bytes(bytes(weights))
    return {"empty": empty, "latin1": latin1, "truncated": truncated, "tampered": tampered,
            "missing": work / "no-such-checkpoint", "nofile": work / "no-such-file.txt"}


BAD_INPUTS = {
    "unknown model": (["train", "transformer", "--corpus", "{small}", "--out", "{out}"], ["transformer"]),
    "unknown corpus": (["train", "bigram", "--corpus", "wikitext", "--out", "{out}"], ["wikitext"]),
    "missing path": (["train", "bigram", "--corpus", "{nofile}", "--out", "{out}"], ["no-such-file.txt"]),
    "empty file": (["train", "bigram", "--corpus", "{empty}", "--out", "{out}"], ["empty.txt", "empty"]),
    "non-UTF-8 file": (["train", "bigram", "--corpus", "{latin1}", "--out", "{out}"], ["latin1.txt", "offset 3"]),
    "order 0": (["train", "ngram", "--corpus", "{small}", "--out", "{out}", "--set", "order=0"], ["order"]),
    "order not a number": (["train", "ngram", "--corpus", "{small}", "--out", "{out}", "--set", "order=abc"],
                           ["order", "abc"]),
    "unknown --set key": (["train", "ngram", "--corpus", "{small}", "--out", "{out}", "--set", "depth=3"], ["depth"]),
    "--set without =": (["train", "ngram", "--corpus", "{small}", "--out", "{out}", "--set", "order"], ["order"]),
    "unknown smoothing": (["train", "ngram", "--corpus", "{small}", "--out", "{out}", "--set", "smoothing=magic"],
                          ["magic"]),
    "unknown level": (["train", "ngram", "--corpus", "{small}", "--out", "{out}", "--set", "level=words"], ["words"]),
    "bad max-seconds": (["train", "bigram", "--corpus", "{small}", "--out", "{out}", "--max-seconds", "-1"],
                        ["max-seconds"]),
    "temperature negative": (["generate", "{trigram}", "--temperature", "-0.5"], ["temperature"]),
    "top-p 1.5": (["generate", "{trigram}", "--top-p", "1.5"], ["top-p"]),
    "top-k 0": (["generate", "{trigram}", "--top-k", "0"], ["top-k"]),
    "max-tokens -1": (["generate", "{trigram}", "--max-tokens", "-1"], ["max-tokens"]),
    "num 0": (["generate", "{trigram}", "--num", "0"], ["num"]),
    "complete -k 0": (["complete", "{trigram}", "the", "-k", "0"], ["k"]),
    "unknown split": (["evaluate", "{trigram}", "--corpus", "{small}", "--split", "dev"], ["dev"]),
    "checkpoint missing": (["generate", "{missing}"], ["no-such-checkpoint"]),
    "config.json truncated": (["evaluate", "{truncated}", "--corpus", "{small}"], ["config.json"]),
    "weights edited": (["complete", "{tampered}", "the"], ["logprob_2.npy", "checksum"]),
    "evaluate on an unknown corpus": (["evaluate", "{trigram}", "--corpus", "wikitext"], ["wikitext"]),
    "bench not yet available": (["bench", "config.toml", "--out", "{out}"], ["bench"]),
    "no command": ([], ["COMMAND"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_error(capsys, tmp_path, small, trigram, bad_files, case):
    argv, fragments = BAD_INPUTS[case]
    names = {"small": small, "trigram": trigram, "out": tmp_path / "out", **bad_files}
    code, _, err = run(capsys, *[arg.format(**names) for arg in argv])
    assert code == cli.EXIT_ERROR
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()


def test_out_that_is_not_a_checkpoint_is_refused_before_training(capsys, tmp_path, small):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me", encoding="utf-8")
    code, _, err = run(capsys, "train", "bigram", "--corpus", small, "--out", out)
    assert_one_line_error(code, err, "notes")
    assert (out / "mine.txt").read_text(encoding="utf-8") == "keep me"


# ---- a failed train never harms the checkpoint already at --out ------------------------------------------


@pytest.fixture
def good_checkpoint(tmp_path, trigram):
    out = tmp_path / "good"
    shutil.copytree(trigram, out)
    return out


@pytest.mark.parametrize(
    "extra",
    [
        ["--corpus", "{latin1}"],
        ["--corpus", "{empty}"],
        ["--corpus", "{small}", "--set", "order=0"],
        ["--corpus", "{small}", "--set", "order=abc"],
        ["--corpus", "{small}", "--set", "smoothing=lidstone", "--set", "k=-1"],
    ],
)
def test_failed_train_keeps_the_good_checkpoint(capsys, good_checkpoint, small, bad_files, extra):
    before = folder_bytes(good_checkpoint)
    test_lines = corpora.load(str(small)).test
    scores = langmodels.load(good_checkpoint).evaluate(test_lines).nll
    argv = [arg.format(small=small, **bad_files) for arg in extra]
    code, _, err = run(capsys, "train", "ngram", "--out", good_checkpoint, *argv)
    assert_one_line_error(code, err)
    assert folder_bytes(good_checkpoint) == before
    assert langmodels.load(good_checkpoint).evaluate(test_lines).nll == scores


def test_interrupted_train_keeps_the_good_checkpoint(capsys, monkeypatch, good_checkpoint, small):
    before = folder_bytes(good_checkpoint)

    def interrupted_fit(self, train, valid=None, **budget):
        raise KeyboardInterrupt

    monkeypatch.setattr(NGramLM, "fit", interrupted_fit)
    code, _, err = run(capsys, "train", "bigram", "--corpus", small, "--out", good_checkpoint)
    assert code == cli.EXIT_INTERRUPTED
    assert err.strip().splitlines()[-1] == "langmodels: interrupted"
    assert folder_bytes(good_checkpoint) == before
    assert langmodels.load(good_checkpoint).order == 3


def test_successful_train_replaces_the_checkpoint(capsys, good_checkpoint, small):
    code, _, err = run(capsys, "train", "bigram", "--corpus", small, "--out", good_checkpoint)
    assert code == 0, err
    assert langmodels.load(good_checkpoint).order == 2
    assert sorted(p.name for p in good_checkpoint.parent.iterdir()) == ["good"]  # no staging left


# ---- the real command, in a subprocess ---------------------------------------------------------------------


def run_module(*argv, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "langmodels", *map(str, argv)], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_dash_m_langmodels(tmp_path, small):
    trained = run_module("train", "trigram", "--corpus", small, "--out", tmp_path / "m", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "kneser-ney 3-gram" in trained.stdout
    evaluated = run_module("evaluate", tmp_path / "m", "--corpus", small, "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert REQUIRED_KEYS <= set(json.loads(evaluated.stdout))
    generated = run_module("generate", tmp_path / "m", "--seed", "3", "--num", "2", cwd=tmp_path)
    assert generated.returncode == 0 and len(generated.stdout.splitlines()) == 2


def test_subprocess_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbad \xff byte\nanother\n")
    result = run_module("train", "bigram", "--corpus", bad, "--out", tmp_path / "m", cwd=tmp_path)
    assert result.returncode == cli.EXIT_ERROR
    assert result.stdout == ""
    assert_one_line_error(result.returncode, result.stderr, "bad.txt", "offset 14")
    assert not (tmp_path / "m").exists()


# ---- the neural family on the command line ---------------------------------------------------

TINY = {
    "gpt": ["n_layer=1", "n_head=2", "n_embd=16", "context=16", "batch_size=8", "threads=1"],
    "bert": ["n_layer=1", "n_head=2", "n_embd=16", "context=16", "batch_size=8", "threads=1"],
    "lstm": ["n_layer=1", "hidden=16", "n_embd=16", "batch_size=8", "threads=1"],
    "mlp": ["order=3", "n_embd=8", "hidden=16", "batch_size=8", "threads=1"],
}


def tiny_settings(model):
    return [part for setting in TINY[model] for part in ("--set", setting)]


@pytest.mark.parametrize("model", list(TINY))
def test_train_evaluate_generate_a_neural_model(capsys, tmp_path, small, model):
    out = tmp_path / model
    code, stdout, err = run(capsys, "train", model, "--corpus", small, "--out", out, "--max-seconds", "1",
                            "--seed", "3", *tiny_settings(model))
    assert code == 0, err
    assert type(langmodels.load(out)).__name__ == {"gpt": "GPTLM", "bert": "MaskedLM", "lstm": "LSTMLM",
                                                    "mlp": "MLPLM"}[model]
    code, stdout, err = run(capsys, "evaluate", out, "--corpus", small, "--json")
    result = json.loads(stdout)
    assert code == 0 and REQUIRED_KEYS <= set(result)
    assert result["perplexity"] == pytest.approx(math.exp(result["nll"] / result["n_tokens"]))
    assert result["pseudo"] is (model == "bert")
    first = run(capsys, "generate", out, "--prompt", "the", "--max-tokens", "5", "--seed", "1")
    assert first[0] == 0 and first == run(capsys, "generate", out, "--prompt", "the", "--max-tokens", "5",
                                           "--seed", "1")


def test_fill_mask_on_the_command_line(capsys, tmp_path, small):
    out = tmp_path / "bert"
    assert run(capsys, "train", "bert", "--corpus", small, "--out", out, "--max-seconds", "1",
               *tiny_settings("bert"))[0] == 0
    code, stdout, _ = run(capsys, "fill-mask", out, "the [MASK] sat", "-k", "3")
    rows = [line.split("\t") for line in stdout.splitlines()]
    assert code == 0 and len(rows) == 3 and all(row[0] == "1" for row in rows)
    probabilities = [float(row[2]) for row in rows]
    assert probabilities == sorted(probabilities, reverse=True)


def test_neural_bad_settings_are_one_line_errors(capsys, tmp_path, small, trigram):
    code, _, err = run(capsys, "train", "gpt", "--corpus", small, "--out", tmp_path / "x",
                       "--set", "n_embd=30", "--set", "n_head=4")
    assert_one_line_error(code, err, "divisible")
    code, _, err = run(capsys, "train", "lstm", "--corpus", small, "--out", tmp_path / "x", "--set", "dropout=-1")
    assert_one_line_error(code, err, "dropout")
    code, _, err = run(capsys, "train", "mlp", "--corpus", small, "--out", tmp_path / "x", "--set", "hidden=wide")
    assert_one_line_error(code, err, "hidden")
    code, _, err = run(capsys, "fill-mask", trigram, "the [MASK]")
    assert_one_line_error(code, err, "fill-mask")


def test_verify_hashes_every_file_and_names_a_damaged_one(capsys, good_checkpoint):
    code, out, err = run(capsys, "verify", good_checkpoint)
    assert code == 0 and not err
    assert out.count("\n") == 1 and out.startswith(f"{good_checkpoint}: ok, ") and "sha256" in out
    table = max(good_checkpoint.glob("*.npy"), key=lambda path: path.stat().st_size)
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit, the size unchanged
    table.write_bytes(bytes(data))
    code, _, err = run(capsys, "verify", good_checkpoint)
    assert_one_line_error(code, err, str(table), "checksum")
    table.unlink()
    code, _, err = run(capsys, "verify", good_checkpoint)
    assert_one_line_error(code, err, str(table), "missing")
    code, _, err = run(capsys, "verify", good_checkpoint / "nowhere")
    assert_one_line_error(code, err, "no checkpoint folder")
