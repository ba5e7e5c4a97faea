"""The dates Doow accepts from people and files: one definition for imports, filters and commands.

Usage is dated from 2000-01-01 (before any of the providers existed) to one year after today
(UTC, from `timezone.now()` so a pinned test clock moves it). Outside that window a date is a
typo or an attack: `9999-12-31` overflowed `date + 1 day` into a 500, and one row dated year 1
made the explorer fill ~740,000 empty days. Each entry point reports a date outside in its own
way (a form error on pages, a line-numbered problem in imports, a CommandError in commands),
all through the checks below.

License periods are contracts, not usage: they may run several years ahead, so their end is
bounded further out (LICENSE_YEARS_AHEAD) but still finitely.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

EARLIEST_DAY = date(2000, 1, 1)
YEARS_AHEAD = 1
LICENSE_YEARS_AHEAD = 10
OUT_OF_RANGE = "out_of_range"  # the ValidationError code, so pages can tell it from a typo


def today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def years_after(day: date, years: int) -> date:
    """The same calendar day `years` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def latest_day(*, years: int = YEARS_AHEAD, now: datetime | None = None) -> date:
    """The last day accepted: one year after today (UTC) unless told otherwise."""
    return years_after(today(now), years)


def bounds_text(*, years: int = YEARS_AHEAD, now: datetime | None = None) -> str:
    return f"from {EARLIEST_DAY.isoformat()} to {latest_day(years=years, now=now).isoformat()}"


def day_problem(day: date, *, years: int = YEARS_AHEAD, now: datetime | None = None) -> str | None:
    """Why `day` is refused, or None when it lies in the accepted range."""
    if EARLIEST_DAY <= day <= latest_day(years=years, now=now):
        return None
    return f"{day.isoformat()} is outside the dates Doow accepts ({bounds_text(years=years, now=now)})"


def day_in_range(day: date, *, years: int = YEARS_AHEAD, now: datetime | None = None) -> bool:
    return day_problem(day, years=years, now=now) is None


def earliest_moment() -> datetime:
    """00:00 UTC of the first accepted day: no bucket may start before it."""
    return datetime.combine(EARLIEST_DAY, time.min, tzinfo=UTC)


def latest_moment(*, years: int = YEARS_AHEAD, now: datetime | None = None) -> datetime:
    """00:00 UTC after the last accepted day: no bucket may end after it."""
    return datetime.combine(latest_day(years=years, now=now) + timedelta(days=1), time.min, tzinfo=UTC)


def validate_usage_day(value: date) -> None:
    """Form validator for a day that filters or imports usage."""
    if isinstance(value, date) and (problem := day_problem(value)):
        raise ValidationError(f"{problem}.", code=OUT_OF_RANGE)


def validate_license_day(value: date) -> None:
    """Form validator for a license's start or end: contracts may end years ahead."""
    if isinstance(value, date) and (problem := day_problem(value, years=LICENSE_YEARS_AHEAD)):
        raise ValidationError(f"{problem}.", code=OUT_OF_RANGE)


def date_input_attrs(*, years: int = YEARS_AHEAD) -> dict[str, str]:
    """min/max of an <input type="date">, so the browser's picker offers only accepted days."""
    return {"type": "date", "min": EARLIEST_DAY.isoformat(), "max": latest_day(years=years).isoformat()}


# ------------------------------------------------------------------ date presets
# The explorer's windows, in the workspace's calendar (`today` is its local day). "This month"
# and "this quarter" run to today, as month to date does (docs/architecture.md, Definitions).
PRESETS = {
    "this_month": "This month",
    "last_month": "Last month",
    "last_30_days": "Last 30 days",
    "this_quarter": "This quarter",
    "all": "All time",
}
DEFAULT_PRESET = "this_month"
CUSTOM = "custom"


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def months_before(day: date, months: int) -> date:
    """The first of the month `months` before `day`'s month."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def quarter_first(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def preset_range(name: str, today: date) -> tuple[date | None, date | None]:
    """[first, last] local days of a preset (None, None for all time)."""
    if name == "this_month":
        return today.replace(day=1), today
    if name == "last_month":
        first = months_before(today, 1)
        return first, _month_end(first)
    if name == "last_30_days":
        return today - timedelta(days=29), today
    if name == "this_quarter":
        return quarter_first(today), today
    if name == "all":
        return None, None
    raise ValueError(f"Unknown preset {name!r}; one of {sorted(PRESETS)}")


def previous_range(first: date, last: date) -> tuple[date, date]:
    """The period a range is compared with.

    A range that starts on the first of a month (this month, last month, this quarter) is
    compared with the same days of the calendar period before it, as month to date is with
    "same days last month": whole months with the whole months before, 1–6 December with
    1–6 November, 1 October–6 December with 1 July–6 September (clamped at that period's end).
    Any other range is compared with the period of equal length just before it.
    """
    if first.day == 1:
        months = (last.year * 12 + last.month) - (first.year * 12 + first.month) + 1
        start = months_before(first, months)
        end_of_period = months_before(first, 0) - timedelta(days=1)
        if last == _month_end(last):
            return start, end_of_period
        shifted = months_before(last, months).replace(day=1)
        try:
            same_day = shifted.replace(day=last.day)
        except ValueError:
            same_day = _month_end(shifted)
        return start, min(same_day, end_of_period)
    length = (last - first).days + 1
    return first - timedelta(days=length), first - timedelta(days=1)
