"""What the test files share: running the command line in-process, what its output must be, and
a toy corpus."""

import random

import pytest

from langmodels import cli
from langmodels.errors import CorpusError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Five short lines with shared words and distinct continuations: small models fit them in seconds.
TOY = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw a dog",
    "the dog ate the cat food",
    "a bird sang in the tree",
]
WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "ran", "fast", "slow", "big", "small", "red", "and"]


def run(capsys, *argv):
    """main(argv) in-process: (exit code, stdout, stderr)."""
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bench(capsys, *argv):
    """`langmodels bench ...` in-process: (exit code, stderr)."""
    code, _, err = run(capsys, "bench", *argv)
    return code, err


def assert_one_line_error(code, err, *fragments):
    """A user mistake: exit code 2 and one line `langmodels: error: ...` holding every fragment, last
    (only `note:` lines, such as how a corpus was split, may come before it)."""
    assert code == cli.EXIT_ERROR, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert all(line.startswith("note: ") for line in lines[:-1]), err
    lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("langmodels: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def one_line_error(call, *args, **kwargs):
    """The message of the CorpusError that call(*args, **kwargs) raises, checked to be one line."""
    with pytest.raises(CorpusError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def assert_png(path, min_bytes: int = 5000):
    """A PNG file with something drawn in it (an empty canvas is a few hundred bytes)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > min_bytes, (path, len(data))


def write_corpus(path, lines: int = 400, seed: int = 0):
    """A UTF-8 corpus file of `lines` random lines of 3 to 9 WORDS (seeded), for commands that read a path."""
    rng = random.Random(seed)
    text = "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + "\n" for _ in range(lines))
    path.write_text(text, encoding="utf-8")
    return path
