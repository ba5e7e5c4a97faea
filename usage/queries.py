"""Queryset builders for the usage pages and exports: filter, group, total, chart, rows.

Aggregates start from the workspace's daily rollups (`usage.rollups.daily_for`, one row per
local day, integration, dimensions, metric, unit, application and license), never from the
hourly base table: a page costs the same handful of small queries at a thousand usage rows or
ten million. Days, weeks and months are calendar periods in the workspace's time zone (the
rollup's `day` is the local day of `bucket_start`). Only the raw-row view (`rows_page`) and
exports read `workspace.usage_records`, and the row view seeks its page through the rollups'
per-day counts instead of an OFFSET over millions of rows.

`filtered(workspace, params)` (base rows) and `daily(workspace, params)` (rollup rows) apply the
same filters, so "export what I'm looking at" matches the totals on the page. `params` is a query
string mapping (request.GET) or a ready `UsageFilters`. Nothing here renders or reads a request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import cached_property, reduce
from operator import or_
from typing import TYPE_CHECKING, Any, cast

from django.core.paginator import Page, Paginator
from django.db import connections, router
from django.db.models import F, Q, Sum
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone

from usage import rollups
from usage.dates import EARLIEST_DAY, day_in_range, latest_day

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from accounts.models import Workspace
    from usage.models import License, UsageDaily, UsageRecord

# The value of the application / license filters that selects rows no rule attributed.
NONE = "none"
# Filters that match one stored string exactly.
EXACT_FILTERS = ("provider", "model", "project", "region", "metric")
# Filters that name a row of the workspace by id (or NONE for "not attributed").
ID_FILTERS = ("integration", "application", "license")
# The team of the usage's application (an id, or NONE: no application, or one without a team).
# Rollups carry the application, not its team, so the team is matched through it.
TEAM_FILTER = "team"
FILTER_PARAMS = ("date_from", "date_to", *EXACT_FILTERS, *ID_FILTERS, TEAM_FILTER)

# Period → how a rollup's local `day` is truncated (ISO weeks start on Monday).
PERIODS = {"day": None, "week": TruncWeek, "month": TruncMonth}
DEFAULT_PERIOD = "day"
# Split-by dimension → the column grouped on. "" is "no split": one total.
GROUPS = {
    "": None,
    "provider": "provider",
    "integration": "integration_id",
    "application": "application_id",
    "license": "license_id",
    "model": "model",
    "project": "project",
    "region": "region",
}


@dataclass(frozen=True)
class UsageFilters:
    """What the explorer is looking at. Empty strings / None mean "no filter"."""

    date_from: date | None = None  # first day included (local day in the workspace's zone)
    date_to: date | None = None  # last day included (local day)
    provider: str = ""
    model: str = ""
    project: str = ""
    region: str = ""
    metric: str = ""
    integration: str = ""  # an id, or "" for all
    application: str = ""  # an id, NONE, or ""
    license: str = ""  # an id, NONE, or ""
    team: str = ""  # a team id, NONE (no team), or ""

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def bounds(self, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
        """[since, until) as aware instants: local midnight of the first day, and the local
        midnight after the last day (exclusive)."""
        since = rollups.day_start(self.date_from, zone) if self.date_from else None
        until = rollups.day_start(self.date_to + timedelta(days=1), zone) if self.date_to else None
        return since, until

    def attribute_q(self) -> Q:
        """The filters other than dates, on columns base rows and rollup rows share."""
        q = Q()
        for name in EXACT_FILTERS:
            if getattr(self, name):
                q &= Q(**{name: getattr(self, name)})
        for name in ID_FILTERS:
            value = getattr(self, name)
            if value == NONE:
                q &= Q(**{f"{name}__isnull": True})
            elif value:
                q &= Q(**{f"{name}_id": int(value)})
        if self.team == NONE:
            q &= Q(application__isnull=True) | Q(application__team__isnull=True)
        elif self.team:
            q &= Q(application__team_id=int(self.team))
        return q


def day_start(day: date, zone: tzinfo = UTC) -> datetime:
    """The instant `day` begins in `zone` (UTC unless told)."""
    return rollups.day_start(day, zone)


def _parse_date(value: Any) -> date | None:
    """A day within the dates Doow accepts (usage.dates), else None: `9999-12-31` must never
    reach `date + 1 day`, nor year 1 a gap-filled chart."""
    day: date | None
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value).strip()) if value else None
        except ValueError:
            return None
    return day if day is not None and day_in_range(day) else None


def parse_filters(params: Mapping[str, Any]) -> UsageFilters:
    """Query string → UsageFilters. Lenient: a value that does not parse, or a day outside the
    accepted dates, is no filter.

    (The explorer's and integration page's forms report bad dates to the user; the export
    refuses them with a 400 before it gets here.)
    """
    values: dict[str, Any] = {
        "date_from": _parse_date(params.get("date_from")),
        "date_to": _parse_date(params.get("date_to")),
    }
    for name in EXACT_FILTERS:
        values[name] = str(params.get(name) or "").strip()
    for name in (*ID_FILTERS, TEAM_FILTER):
        raw = str(params.get(name) or "").strip()
        # ASCII digits only, and few enough to be an id: "²" or 10**30 must not reach int()/SQL.
        values[name] = raw if raw == NONE or (raw.isascii() and raw.isdigit() and len(raw) <= 18) else ""
    if values["integration"] == NONE:
        values["integration"] = ""  # every record comes from an integration
    return UsageFilters(**values)


def _as_filters(params: Mapping[str, Any] | UsageFilters) -> UsageFilters:
    return params if isinstance(params, UsageFilters) else parse_filters(params)


def filtered(workspace: Workspace, params: Mapping[str, Any] | UsageFilters) -> QuerySet[UsageRecord]:
    """The workspace's usage records narrowed by `params` (unordered: callers order).

    Dates bound `bucket_start` with aware datetimes (local midnights of the workspace's zone,
    not `__date`), so the (workspace, bucket_start) index serves the range.
    """
    f = _as_filters(params)
    records = workspace.usage_records.all()
    since, until = f.bounds(rollups.zone_of(workspace))
    if since:
        records = records.filter(bucket_start__gte=since)
    if until:
        records = records.filter(bucket_start__lt=until)
    return records.filter(f.attribute_q()).order_by()


def daily(
    workspace: Workspace,
    params: Mapping[str, Any] | UsageFilters,
    *,
    group: str | None = None,
    reads: Iterable[str] = (),
) -> QuerySet[UsageDaily]:
    """The workspace's daily rollup rows narrowed by `params`: what every aggregate reads.

    With `group` (a GROUPS key; "" for no split) the caller promises to group by that column
    (and period, metric, unit, integration, and the columns named in `reads`) only: when they
    and the filters need no high-cardinality dimension, the rows come from a derived level
    (usage.rollups.level_for: the narrow rollup, per model and region, or the project rollup),
    several times fewer."""
    f = _as_filters(params)
    columns = None
    if group is not None:
        column = _group_field(group)
        used = [name for name in (*EXACT_FILTERS, *ID_FILTERS) if getattr(f, name)]
        if f.team:
            used.append("application")  # matched through the application's team
        columns = ["day", "metric", "unit", "integration", *used, *([column] if column else []), *reads]
    rows = rollups.daily_for(workspace, columns)
    if f.date_from:
        rows = rows.filter(day__gte=f.date_from)
    if f.date_to:
        rows = rows.filter(day__lte=f.date_to)
    return rows.filter(f.attribute_q()).order_by()


def integration_daily(
    integration: Any, params: Mapping[str, Any] | UsageFilters, *, reads: Iterable[str] | None = ()
) -> QuerySet[UsageDaily]:
    """One integration's own rollup rows (whether or not its account is counted in the
    workspace's totals: its page shows what it read) narrowed by `params`, from the first
    derived level holding the filtered columns and `reads` (usage.rollups.level_for), or from
    UsageDaily (`reads=None`: any column)."""
    from usage.models import UsageDaily

    f = _as_filters(params)
    columns = None
    if reads is not None:
        used = [name for name in (*EXACT_FILTERS, *ID_FILTERS) if getattr(f, name)]
        if f.team:
            used.append("application")
        columns = ["day", "metric", "unit", "integration", *used, *reads]
    level = rollups.level_for(columns)
    model = level.model() if level else UsageDaily
    rows = model._default_manager.filter(integration_id=getattr(integration, "pk", integration))
    if f.date_from:
        rows = rows.filter(day__gte=f.date_from)
    if f.date_to:
        rows = rows.filter(day__lte=f.date_to)
    return rows.filter(f.attribute_q()).order_by()


# ---------------------------------------------------------------- aggregates
@dataclass(frozen=True)
class Total:
    group: Any  # the group's raw value (a string, an id, None), or None with no split
    metric: str
    unit: str
    total: Decimal
    rows: int


@dataclass(frozen=True)
class SeriesPoint:
    period: date
    group: Any
    unit: str
    total: Decimal


def _group_field(group: str) -> str | None:
    if group not in GROUPS:
        raise ValueError(f"Unknown group {group!r}; one of {sorted(GROUPS)}")
    return GROUPS[group]


def totals(days: QuerySet[UsageDaily], group: str = "") -> list[Total]:
    """Sum per (group value, metric, unit) of rollup rows: units are never added together;
    `rows` counts the base rows summed."""
    column = _group_field(group)
    keys = [column, "metric", "unit"] if column else ["metric", "unit"]
    rows = days.order_by().values(*keys).annotate(total=Sum("quantity"), rows=Sum("rows")).order_by(*keys)
    return [
        Total(
            group=row[column] if column else None,
            metric=row["metric"],
            unit=row["unit"],
            total=row["total"],
            rows=row["rows"],
        )
        for row in rows
    ]


def series(
    days: QuerySet[UsageDaily], *, metric: str, period: str = DEFAULT_PERIOD, group: str = ""
) -> list[SeriesPoint]:
    """Sum of one metric per (period, group value, unit), oldest period first; periods are
    local days, ISO weeks or months of the workspace's zone. Only the charted metric: a split
    by model over a month is ~1,200 points of it, against ~5,000 for every metric."""
    if period not in PERIODS:
        raise ValueError(f"Unknown period {period!r}; one of {sorted(PERIODS)}")
    column = _group_field(group)
    keys = ["period", column, "unit"] if column else ["period", "unit"]
    trunc = PERIODS[period]
    rows = fetch_rows(
        days.filter(metric=metric)
        .order_by()
        .annotate(period=trunc("day") if trunc else F("day"))
        .values(*keys)
        .annotate(total=Sum("quantity"))
        .order_by(*keys)
        .values_list(*keys, "total")
    )
    if column:
        return [SeriesPoint(_as_date(start), value, unit, total) for start, value, unit, total in rows]
    return [SeriesPoint(_as_date(start), None, unit, total) for start, unit, total in rows]


def rows_per_day(days: QuerySet[UsageDaily]) -> dict[date, int]:
    """Base rows per local day of some rollup rows (best read from the total level: one row per
    integration, day, metric and unit): the row pager's per-day counts and the rows' total."""
    return {
        day: n
        for day, n in fetch_rows(days.order_by().values("day").annotate(n=Sum("rows")).values_list("day", "n"))
        if n
    }


def fetch_rows(rows: QuerySet) -> list[tuple]:
    """The tuples of a `values_list` aggregate. On PostgreSQL straight from the cursor: psycopg
    already returns Decimal for numeric sums, int for integer sums and date for dates, so
    Django's per-value converters (Decimal(Decimal), int(int): ~4 µs a row, the largest cost
    of reading thousands of grouped rows) change nothing; elsewhere (SQLite stores decimals
    its own way) through the ORM."""
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return list(rows)
    sql, params = rows.query.get_compiler(rows.db).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _as_date(value: datetime | date) -> date:
    return value.astimezone(UTC).date() if isinstance(value, datetime) else value


def period_starts(first: date, last: date, period: str) -> list[date]:
    """Every period start from the one holding `first` to the one holding `last` (gaps filled)."""
    start = period_floor(first, period)
    out: list[date] = []
    while start <= last:
        out.append(start)
        start = next_period(start, period)
    return out


def chart_periods(
    present: Iterable[date], period: str, *, first: date | None = None, last: date | None = None
) -> list[date]:
    """The periods of a chart: those holding data, with the gaps between them filled — but only
    within the filter's span [first, last], or the accepted dates (usage.dates) without one.

    The span bounds the fill, never the data's min and max: a stray row dated year 1 (stored
    before imports were bounded) adds its own period, not the ~740,000 empty days up to the
    rest, so a chart never has more periods than the filter spans plus the periods with data.
    """
    held = sorted(set(present))
    low, high = period_floor(first or EARLIEST_DAY, period), last or latest_day()
    inside = [start for start in held if low <= start <= high]
    filled = period_starts(inside[0], inside[-1], period) if inside else []
    return sorted(set(filled).union(held))


def period_floor(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday, as TruncWeek
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def distinct_values(days: QuerySet[UsageDaily], column: str, *, limit: int = 500) -> list[str]:
    """The non-empty values of one dimension column among some rollup rows (filter selects)."""
    return list(days.exclude(**{column: ""}).order_by(column).values_list(column, flat=True).distinct()[:limit])


# Beyond this many distinct combinations one scan stops paying off: ask per column instead.
_COMBINATIONS_CAP = 5000
# The columns with a (workspace, column) index on the rollups: their values are found by a
# loose index scan, one index probe per distinct value, whatever the number of rows.
INDEXED_VALUE_COLUMNS = ("metric", "model", "project", "region")


def dimension_values(
    workspace: Workspace, columns: tuple[str, ...], *, limit: int = 500, days: QuerySet[UsageDaily] | None = None
) -> dict[str, list[str]]:
    """The non-empty values of several columns, sorted: of the whole workspace by a loose index
    scan per column (`indexed_values`), or of some rollup rows (`days`) from one DISTINCT scan
    when the combinations are few (the usual case), else one DISTINCT per column."""
    if days is None and set(columns) <= set(INDEXED_VALUE_COLUMNS):
        return {column: indexed_values(workspace, column, limit=limit) for column in columns}
    days = rollups.daily_for(workspace) if days is None else days
    combos = list(days.order_by().values_list(*columns).distinct()[: _COMBINATIONS_CAP + 1])
    if len(combos) > _COMBINATIONS_CAP:
        return {column: distinct_values(days, column, limit=limit) for column in columns}
    return {column: sorted({combo[i] for combo in combos if combo[i]})[:limit] for i, column in enumerate(columns)}


def indexed_values(workspace: Workspace, column: str, *, limit: int = 500) -> list[str]:
    """The workspace's non-empty values of one indexed rollup column, sorted: a recursive query
    that asks the (workspace, column) index for the next value after the last one found
    ("loose index scan"), so 40 models cost 40 index probes, not a pass over every rollup row."""
    from usage.models import UsageDaily

    if column not in INDEXED_VALUE_COLUMNS:
        raise ValueError(f"{column!r} has no (workspace, column) index; one of {INDEXED_VALUE_COLUMNS}")
    connection = connections[router.db_for_read(UsageDaily)]
    table, col = connection.ops.quote_name(UsageDaily._meta.db_table), connection.ops.quote_name(column)
    sql = (
        f"WITH RECURSIVE found(value, n) AS ("
        f" SELECT MIN({col}), 1 FROM {table} WHERE workspace_id = %s AND {col} > ''"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE workspace_id = %s AND {col} > found.value), n + 1"
        f" FROM found WHERE found.value IS NOT NULL AND n < %s"
        f") SELECT value FROM found WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace.pk, workspace.pk, limit])
        return sorted(row[0] for row in cursor.fetchall())


# ---------------------------------------------------------------- raw rows
class DaySeekPaginator(Paginator):
    """Pages of base rows, newest first, that never COUNT(*) the base table nor OFFSET deep
    into it: the rollups' per-day row counts (of the same filters) give the total and say on
    which local day a page starts, so the base query is bounded to the days holding that page
    and skips at most one day's rows.

    `records` must be ordered by `-bucket_start` first (ties in any order); `days` are the
    rollup rows with the same filters; `zone` is the workspace's; `count` and `known_days`
    (rows per local day), when the caller has already summed them, save queries. Per-day counts are read newest first in
    growing batches (an index range on (workspace, day), not the whole history), so page 1
    reads the rollups of its last few days only.
    """

    FIRST_BATCH = 1  # days of counts read first (a day usually fills page 1); each further batch is 4× larger

    def __init__(
        self,
        records: QuerySet[UsageRecord],
        per_page: int,
        *,
        days: QuerySet[UsageDaily],
        zone: tzinfo,
        count: int | None = None,
        known_days: dict[date, int] | None = None,
    ) -> None:
        super().__init__(records, per_page)
        self.days = days.order_by()
        self.zone = zone
        self._count = count
        self.known_days = known_days

    @cached_property
    def count(self) -> int:
        if self._count is not None:
            return self._count
        return self.days.aggregate(n=Sum("rows"))["n"] or 0

    def day_counts(self) -> Iterator[tuple[date, int]]:
        """(local day, base rows) of the days holding rows, newest first, read lazily (or
        from `known_days`, when the caller already summed them)."""
        if self.known_days is not None:
            yield from sorted(((day, n) for day, n in self.known_days.items() if n), reverse=True)
            return
        per_day = self.days.values("day").annotate(n=Sum("rows")).order_by("-day")
        start, size = 0, self.FIRST_BATCH
        while True:
            batch = list(per_day[start : start + size])
            yield from ((row["day"], row["n"]) for row in batch if row["n"])
            if len(batch) < size:
                return
            start, size = start + size, size * 4

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        newest: date | None = None
        oldest: date | None = None
        skipped = seen = 0
        for day, n in self.day_counts():
            if newest is None and seen + n > bottom:
                newest, skipped = day, seen
            seen += n
            if newest is not None:
                oldest = day
                if seen >= top:
                    break
        if newest is None or oldest is None:
            return Page([], number, self)
        since, until = rollups.day_bounds(oldest, newest, self.zone)
        records = cast("QuerySet[UsageRecord]", self.object_list).filter(
            bucket_start__gte=since, bucket_start__lt=until
        )
        return Page(list(records[bottom - skipped : top - skipped]), number, self)


# ---------------------------------------------------------------- licenses
# The projection's "current daily rate" is the average over this many most recent days of the
# period (fewer at its start): recent enough to follow a change, long enough to smooth weekends.
RATE_WINDOW_DAYS = 30


@dataclass(frozen=True)
class MonthTotal:
    month: date
    metric: str
    unit: str
    total: Decimal


@dataclass
class LicenseConsumption:
    """A license's attributed usage within its period, and where it is heading."""

    license: License
    period_start: date
    period_end: date | None  # None: open-ended
    today: date
    status: str  # "upcoming" | "active" | "ended"
    currency: str
    spent: Decimal  # cost in the license's currency, within the period
    rows: int
    other_costs: list[Total]  # cost reported in another currency: shown, never converted or added
    other_totals: list[Total]  # tokens, requests, …: per (metric, unit)
    daily: list[tuple[date, Decimal]]  # cost in `currency` per day of the period, gaps filled
    monthly: list[MonthTotal]
    daily_rate: Decimal | None = None
    rate_days: int = 0
    projected: Decimal | None = None  # spend at the end of the period at `daily_rate`

    @property
    def committed(self) -> Decimal | None:
        return self.license.committed_amount

    @property
    def as_of(self) -> date:
        """The last day counted: today, or the period's end once it is over."""
        return min(self.today, self.period_end) if self.period_end else self.today

    @property
    def days_total(self) -> int | None:
        return (self.period_end - self.period_start).days + 1 if self.period_end else None

    @property
    def days_elapsed(self) -> int:
        return max(0, (self.as_of - self.period_start).days + 1)

    @property
    def days_remaining(self) -> int:
        return max(0, (self.period_end - self.as_of).days) if self.period_end else 0

    @property
    def percent_used(self) -> float | None:
        return percent(self.spent, self.committed)

    @property
    def projected_percent(self) -> float | None:
        return percent(self.projected, self.committed) if self.projected is not None else None

    @property
    def remaining(self) -> Decimal | None:
        return self.committed - self.spent if self.committed is not None else None

    def cumulative(self) -> list[tuple[date, Decimal]]:
        running = Decimal(0)
        out = []
        for day, amount in self.daily:
            running += amount
            out.append((day, running))
        return out


def percent(part: Decimal | None, whole: Decimal | None) -> float | None:
    if part is None or not whole:
        return None
    return float(part / whole * 100)


def _period_q(license: License) -> Q:
    """Rollup rows attributed to `license` whose local day lies within its period."""
    q = Q(license_id=license.pk, day__gte=license.start_date)
    if license.end_date and license.end_date < date.max:  # one saved before dates were bounded
        q &= Q(day__lte=license.end_date)
    return q


def license_days(license: License) -> QuerySet[UsageDaily]:
    """Rollup rows attributed to `license` within its period (local days of the workspace)."""
    return (
        rollups.daily_for(license.workspace, ("license", "day", "metric", "unit")).filter(_period_q(license)).order_by()
    )


def local_today(workspace: Workspace) -> date:
    """Today in the workspace's time zone."""
    return timezone.now().astimezone(rollups.zone_of(workspace)).date()


def license_consumption(license: License, *, today: date | None = None) -> LicenseConsumption:
    """One aggregate query per (day, metric, unit) of the rollups — a few thousand rows at most
    for a year — from which totals, the daily spend and the months are summed in Python."""
    today = today or local_today(license.workspace)
    currency = license.currency
    per_day = (
        license_days(license)
        .values("day", "metric", "unit")
        .annotate(total=Sum("quantity"), rows=Sum("rows"))
        .order_by("day", "metric", "unit")
    )
    sums: dict[tuple[str, str], list] = {}
    months: dict[tuple[date, str, str], Decimal] = defaultdict(Decimal)
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for row in per_day:
        day, key = _as_date(row["day"]), (row["metric"], row["unit"])
        entry = sums.setdefault(key, [Decimal(0), 0])
        entry[0] += row["total"]
        entry[1] += row["rows"]
        months[(day.replace(day=1), *key)] += row["total"]
        if key == ("cost", currency):
            by_day[day] += row["total"]
    all_totals = [Total(group=None, metric=m, unit=u, total=t, rows=n) for (m, u), (t, n) in sorted(sums.items())]
    spent = sums.get(("cost", currency), [Decimal(0)])[0]
    status = (
        "upcoming"
        if today < license.start_date
        else "ended"
        if license.end_date and today > license.end_date
        else "active"
    )
    last_day = min(today, license.end_date) if license.end_date else today
    if by_day:
        # Rows dated after today (clock skew) still show, up to the last accepted day.
        last_day = max(last_day, min(max(by_day), latest_day()))
    days = period_starts(license.start_date, last_day, "day") if last_day >= license.start_date else []
    consumption = LicenseConsumption(
        license=license,
        period_start=license.start_date,
        period_end=license.end_date,
        today=today,
        status=status,
        currency=currency,
        spent=spent,
        rows=sum(t.rows for t in all_totals),
        other_costs=[t for t in all_totals if t.metric == "cost" and t.unit != currency],
        other_totals=[t for t in all_totals if t.metric != "cost"],
        daily=[(day, by_day.get(day, Decimal(0))) for day in days],
        monthly=[MonthTotal(month, metric, unit, total) for (month, metric, unit), total in sorted(months.items())],
    )
    if status == "active" and consumption.days_elapsed:
        window = [amount for day, amount in consumption.daily if day <= consumption.as_of][-RATE_WINDOW_DAYS:]
        consumption.rate_days = min(RATE_WINDOW_DAYS, consumption.days_elapsed)
        consumption.daily_rate = sum(window, Decimal(0)) / consumption.rate_days
        if license.end_date:
            consumption.projected = spent + consumption.daily_rate * consumption.days_remaining
    elif status == "ended":
        consumption.projected = spent
    return consumption


def licenses_with_consumption(workspace: Workspace) -> list[License]:
    """The workspace's licenses, each with `spent` (cost in its currency within its period, or
    None) and `attributed_rows` (usage rows within its period).

    Two queries for the whole list: the licenses, then one GROUP BY over the rollup rows that
    fall in some license's period.
    """
    licenses = list(workspace.licenses.select_related("application").order_by("application__name", "plan_name", "pk"))
    sums: dict[tuple[int, str, str], tuple[Decimal, int]] = {}
    if licenses:
        in_a_period = reduce(or_, (_period_q(lic) for lic in licenses))
        rows = (
            rollups.daily_for(workspace, ("license", "day", "metric", "unit"))
            .filter(in_a_period)
            .order_by()
            .values("license_id", "metric", "unit")
            .annotate(total=Sum("quantity"), rows=Sum("rows"))
        )
        sums = {(r["license_id"], r["metric"], r["unit"]): (r["total"], r["rows"]) for r in rows}
    for lic in licenses:
        mine = [value for key, value in sums.items() if key[0] == lic.pk]
        spend = sums.get((lic.pk, "cost", lic.currency))
        # Annotations for the templates (not model fields).
        lic.spent = spend[0] if spend else None  # type: ignore[attr-defined]
        lic.attributed_rows = sum(rows for _, rows in mine)  # type: ignore[attr-defined]
    return licenses
