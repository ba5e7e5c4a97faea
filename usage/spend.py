"""Spend, the one implementation of the Definitions in docs/architecture.md, read from the daily rollups.

- **Spend** of a slice of usage is `cost` where the provider reports money for it, else
  `estimated_cost`. The unit of both is a currency code; amounts in different currencies are
  kept apart (never added, never converted). "Where the provider reports money" is decided per
  integration and local day: an (integration, day) with any `cost` row counts its `cost` rows
  and none of its `estimated_cost` rows (a reporting provider may also carry list-price
  estimates, which must not be added on top); a day without `cost` counts its estimates, and
  says so (`Amount.estimated`).
- **Month to date** runs from the first day of the current month in the workspace's time zone
  up to today; **same days last month** covers the same number of days from the first of the
  previous month, clamped at its last day (the 31st of March compares with 1–28 February).
- **Run-rate forecast**: month to date + mean daily spend of the last 7 complete days (the 7
  local days before today) × the days left in the month after today.

`overview(workspace)` answers everything the overview page shows with a fixed number of
queries (one over UsageDaily for both months and the last week, one for the counted
integrations), whatever the number of days, integrations or models. `spend_by_day` is the same
rule for any range and split (the explorer's spend).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from usage.rollups import daily_for, local_day, zone_of

COST = "cost"
ESTIMATED_COST = "estimated_cost"
MONEY_METRICS = (COST, ESTIMATED_COST)
RUN_RATE_DAYS = 7
# What a page may split spend by: the rollup column holding each. A team is read through its
# applications: rows are grouped by application and each application's key becomes its team's
# (`team_keys`), so the rollups need no team column and reassigning a team needs no rebuild.
TEAM = "team"
SPLITS = {
    "provider": "provider",
    "model": "model",
    "application": "application_id",
    "integration": "integration_id",
    TEAM: "application_id",
    # the explorer's other splits
    "license": "license_id",
    "project": "project",
    "region": "region",
}
ZERO = Decimal(0)


# ------------------------------------------------------------------ periods
def month_first(day: date) -> date:
    return day.replace(day=1)


def month_last(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def previous_month_first(day: date) -> date:
    return month_first(month_first(day) - timedelta(days=1))


@dataclass(frozen=True)
class Periods:
    """The local calendar periods of the Definitions around `today` (inclusive bounds)."""

    today: date

    @property
    def mtd(self) -> tuple[date, date]:
        return month_first(self.today), self.today

    @property
    def previous(self) -> tuple[date, date]:
        """Same days last month: as many days as have begun this month, clamped at its end."""
        first = previous_month_first(self.today)
        last = min(first + timedelta(days=self.today.day - 1), month_last(first))
        return first, last

    @property
    def run_rate(self) -> tuple[date, date]:
        """The last RUN_RATE_DAYS complete local days (today has not ended)."""
        return self.today - timedelta(days=RUN_RATE_DAYS), self.today - timedelta(days=1)

    @property
    def days_left(self) -> int:
        """Days of the month after today."""
        return (month_last(self.today) - self.today).days

    @property
    def span(self) -> tuple[date, date]:
        """Every day any of the periods needs: read in one query."""
        return min(self.previous[0], self.run_rate[0]), self.today


def periods_for(workspace, now: datetime | None = None) -> Periods:
    return Periods(local_day(now or timezone.now(), zone_of(workspace)))


# ------------------------------------------------------------------ amounts
@dataclass
class Amount:
    """Spend in one currency: `total` of which `estimated` came from list prices."""

    currency: str
    total: Decimal = ZERO
    estimated: Decimal = ZERO

    @property
    def reported(self) -> Decimal:
        return self.total - self.estimated

    def add(self, value: Decimal, *, estimated: bool) -> None:
        self.total += value
        if estimated:
            self.estimated += value


class Spend(dict):
    """{currency: Amount}; USD first, then the other currencies by code."""

    def add(self, currency: str, value: Decimal, *, estimated: bool) -> None:
        if currency not in self:
            self[currency] = Amount(currency)
        self[currency].add(value, estimated=estimated)

    def ordered(self) -> list[Amount]:
        return sorted(self.values(), key=lambda a: (a.currency != "USD", a.currency))

    def get_total(self, currency: str) -> Decimal:
        amount = self.get(currency)
        return amount.total if amount else ZERO


@dataclass(frozen=True)
class SpendRow:
    """Spend of one (local day, split value, currency), from one metric."""

    day: date
    key: Any
    currency: str
    amount: Decimal
    estimated: bool


def _money_group(columns: tuple[str, ...]) -> tuple[str, ...]:
    return ("integration_id", "day", "metric", "unit", *dict.fromkeys(c for c in columns if c != "integration_id"))


def _money_rows(workspace, first: date, last: date, columns: tuple[str, ...]):
    """Rollup money sums per (integration, day, metric, unit, *columns) over [first, last], of the
    counted integrations (`daily_for` leaves out a second reader of one account), from the
    narrow rollup when `columns` allow."""
    daily = daily_for(workspace, _money_group(columns)).filter(day__gte=first, day__lte=last)
    return _money_sums(daily, columns)


def _money_sums(daily, columns: tuple[str, ...]):
    """Money sums per (integration, day, metric, unit, *columns) of some rollup rows."""
    group = _money_group(columns)
    return daily.filter(metric__in=MONEY_METRICS).order_by().values_list(*group).annotate(total=Sum("quantity"))


def team_keys(workspace) -> dict[Any, int | None]:
    """Application id → its team's id (None for no team, and for unattributed usage): one query."""
    return {None: None, **dict(workspace.applications.values_list("pk", "team_id"))}


def as_teams(rows: Iterable[SpendRow], teams: dict[Any, int | None]) -> list[SpendRow]:
    """Rows keyed by application re-keyed by the application's team."""
    return [replace(r, key=teams.get(r.key)) for r in rows]


def spend_rows(daily, by: str | None = None, *, workspace=None) -> list[SpendRow]:
    """The Spend rule over any rollup rows (e.g. the explorer's filtered `queries.daily`), per
    local day and split value: one query (two for a team split, which needs `workspace`)."""
    column = SPLITS[by] if by else None
    rows = _spend_rows(
        _money_sums(daily, (column,) if column else ()),
        None if column is None else (0 if column == "integration_id" else 4),
    )
    return as_teams(rows, team_keys(workspace)) if by == TEAM else rows


def _spend_rows(rows, key_index: int | None) -> list[SpendRow]:
    """Apply the Spend rule to money sums of (integration, day, metric, unit, *keys, total)."""
    rows = list(rows)
    reported = {(r[0], r[1]) for r in rows if r[2] == COST}
    # Summed per (day, split value, currency, estimated) before any SpendRow is built: the
    # grouped rows carry every split's columns (the overview reads them once for all splits),
    # so one split sees many rows per key; the sums are the same, the objects far fewer.
    sums: dict[tuple, Decimal] = {}
    for r in rows:
        integration, day, metric, unit = r[0], r[1], r[2], r[3]
        estimated = metric == ESTIMATED_COST
        if estimated and (integration, day) in reported:
            continue
        key = (
            day,
            None if key_index is None else (integration if key_index == 0 else r[key_index]),
            (unit or "USD").upper(),
            estimated,
        )
        sums[key] = sums.get(key, ZERO) + (r[-1] or ZERO)
    return [SpendRow(day, key, currency, amount, estimated) for (day, key, currency, estimated), amount in sums.items()]


def spend_by_day(workspace, first: date, last: date, by: str | None = None) -> list[SpendRow]:
    """Spend per local day (and split value, when `by` is one of SPLITS) over [first, last]:
    two queries (the counted integrations, then the rollup sums)."""
    column = SPLITS[by] if by else None
    rows = _money_rows(workspace, first, last, (column,) if column else ())
    key_index = None if column is None else (0 if column == "integration_id" else 4)
    spent = _spend_rows(rows, key_index)
    return as_teams(spent, team_keys(workspace)) if by == TEAM else spent


@dataclass(frozen=True)
class DetailRow:
    """Spend of one (local day, integration, provider, model, application, license, currency):
    the grain budgets and anomaly rules slice (alerts/)."""

    day: date
    integration_id: int
    provider: str
    model: str
    application_id: int | None
    license_id: int | None
    currency: str
    amount: Decimal
    estimated: bool


DETAIL_COLUMNS = ("provider", "model", "application_id", "license_id")


def spend_detail(workspace, first: date, last: date) -> list[DetailRow]:
    """The Spend rule per (local day, integration, provider, model, application, license,
    currency) over [first, last], counted integrations only: one query."""
    group = _money_group(DETAIL_COLUMNS)
    rows = list(_money_sums(daily_for(workspace, group).filter(day__gte=first, day__lte=last), DETAIL_COLUMNS))
    reported = {(r[0], r[1]) for r in rows if r[2] == COST}
    out = []
    for integration, day, metric, unit, provider, model, application, license_, amount in rows:
        estimated = metric == ESTIMATED_COST
        if estimated and (integration, day) in reported:
            continue
        currency = (unit or "USD").upper()
        out.append(
            DetailRow(day, integration, provider, model, application, license_, currency, amount or ZERO, estimated)
        )
    return out


@dataclass(frozen=True)
class MonthToDate:
    """Month to date and the run-rate forecast of some spend rows in one currency."""

    amount: Decimal
    estimated: Decimal  # how much of `amount` is estimated
    daily_rate: Decimal
    forecast: Decimal
    days_left: int


def month_to_date(rows: Iterable[SpendRow | DetailRow], currency: str, periods: Periods) -> MonthToDate:
    """The Definitions' month to date and run-rate forecast of `rows` in `currency`."""
    rows = [r for r in rows if r.currency == currency]
    mtd, recent = total(rows, *periods.mtd), total(rows, *periods.run_rate)
    done = mtd.get(currency) or Amount(currency)
    return MonthToDate(
        amount=done.total,
        estimated=done.estimated,
        daily_rate=recent.get_total(currency) / RUN_RATE_DAYS,
        forecast=forecast(mtd, recent, periods).get_total(currency),
        days_left=periods.days_left,
    )


def total(rows: Iterable[SpendRow | DetailRow], first: date | None = None, last: date | None = None) -> Spend:
    spend = Spend()
    for r in rows:
        if (first is None or r.day >= first) and (last is None or r.day <= last):
            spend.add(r.currency, r.amount, estimated=r.estimated)
    return spend


def forecast(mtd: Spend, run_rate: Spend, periods: Periods) -> Spend:
    """MTD + mean daily spend of the last RUN_RATE_DAYS complete days × days left, per currency."""
    out = Spend()
    for currency in {*mtd, *run_rate}:
        done = mtd.get(currency) or Amount(currency)
        recent = run_rate.get(currency) or Amount(currency)
        ahead_total = recent.total / RUN_RATE_DAYS * periods.days_left
        ahead_estimated = recent.estimated / RUN_RATE_DAYS * periods.days_left
        out[currency] = Amount(currency, done.total + ahead_total, done.estimated + ahead_estimated)
    return out


# ------------------------------------------------------------------ the overview
@dataclass
class Change:
    """One split value's spend this month to date against the same days last month."""

    key: Any
    currency: str
    current: Decimal
    previous: Decimal
    estimated: Decimal

    @property
    def delta(self) -> Decimal:
        return self.current - self.previous

    @property
    def percent(self) -> Decimal | None:
        return None if not self.previous else (self.delta / abs(self.previous) * 100)


@dataclass
class Overview:
    periods: Periods
    mtd: Spend
    previous: Spend
    run_rate: Spend
    forecast: Spend
    # rows of the current month (for the daily chart), keyed by the chosen split
    daily: list[SpendRow]
    top: dict[str, list[Change]] = field(default_factory=dict)

    def delta(self, currency: str) -> Decimal:
        return self.mtd.get_total(currency) - self.previous.get_total(currency)

    def percent(self, currency: str) -> Decimal | None:
        before = self.previous.get_total(currency)
        return None if not before else self.delta(currency) / abs(before) * 100

    @property
    def currencies(self) -> list[str]:
        return sorted({*self.mtd, *self.previous, *self.forecast}, key=lambda c: (c != "USD", c))


def changes(rows: list[SpendRow], periods: Periods, *, limit: int | None = None) -> list[Change]:
    """Per (key, currency): MTD against same days last month, largest current spend first."""
    now_first, now_last = periods.mtd
    before_first, before_last = periods.previous
    table: dict[tuple[Any, str], Change] = {}
    for r in rows:
        in_now = now_first <= r.day <= now_last
        in_before = before_first <= r.day <= before_last
        if not (in_now or in_before):
            continue
        change = table.get((r.key, r.currency))
        if change is None:
            change = table[(r.key, r.currency)] = Change(r.key, r.currency, ZERO, ZERO, ZERO)
        if in_now:
            change.current += r.amount
            if r.estimated:
                change.estimated += r.amount
        else:
            change.previous += r.amount
    ordered = sorted(table.values(), key=lambda c: (c.currency != "USD", -c.current, -c.previous, str(c.key)))
    return ordered[:limit] if limit else ordered


def overview(
    workspace,
    *,
    by: str = "provider",
    now: datetime | None = None,
    top: Iterable[str] = ("model", "application"),
    top_limit: int = 5,
) -> Overview:
    """Everything the overview shows, in two queries: the counted integrations, then one
    grouped read of the money rollups over last month's first day .. today."""
    periods = periods_for(workspace, now)
    first, last = periods.span
    splits = dict.fromkeys([by, *top])
    columns = tuple(SPLITS[s] for s in splits)
    rows = list(_money_rows(workspace, first, last, columns))
    # positions of each split's column in the grouped rows
    group = ["integration_id", "day", "metric", "unit", *dict.fromkeys(c for c in columns if c != "integration_id")]
    by_split = {s: _spend_rows(rows, group.index(SPLITS[s])) for s in splits}
    if TEAM in by_split:
        by_split[TEAM] = as_teams(by_split[TEAM], team_keys(workspace))
    plain = by_split[by]
    mtd = total(plain, *periods.mtd)
    recent = total(plain, *periods.run_rate)
    result = Overview(
        periods=periods,
        mtd=mtd,
        previous=total(plain, *periods.previous),
        run_rate=recent,
        forecast=forecast(mtd, recent, periods),
        daily=[r for r in plain if r.day >= periods.mtd[0]],
    )
    result.top = {s: changes(by_split[s], periods, limit=top_limit) for s in top}
    return result


# ------------------------------------------------------------------ unpriced usage
UNPRICED_COLUMNS = ("integration_id", "day", "provider", "model", "metric", "unit")


def unpriced(workspace, first: date, last: date, *, limit: int = 20) -> list[dict[str, Any]]:
    """Usage volume with no spend: base metrics (tokens, requests, seconds…) of an
    (integration, day, model) that has neither a reported `cost` for its (integration, day) nor an
    `estimated_cost` for its model. Listed with its volume, never as $0. One query."""
    daily = daily_for(workspace, UNPRICED_COLUMNS).filter(day__gte=first, day__lte=last)
    return unpriced_in(daily, limit=limit)


def unpriced_in(daily, *, limit: int = 20, totals=None) -> list[dict[str, Any]]:
    """`unpriced` over any rollup rows (the explorer's filtered ones): one query.

    `totals`: the same rows on a smaller level (any that has integration, day and metric):
    read first for the (integration, day)s without a reported `cost`, the only ones that can
    hold unpriced usage; `daily` is then read for those integrations and days only (none:
    nothing to read). The answer is the same; the per-model read shrinks to the days that need
    it."""
    if totals is not None and totals.model is not daily.model:  # (the same table: nothing to save)
        uncovered = [
            (integration, day)
            for integration, day, cost in totals.order_by()
            .values_list("integration_id", "day")
            .annotate(cost=Count("pk", filter=Q(metric=COST)))
            if not cost
        ]
        if not uncovered:
            return []
        days = [day for _, day in uncovered]
        daily = daily.filter(
            integration_id__in=sorted({integration for integration, _ in uncovered}),
            day__gte=min(days),
            day__lte=max(days),
        )
    rows = list(daily.order_by().values_list(*UNPRICED_COLUMNS).annotate(total=Sum("quantity")))
    reported = {(r[0], r[1]) for r in rows if r[4] == COST}
    estimated = {(r[0], r[1], r[3]) for r in rows if r[4] == ESTIMATED_COST}
    volume: dict[tuple[str, str, str, str], Decimal] = defaultdict(lambda: ZERO)
    for integration, day, provider, model, metric, unit, quantity in rows:
        if metric in MONEY_METRICS or (integration, day) in reported or (integration, day, model) in estimated:
            continue
        volume[(provider, model, metric, unit)] += quantity or ZERO
    listed = [
        {"provider": p, "model": m, "metric": metric, "unit": u, "quantity": q}
        for (p, m, metric, u), q in volume.items()
        if q
    ]
    listed.sort(key=lambda d: (d["provider"], d["model"], d["metric"]))
    return listed[:limit]


__all__ = [
    "Amount",
    "Change",
    "DetailRow",
    "MonthToDate",
    "Overview",
    "Periods",
    "Spend",
    "SpendRow",
    "changes",
    "forecast",
    "month_to_date",
    "overview",
    "periods_for",
    "spend_by_day",
    "spend_detail",
    "spend_rows",
    "team_keys",
    "total",
    "unpriced",
    "unpriced_in",
]
