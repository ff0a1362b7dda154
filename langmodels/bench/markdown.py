"""Markdown for the report: tables, numbers as the report prints them, and inline code that shows
whitespace. Shared by the report's sections and the samples file."""

from __future__ import annotations

import math
import re

from .results import Entry

DASH = "–"


def auto_digits(value: float) -> int:
    """Decimals for a perplexity-like figure: more for small values, none wasted on large ones."""
    return 3 if abs(value) < 10 else 2 if abs(value) < 1000 else 0


def fmt_number(value: float | None, digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if math.isinf(value):
        return "∞"
    return f"{value:,.{auto_digits(value) if digits is None else digits}f}"


def fmt_stat(entry: Entry, key: str, digits: int | None = None) -> str:
    """Mean over seeds, with ± the sample standard deviation when there are several."""
    if not entry.first["normalised"]:
        return "no perplexity (unnormalised)"
    mean, spread = entry.mean(key), entry.spread(key)
    if math.isinf(mean):
        zero = max(r["test"]["n_zero_prob"] for r in entry.results if r["test"])
        return f"∞ ({zero:,} tokens with probability 0)"
    if digits is None and math.isfinite(mean):
        digits = auto_digits(mean)  # the spread to the mean's decimals
    text = fmt_number(mean, digits)
    return text if spread is None else f"{text} ± {fmt_number(spread, digits)}"


def fmt_count(value) -> str:
    if value is None:
        return DASH
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e4:
        return f"{value / 1e3:.0f} k"
    return f"{value:,.0f}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:,.0f}" if seconds >= 100 else f"{seconds:.1f}"


def fmt_memory(results: list[dict]) -> str:
    """The largest peak over the seeds, and how far it rose above the resident size at the run's start."""
    worst = max(results, key=lambda r: r["memory"]["peak_rss_bytes"] or 0)["memory"]
    if worst["peak_rss_bytes"] is None:
        return DASH
    text = f"{worst['peak_rss_bytes'] / 2**20:,.0f}"
    if worst["start_rss_bytes"] is not None:
        text += f" (+{max(worst['peak_rss_bytes'] - worst['start_rss_bytes'], 0) / 2**20:,.0f})"
    return text


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> str:
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def code(text: str) -> str:
    """Markdown inline code that survives backticks in the text (Brown writes quotes as ``)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def show_token(token: str) -> str:
    return code(token.replace("\n", "⏎").replace(" ", "␣") if len(token) == 1 else token)


def show_text(text: str) -> str:
    return code(text.replace("\n", "⏎"))


def listing_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
