"""The suite's figures: counters the tests increment as they act, printed at the end of the run.

Nothing here is a constant: "requests tried" is the number of requests the sweep really sent,
"rows lost" is what the convergence checks really found missing. A module that adds a new kind
of attack registers its own figure (`register("worker_kills", "workers killed mid-sync")`) and
adds to it; faults/conftest.py prints every registered figure after the last test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str
    label: str


_FIGURES: dict[str, Figure] = {}
_COUNTS: Counter[str] = Counter()


def register(key: str, label: str) -> None:
    """Declare a figure (idempotent: a module may be imported more than once)."""
    _FIGURES.setdefault(key, Figure(key, label))


def add(key: str, n: int = 1) -> None:
    if key not in _FIGURES:
        raise KeyError(f"figure {key!r} is not registered: call faults.figures.register({key!r}, label) first")
    _COUNTS[key] += n


def get(key: str) -> int:
    return _COUNTS[key]


def registered() -> list[Figure]:
    return list(_FIGURES.values())


def anything() -> bool:
    """Did any test of the suite count anything?"""
    return any(_COUNTS.values())


# The figures issue 8 asks for, in the order they are printed.
register("requests", "HTTP requests tried")
register("identity_urls", "identity × URL pairs swept")
register("unexpected", "unexpected answers")
register("posts_unchanged", "refused POSTs that provably changed nothing in the database")
register("csrf_refused", "POSTs refused for CSRF")
register("secret_pages", "pages crawled for secrets")
register("secret_texts", "logs, events, exports and command outputs searched for secrets")
register("hostile_files", "hostile import files tried")
register(
    "hostile_rejected", "hostile import files refused, nothing stored (with the line at fault unless the whole file is)"
)
register("hostile_stored", "weird-but-valid import files stored exactly")
register("ssrf_addresses", "SSRF endpoints tried")
register("ssrf_refused", "SSRF endpoints refused")
register("faults", "provider faults injected (answers the sandbox faulted)")
register("chaos_syncs", "syncs run under injected faults")
register("rows_checked", "rows checked against the sandbox truth")
register("rows_lost", "rows lost")
register("rows_doubled", "rows doubled")


def summary_lines() -> list[str]:
    """One line per registered figure; rows lost/doubled say so when nothing was checked."""
    lines = []
    for figure in _FIGURES.values():
        value = _COUNTS[figure.key]
        if figure.key in ("rows_lost", "rows_doubled") and not _COUNTS["rows_checked"]:
            lines.append(f"{figure.label}: not measured (no convergence check ran)")
        else:
            lines.append(f"{figure.label}: {value:,}")
    return lines
