"""Spend anomalies: the latest complete local day of a provider, model or application against
the trailing 28 days of the same weekday group (Monday–Friday or Saturday–Sunday).

A day is an anomaly when its USD spend is
  > median × ratio (1.5), and > median + mads (3) × MAD, and ≥ median + min_amount ($50),
where median and MAD (median absolute deviation) are of the same-group days among the 28 days
before it (a missing day counts as zero spend). See docs/alerts.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import median

from usage.spend import DetailRow

TRAILING_DAYS = 28
CURRENCY = "USD"
DIMENSIONS = ("provider", "model", "application_id")


@dataclass(frozen=True)
class Rule:
    ratio: Decimal = Decimal("1.5")
    mads: Decimal = Decimal("3")
    min_amount: Decimal = Decimal("50")


@dataclass(frozen=True)
class Verdict:
    anomaly: bool
    spend: Decimal
    median: Decimal
    mad: Decimal


def weekday_group(day: date) -> int:
    return 1 if day.weekday() >= 5 else 0


def judge(spend: Decimal, history: list[Decimal], rule: Rule) -> Verdict:
    """The rule on one day's spend and the same-group days before it."""
    if not history:
        return Verdict(False, spend, Decimal(0), Decimal(0))
    mid = Decimal(median(history))
    mad = Decimal(median(abs(value - mid) for value in history))
    anomaly = spend > mid * rule.ratio and spend > mid + rule.mads * mad and spend - mid >= rule.min_amount
    return Verdict(anomaly, spend, mid, mad)


def series_by_dimension(rows: list[DetailRow]) -> dict[tuple[str, object], dict[date, Decimal]]:
    out: dict[tuple[str, object], dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        if row.currency != CURRENCY:
            continue
        for dimension in DIMENSIONS:
            value = getattr(row, dimension)
            if value in (None, ""):
                continue
            out[(dimension, value)][row.day] += row.amount
    return out


def judge_day(series: dict[date, Decimal], day: date, rule: Rule) -> Verdict:
    history = [
        series.get(day - timedelta(days=n), Decimal(0))
        for n in range(1, TRAILING_DAYS + 1)
        if weekday_group(day - timedelta(days=n)) == weekday_group(day)
    ]
    return judge(series.get(day, Decimal(0)), history, rule)
