"""Writing the figures of `langmodels.inside`: PNG or SVG chosen by the file's suffix, tokens
shown so that spaces and newlines can be seen."""

from __future__ import annotations

import io
from pathlib import Path

from ..checkpoint import write_atomic
from ..errors import ConfigError

FORMATS = (".png", ".svg")
VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}  # open box, return arrow, tab arrow


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_figure_path(path) -> Path:
    """The path as a Path, after refusing a suffix matplotlib is not asked to write here."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"{path}: a figure file must end in {' or '.join(FORMATS)}")
    return path


def save_png(figure, path: Path) -> None:
    """Write the figure atomically as a PNG at 100 dpi and close it (the benchmark report's figures too)."""
    _write(figure, Path(path), "png", dpi=100)


def save_figure(figure, path) -> Path:
    """Write the figure atomically as PNG or SVG (by suffix) and close it."""
    path = check_figure_path(path)
    if path.suffix.lower() == ".png":
        save_png(figure, path)
    else:
        _write(figure, path, "svg")
    return path


def _write(figure, path: Path, fmt: str, **options) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, **options)
    pyplot().close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def token_label(token: str) -> str:
    """A token as drawn: whitespace characters replaced by visible signs."""
    return "".join(VISIBLE.get(char, char) for char in token)
