"""The everyday loop through the command line: `train`'s wall-clock budget, Ctrl-C and --resume,
`evaluate --lines`, --quiet, and the help of both commands."""

import json
import time

import pytest
from cli_checks import run, write_corpus

from langmodels import cli, corpora, load
from langmodels.neural.lstm import LSTMLM

TINY_LSTM = ["--set", "n_embd=16", "--set", "hidden=16", "--set", "n_layer=1", "--set", "batch_size=8",
             "--set", "threads=1"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("loop") / "small.txt", lines=600)


def test_max_seconds_bounds_the_whole_command(capsys, tmp_path, small):
    """Reading, training, validation, the final pass over valid and saving: within 10 % of --max-seconds
    (imports aside: AdamW imports torch._dynamo on first use, a second or more)."""
    import torch._dynamo  # noqa: F401

    start = time.perf_counter()
    code, out, err = run(capsys, "train", "lstm", "--corpus", small, "--out", tmp_path / "m", "--max-seconds", 4,
                         *TINY_LSTM, "--set", "patience=0")
    seconds = time.perf_counter() - start
    assert code == 0, err
    assert 3.6 <= seconds <= 4.4, seconds
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    valid = corpora.load(small).valid
    assert metrics["split"] == "valid" and metrics["n_words"] == sum(len(line.split()) + 1 for line in valid)
    curve = load(tmp_path / "m").curve_
    assert sum(p["valid_loss"] is not None for p in curve) >= 5  # about ten validations fit too
    assert f"valid perplexity {metrics['perplexity']:.2f}" in out  # scored once, printed and saved


def test_ctrl_c_leaves_a_checkpoint_that_resume_continues_exactly(capsys, tmp_path, small, monkeypatch):
    settings = [*TINY_LSTM, "--set", "eval_every=1", "--max-steps", 12, "--quiet"]
    assert run(capsys, "train", "lstm", "--corpus", small, "--out", tmp_path / "whole", *settings)[0] == 0
    real_batch = LSTMLM.training_batch

    def interrupt_at_step_7(self, data, step):
        if step == 7:
            raise KeyboardInterrupt  # as Ctrl-C during the eighth step
        return real_batch(self, data, step)

    monkeypatch.setattr(LSTMLM, "training_batch", interrupt_at_step_7)
    code, _, err = run(capsys, "train", "lstm", "--corpus", small, "--out", tmp_path / "run", *TINY_LSTM,
                       "--set", "eval_every=1", "--max-steps", 12)
    assert code == cli.EXIT_INTERRUPTED and "--resume" in err and "Traceback" not in err
    assert load(tmp_path / "run").curve_[-1]["step"] == 7
    monkeypatch.setattr(LSTMLM, "training_batch", real_batch)
    assert run(capsys, "train", "lstm", "--corpus", small, "--out", tmp_path / "run", *settings, "--resume")[0] == 0
    whole, resumed = load(tmp_path / "whole").curve_, load(tmp_path / "run").curve_
    assert [p["step"] for p in resumed] == list(range(1, 13))
    assert [p["train_loss"] for p in resumed] == [p["train_loss"] for p in whole]
    assert [p["valid_loss"] for p in resumed] == [p["valid_loss"] for p in whole]


def test_resume_and_checkpoint_every_need_a_neural_run(capsys, tmp_path, small):
    code, _, err = run(capsys, "train", "lstm", "--corpus", small, "--out", tmp_path / "none", "--resume", *TINY_LSTM)
    assert code == cli.EXIT_ERROR and "holds no training state" in err
    code, _, err = run(capsys, "train", "bigram", "--corpus", small, "--out", tmp_path / "b", "--checkpoint-every", 5)
    assert code == cli.EXIT_ERROR and "neural models" in err


def test_checkpoint_every_writes_the_training_state(capsys, tmp_path, small):
    out = tmp_path / "every"
    assert run(capsys, "train", "lstm", "--corpus", small, "--out", out, *TINY_LSTM, "--max-steps", 6,
               "--checkpoint-every", 3, "--quiet")[0] == 0
    assert load(out).curve_[-1]["step"] == 6 and not (out / "trainer.json").exists()  # the final save is the model's


def test_evaluate_lines_scores_the_first_lines(capsys, tmp_path, small):
    out = tmp_path / "m"
    code, _, _ = run(capsys, "train", "lstm", "--corpus", small, "--out", out, *TINY_LSTM, "--max-steps", 5, "--quiet")
    assert code == 0
    code, stdout, err = run(capsys, "evaluate", out, "--corpus", small, "--lines", 7, "--json", "--quiet")
    assert code == 0 and err == ""
    result = json.loads(stdout)
    first = list(corpora.load(small).test)[:7]
    expected = load(out).evaluate(first, progress=False)
    assert result["n_tokens"] == expected.n_tokens == sum(len(line.split()) + 1 for line in first)
    assert result["nll"] == pytest.approx(expected.nll, rel=1e-9)
    assert result["split"] == "test, first 7 lines"


def test_every_train_and_evaluate_option_says_what_it_does_and_its_default():
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    for name in ("train", "evaluate"):
        for action in commands[name]._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 15, (name, action.dest)
            if action.option_strings:  # options; positionals are always given
                assert "default" in action.help or "required" in action.help, (name, action.dest, action.help)


def test_a_budget_spent_before_the_final_pass_still_scores_the_first_lines(small):
    """On a busy machine training can leave no time for the pass over valid: its first fiftieth is
    scored all the same (with a note), never an empty pass."""
    from langmodels.base import LangmodelsWarning
    from langmodels.neural.core import Validation

    corpus = corpora.load(small)
    model = LSTMLM(n_embd=16, hidden=16, n_layer=1, batch_size=8, threads=1).fit(corpus.train, max_steps=2,
                                                                                 progress=False)
    validation = Validation(model, corpus.valid, "lines", max_seconds=1e-6)
    with pytest.warns(LangmodelsWarning, match="left room to score the first"):
        evaluation = validation.final_pass(-1.0, progress=False)
    first = list(corpus.valid)[: len(corpus.valid) // 50]
    assert evaluation.nll == pytest.approx(model.evaluate(first).nll, rel=1e-9)
