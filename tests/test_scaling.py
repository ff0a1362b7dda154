"""Scaling curves (issue 5, item 7): the power-law fit against synthetic points with known
exponents, a tiny size-and-data sweep end to end through `langmodels bench`, the training-set
share cut by train_fraction, the non-embedding parameter count, and the bad inputs: a sweep too
large for the machine's memory and misuses of `scaling`, each one line with exit 2."""

import json

import numpy as np
import pytest
from cli_checks import PNG_SIGNATURE, assert_one_line_error, bench

from langmodels import cli
from langmodels.bench import load_config
from langmodels.bench.measure import non_embedding_parameters
from langmodels.bench.memory import check_memory
from langmodels.bench.runner import plan
from langmodels.bench.scaling import KAPLAN_ALPHA, fit_power_law
from langmodels.bench.slices import leading_fraction, load_corpus
from langmodels.corpora import Split
from langmodels.errors import ConfigError
from langmodels.families import build_model, model_class_named
from langmodels.neural.memory import estimate

# ---- the fit --------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, alpha, c", [(30.0, 0.3, 1.2), (5.0, 0.076, 0.5), (2e3, 0.5, 0.0)])
def test_the_fit_recovers_a_power_law_with_a_floor(a, alpha, c):
    x = np.geomspace(1e4, 3e6, 6)
    fit = fit_power_law(x, a * x**-alpha + c)
    assert fit.alpha == pytest.approx(alpha, rel=1e-6)
    assert fit.a == pytest.approx(a, rel=1e-5)
    assert fit.c == pytest.approx(c, abs=1e-6)
    assert fit.r2 == pytest.approx(1.0) and fit.rms < 1e-8
    assert fit(x) == pytest.approx(a * x**-alpha + c, rel=1e-8)


def test_the_fit_is_close_under_noise_and_its_standard_error_covers_the_truth():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e7, 12)
    loss = (40 * x**-0.25 + 1.0) * np.exp(rng.normal(0, 0.003, x.size))  # 0.3 % relative noise
    fit = fit_power_law(x, loss)
    assert abs(fit.alpha - 0.25) < 3 * fit.alpha_se and fit.alpha_se < 0.05
    assert fit.r2 > 0.999


def test_without_a_floor_the_fit_is_the_straight_line_in_log_log():
    x = np.geomspace(768, 1.5e9, 5)
    loss = (8.8e13 / x) ** KAPLAN_ALPHA["parameters"]  # Kaplan et al. 2020, eq. 1.1
    fit = fit_power_law(x, loss, irreducible=False)
    assert fit.alpha == pytest.approx(0.076, rel=1e-9) and fit.c == 0
    assert fit.a == pytest.approx(8.8e13**0.076, rel=1e-9)
    slope = np.polyfit(np.log(x), np.log(loss * np.exp([0.01, -0.02, 0.0, 0.02, -0.01])), 1)[0]
    assert fit_power_law(x, loss * np.exp([0.01, -0.02, 0.0, 0.02, -0.01]), irreducible=False).alpha == \
        pytest.approx(-slope, rel=1e-9)


def test_the_fit_refuses_too_few_or_bad_points():
    with pytest.raises(ValueError, match="at least 4 points"):
        fit_power_law([1, 2, 3], [3, 2, 1])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3, 4], [3, 2, 0, 1])
    flat = fit_power_law([1, 2, 3, 4], [2.0, 2.1, 1.9, 2.05])  # no trend: alpha at its bound 0, not negative
    assert flat.alpha >= 0 and flat.c >= 0


# ---- the pieces the harness measures ------------------------------------------------------------


def test_a_train_fraction_keeps_whole_leading_lines_with_at_least_that_share_of_characters():
    split = Split(["aaaa", "bb", "cccccc", "d", "eeee"], name="train", corpus="x", level="char", mode="stream")
    # characters with newlines: 5, 3, 7, 2, 5 -> ends at 5, 8, 15, 17, 22
    assert leading_fraction(split, 0.25) == ["aaaa", "bb"]  # 8 >= 5.5
    assert leading_fraction(split, 5 / 22) == ["aaaa"]
    assert leading_fraction(split, 0.7) == ["aaaa", "bb", "cccccc", "d"]  # 17 >= 15.4
    assert leading_fraction(split, 1.0) is split


def test_non_embedding_parameters_are_kaplans_12_layer_width_squared_plus_the_small_terms():
    model = build_model(model_class_named("gpt"), {"n_layer": 3, "n_embd": 32, "n_head": 4, "context": 16})
    model.module_ = model.build_module(50)
    L, C = 3, 32
    # per block: qkv 3C^2 + 3C, projection C^2 + C, MLP 8C^2 + 5C, two LayerNorms 4C; the final LayerNorm 2C
    assert non_embedding_parameters(model) == L * (12 * C**2 + 13 * C) + 2 * C
    total = sum(p.numel() for p in model.module_.parameters())
    assert total - non_embedding_parameters(model) == 50 * C + 16 * C  # token and position embeddings


def test_the_memory_estimate_counts_parameters_without_allocating_them():
    model = build_model(model_class_named("gpt"), {"n_layer": 96, "n_embd": 12288, "n_head": 96, "context": 2048,
                                                   "batch_size": 1})
    needed = estimate(model, vocab_size=50257)
    assert needed.parameters == pytest.approx(175e9, rel=0.02)  # GPT-3's size, from its shape
    assert needed.state_bytes == 16 * needed.parameters


# ---- a tiny scaling benchmark, end to end --------------------------------------------------------

TINY = """
name = "tiny-scaling"

[[corpus]]
name = "shakespeare"
train_lines = 1500
test_lines = 60
prompts = ["ROMEO:\\n"]

[measure]
temperatures = [1.0]
sample_seeds = [0]

[[model]]
name = "gpt-size"
kind = "gpt"
scaling = "parameters"
settings = { n_head = 2, context = 16, batch_size = 8, warmup_steps = 2, eval_every = 10, dropout = 0.0, threads = 1 }
budget = { max_tokens = 1280 }
sweep = { n_layer = [1, 2], n_embd = [8, 16] }

[[model]]
name = "gpt-data"
kind = "gpt"
scaling = "data"
budget = { max_tokens = 1280 }
sweep = { train_fraction = [0.25, 1.0] }
[model.settings]
n_layer = 1
n_head = 2
n_embd = 16
context = 16
batch_size = 8
warmup_steps = 2
eval_every = 10
dropout = 0.0
threads = 1
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scaling")
    (folder / "tiny.toml").write_text(TINY, encoding="utf-8")
    out = folder / "out"
    code = cli.main(["bench", str(folder / "tiny.toml"), "--out", str(out)])
    return folder, out, code


def test_a_tiny_scaling_sweep_writes_both_log_log_plots_and_the_exponent_table(tiny):
    folder, out, code = tiny
    assert code == 0
    for axis in ("parameters", "data"):
        assert (out / "plots" / f"scaling-{axis}.png").read_bytes().startswith(PNG_SIGNATURE)
    report = (out / "REPORT.md").read_text("utf-8")
    section = report.split("## Scaling curves\n", 1)[1].split("\n## ", 1)[0]
    assert "non-embedding parameters" in section
    assert "small-scale, characters, CPU budget — not comparable in scale" in section
    assert "α_N = 0.076" in section and "α_D = 0.095" in section
    assert "plots/scaling-parameters.png" in section and "plots/scaling-data.png" in section
    # four sizes: both fits; two fractions: too few points for either, said so
    document = json.loads((out / "results.json").read_text("utf-8"))
    curves = {c["axis"]: c for c in document["scaling"]}
    sizes, data = curves["parameters"], curves["data"]
    assert len(sizes["points"]) == 4 and sizes["fit"] is not None and sizes["pure_power_law"] is not None
    assert f"| {sizes['fit']['alpha']:.3f} ± {sizes['fit']['alpha_se']:.3f} |" in section
    assert data["fit"] is None and data["pure_power_law"] is None and "needs 3 points" in section
    # each point's x is what the run measured: N from the module, D from the training slice
    runs = {r["model"]: r for r in document["runs"]}
    assert runs["gpt-size[n_layer=2,n_embd=16]"]["non_embedding_parameters"] == 2 * (12 * 256 + 13 * 16) + 32
    quarter, whole = runs["gpt-data[train_fraction=0.25]"], runs["gpt-data[train_fraction=1.0]"]
    train = load_corpus(load_config(folder / "tiny.toml").corpora[0]).train
    assert whole["train"]["text_tokens"] == len(train.text())  # characters, newlines included
    assert 0.25 <= quarter["train"]["text_tokens"] / whole["train"]["text_tokens"] < 0.26
    assert quarter["train"]["tokens"] == whole["train"]["tokens"] == 1280  # one budget for every point
    assert quarter["key"] != whole["key"]  # a different training text is a different run


# ---- bad input: one line, exit 2, nothing trained or written -------------------------------------

HUGE = """
name = "huge"
[[corpus]]
name = "shakespeare"
[[model]]
name = "gpt-size"
kind = "gpt"
scaling = "parameters"
settings = { n_head = 16, context = 256, batch_size = 64, threads = 1 }
budget = { max_tokens = 1000000 }
sweep = { n_layer = [2, 24], n_embd = [64, 16384] }
"""


def test_a_sweep_too_large_for_memory_is_one_line_before_anything_is_trained(tmp_path, capsys, monkeypatch):
    # a 20 GiB machine whatever this one has free: the two n_embd=16384 runs (130 and 1,562 GiB) do
    # not fit, the n_layer=24, n_embd=64 one (about 15 GiB) does
    monkeypatch.setattr("langmodels.neural.memory.available_bytes", lambda device=None: 20 * 2**30)
    (tmp_path / "huge.toml").write_text(HUGE, encoding="utf-8")
    code, err = bench(capsys, tmp_path / "huge.toml", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "run shakespeare/gpt-size[n_layer=2,n_embd=16384]/seed0 would need about",
                          "GiB available (MemAvailable)", "1 more run(s) would not fit either")
    assert not (tmp_path / "out").exists()  # nothing written, so nothing trained


def test_the_memory_check_passes_small_runs_and_names_the_estimate_against_what_is_available(tmp_path):
    (tmp_path / "huge.toml").write_text(HUGE, encoding="utf-8")
    runs = plan(load_config(tmp_path / "huge.toml"), tmp_path / "out")
    small = [run for run in runs if run.spec.params["n_embd"] == 64]
    check_memory(small, available=20 * 2**30)  # at most about 15 GiB: fits
    with pytest.raises(ConfigError, match=r"would need about [\d.,]+ GiB .* more than the 0\.0 GiB available"):
        check_memory(small[:1], available=2**20)


SCALING_MISUSE = [
    ('scaling = "size"', "must be one of 'parameters', 'data', got 'size'"),
    ('scaling = "data"\nsweep = { n_embd = [8, 16] }', "scaling = 'data' sweeps train_fraction alone, not n_embd"),
    ('scaling = "parameters"\nsweep = { train_fraction = [0.5, 1.0] }', "sweeps size settings"),
    ('scaling = "parameters"', "sweeps size settings"),
    ('sweep = { train_fraction = [0.5, 1.5] }', "train_fraction[1]: must be a number in (0, 1], got 1.5"),
]


@pytest.mark.parametrize("lines, fragment", SCALING_MISUSE, ids=[f for _, f in SCALING_MISUSE])
def test_misused_scaling_keys_are_one_line_each(tmp_path, capsys, lines, fragment):
    config = ('name = "bad"\n[[corpus]]\nname = "shakespeare"\n[[model]]\nname = "gpt"\nkind = "gpt"\n'
              f'budget = {{ max_tokens = 1000 }}\n{lines}\n')
    (tmp_path / "bad.toml").write_text(config, encoding="utf-8")
    assert_one_line_error(*bench(capsys, tmp_path / "bad.toml", "--out", tmp_path / "out"), fragment)
    assert not (tmp_path / "out").exists()


def test_a_scaling_curve_under_a_time_budget_is_refused(tmp_path, capsys):
    config = ('name = "bad"\n[[corpus]]\nname = "shakespeare"\n[[model]]\nname = "gpt"\nkind = "gpt"\n'
              'scaling = "parameters"\nbudget = { max_seconds = 60 }\nsweep = { n_embd = [8, 16] }\n')
    (tmp_path / "bad.toml").write_text(config, encoding="utf-8")
    assert_one_line_error(*bench(capsys, tmp_path / "bad.toml", "--out", tmp_path / "out"),
                          "needs a budget in max_tokens", "not comparable")
