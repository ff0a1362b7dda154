"""The shipped benchmark configs (benchmarks/*.toml): each parses, and the two report configs
(default, long) compare every family on both corpora with budgets in tokens, not seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from langmodels.bench import load_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FAMILIES = {"mlp", "lstm", "gpt", "bert"}


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.toml")), ids=lambda path: path.name)
def test_every_shipped_config_parses(path):
    config = load_config(path)
    assert config.runs and config.name == path.stem


@pytest.mark.parametrize("name", ["default", "long"])
def test_the_report_configs_train_every_family_on_both_corpora_for_a_number_of_tokens(name):
    config = load_config(BENCHMARKS / f"{name}.toml")
    for corpus in ("brown", "shakespeare"):
        runs = [run for run in config.runs if run.corpus == corpus]
        assert FAMILIES <= {run.kind for run in runs}
        assert {"bigram", "trigram"} <= {run.kind for run in runs}
        for run in runs:
            if run.kind in FAMILIES:  # the same figures on any machine: no wall-clock budget
                assert set(run.budget) == {"max_tokens"}, run.run_id
                assert run.params["threads"] > 0, run.run_id  # a fixed thread count: part of the figures
    assert all(set(spec.budget) == {"max_tokens"} for spec in config.finetunes)
