"""Markdown tables for reports and documentation, through tabulate (GitHub's pipe tables)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tabulate import tabulate


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table, cells as given (no number parsing or rounding).

    Args:
        headers: The column names.
        rows: One sequence of cells per row; ``None`` is shown as ``-``.

    Returns:
        The table, without a trailing newline.
    """
    cells = [["-" if value is None else str(value) for value in row] for row in rows]
    return str(tabulate(cells, headers=list(headers), tablefmt="github", disable_numparse=True))


def cells(line: str) -> list[str]:
    """The stripped cells of one table row: what a reader or a test compares, not the padding."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def rows(text: str) -> list[list[str]]:
    """The cells of every table row in a Markdown text (header rows included)."""
    return [cells(line) for line in text.splitlines() if line.startswith("|")]
