"""The course examples in examples/: each runs as a student would run it (a fresh interpreter, an
output folder as its argument; 01 without one, so it makes a fresh folder under TMPDIR), exits
cleanly without warnings, prints the results it promises, writes its figures into that folder and
nowhere else, stays under 60 lines, and uses only the public API.

The printed numbers are checked against facts that hold whatever the training run gave: counts
done by hand on the toy text, the MLE model's zeros, entropy growing with temperature, and a
mixture never scoring worse than its worse component (Jensen's inequality).
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import PNG_SIGNATURE

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))
MAX_LINES = 60
# What an example may import: the public API, the standard library it needs, numpy.
ALLOWED_IMPORTS = {"langmodels", "langmodels.corpora", "langmodels.inside", "itertools", "math", "numpy", "pathlib",
                   "sys", "tempfile", "warnings"}
NUMBER = r"(inf|[0-9][0-9,]*(?:\.[0-9]+)?)"
TIMEOUT = 120  # seconds for one example on a slow, shared machine
DEFAULT_FOLDER_EXAMPLE = "01_bigram_graph.py"  # run without an output folder: it makes a fresh one in TMPDIR


def run(script: Path, folder: Path) -> tuple[str, Path]:
    """Run an example in an empty working folder with its own TMPDIR; return its stdout, after checking
    that it ended cleanly, printed no warnings and wrote nothing into the working folder, and the
    output folder it was given (or, for the default-folder example, the one it made in TMPDIR)."""
    cwd, temp, out = folder / "cwd", folder / "tmp", folder / "out"
    cwd.mkdir()
    temp.mkdir()
    args = [] if script.name == DEFAULT_FOLDER_EXAMPLE else [str(out)]
    done = subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False, env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    noisy = [line for line in done.stderr.splitlines() if "Warning" in line or "Traceback" in line]
    assert not noisy, f"{script.name} printed warnings:\n{done.stderr}"
    assert not any(cwd.iterdir()), f"{script.name} wrote into the working folder: {list(cwd.iterdir())}"
    if script.name == DEFAULT_FOLDER_EXAMPLE:
        [out] = temp.glob("langmodels-01-*")
    return done.stdout, out


def number(output: str, pattern: str) -> float:
    """The number captured by `pattern` (NUMBER marks where) in the output; fails if it is missing."""
    found = re.search(pattern.replace("NUMBER", NUMBER), output, re.MULTILINE)
    assert found, f"no line matching {pattern!r} in:\n{output}"
    return float(found.group(1).replace(",", ""))


def finite(output: str, pattern: str) -> float:
    value = number(output, pattern)
    assert math.isfinite(value), f"{pattern!r}: {value}"
    return value


# ---- what each example must print ---------------------------------------------------------------


def check_bigram_graph(output: str) -> None:
    # By hand: "the" is followed 8 times in the toy text, 3 of them by "cat", 2 by "dog".
    assert number(output, r"P\(cat \| the\) = NUMBER") == 0.375
    assert number(output, r"P\(dog \| the\) = NUMBER") == 0.25
    assert number(output, r"P\('the mouse chased the dog'\) = NUMBER") == 0  # "mouse chased" never occurs
    assert 0 < number(output, r"P\('the cat chased a mouse'\) = NUMBER") < 1
    samples = output.split("Sentences sampled from the graph:\n")[1].splitlines()
    assert len(samples) == 4 and all(line.strip() for line in samples)


def check_smoothing(output: str) -> None:
    smoothings = ("mle", "laplace", "witten-bell", "kneser-ney")
    table = re.findall(rf"^({'|'.join(smoothings)}) +((?:(?:inf|[0-9.]+) +){{4}})\[", output, re.MULTILINE)
    rows = {smoothing: values.split() for smoothing, values in table}
    assert set(rows) == set(smoothings)
    assert rows["mle"][1:] == ["inf", "inf", "inf"]  # unsmoothed bigrams and up meet unseen n-grams
    for smoothing in ("laplace", "witten-bell", "kneser-ney"):
        assert all(math.isfinite(float(value)) for value in rows[smoothing]), rows[smoothing]
    assert float(rows["kneser-ney"][2]) < float(rows["witten-bell"][2]) < float(rows["laplace"][2])  # 3-grams
    assert number(output, r"mle +P\(.*\) = NUMBER") == 0
    assert finite(output, r"kneser-ney +P\(.*\) = NUMBER") > 0
    assert finite(output, r"best model: .*-gram, perplexity NUMBER") > 1


def check_neural_mlp(output: str) -> None:
    vocabulary = finite(output, r"vocabulary: NUMBER words")
    assert 1 < finite(output, r"kneser-ney trigram +NUMBER") < vocabulary
    assert 1 < finite(output, r"bengio MLP +NUMBER") < vocabulary  # learned something beyond uniform guessing
    assert finite(output, r"MLP trained for NUMBER steps") >= 1
    for word in ("the", "in", "was", "would"):
        assert re.search(rf"^ +{word}: (\S+ \([-0-9.]+\)(, )?){{5}}$", output, re.MULTILINE), word


def check_gpt(output: str) -> None:
    uniform = finite(output, r"uniform guess among .* +NUMBER")  # log2(number of characters)
    assert finite(output, r"character bigram \(counted\) +NUMBER") < uniform
    assert finite(output, r"GPT after [0-9.]+ seconds +NUMBER") < uniform  # it learned something
    assert output.count("--- sample at temperature") == 2
    assert all(part.startswith("ROMEO:") for part in re.split(r"--- sample at temperature .* ---\n", output)[1:])
    assert "every row sums to 1: 1.000..1.000" in output
    assert "weight above the diagonal 0.000" in output
    guesses = re.findall(r"^after '.*': (.*)$", output, re.MULTILINE)
    assert len(guesses) == 2 and all(len(re.findall(r"[0-9]\.[0-9]{2}", line)) == 5 for line in guesses)


def check_temperature(output: str) -> None:
    kept = re.search(r"^tokens kept +(.*)$", output, re.MULTILINE).group(1).split()
    assert kept[3] == "5"  # the top-k = 5 column
    entropy = [float(value) for value in re.search(r"^entropy, bits +(.*)$", output, re.MULTILINE).group(1).split()]
    assert entropy[0] < entropy[1] < entropy[2]  # T = 0.5, 1, 2: a tempered distribution flattens as T grows
    assert entropy[3] < entropy[1] and entropy[4] < entropy[1]  # truncation removes the tail
    for temperature in ("0.5", "1.0", "2.0"):
        assert f"\nT = {temperature}:\n" in output


def check_mixture_and_finetune(output: str) -> None:
    before = number(output, r"held-out log-likelihood per word (-?[0-9.]+) ->")
    after = number(output, r"held-out log-likelihood per word -?[0-9.]+ -> (-?[0-9.]+) nats")
    assert after >= before  # EM never lowers the held-out likelihood
    weights = [float(w) for w in re.findall(r"weight of .* ([0-9.]+)$", output, re.MULTILINE)]
    assert len(weights) == 2 and abs(sum(weights) - 1) < 2e-3
    gpt = finite(output, r"^  GPT \S+ +NUMBER$")
    ngram = finite(output, r"^  kneser-ney 3-gram +NUMBER$")
    mixture = finite(output, r"^  mixture of .* +NUMBER$")
    assert mixture <= max(gpt, ngram) * (1 + 1e-6)  # log of a mean >= mean of the logs
    finite(output, r"before fine-tuning, NUMBER after")
    assert number(output, r"news GPT: NUMBER before") == number(output, r"itself is untouched: NUMBER")


CHECKS = {
    "01_bigram_graph.py": (check_bigram_graph, ["bigram_graph.png"]),
    "02_smoothing.py": (check_smoothing, []),
    "03_neural_mlp.py": (check_neural_mlp, []),
    "04_gpt.py": (check_gpt, ["attention.png"]),
    "05_temperature.py": (check_temperature, ["temperature.png"]),
    "06_mixture_and_finetune.py": (check_mixture_and_finetune, []),
}


def test_every_example_is_checked():
    assert [script.name for script in SCRIPTS] == sorted(CHECKS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.stem)
def test_example_runs_and_explains_itself(script, tmp_path):
    check, figures = CHECKS[script.name]
    output, out = run(script, tmp_path)
    check(output)
    written = sorted(path.name for path in out.iterdir()) if out.exists() else []
    assert written == sorted(figures)
    for name in figures:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE), name
        assert f"wrote {out / name}" in output


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.stem)
def test_example_is_short_and_uses_the_public_api(script):
    source = script.read_text(encoding="utf-8")
    assert len(source.splitlines()) < MAX_LINES
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and "Teaches:" in docstring and "Run: python examples/" + script.name in docstring
    assert re.search(r"^# 1\. ", source, re.MULTILINE)  # numbered steps
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {alias.name for alias in node.names} <= ALLOWED_IMPORTS, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS and node.level == 0, ast.unparse(node)
        elif isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_"), f"{script.name} reaches into {ast.unparse(node)}"
