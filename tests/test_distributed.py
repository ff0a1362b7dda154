"""Data-parallel training under torchrun, on this machine's CPUs (gloo): two processes of batch B
train as one process of batch 2B; their checkpoint loads and scores in a plain process; Ctrl-C at
torchrun and a failing rank end every rank with one line and rank 0's state saved; --resume
continues under torchrun (docs/design.md 10)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error, run, write_corpus

import langmodels
from langmodels import load

ROOT = Path(langmodels.__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "torchrun_interrupt.py"
STEPS = 6
CONTEXT = 32
# dropout 0: the two runs then differ only in the order of float additions
SETTINGS = ["--set", "tokenizer=char", "--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2",
            "--set", f"context={CONTEXT}", "--set", "dropout=0", "--max-steps", str(STEPS), "--quiet"]


def torchrun(*argv, timeout=120):
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 ARGV...` (a free port each time)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *map(str, argv)], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def our_lines(stderr: str) -> list[str]:
    """What the ranks said (torchrun's own log lines and report left out)."""
    return [line for line in stderr.splitlines() if line.startswith("langmodels:")]


def max_difference(a, b) -> float:
    a, b = a.module_.state_dict(), b.module_.state_dict()
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("ddp") / "small.txt", lines=600)


@pytest.fixture(scope="module")
def one_process(corpus, tmp_path_factory):
    """The reference: one plain process given the combined batch (2 x 4 rows)."""
    out = tmp_path_factory.mktemp("one") / "model"
    code = langmodels.cli.main(["train", "gpt", "--corpus", str(corpus), "--out", str(out), *SETTINGS,
                                "--set", "batch_size=8"])
    assert code == 0
    return load(out)


def test_two_gloo_processes_train_as_one_process_given_their_combined_batch(corpus, one_process, tmp_path):
    done = torchrun("-m", "langmodels", "train", "gpt", "--corpus", corpus, "--out", tmp_path / "ddp", *SETTINGS,
                    "--set", "batch_size=4")
    assert done.returncode == 0, done.stderr
    trained = load(tmp_path / "ddp")  # the checkpoint rank 0 wrote, loaded in this plain process
    assert max_difference(trained, one_process) < 1e-5
    # budgets are global: the tokens of both ranks' rows are counted
    assert [p["step"] for p in trained.curve_][-1] == STEPS
    assert trained.curve_[-1]["tokens"] == STEPS * 8 * CONTEXT
    test = langmodels.corpora.load(corpus, level="char").test
    ours, reference = trained.evaluate(test), one_process.evaluate(test)
    assert abs(ours.nll - reference.nll) / reference.n_tokens < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_ctrl_c_at_torchrun_ends_every_rank_in_one_line_and_resume_continues_the_run(corpus, one_process, tmp_path,
                                                                                       capsys):
    out = tmp_path / "run"
    stopped = torchrun(WORKER, "ctrl-c", 3, "train", "gpt", "--corpus", corpus, "--out", out, *SETTINGS,
                       "--set", "batch_size=4")
    assert stopped.returncode != 0
    assert sorted(our_lines(stopped.stderr)) == ["langmodels: rank 0: interrupted", "langmodels: rank 1: interrupted"]
    assert f'{os.sep}langmodels{os.sep}' not in stopped.stderr  # no traceback through our code
    assert json.loads((out / "trainer.json").read_text())["step"] == 3  # rank 0 saved the steps done
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    resumed = torchrun("-m", "langmodels", "train", "gpt", "--corpus", corpus, "--out", out, *SETTINGS,
                       "--set", "batch_size=4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert max_difference(load(out), one_process) < 1e-5  # as if never interrupted


def test_a_failing_rank_ends_every_rank_in_one_line_with_the_state_saved(corpus, tmp_path):
    out = tmp_path / "run"
    failed = torchrun(WORKER, "fail", 2, "train", "gpt", "--corpus", corpus, "--out", out, *SETTINGS,
                      "--set", "batch_size=4")
    assert failed.returncode != 0
    lines = our_lines(failed.stderr)
    assert len(lines) == 2, failed.stderr
    assert "langmodels: error: rank 1: rank 1 failed at step 2" in lines
    (rank_0,) = [line for line in lines if "rank 0" in line]
    # Rank 0 learns of the failure from its collective (the usual case), or, when torchrun's SIGTERM to
    # the surviving ranks comes first, from that signal, which torchrun also sends on Ctrl-C: one line either way.
    if rank_0 != "langmodels: rank 0: interrupted":
        assert rank_0.startswith("langmodels: error: rank 0: another process of the run stopped"), rank_0
        assert "--resume" in rank_0
    assert json.loads((out / "trainer.json").read_text())["step"] == 2


LAUNCHED = f"""
name = "launched"
[measure]
temperatures = [1.0]
sample_seeds = [0]
samples_per_setting = 1
sample_settings = [{{ temperature = 1.0 }}]
sample_max_tokens = 10
[[corpus]]
name = "small.txt"
level = "char"
sample_tokens = 10
position_lines = 5
[[model]]
name = "two"
kind = "gpt"
launch = {{ nproc = 2 }}
settings = {{ n_layer = 1, n_embd = 32, n_head = 2, context = {CONTEXT}, dropout = 0.0, batch_size = 4 }}
budget = {{ max_steps = {STEPS} }}
"""


def test_bench_trains_a_model_on_two_processes_as_one_process_with_the_combined_batch(corpus, one_process, tmp_path,
                                                                                      capsys):
    (corpus.parent / "launched.toml").write_text(LAUNCHED, encoding="utf-8")
    code, _, err = run(capsys, "bench", corpus.parent / "launched.toml", "--out", tmp_path / "out")
    assert code == 0, err
    with open(tmp_path / "out" / "results.csv", newline="", encoding="utf-8") as handle:
        (row,) = csv.DictReader(handle)
    test = langmodels.corpora.load(corpus, level="char").test
    assert float(row["nll"]) == pytest.approx(one_process.evaluate(test).nll, rel=1e-5)
    assert not list((tmp_path / "out" / "runs").glob(".staging-*"))  # the launch folder is gone


def test_a_launched_run_on_a_corpus_without_a_valid_split_watches_the_test_lines_as_one_process_does(
        corpus, tmp_path, capsys):
    """A split folder with no test file: valid and test are one text, so the bench never selects on
    it, and the learning curve watches the first lines of the test text, on two processes too."""
    folder = tmp_path / "watched"
    folder.mkdir()
    lines = corpus.read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "small.train.txt").write_text("".join(lines[:500]), encoding="utf-8")
    (folder / "small.valid.txt").write_text("".join(lines[500:]), encoding="utf-8")
    config = folder / "launched.toml"
    config.write_text(LAUNCHED.replace('name = "small.txt"', 'name = "."'), encoding="utf-8")
    code, _, err = run(capsys, "bench", config, "--out", tmp_path / "out")
    assert code == 0, err
    (result,) = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    watched = [point["valid_loss"] for point in result["train"]["curve"] if point["valid_loss"] is not None]
    assert watched and result["valid"] is not None, result["train"]["curve"]
    assert result["train"]["early_stopping"] is False


def test_a_launch_setting_is_checked_in_one_line(corpus, tmp_path, capsys):
    config = corpus.parent / "bad.toml"
    config.write_text(LAUNCHED.replace("nproc = 2", "nproc = 0"), encoding="utf-8")
    assert_one_line_error(*run(capsys, "bench", config, "--out", tmp_path / "out")[::2], "launch.nproc")
    config.write_text('name = "x"\n[[corpus]]\nname = "small.txt"\n[[model]]\nname = "b"\nkind = "bigram"\n'
                      'launch = { nproc = 2 }\n', encoding="utf-8")
    assert_one_line_error(*run(capsys, "bench", config, "--out", tmp_path / "out")[::2], "only the neural models")


def test_a_collective_returns_its_figures_only_once_gloo_has_let_go_of_their_tensor(tmp_path):
    """gloo's worker thread drops a finished collective's tensor a moment after the caller is
    woken, taking the interpreter lock to do so; one still holding it when the interpreter shuts
    down aborts the process (distributed._exchange). Without the wait (RELEASE_SECONDS = 0), 1, 8
    and 54 of 2000 collectives still held their tensor right after, in three runs on a busy machine."""
    import torch
    import torch.distributed as dist

    from langmodels.neural.distributed import World, _exchange

    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        still_held = 0
        for step in range(2000):
            figures = torch.tensor([float(step), 1.0], dtype=torch.float64)
            held = sys.getrefcount(figures)
            assert _exchange(World(), dist.all_reduce, figures, op=dist.ReduceOp.SUM) == [float(step), 1.0]
            still_held += sys.getrefcount(figures) > held
        assert still_held == 0
    finally:
        dist.destroy_process_group()
