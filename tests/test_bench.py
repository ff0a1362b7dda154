"""The benchmark harness: the quick config end to end (mixture rows, a fine-tune, the Inside
figures), cached re-runs, a run killed and resumed, the normalisations on a hand-built
word/character pair, the report against `evaluate` (and a mixture row against InterpolatedLM's),
cross-fitted mixture weights, and every bad input as one line on stderr with nothing in the output
folder destroyed."""

import csv
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_checks import PNG_SIGNATURE, assert_one_line_error, bench, write_corpus

from langmodels import cli, load
from langmodels.base import LanguageModel
from langmodels.bench import load_config
from langmodels.bench.exports import MEASURED_COLUMNS
from langmodels.bench.markdown import auto_digits, fmt_number
from langmodels.bench.measure import generated_lines, loss_by_position, novelty
from langmodels.bench.mixtures import cross_fitted
from langmodels.bench.runner import tidy_runs
from langmodels.bench.slices import load_corpus
from langmodels.errors import LangmodelsError
from langmodels.mixture import InterpolatedLM, fit_mixture_weights, mix_logprobs
from langmodels.tokenizers import CharTokenizer, WordTokenizer

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "benchmarks" / "quick.toml"
FAMILIES = {"bigram", "trigram", "ngram", "mlp", "lstm", "gpt", "bert"}
MIXTURES = {"brown": "lstm+kn5", "shakespeare": "gpt+kn5"}  # quick.toml's mixture rows
INSIDE_FIGURES = ["bigram-graph-uniform-vs-counted", "bigram-graph-transitions", "gpt-attention", "bert-attention",
                  "mlp-projection", "lstm-projection", "gpt-projection", "bert-projection", "gpt-temperature"]
REPORT_FILES = ["REPORT.md", "results.csv", "results.json", "samples.md",
                "plots/quality.png", "plots/learning_curves.png", "plots/loss_by_position.png",
                *(f"plots/inside-{name}.png" for name in INSIDE_FIGURES)]
RUNS = 16  # quick.toml: 7 models on each corpus, and a mixture on each


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def snapshot(folder):
    """Every file under a folder with its bytes: what 'nothing destroyed' is checked against."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def summary_table(report: str, corpus: str) -> dict[str, dict[str, str]]:
    """The summary table of one corpus in REPORT.md: {model label: {column: cell}}."""
    section = report.split(f"### {corpus}\n", 1)[1].lstrip("\n")
    lines = []
    for line in section.splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    header, body = rows[0], rows[2:]
    return {row[1].split(" (")[0]: dict(zip(header, row)) for row in body}


# ---- the quick config, end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """benchmarks/quick.toml run once (what `make test` checks), then again with everything cached."""
    out = tmp_path_factory.mktemp("quick") / "report"
    start = time.perf_counter()
    code = cli.main(["bench", str(QUICK), "--out", str(out)])
    first_seconds = time.perf_counter() - start
    first = snapshot(out)
    start = time.perf_counter()
    again = cli.main(["bench", str(QUICK), "--out", str(out)])
    second_seconds = time.perf_counter() - start
    return {"out": out, "code": (code, again), "seconds": (first_seconds, second_seconds), "first": first,
            "second": snapshot(out)}


@pytest.mark.slow
def test_quick_config_writes_every_file_with_every_family_and_finite_numbers(quick):
    out = quick["out"]
    assert quick["code"] == (0, 0)
    assert quick["seconds"][0] < 90, "the quick config must finish in under 90 s"
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        if name.endswith(".png"):
            assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
    rows = read_csv(out / "results.csv")
    assert {row["corpus"] for row in rows} == {"brown", "shakespeare"}  # shakespeare-words: fine-tuning only
    for corpus in ("brown", "shakespeare"):
        assert {row["kind"] for row in rows if row["corpus"] == corpus} == FAMILIES | {"mixture"}
    for row in rows:
        for column in ("nll", "perplexity", "word_perplexity", "bits_per_char", "train_seconds",
                       "eval_tokens_per_second", "peak_rss_bytes", "size"):
            assert math.isfinite(float(row[column])) and float(row[column]) > 0, (row["run_id"], column)
        assert row["pseudo"] == str(row["kind"] == "bert"), row["run_id"]
        # every normalisation is the one NLL divided by its count (docs/design.md 3)
        nll = float(row["nll"])
        assert float(row["word_perplexity"]) == pytest.approx(math.exp(nll / int(row["n_words"])), rel=1e-12)
        assert float(row["bits_per_char"]) == pytest.approx(nll / (int(row["n_chars"]) * math.log(2)), rel=1e-12)
    document = json.loads((out / "results.json").read_text("utf-8"))
    assert len(document["runs"]) == len(rows) == RUNS
    for run in document["runs"]:
        assert run["probe"]["samples"] and all(s["text"] for s in run["probe"]["samples"])
        assert len(run["probe"]["autocomplete"][0]["top"]) == 5
        if run["causal"]:
            assert run["probe"]["position_loss"]["count"][0] > 0
        if run["kind"] in ("mlp", "lstm", "gpt", "bert"):
            assert run["train"]["curve"] and run["train"]["steps"] == 40
    report = (out / "REPORT.md").read_text("utf-8")
    for corpus in ("brown", "shakespeare"):
        table = summary_table(report, corpus)
        assert set(table) == {"bigram", "trigram", "kn5", "mlp", "lstm", "gpt", "bert", MIXTURES[corpus]}
        assert table["bert"]["rank"] == "–"
        assert "pseudo" in table["bert"]["pseudo word perplexity (masked LM, not ranked)"]
        ranks = [cells["rank"] for cells in table.values()]
        assert ranks[:7] == ["1", "2", "3", "4", "5", "6", "7"]  # the mixture ranked with the others
        assert next(iter(table.values()))["word perplexity"].startswith("**")
    samples = (out / "samples.md").read_text("utf-8")
    assert samples.count("temperature 0.8") == samples.count("temperature 1,") == RUNS * 2


@pytest.mark.slow
def test_a_cached_rerun_does_no_work_and_writes_the_same_bytes(quick):
    timing = json.loads((quick["out"] / "runs" / "last-invocation.json").read_text("utf-8"))
    jobs = 1 + 5  # the fine-tune, and the Inside figures of bigram, mlp, lstm, gpt and bert
    assert timing["cached"] == RUNS + jobs and timing["trained"] == timing["probed"] == 0
    assert quick["seconds"][1] < 60
    timing_file = "runs/last-invocation.json"  # the one file an invocation rewrites
    assert quick["second"] == {**quick["first"], timing_file: quick["second"][timing_file]}


@pytest.mark.slow
def test_the_report_tables_equal_evaluate_on_the_saved_checkpoints(quick):
    """Each summary cell is what `evaluate` gives the run's checkpoint on the run's test split."""
    out = quick["out"]
    config = load_config(QUICK)
    report = (out / "REPORT.md").read_text("utf-8")
    document = json.loads((out / "results.json").read_text("utf-8"))
    for corpus_spec in [spec for spec in config.corpora if not spec.finetune_only]:
        data = load_corpus(corpus_spec)
        table = summary_table(report, corpus_spec.label)
        for run in [r for r in document["runs"] if r["corpus"] == corpus_spec.label and r["kind"] != "mixture"]:
            folder = next((out / "runs").glob(f"{run['corpus']}-{run['model']}*-{run['key'][:12]}"))
            evaluation = load(folder / "model").evaluate(data.test_split(run["test_lines"]), progress=False)
            assert evaluation.nll == pytest.approx(run["test"]["nll"], rel=1e-9)
            cells = table[run["model"]]
            if run["causal"]:
                assert cells["word perplexity"].strip("*") == fmt_number(evaluation.word_perplexity)
                assert cells["bits/char"].strip("*") == fmt_number(evaluation.bits_per_char, 4)
                assert cells["perplexity per own token"] == fmt_number(evaluation.perplexity)
            else:
                assert evaluation.pseudo
                assert cells["pseudo word perplexity (masked LM, not ranked)"].startswith(
                    fmt_number(evaluation.word_perplexity) + " (pseudo")


def run_folder(out, corpus, model):
    return next(p for p in (out / "runs").glob(f"{corpus}-{model}-*") if (p / "result.json").is_file())


def quick_run(out, corpus, model):
    return next(r for r in json.loads((out / "results.json").read_text("utf-8"))["runs"]
                if r["corpus"] == corpus and r["model"] == model)


@pytest.mark.slow
def test_a_mixture_row_is_what_interpolatedlm_gives_its_components(quick):
    """On Brown (a real valid split): the weights are EM's on valid and the row is the mixture's own
    evaluate of the test split, and the paragraph under the table compares it with its components."""
    out = quick["out"]
    data = load_corpus(load_config(QUICK).corpus("brown"))
    run = quick_run(out, "brown", "lstm+kn5")
    components = [load(run_folder(out, "brown", name) / "model") for name in ("lstm-s0", "kn5")]
    mixture = InterpolatedLM(components).fit_weights(data.valid)
    evaluation = mixture.evaluate(data.test, progress=False)
    assert run["mixture"]["fitted_on"] == "valid" and run["mixture"]["valid_lines"] == len(data.valid)
    assert run["mixture"]["weights"] == pytest.approx(mixture.weights_.tolist(), rel=1e-6)
    assert run["test"]["nll"] == pytest.approx(evaluation.nll, rel=1e-6)
    assert run["test"]["word_perplexity"] == pytest.approx(evaluation.word_perplexity, rel=1e-6)
    assert (run["test"]["n_tokens"], run["test"]["n_words"], run["test"]["n_unk"]) == (
        evaluation.n_tokens, evaluation.n_words, evaluation.n_unk)
    for i, model in enumerate(("lstm", "kn5")):  # each component scored the same test text
        assert run["mixture"]["component_nll"][i] == pytest.approx(quick_run(out, "brown", model)["test"]["nll"],
                                                                   rel=1e-9)
    assert run["size"] == sum(quick_run(out, "brown", m)["size"] for m in ("lstm", "kn5"))
    assert not (run_folder(out, "brown", "lstm+kn5-s0") / "model").exists()  # rebuilt from its components
    report = (out / "REPORT.md").read_text("utf-8")
    weights = "/".join(f"{w:.2f}" for w in run["mixture"]["weights"])
    assert f"**lstm+kn5** mixes lstm and kn5 with weights {weights} (fitted by EM on the 200 valid lines" in report
    assert "**gpt+kn5** mixes gpt and kn5 with weights" in report and "cross-fitted" in report


@pytest.mark.slow
def test_tiny_shakespeare_mixture_is_cross_fitted_on_the_test_text(quick):
    out = quick["out"]
    run = quick_run(out, "shakespeare", "gpt+kn5")
    mixture = run["mixture"]
    assert mixture["fitted_on"] == "cross-fitted" and mixture["valid_lines"] is None
    first, second = mixture["folds"]
    assert (first["mixed"], first["fitted_on"], second["mixed"], second["fitted_on"]) == (
        "first half", "second half", "second half", "first half")
    assert first["tokens"] + second["tokens"] == run["test"]["n_tokens"]
    assert mixture["weights"] == pytest.approx(np.mean([first["weights"], second["weights"]], axis=0))


def test_cross_fitting_mixes_each_half_with_the_other_halfs_weights():
    """A synthetic (T, K) matrix whose halves favour different components: each half is mixed with
    the weights EM fits on the other, and the NLL is the sum over both halves."""
    rng = np.random.default_rng(0)
    T = 2001  # odd: the second half has one token more
    good, poor = np.log(rng.uniform(0.3, 0.9, T)), np.log(rng.uniform(0.01, 0.1, T))
    logp = np.column_stack([good, poor])
    logp[T // 2:] = logp[T // 2:, ::-1]  # the first half favours component 0, the second component 1
    mixed, folds = cross_fitted(logp, tol=1e-9, max_iter=1000)
    w_first, _ = fit_mixture_weights(logp[: T // 2], tol=1e-9, max_iter=1000)
    w_second, _ = fit_mixture_weights(logp[T // 2:], tol=1e-9, max_iter=1000)
    assert w_first[0] > 0.9 and w_second[1] > 0.9  # each half's own weights favour its own component
    assert folds[0]["weights"] == pytest.approx(w_second.tolist()) and folds[1]["weights"] == pytest.approx(
        w_first.tolist())
    assert (folds[0]["tokens"], folds[1]["tokens"]) == (T // 2, T - T // 2)
    assert mixed[: T // 2] == pytest.approx(mix_logprobs(logp[: T // 2].T, np.log(w_second)))
    assert mixed[T // 2:] == pytest.approx(mix_logprobs(logp[T // 2:].T, np.log(w_first)))
    # Out-of-fold weights cost more than in-fold ones on this text: the fit never saw the tokens it scores.
    in_fold = np.concatenate([mix_logprobs(logp[: T // 2].T, np.log(w_first)),
                              mix_logprobs(logp[T // 2:].T, np.log(w_second))])
    assert -mixed.sum() > -in_fold.sum()


@pytest.mark.slow
def test_the_finetune_table_is_the_finetuned_checkpoints_figures(quick):
    out = quick["out"]
    config = load_config(QUICK)
    (spec,) = config.finetunes
    assert (spec.model, spec.source, spec.target, spec.source_run) == ("gpt", "brown", "shakespeare-words",
                                                                       "brown/gpt/seed0")
    (result,) = json.loads((out / "results.json").read_text("utf-8"))["finetunes"]
    assert result["train"]["steps"] == 20 and not result["train"]["early_stopping"]  # valid is the test text
    target = load_corpus(config.corpus("shakespeare-words")).test_split(spec.test_lines)
    source = load_corpus(config.corpus("brown")).test_split(spec.test_lines)
    folder = next((out / "runs").glob("finetune-*"))
    tuned, pretrained = load(folder / "model"), load(run_folder(out, "brown", "gpt-s0") / "model")
    assert tuned.tokenizer.to_dict() == pretrained.tokenizer.to_dict()  # the vocabulary is kept
    for side, test in (("target", target), ("source", source)):
        assert result["after"][side]["nll"] == pytest.approx(tuned.evaluate(test, progress=False).nll, rel=1e-9)
        assert result["before"][side]["nll"] == pytest.approx(pretrained.evaluate(test, progress=False).nll,
                                                              rel=1e-9)
    assert result["after"]["target"]["word_perplexity"] < result["before"]["target"]["word_perplexity"]
    assert 0 < result["target_unk_share"] < 1
    report = (out / "REPORT.md").read_text("utf-8")
    section = report.split("## Fine-tuning\n", 1)[1].split("\n## ", 1)[0]
    assert "| gpt: brown -> shakespeare-words (GPT 1x32) |" in section
    assert "shakespeare-words (first 100 lines)" in section and "brown (first 100 lines)" in section
    assert "`test_lines`, to keep the table cheap" in section
    assert f"{fmt_number(result['after']['target']['word_perplexity'])}" in section
    corpora = report.split("## Corpora\n", 1)[1].split("## Models", 1)[0]
    assert "| shakespeare-words | shakespeare | word, `lines` |" in corpora and "for fine-tuning only" in corpora


@pytest.mark.slow
def test_every_inside_figure_is_drawn_and_captioned_from_its_data(quick):
    out = quick["out"]
    report = (out / "REPORT.md").read_text("utf-8")
    section = report.split("## Inside the models\n", 1)[1].split("\n## ", 1)[0]
    for name in INSIDE_FIGURES:
        path = out / "plots" / f"inside-{name}.png"
        assert path.read_bytes().startswith(PNG_SIGNATURE), name
        assert f"(plots/inside-{name}.png)" in section, name
    stored = {p.name.split("-")[2]: json.loads((p / "inside.json").read_text("utf-8"))
              for p in (out / "runs").glob("inside-brown-*")}
    graph = stored["bigram"]["figures"]["graph"]
    assert f"{graph['seen_successors']:,} different words follow `the`" in section
    attention = stored["gpt"]["figures"]["attention"]
    assert attention["tokens"][0] == "<s>" and attention["last"] == "city"
    assert f"attends most to `{attention['last_attends_to']}` ({attention['last_weight']:.2f})" in section
    analogies = section.split("**Word analogies**", 1)[1]
    for model in ("mlp", "lstm", "gpt", "bert"):
        tally = stored[model]["figures"]["analogies"]
        assert tally["answered"] + tally["skipped"] == tally["questions"] > 0
        assert f"| {model} (" in analogies
    temperature = stored["gpt"]["figures"]["temperature"]
    assert [s["temperature"] for s in temperature["samples"]] == [0.5, 1.0, 2.0]
    assert all(len(s["texts"]) == 2 for s in temperature["samples"])
    assert [s["label"] for s in temperature["settings"]][-2:] == ["top-k = 5 (T = 1)", "top-p = 0.9 (T = 1)"]
    assert temperature["settings"][3]["kept"] == 5


# ---- a small config of our own: resuming, sweeps, seeds, --only and --force ---------------------


SMALL = """
name = "small"
seeds = [0]

[[corpus]]
name = "words.txt"
prompts = ["the cat"]
complete = ["the"]

[measure]
temperatures = [1.0]
sample_seeds = [0]

[[model]]
name = "bigram"
kind = "bigram"

[[model]]
name = "ngram"
kind = "ngram"
sweep = { order = [1, 2, 3], smoothing = ["laplace", "kneser-ney"] }

[[model]]
name = "gpt"
kind = "gpt"
seeds = [0, 1]
budget = { max_steps = 30 }
[model.settings]
n_layer = 1
n_head = 2
n_embd = 16
context = 16
batch_size = 8
warmup_steps = 2
eval_every = 10
threads = 1

[[model]]
name = "lstm"
kind = "lstm"
settings = { n_layer = 1, n_embd = 16, hidden = 16, batch_size = 8, warmup_steps = 2, eval_every = 10, threads = 1 }
budget = { max_steps = 30 }
"""


@pytest.fixture
def small(tmp_path):
    write_corpus(tmp_path / "words.txt", lines=600)
    config = tmp_path / "small.toml"
    config.write_text(SMALL, encoding="utf-8")
    return config


def quality_columns(path):
    """results.csv without the columns that are timings or memory (they differ between trainings)."""
    return [{k: v for k, v in row.items() if k not in MEASURED_COLUMNS} for row in read_csv(path)]


def finished_runs(out):
    return [p for p in (out / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]


@pytest.mark.slow
def test_a_run_killed_half_way_resumes_to_the_same_results(small, tmp_path, capsys):
    whole = tmp_path / "whole"
    assert bench(capsys, small, "--out", whole)[0] == 0
    n_runs = len(load_config(small).runs)
    assert n_runs == 10 and len(finished_runs(whole)) == n_runs

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "langmodels", "bench", str(small), "--out", str(killed)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ((killed / "runs").is_dir() and len(finished_runs(killed)) >= n_runs // 2):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # no clean-up of any kind
    process.wait()
    process.stderr.close()
    survivors = {p.name: snapshot(p) for p in finished_runs(killed)}
    assert n_runs // 2 <= len(survivors) < n_runs

    assert bench(capsys, small, "--out", killed)[0] == 0
    timing = json.loads((killed / "runs" / "last-invocation.json").read_text("utf-8"))
    assert timing["cached"] == len(survivors) and timing["trained"] == n_runs - len(survivors)
    for name, files in survivors.items():  # finished runs were kept as they were, not redone
        assert snapshot(killed / "runs" / name) == files
    assert not [p for p in (killed / "runs").iterdir() if p.name.startswith((".staging", ".retired"))]
    assert quality_columns(killed / "results.csv") == quality_columns(whole / "results.csv")
    whole_report = (whole / "REPORT.md").read_text("utf-8")
    assert "## Sweeps" in whole_report and (whole / "plots" / "sweep-ngram.png").is_file()


@pytest.mark.slow
def test_seeds_give_mean_and_spread_and_only_and_force_redo_what_they_name(small, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = bench(capsys, small, "--out", out, "--only", "gpt")
    assert code == 0, err
    report = (out / "REPORT.md").read_text("utf-8")
    assert "**Incomplete**: 8 configured run(s)" in report
    rows = [r for r in read_csv(out / "results.csv") if r["group"] == "gpt"]
    assert [r["seed"] for r in rows] == ["0", "1"]
    values = [float(r["word_perplexity"]) for r in rows]
    assert values[0] != values[1]  # the seeds draw different batches and initial weights
    cell = summary_table(report, "words")["gpt"]["word perplexity"].strip("*")
    mean, spread = np.mean(values), np.std(values, ddof=1)  # the sample standard deviation
    assert cell == f"{fmt_number(mean)} ± {fmt_number(spread, auto_digits(mean))}"

    before = snapshot(out / "runs")
    code, err = bench(capsys, small, "--out", out, "--only", "words/gpt/seed1", "--force")
    assert code == 0, err
    after = snapshot(out / "runs")
    seed0 = [name for name in before if "-gpt-s0-" in name and name.endswith("result.json")]
    seed1 = [name for name in before if "-gpt-s1-" in name and name.endswith("result.json")]
    assert after[seed0[0]] == before[seed0[0]]  # not named: untouched
    redone = json.loads(after[seed1[0]])
    assert redone["test"]["nll"] == json.loads(before[seed1[0]])["test"]["nll"]  # max_steps: same figures
    assert redone["train"]["seconds"] != json.loads(before[seed1[0]])["train"]["seconds"]  # but trained anew


MIXED = """
name = "mixed"
[[corpus]]
name = "words.txt"
[[model]]
name = "mix"
kind = "mixture"
components = ["bigram", "trigram"]
[[model]]
name = "bigram"
kind = "bigram"
[[model]]
name = "trigram"
kind = "trigram"
"""


def test_only_a_mixture_runs_its_components_first_and_a_changed_component_redoes_it(tmp_path, capsys):
    write_corpus(tmp_path / "words.txt", lines=300)
    config, out = tmp_path / "mixed.toml", tmp_path / "out"
    config.write_text(MIXED, encoding="utf-8")
    code, err = bench(capsys, config, "--out", out, "--only", "mix")  # declared before its components
    assert code == 0, err
    assert [row["model"] for row in read_csv(out / "results.csv")] == ["bigram", "trigram", "mix"]
    assert err.index("words/bigram: training") < err.index("words/mix: mixing words/bigram, words/trigram")
    first = quick_run(out, "words", "mix")
    assert first["mixture"]["fitted_on"] == "valid" and sum(first["mixture"]["weights"]) == pytest.approx(1)

    code, err = bench(capsys, config, "--out", out, "--only", "mix", "--force")  # the mixture only is redone
    timing = json.loads((out / "runs" / "last-invocation.json").read_text("utf-8"))
    assert code == 0 and (timing["trained"], timing["cached"]) == (1, 2), err

    config.write_text(MIXED.replace('kind = "trigram"', 'kind = "trigram"\nsettings = { smoothing = "witten-bell" }'),
                      encoding="utf-8")
    code, err = bench(capsys, config, "--out", out)
    timing = json.loads((out / "runs" / "last-invocation.json").read_text("utf-8"))
    assert code == 0 and (timing["trained"], timing["cached"]) == (2, 1), err  # the trigram and the mixture
    second = quick_run(out, "words", "mix")
    assert second["key"] != first["key"]
    assert second["material"]["components"][0] == first["material"]["components"][0]
    assert second["material"]["components"][1] != first["material"]["components"][1]


# ---- the normalisations: a word model and a character model with the same probabilities ----------

Q = 0.2  # P(end of line) after a word, in both models


class WordPairLM(LanguageModel):
    """Words a, b, c: the first word of a line uniform (1/3); after a word, each word (1-Q)/3 and
    the end of the line Q."""

    def __init__(self):
        self.tokenizer = None

    def fit(self, train, valid=None, **budget):
        self.tokenizer = WordTokenizer().fit(list(train))
        return self

    def next_logprobs(self, context_ids):
        vocab = self.tokenizer.vocab
        out = np.full(len(vocab), -np.inf)
        words = [vocab[w] for w in "abc"]
        if len(context_ids) == 0:
            out[words] = math.log(1 / 3)
        else:
            out[words] = math.log((1 - Q) / 3)
            out[vocab.eos_id] = math.log(Q)
        return out

    def score_ids(self, batch):
        eos = self.tokenizer.vocab.eos_id
        return [np.array([self.next_logprobs(ids[:i])[t] for i, t in enumerate([*ids, eos])]) for ids in batch]

    def state_files(self):
        return {}

    def restore_state(self, files, fitted):
        pass


class CharPairLM(LanguageModel):
    """Characters: at a word start (line start, after a space or a newline) a, b, c uniform (1/3);
    after a letter, a space (1-Q) or a newline (Q). Each line's probability equals WordPairLM's."""

    def __init__(self):
        self.tokenizer = None

    def fit(self, train, valid=None, **budget):
        self.tokenizer = CharTokenizer().fit(train.text())
        return self

    def next_logprobs(self, context_ids):
        vocab = self.tokenizer.vocab
        out = np.full(len(vocab), -np.inf)
        last = vocab.token(int(context_ids[-1])) if len(context_ids) else "\n"
        if last in " \n":
            out[[vocab[c] for c in "abc"]] = math.log(1 / 3)
        else:
            out[vocab[" "]], out[vocab["\n"]] = math.log(1 - Q), math.log(Q)
        return out

    def score_ids(self, batch):
        return [np.array([self.next_logprobs(ids[:i])[t] if t != self.tokenizer.vocab.eos_id else -np.inf
                          for i, t in enumerate([*ids, self.tokenizer.vocab.eos_id])]) for ids in batch]

    def score_stream(self, ids):
        return np.array([self.next_logprobs(ids[:i])[t] for i, t in enumerate(ids)])

    def state_files(self):
        return {}

    def restore_state(self, files, fitted):
        pass


PAIR = """
name = "pair"

[[corpus]]
name = "abc.txt"
label = "as-words"
level = "word"
complete = ["a b"]
position_max = 1

[[corpus]]
name = "abc.txt"
label = "as-chars"
level = "char"
complete = ["a b"]

[measure]
sample_seeds = [0]

[[model]]
name = "words"
kind = "test_bench:WordPairLM"
corpora = ["as-words"]

[[model]]
name = "chars"
kind = "test_bench:CharPairLM"
corpora = ["as-chars"]
"""


def test_a_word_and_a_character_model_with_the_same_probabilities_get_the_same_figures(tmp_path, capsys):
    rng = random.Random(3)
    lines = [" ".join(rng.choice("abc") for _ in range(rng.randint(1, 6))) for _ in range(50)]
    (tmp_path / "abc.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "pair.toml").write_text(PAIR, encoding="utf-8")
    code, err = bench(capsys, tmp_path / "pair.toml", "--out", tmp_path / "out")
    assert code == 0, err
    words, chars = read_csv(tmp_path / "out" / "results.csv")
    assert (words["mode"], chars["mode"]) == ("lines", "stream")
    # By hand, from the test lines (the last 10 % of the file): each word costs ln 3, each word
    # after the first of its line -ln(1-Q) more, each line's end -ln Q.
    test = lines[45:]
    n_words = sum(len(line.split()) for line in test)
    nll = n_words * math.log(3) - (n_words - len(test)) * math.log(1 - Q) - len(test) * math.log(Q)
    n_chars = sum(len(line) + 1 for line in test)
    for row in (words, chars):
        assert float(row["nll"]) == pytest.approx(nll, rel=1e-12)
        assert float(row["word_perplexity"]) == pytest.approx(math.exp(nll / (n_words + len(test))), rel=1e-12)
        assert float(row["bits_per_char"]) == pytest.approx(nll / (n_chars * math.log(2)), rel=1e-12)
    assert int(words["n_tokens"]) == n_words + len(test) and int(chars["n_tokens"]) == n_chars
    # the two models' loss by position: ln 3 for the first word, then ln 3 - ln(1-Q) per word
    probes = {run["model"]: run["probe"] for run in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]}
    word_curve = probes["words"]["position_loss"]["mean_nll"]
    assert word_curve[0] == pytest.approx(math.log(3))
    assert word_curve[1:] == pytest.approx([math.log(3) - math.log(1 - Q)] * (len(word_curve) - 1))


def test_bits_per_byte_stands_beside_bits_per_char_in_the_csv_and_the_table(tmp_path, capsys):
    """On accented text (some characters 2 UTF-8 bytes), each row's bits per byte is its NLL over the
    UTF-8 bytes of its test text (lm-evaluation-harness's definition), below its bits per character."""
    rng = random.Random(5)
    words = ["café", "naïve", "crème", "brûlée", "über", "the", "cat"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 7))) for _ in range(200)]
    (tmp_path / "words.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = TINY + '[[model]]\nname = "kn3"\nkind = "ngram"\nsettings = { order = 3 }\n'
    (tmp_path / "tiny.toml").write_text(config, encoding="utf-8")
    code, err = bench(capsys, tmp_path / "tiny.toml", "--out", tmp_path / "out")
    assert code == 0, err
    test = "".join(line + "\n" for line in lines[180:])  # the last 10 % of the lines
    n_bytes = len(test.encode("utf-8"))
    assert n_bytes > len(test)
    rows = read_csv(tmp_path / "out" / "results.csv")
    table = summary_table((tmp_path / "out" / "REPORT.md").read_text("utf-8"), "words")
    summary = {s["model"]: s for s in json.loads((tmp_path / "out" / "results.json").read_text("utf-8"))["summary"]}
    assert [row["model"] for row in rows] == ["bigram", "kn3"]
    for row in rows:
        nll = float(row["nll"])
        assert (int(row["n_bytes"]), int(row["n_chars"])) == (n_bytes, len(test))
        assert float(row["bits_per_byte"]) == pytest.approx(nll / (n_bytes * math.log(2)), rel=1e-12)
        assert float(row["bits_per_byte"]) < float(row["bits_per_char"])
        assert table[row["model"]]["bits/byte"].strip("*") == fmt_number(float(row["bits_per_byte"]), 4)
        assert summary[row["model"]]["bits_per_byte_mean"] == pytest.approx(float(row["bits_per_byte"]), rel=1e-12)


class DivergingLM(WordPairLM):
    """A family whose training fails the way a diverged run does (a LangmodelsError)."""

    def fit(self, train, valid=None, **budget):
        raise LangmodelsError("the training loss became nan at step 7")


def test_a_failed_run_is_reported_and_the_others_still_run(tmp_path, capsys):
    write_corpus(tmp_path / "words.txt", lines=100)
    config = TINY + '[[model]]\nname = "diverging"\nkind = "test_bench:DivergingLM"\n'
    (tmp_path / "tiny.toml").write_text(config, encoding="utf-8")
    code, err = bench(capsys, tmp_path / "tiny.toml", "--out", tmp_path / "out")
    last = err.strip().splitlines()[-1]
    assert code == cli.EXIT_ERROR and "Traceback" not in err
    assert last == ("langmodels: error: 1 run(s) failed and are missing from the report: "
                    "words/diverging: the training loss became nan at step 7")
    assert [row["model"] for row in read_csv(tmp_path / "out" / "results.csv")] == ["bigram"]
    assert "**Incomplete**: 1 configured run(s) have no result yet: `words/diverging`" in (
        tmp_path / "out" / "REPORT.md").read_text("utf-8")


# ---- pieces with hand-checkable answers ---------------------------------------------------------


def test_generated_lines_leave_out_the_prompt_and_a_cut_off_last_line():
    assert generated_lines("The jury said so", "The jury") == ["The jury said so"]
    assert generated_lines("ROMEO:\nAy me\nThou art\nhalf a li", "ROMEO:\n") == ["Ay me", "Thou art"]
    assert generated_lines("ROMEO:\nAy me\n", "ROMEO:\n") == ["Ay me"]
    assert generated_lines("ROMEO:\nAy me\n\nYes\n", "ROMEO:\nA") == ["Ay me", "Yes"]
    assert generated_lines("no newline at all and cut", "") == ["no newline at all and cut"]


def test_novelty_sorts_lines_as_makemore_does():
    train, test = {"a b", "c d"}, {"e f", "a b"}
    assert novelty(["a b", "e f", "x y", "c d", "x y"], train, test) == {
        "lines": 5, "in_train": 2, "in_test": 1, "new": 2}


def test_loss_by_position_averages_the_lines_that_reach_the_last_position():
    model = WordPairLM().fit(["a b c", "b a", "c a b c"])
    loss = loss_by_position(model, ["a b c", "b a", "c a b c"], position_max=2)
    assert loss["lines"] == 2 and loss["count"] == [2, 2, 2]  # "b a" is too short; ends of lines are no position
    first, later = math.log(3), math.log(3) - math.log(1 - Q)
    assert loss["mean_nll"] == pytest.approx([first, later, later])


def test_tidying_after_a_crash_restores_a_run_caught_between_renames_and_drops_half_built_ones(tmp_path):
    runs = tmp_path / "runs"
    (runs / ".retired-words-gpt-s0-abc.123").mkdir(parents=True)  # killed after moving the old run aside
    (runs / ".retired-words-gpt-s0-abc.123" / "result.json").write_text("old", encoding="utf-8")
    (runs / ".staging-words-lstm-s0-def.123").mkdir()  # killed while assembling a run
    (runs / "words-bigram-0a1").mkdir()
    (runs / ".retired-words-bigram-0a1.77").mkdir()  # the swap had finished: the old copy goes
    tidy_runs(runs)
    assert sorted(p.name for p in runs.iterdir()) == ["words-bigram-0a1", "words-gpt-s0-abc"]
    assert (runs / "words-gpt-s0-abc" / "result.json").read_text("utf-8") == "old"


# ---- bad input: one line, exit 2, nothing in the output folder destroyed -------------------------

TINY = """
name = "tiny"
[[corpus]]
name = "words.txt"
[[model]]
name = "bigram"
kind = "bigram"
"""
MIXTURE = '[[model]]\nname = "mix"\nkind = "mixture"\ncomponents = {components}\n'
GPT = '[[model]]\nname = "gpt"\nkind = "gpt"\nbudget = { max_steps = 5 }\ncorpora = ["words"]\n'
BERT = GPT.replace('"gpt"', '"bert"')
SWEEP = '[[model]]\nname = "ngram"\nkind = "ngram"\nsweep = { order = [2, 3] }\n'
WORDS_AGAIN = '[[corpus]]\nname = "words.txt"\nlabel = "again"\n'
FINETUNE = ('[[finetune]]\nmodel = "gpt"\nfrom = "words"\nonto = "{onto}"\nbudget = {{ max_steps = 5 }}\n'
            'settings = {{ lr = 1e-3 }}\n')


@pytest.fixture
def finished(tmp_path, capsys):
    """A corpus, a tiny benchmark already run into out/, and a snapshot of out/."""
    write_corpus(tmp_path / "words.txt", lines=100)
    (tmp_path / "tiny.toml").write_text(TINY, encoding="utf-8")
    out = tmp_path / "out"
    code, err = bench(capsys, tmp_path / "tiny.toml", "--out", out)
    assert code == 0, err
    return tmp_path, out, snapshot(out)


BAD_CONFIGS = [
    ('name = "tiny"\n[[corpus]\nname = "words.txt"\n', ["not valid TOML", "line 2, column"]),
    (TINY.replace('kind = "bigram"', 'kind = "transformer"'),
     ["unknown model 'transformer'", "bigram, trigram, ngram"]),
    (TINY.replace('name = "words.txt"', 'name = "browne"'), ["unknown corpus 'browne'", "brown, shakespeare"]),
    (TINY.replace('kind = "bigram"', 'kind = "bigram"\nsmothing = "laplace"'),
     ["unknown key 'smothing'", "valid keys: name, kind, settings, budget"]),
    (TINY.replace('kind = "bigram"', 'kind = "bigram"\nsettings = { smothing = "laplace" }'),
     ["unknown key 'smothing' (did you mean 'smoothing'?)", "valid keys: smoothing, k, discount"]),
    (TINY + '[[model]]\nname = "gpt"\nkind = "gpt"\nbudget = { max_steps = 0 }\n',
     ["model 'gpt'.budget.max_steps", "must be a whole number >= 1, got 0"]),
    (TINY + '[[model]]\nname = "gpt"\nkind = "gpt"\nbudget = { max_seconds = 0 }\n',
     ["model 'gpt'.budget.max_seconds", "must be a number > 0, got 0"]),
    (TINY + '[[model]]\nname = "gpt"\nkind = "gpt"\n', ["gpt needs a training budget"]),
    (TINY.replace('kind = "bigram"', 'kind = "bigram"\nsettings = { smoothing = "kneser" }'),
     ["unknown smoothing 'kneser'"]),
    (TINY.replace('kind = "bigram"', 'kind = "ngram"\nsettings = { order = "5" }'),
     ["settings.order", "must be a whole number, got '5'"]),
    (TINY.replace('kind = "bigram"', 'kind = "gpt"\nbudget = { max_steps = 5 }\ntest_lines = 3'),
     ["test_lines", "only a model whose scores are not ranked"]),
    (TINY + MIXTURE.format(components='["bigram", "kn9"]'),
     ["model 'mix'.components", "no model named 'kn9'", "models: bigram"]),
    (TINY + BERT + MIXTURE.format(components='["bigram", "bert"]'), ["'bert' is a masked LM", "causal models"]),
    (TINY + SWEEP + MIXTURE.format(components='["bigram", "ngram"]'), ["'ngram' is a sweep on 'words'"]),
    (TINY + MIXTURE.format(components='["bigram", "mix2"]') + MIXTURE.replace('"mix"', '"mix2"').format(
        components='["bigram", "bigram"]'), ["'mix2' is itself a mixture"]),
    (TINY + MIXTURE.format(components='["bigram"]'), ["must name two or more different models"]),
    (TINY + GPT + FINETUNE.format(onto="shakespeare-words"),
     ["finetune[0].onto", "no corpus labelled 'shakespeare-words'", "corpora: words"]),
    (TINY + GPT + FINETUNE.format(onto="words"), ["finetune[0].onto", "is the corpus it is fine-tuned from"]),
    (TINY + WORDS_AGAIN + GPT + FINETUNE.replace('from = "words"', 'from = "again"').format(onto="words"),
     ["finetune[0].from", "model 'gpt' does not run on corpus 'again'"]),
    (TINY + WORDS_AGAIN + GPT + FINETUNE.format(onto="again").replace('model = "gpt"', 'model = "bigram"'),
     ["'bigram' (bigram) is not a neural model"]),
    (TINY + WORDS_AGAIN + GPT + FINETUNE.format(onto="again").replace("lr = 1e-3", "n_layer = 3"),
     ["finetune[0].settings", "unknown key 'n_layer'", "valid keys: batch_size, lr"]),
    (TINY + WORDS_AGAIN.replace('label = "again"', 'label = "again"\nfinetune_only = true'),
     ["corpus 'again' is finetune_only but no [[finetune]] is onto it"]),
    (TINY.replace('kind = "bigram"', 'kind = "bigram"\ncorpora = ["again"]') + WORDS_AGAIN.replace(
        'label = "again"', 'label = "again"\nfinetune_only = true'),
     ["corpus 'again' is finetune_only: no model runs"]),
    (TINY + '[inside]\ncorpus = "words"\ntop_p = 1.5\n', ["inside.top_p", "must be a number in (0, 1]"]),
    (TINY + '[inside]\ncorpus = "brown"\n', ["inside.corpus", "no corpus labelled 'brown'"]),
]


@pytest.mark.parametrize("text, fragments", BAD_CONFIGS, ids=[f[0] for _, f in BAD_CONFIGS])
def test_a_bad_config_is_one_line_and_destroys_nothing(finished, capsys, text, fragments):
    folder, out, before = finished
    (folder / "bad.toml").write_text(text, encoding="utf-8")
    assert_one_line_error(*bench(capsys, folder / "bad.toml", "--out", out), *fragments)
    assert snapshot(out) == before


def test_a_different_benchmarks_folder_is_refused_untouched(finished, capsys):
    folder, out, before = finished
    (folder / "other.toml").write_text(TINY.replace('name = "tiny"', 'name = "other"'), encoding="utf-8")
    assert_one_line_error(*bench(capsys, folder / "other.toml", "--out", out),
                          "holds the results of benchmark 'tiny'", "not 'other'")
    assert snapshot(out) == before
    foreign = folder / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    assert_one_line_error(*bench(capsys, folder / "tiny.toml", "--out", foreign), "holds no benchmark")
    assert snapshot(foreign) == {"notes.txt": b"mine"}


def test_other_mistakes_are_one_line_each(finished, capsys):
    folder, out, before = finished
    assert_one_line_error(*bench(capsys, folder / "missing.toml", "--out", out), "no such benchmark config")
    assert_one_line_error(*bench(capsys, folder / "tiny.toml", "--out", out, "--only", "gtp"),
                          "--only 'gtp' names no run", "bigram")
    (folder / "file").write_text("x", encoding="utf-8")
    assert_one_line_error(*bench(capsys, folder / "tiny.toml", "--out", folder / "file"), "is not a folder")
    assert snapshot(out) == before
