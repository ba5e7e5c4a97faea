"""Argument parsing shared by the management commands (KEY=VALUE pairs, day bounds)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from django.core.management.base import CommandError

from usage.dates import day_problem


def parse_day(value: str, *, option: str) -> date:
    """YYYY-MM-DD within the dates Doow accepts (usage.dates), else a CommandError."""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"{option} must be a date as YYYY-MM-DD, not {value!r}.") from None
    if problem := day_problem(day):
        raise CommandError(f"{option} {problem}.")
    return day


def day_bounds(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """--since D → D 00:00 UTC; --until D → (D + 1 day) 00:00 UTC, so the given day is included."""
    start = datetime.combine(parse_day(since, option="--since"), time(), tzinfo=UTC) if since else None
    end = (
        datetime.combine(parse_day(until, option="--until") + timedelta(days=1), time(), tzinfo=UTC) if until else None
    )
    if start is not None and end is not None and end <= start:
        raise CommandError("--until must not be before --since.")
    return start, end


def read_value(value: str, *, key: str) -> str:
    """`@PATH` reads the file (minus one trailing newline); anything else is taken as given."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:]).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # The message names the file, never its content.
        raise CommandError(f"Cannot read the value of {key} from {path}: {exc.__class__.__name__}.") from None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def parse_pairs(pairs: list[str] | None, *, option: str, known: dict[str, str]) -> dict[str, str]:
    """KEY=VALUE pairs into a dict; every KEY must be one of `known` (name → label)."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            # Never echo the pair: it may be a bare secret typed without its KEY=.
            raise CommandError(f"{option} takes KEY=VALUE (got a value without '=').")
        if key not in known:
            names = ", ".join(f"{name} ({label})" for name, label in known.items()) or "none"
            raise CommandError(f"Unknown {option} key {key!r}. Known keys: {names}.")
        if key in values:
            raise CommandError(f"{option} {key} is given more than once.")
        values[key] = read_value(value, key=key)
    return values
