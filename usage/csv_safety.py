"""Every CSV Doow writes goes through `formula_safe_writer`: no text cell can start a formula.

Spreadsheets run a cell that starts with = + - @ (and, in some of them, TAB or CR) as a
formula, so a model or project name such as `=HYPERLINK("http://x","y")` reported by a provider
or typed into an import would run on the machine of whoever opens the export (CSV injection).
OWASP's rule, part of the CSV contract in docs/architecture.md: prefix such a text cell with a single
quote, which spreadsheets show as text and never evaluate.

Only text is prefixed. A cell the exporter writes as a number (a quantity, a cost, an id) is a
`Number`, and is written exactly as given: a credit stays `-1.5`, never `'-1.5`. The writer
tells them apart by type, never by guessing from the content, so a model called `-2+3` is
prefixed while a quantity of -2 is not.

One more case keeps the rule reversible: a text that already starts with quotes followed by a
trigger (`'=x`) gets one more quote (`''=x`), so `unescape_cell` — which the importer applies
to our own export's text columns — removes exactly the one quote the writer added and gives back
every name as it was stored.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_TRIGGERS = frozenset("=+-@\t\r")
PREFIX = "'"
_FIRST_CHARACTERS = FORMULA_TRIGGERS | {PREFIX}
# Finds, in the row's cells joined by NUL (and led by one), a cell that starts (after any quotes)
# with a trigger: one C-level scan per row instead of a Python test per cell. A hit may be a
# number (-1.5) or a NUL inside a cell; those rows take the exact path, cell by cell.
_RISKY = re.compile(r"\x00'*[=+\-@\t\r]").search


class Number(str):
    """A cell written as a number (formatted by the exporter): never prefixed."""

    __slots__ = ()


class Writable(Protocol):
    def write(self, s: str, /) -> Any: ...


def _needs_prefix(cell: str) -> bool:
    return cell.lstrip(PREFIX)[:1] in FORMULA_TRIGGERS


def escape_cell(cell: object) -> object:
    """`cell` as it is safe to write: a text cell that would start a formula gets a quote."""
    # Cheapest test first: most cells start with a letter or a digit.
    if isinstance(cell, str) and cell[:1] in _FIRST_CHARACTERS and not isinstance(cell, Number) and _needs_prefix(cell):
        return PREFIX + cell
    return cell


def unescape_cell(cell: str) -> str:
    """The inverse of escape_cell for a text cell of our own export: drop the one quote it added."""
    if cell[:1] == PREFIX and _needs_prefix(cell):
        return cell[1:]
    return cell


class FormulaSafeWriter:
    """csv.writer whose writerow() escapes text cells first; returns what the file's write()
    returned (with an echoing file: the formatted line, for streaming)."""

    __slots__ = ("_writerow",)

    def __init__(self, out: Writable, **fmtparams: Any) -> None:
        self._writerow = csv.writer(out, **fmtparams).writerow

    def writerow(self, row: Iterable[object]) -> Any:
        if not isinstance(row, list | tuple):
            row = list(row)
        try:
            if _RISKY("\x00" + "\x00".join(row)) is None:  # type: ignore[arg-type]
                return self._writerow(row)  # the usual row: nothing to escape
        except TypeError:  # a cell that is not text (an int, a Decimal): check cell by cell
            pass
        return self._writerow([escape_cell(cell) for cell in row])


def formula_safe_writer(out: Writable, **fmtparams: Any) -> FormulaSafeWriter:
    """The one way Doow writes CSV: a csv.writer over `out` that never writes a formula."""
    return FormulaSafeWriter(out, **fmtparams)
