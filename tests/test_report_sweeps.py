"""A model given only as a sweep is ranked in the results by its best point, labelled so, and the
summary sentence names the best of all ranked rows (issue 14, item 9). Expected figures are read
from results.csv, which holds every run, sweep points included."""

from __future__ import annotations

import csv

from cli_checks import TOY, bench

CONFIG = """
name = "sweeps"
[[corpus]]
name = "toy.txt"
[[model]]
name = "unigram"
kind = "ngram"
settings = { order = 1, smoothing = "laplace" }
[[model]]
name = "ngram"
kind = "ngram"
sweep = { order = [2, 3] }
"""


def test_a_model_given_only_as_a_sweep_is_ranked_by_its_best_point(tmp_path, capsys):
    # Repeated lines: the test lines were seen, so the 2- and 3-grams leave the unigram far behind.
    (tmp_path / "toy.txt").write_text("\n".join(TOY * 30) + "\n", encoding="utf-8")
    (tmp_path / "sweeps.toml").write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "out"
    code, err = bench(capsys, tmp_path / "sweeps.toml", "--out", out)
    assert code == 0, err
    with open(out / "results.csv", encoding="utf-8", newline="") as handle:
        rows = {row["model"]: float(row["word_perplexity"]) for row in csv.DictReader(handle)}
    assert set(rows) == {"unigram", "ngram[order=2]", "ngram[order=3]"}
    best_point = min(("ngram[order=2]", "ngram[order=3]"), key=rows.get)
    overall = min(("unigram", best_point), key=rows.get)
    report = (out / "REPORT.md").read_text("utf-8")
    results = report.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    label = f"{best_point} (best of 2 sweep points)"
    table = [line for line in results.splitlines() if line.startswith("|")]
    ranked = [line.split("|")[2].strip() for line in table[2:]]
    assert ranked == sorted(ranked, key=lambda cell: rows["unigram" if cell.startswith("unigram") else best_point])
    assert any(cell.startswith(label) for cell in ranked) and len(ranked) == 2  # the other point is not a row
    expected = label if overall == best_point else "unigram"
    assert f"On toy, {expected} has the lowest word perplexity" in results
    runner_up = "unigram" if overall == best_point else label
    assert f"below the runner-up {runner_up}" in results
