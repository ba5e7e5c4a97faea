"""Spend per day from the daily rollups, as design.md defines it: `cost` where the provider
reports money, else `estimated_cost`. Kept small on purpose (usage/spend.py, if it lands, is
the shared home for these queries).

"Where the provider reports money" is decided per integration and local day: a day of an
integration with any `cost` row counts its cost, otherwise its estimate.
"""
from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Sum

from usage.rollups import daily_for

ESTIMATED_COST = "estimated_cost"
# design.md's run-rate forecast: the mean of the last 7 complete days.
RATE_DAYS = 7


@dataclass(frozen=True)
class SpendRow:
    day: date
    integration_id: int
    provider: str
    model: str
    application_id: int | None
    license_id: int | None
    currency: str
    amount: Decimal
    estimated: bool


def spend_rows(workspace, *, first: date, last: date) -> list[SpendRow]:
    """One query: spend per (day, integration, model, application, license, currency) between two
    local days, inclusive."""
    sums = (
        daily_for(workspace, ("day", "integration_id", "provider", "model", "application_id", "license_id", "metric", "unit"))
        .filter(day__gte=first, day__lte=last, metric__in=("cost", ESTIMATED_COST))
        .values_list("day", "integration_id", "provider", "model", "application_id", "license_id", "metric", "unit")
        .annotate(total=Sum("quantity"))
        .order_by()
    )
    cost: dict[tuple, Decimal] = defaultdict(Decimal)
    estimate: dict[tuple, Decimal] = defaultdict(Decimal)
    reports_money: set[tuple[date, int]] = set()
    for day, integration_id, provider, model, application_id, license_id, metric, unit, total in sums:
        key = (day, integration_id, provider, model, application_id, license_id, unit.upper())
        if metric == "cost":
            cost[key] += total
            reports_money.add((day, integration_id))
        else:
            estimate[key] += total
    rows = [SpendRow(*key, amount, False) for key, amount in cost.items()]
    rows += [SpendRow(*key, amount, True) for key, amount in estimate.items() if (key[0], key[1]) not in reports_money]
    return rows


@dataclass(frozen=True)
class MonthSpend:
    month_to_date: Decimal
    estimated: Decimal  # how much of month_to_date is estimated
    daily_rate: Decimal
    forecast: Decimal
    days_left: int


def month_spend(rows: list[SpendRow], *, today: date) -> MonthSpend:
    """Month to date (up to and including `today`, a local day) and design.md's run-rate
    forecast: month to date + mean daily spend over the last 7 complete days × days left."""
    month_start = today.replace(day=1)
    month_end = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    window_start = today - timedelta(days=RATE_DAYS)
    mtd = sum((r.amount for r in rows if month_start <= r.day <= today), Decimal(0))
    estimated = sum((r.amount for r in rows if month_start <= r.day <= today and r.estimated), Decimal(0))
    rate = sum((r.amount for r in rows if window_start <= r.day < today), Decimal(0)) / RATE_DAYS
    days_left = (month_end - today).days
    return MonthSpend(mtd, estimated, rate, mtd + rate * days_left, days_left)
