"""Devices (docs/design.md 10): the `device` setting of every neural family, one-line errors for a
device this machine lacks, checkpoints that load and score the same on another device, and the
compile=True opt-in. The CUDA checks run only where torch sees a GPU."""


import numpy as np
import pytest
import torch
from cli_checks import TOY, assert_one_line_error, run

from langmodels import load
from langmodels.errors import ConfigError, LangmodelsError
from langmodels.neural.bert import MaskedLM
from langmodels.neural.gpt import GPTLM
from langmodels.neural.lstm import LSTMLM
from langmodels.neural.mlp import MLPLM

CUDA = torch.cuda.is_available()
TINY = {"n_layer": 1, "n_embd": 16, "n_head": 2, "context": 16, "batch_size": 4, "dropout": 0.0}
TEXT = ["the cat sat on the mat", "a dog saw the cat"]


def scores(model) -> np.ndarray:
    return np.concatenate(model.score_ids([model.tokenizer.encode(line) for line in TEXT]))


@pytest.fixture(scope="module")
def gpt():
    return GPTLM(**TINY).fit(TOY * 4, max_steps=3, progress=False)


@pytest.mark.parametrize("family", [GPTLM, MaskedLM, LSTMLM, MLPLM])
def test_every_family_has_the_device_setting_and_checks_its_spelling(family):
    assert family().config.device == "auto"
    for bad in ("gpu", "cpu:1", "cuda:x", "meta"):
        with pytest.raises(ConfigError, match="device must be"):
            family(device=bad).config.check()


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_auto_is_the_cpu_without_cuda_and_a_cuda_device_is_a_one_line_error(gpt, capsys, tmp_path):
    assert gpt.device.type == "cpu"
    with pytest.raises(LangmodelsError, match="no CUDA GPU") as caught:
        GPTLM(device="cuda:1", **TINY).fit(TOY, max_steps=1, progress=False)
    assert "\n" not in str(caught.value)
    code, _, err = run(capsys, "train", "gpt", "--corpus", "shakespeare", "--out", tmp_path / "m",
                       "--set", "device=cuda", "--max-steps", 1)
    assert_one_line_error(code, err, "device='cuda'", "no CUDA GPU")
    code, _, err = run(capsys, "train", "gpt", "--corpus", "shakespeare", "--out", tmp_path / "m",
                       "--set", "device=gpu", "--max-steps", 1)
    assert_one_line_error(code, err, "device must be")


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_a_checkpoint_set_for_a_gpu_loads_scores_and_samples_the_same_on_this_cpu(gpt, tmp_path):
    """What a GPU-trained checkpoint meets on a CPU-only machine: config.json naming cuda."""
    before = scores(gpt)
    gpt.config.device = "cuda"
    try:
        gpt.save(tmp_path / "m")
    finally:
        gpt.config.device = "auto"
    with pytest.warns(UserWarning, match="lacks: loaded on cpu"):
        loaded = load(tmp_path / "m")
    assert loaded.device.type == "cpu"
    np.testing.assert_allclose(scores(loaded), before, atol=1e-4)
    assert loaded.generate("the", max_tokens=8, seed=3) == gpt.generate("the", max_tokens=8, seed=3)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_a_model_moved_to_the_gpu_scores_the_same_and_its_checkpoint_loads_on_the_cpu(gpt, tmp_path):
    on_cpu = scores(gpt)
    moved = load_copy(gpt, tmp_path / "copy").to("cuda")
    assert moved.device.type == "cuda"
    np.testing.assert_allclose(scores(moved), on_cpu, atol=1e-4)
    moved.save(tmp_path / "from-gpu")
    back = load(tmp_path / "from-gpu").to("cpu")
    np.testing.assert_allclose(scores(back), on_cpu, atol=1e-4)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_training_on_the_gpu_runs_in_mixed_precision_and_learns(tmp_path):
    model = GPTLM(device="cuda", **TINY).fit(TOY * 8, max_steps=30, progress=False)
    curve = model.curve_
    assert model.device.type == "cuda" and curve[-1]["train_loss"] < curve[0]["train_loss"]
    model.save(tmp_path / "m")
    np.testing.assert_allclose(scores(load(tmp_path / "m").to("cpu")), scores(model), atol=1e-4)


def load_copy(model, path):
    model.save(path)
    return load(path)


def test_to_moves_a_fitted_model_and_refuses_a_device_it_lacks(gpt, tmp_path):
    copy = load_copy(gpt, tmp_path / "m")
    assert copy.to("cpu") is copy and copy.config.device == "cpu"
    np.testing.assert_allclose(scores(copy), scores(gpt), atol=1e-6)
    if not CUDA:
        with pytest.raises(LangmodelsError, match="no CUDA GPU"):
            copy.to("cuda")
        assert copy.config.device == "cpu"  # unchanged by the refusal


def test_compile_trains_through_torch_compile_to_the_same_weights(monkeypatch):
    """compile=True hands the step to torch.compile: traced here by TorchDynamo with the eager
    backend (inductor's C++ compilation takes over a minute on this CPU), so the numbers must be
    the uncompiled run's."""
    calls = []
    real = torch.compile

    def eager_compile(module, **kwargs):
        calls.append(type(module).__name__)
        return real(module, backend="eager")

    plain = GPTLM(**TINY).fit(TOY * 4, max_steps=3, progress=False)
    monkeypatch.setattr(torch, "compile", eager_compile)
    compiled = GPTLM(compile=True, **TINY).fit(TOY * 4, max_steps=3, progress=False)
    assert calls == ["StepLoss"]
    for name, value in plain.module_.state_dict().items():
        torch.testing.assert_close(compiled.module_.state_dict()[name], value, atol=1e-6, rtol=0)
    assert GPTLM().config.compile is False  # off unless asked


def test_a_run_resumes_on_another_device_setting(tmp_path, stop_training_at):
    """device and compile say where a run computes, not what it learns: --resume accepts a change."""
    checkpoint = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        stop_training_at(GPTLM(**TINY), 2).fit(TOY * 4, max_steps=4, checkpoint=checkpoint, progress=False)
    whole = GPTLM(**TINY).fit(TOY * 4, max_steps=4, progress=False)
    resumed = GPTLM(device="cpu", **TINY).fit(TOY * 4, max_steps=4, checkpoint=checkpoint, resume=True,
                                              progress=False)
    np.testing.assert_allclose(scores(resumed), scores(whole), atol=1e-6)


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_the_gpu_benchmark_measures_nothing_without_cuda_and_exits_0(capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "neural_gpu.py"
    main = runpy.run_path(str(script))["main"]
    assert main(["--max-minutes", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("neural_gpu: measures nothing without CUDA") and len(out.splitlines()) == 1
