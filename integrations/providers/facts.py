"""Identity details (what Test connection learnt, stored as JSON) as facts people read: words for
labels, names instead of raw objects, dates and sizes instead of ISO strings and byte counts.

A connector keeps machine data in `Identity.details`; its `identity_facts` (a Provider method,
generic by default) turns them into (label, text) pairs for the integration page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

SHOWN_ITEMS = 12  # a long list is cut: "… and 31 more"
_UNITS = ("bytes", "KB", "MB", "GB", "TB")


def label(key: str) -> str:
    return str(key).replace("_", " ").strip().capitalize()


def listing(values: Iterable[str], *, empty: str = "none") -> str:
    items = [v for v in values if v]
    if not items:
        return empty
    shown = ", ".join(items[:SHOWN_ITEMS])
    return shown if len(items) <= SHOWN_ITEMS else f"{shown} … and {len(items) - SHOWN_ITEMS:,} more"


def size(count: int | float | None) -> str:
    """Bytes in decimal units, as providers bill them: 21474836480 → "21.5 GB"."""
    if count is None:
        return "unknown"
    value = float(count)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def day(value: str) -> str:
    """An ISO 8601 timestamp as a date people read, as the pages write dates ("2 Jan 2024"); other text as it is."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return f"{moment.day} {moment:%b %Y}"


def text(value: Any) -> str:
    """Any JSON value as words: a list of objects by their names, yes/no, counts with separators."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        name = value.get("name") or value.get("id")
        return str(name) if name else ", ".join(f"{label(k).lower()} {text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return listing(text(v) for v in value)
    if value is None or value == "":
        return "—"
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        return day(value)
    return str(value)


def generic(details: Mapping[str, Any], *, skip: Iterable[str] = ("projects",)) -> list[tuple[str, str]]:
    skipped = set(skip)
    return [(label(k), text(v)) for k, v in details.items() if k not in skipped]
