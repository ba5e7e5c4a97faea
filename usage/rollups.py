"""Daily rollups of usage (usage.models.UsageDaily): upkeep and the queries pages start from.

A rollup row is the SUM of base quantities (and COUNT of base rows) per integration, local
calendar day of bucket_start in the workspace's time zone, the dimensions, metric, unit,
application and license. Upkeep recomputes slices: `refresh_days` deletes an integration's
rollup rows for some local days and re-inserts them with one INSERT … SELECT … GROUP BY over
usage_usagerecord, so a rollup total equals the base total whatever the write did (insert,
restatement, ghost removal, re-attribution). Every write path calls it in its own
transaction; a workspace whose time zone changed is rebuilt whole (`rebuild_workspace`). Two
writers apply exact differences instead, each falling back to `refresh_days` for what it
cannot count: re-attribution (`move_rows`) and the PostgreSQL store (`apply_delta`).

Pages read `daily_for(workspace)`; only the raw-row view and exports read the base table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from django.apps import apps as global_apps
from django.db import connections, router, transaction
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone as django_timezone

from accounts.zones import zone_named as zone_named
from usage.dimensions import ROLLUP_DIMENSIONS
from usage.partitions import retention_cutoff

# The rollup's columns, in INSERT order; the first GROUP_COLUMNS are grouped on.
GROUP_COLUMNS: tuple[str, ...] = (
    "workspace_id",
    "integration_id",
    "provider",
    "day",
    *ROLLUP_DIMENSIONS,
    "metric",
    "unit",
    "application_id",
    "license_id",
)
COLUMNS: tuple[str, ...] = (*GROUP_COLUMNS, "quantity", "rows")


@dataclass(frozen=True)
class Level:
    """A rollup derived from UsageDaily: its rows summed without the dimensions the level does
    not keep. Every derived level is kept by the same code (`_refresh_levels`, `move_rows`,
    `refresh_integration`, `fill_level`) in the same transactions as UsageDaily, and a query
    reads the first level whose columns hold every column it groups, filters or reads
    (`daily_for`)."""

    model_name: str
    dimensions: tuple[str, ...]  # the ROLLUP_DIMENSIONS kept

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(c for c in GROUP_COLUMNS if c not in ROLLUP_DIMENSIONS or c in self.dimensions)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.group_columns, "quantity", "rows")

    def model(self, apps: Any = None) -> Any:
        return (apps or global_apps).get_model("usage", self.model_name)

    def covers(self, columns: Iterable[str]) -> bool:
        allowed = {c.removesuffix("_id") for c in self.columns}
        return all(c.removesuffix("_id") in allowed for c in columns)


# usage.models.UsageDailyTotal: without any dimension (per integration, provider, day, metric,
# unit, application and license): the smallest, for views split by none of the dimensions.
TOTAL = Level("UsageDailyTotal", ())
# usage.models.UsageDailyNarrow: without the high-cardinality dimensions (per model and region).
NARROW = Level("UsageDailyNarrow", ("model", "region"))
# usage.models.UsageDailyProject: per project, without model, region and the other dimensions.
PROJECT = Level("UsageDailyProject", ("project",))
# The derived levels, in the order a query tries them (the smallest that holds its columns).
LEVELS: tuple[Level, ...] = (TOTAL, NARROW, PROJECT)
NARROW_DIMENSIONS: tuple[str, ...] = NARROW.dimensions
NARROW_GROUP_COLUMNS: tuple[str, ...] = NARROW.group_columns
NARROW_COLUMNS: tuple[str, ...] = NARROW.columns
# Day ranges OR-ed into one DELETE and one INSERT … SELECT: far inside SQLite's expression
# depth limit (1000); an import scattered over more days refreshes a few days in between too.
MAX_RANGES = 64
# Slices per INSERT of re-attribution's moves (19 values each: inside SQLite's 32766).
MOVES_PER_INSERT = 500
# Local days recomputed per transaction by a rebuild.
REBUILD_SPAN_DAYS = 31
# Advisory lock key of integration N's rollup writers: ROLLUP_LOCK_BASE + N (PostgreSQL).
ROLLUP_LOCK_BASE = 0x0D0A << 40


# ------------------------------------------------------------------ time zone
def zone_of(workspace) -> tzinfo:
    """The workspace's zone (a Workspace, or anything with a `time_zone` IANA name)."""
    return zone_named(getattr(workspace, "time_zone", None))


def workspace_zone(workspace_id: int) -> tzinfo:
    from accounts.models import Workspace

    return zone_named(Workspace.objects.filter(pk=workspace_id).values_list("time_zone", flat=True).first())


def _integration_zone(integration_id: int, apps=None) -> tzinfo:
    workspace_model = (apps or global_apps).get_model("accounts", "Workspace")
    return zone_named(
        workspace_model._base_manager.filter(integrations__id=integration_id)
        .values_list("time_zone", flat=True)
        .first()
    )


def local_day(moment: datetime, zone: tzinfo) -> date:
    """The calendar day in `zone` that holds the aware `moment`."""
    return moment.astimezone(zone).date()


def day_start(day: date, zone: tzinfo) -> datetime:
    """The UTC instant at which `day` begins in `zone` (DST-safe: midnight is resolved by zoneinfo)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_bounds(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local days first..last inclusive."""
    if last >= date.max - timedelta(days=1):  # a row stored before dates were bounded (year 9999)
        return day_start(first, zone), datetime.max.replace(tzinfo=UTC)
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def day_ranges(days: Iterable[date], *, most: int = MAX_RANGES) -> list[tuple[date, date]]:
    """Consecutive days grouped into inclusive (first, last) ranges, in order; beyond `most`
    ranges the shortest gaps are closed (refreshing a day needlessly is only work)."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    if len(ranges) > most:
        gaps = sorted(range(1, len(ranges)), key=lambda i: (ranges[i][0] - ranges[i - 1][1], i))
        closed = set(gaps[: len(ranges) - most])
        merged: list[tuple[date, date]] = []
        for i, (first, last) in enumerate(ranges):
            if i in closed:
                merged[-1] = (merged[-1][0], last)
            else:
                merged.append((first, last))
        ranges = merged
    return ranges


def days_of(moments: Iterable[datetime], zone: tzinfo) -> set[date]:
    """The local days holding each aware `moment` (e.g. bucket_starts written or removed)."""
    return {local_day(m, zone) for m in moments}


# ------------------------------------------------------------------ upkeep
def _models(apps=None):
    apps = apps or global_apps
    return apps.get_model("usage", "UsageRecord"), apps.get_model("usage", "UsageDaily")


def _levels(apps=None) -> list[tuple[Level, Any]]:
    """(level, its model) of every derived level the app registry holds (a migration's
    historical registry may predate some)."""
    found = []
    for level in LEVELS:
        try:
            found.append((level, level.model(apps)))
        except LookupError:
            continue
    return found


def _aggregate(records: QuerySet, zone: tzinfo) -> QuerySet:
    """`records` grouped into rollup rows, selecting COLUMNS in order."""
    return (
        records.order_by()
        .annotate(day=TruncDate("bucket_start", tzinfo=zone))
        .values(*GROUP_COLUMNS)
        .annotate(quantity_sum=Sum("quantity"), rows_count=Count("pk"))
        .values_list(*GROUP_COLUMNS, "quantity_sum", "rows_count")
    )


def _summed(daily: QuerySet, level: Level = NARROW) -> QuerySet:
    """Daily rollup rows summed into `level`'s rows, selecting its columns in order."""
    return (
        daily.order_by()
        .values(*level.group_columns)
        .annotate(quantity_sum=Sum("quantity"), rows_sum=Sum("rows"))
        .values_list(*level.group_columns, "quantity_sum", "rows_sum")
    )


def _insert_select(records: QuerySet, zone: tzinfo, daily_model) -> int:
    """INSERT INTO usage_usagedaily (COLUMNS) SELECT … GROUP BY …: one statement, on any backend."""
    return _insert_from(_aggregate(records, zone), daily_model, COLUMNS)


def _insert_from(select: QuerySet, model, columns_: tuple[str, ...]) -> int:
    """INSERT INTO <model's table> (columns_) <select>: one statement, on any backend."""
    using = select.db
    sql, params = select.query.get_compiler(using).as_sql()
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(model._meta.get_field(c.removesuffix("_id")).column) for c in columns_)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {sql}", params)
        return cursor.rowcount


def _refresh_levels(integration_id: int, daily: Q, using: str, apps=None) -> int:
    """Recompute an integration's rows of every derived level for the days `daily` selects,
    from its daily rollup rows of those days (just recomputed): one DELETE and one
    INSERT … SELECT per level."""
    _, daily_model = _models(apps)
    source = daily_model._base_manager.using(using).filter(daily, integration_id=integration_id)
    written = 0
    for level, model in _levels(apps):
        model._base_manager.using(using).filter(daily, integration_id=integration_id).delete()
        written += _insert_from(_summed(source, level), model, level.columns)
    return written


def lock_integrations(integration_ids: Iterable[int], using: str) -> None:
    """Serialize rollup writers of these integrations until the transaction ends.

    On PostgreSQL two transactions recomputing the same day (a sync chunk and a rebuild, or a
    chunk and a re-attribution batch) would each delete what it saw and insert what it
    computed: the second insert would collide with the first, or miss its rows. A
    transaction-scoped advisory lock per integration (taken in id order, before the rollup rows
    are read) makes them take turns. SQLite has a single writer already.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    ids = sorted(set(integration_ids))
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s + id) FROM unnest(%s::bigint[]) AS id ORDER BY id",
                [ROLLUP_LOCK_BASE, ids],
            )


def _range_filter(ranges: list[tuple[date, date]], zone: tzinfo) -> tuple[Q, Q]:
    """(filter on base rows' bucket_start, filter on rollup rows' day) for the day ranges."""
    base, daily = Q(), Q()
    for first, last in ranges:
        start, end = day_bounds(first, last, zone)
        base |= Q(bucket_start__gte=start, bucket_start__lt=end)
        daily |= Q(day__gte=first, day__lte=last)
    if len(ranges) > 1:
        # The hull as a plain range too, so the (integration, bucket_start) index bounds the scan.
        start, end = day_bounds(ranges[0][0], ranges[-1][1], zone)
        base &= Q(bucket_start__gte=start, bucket_start__lt=end)
        daily &= Q(day__gte=ranges[0][0], day__lte=ranges[-1][1])
    return base, daily


def refresh_days(
    integration_id: int, days: Iterable[date], *, zone: tzinfo | None = None, apps=None, locked: bool = False
) -> int:
    """Recompute an integration's rollup rows for the given local days; returns rows written.

    One DELETE and one INSERT … SELECT whatever the number of days (consecutive days become
    one range). Call it inside the transaction that changed the base rows, with every day whose
    rows were written, changed or removed. `zone` defaults to the integration's workspace zone;
    `locked` says the caller already holds the integration's rollup lock (`lock_integrations`).
    """
    ranges = day_ranges(days)
    if not ranges:
        return 0
    record_model, daily_model = _models(apps)
    zone = zone or _integration_zone(integration_id, apps)
    base, daily = _range_filter(ranges, zone)
    using = router.db_for_write(daily_model)
    with transaction.atomic(using=using, savepoint=False):
        if not locked:
            lock_integrations([integration_id], using)
        daily_model._base_manager.using(using).filter(daily, integration_id=integration_id).delete()
        records = record_model._base_manager.using(using).filter(base, integration_id=integration_id)
        written = _insert_select(records, zone, daily_model)
        _refresh_levels(integration_id, daily, using, apps)
        return written


def refresh_derived(integration_id: int, days: Iterable[date]) -> int:
    """Recompute an integration's derived levels (narrow, project) for some local days from its
    UsageDaily rows as they are (refresh_days does this itself; for UsageDaily rows written
    directly)."""
    ranges = day_ranges(days)
    if not ranges:
        return 0
    _, daily = _range_filter(ranges, UTC)
    using = router.db_for_write(NARROW.model())
    with transaction.atomic(using=using, savepoint=False):
        lock_integrations([integration_id], using)
        return _refresh_levels(integration_id, daily, using)


def refresh_moments(integration, moments: Iterable[datetime]) -> int:
    """`refresh_days` for the local days holding these bucket_starts (rows written or removed).

    `integration` is an Integration or its id. The zone is read afresh, not from a workspace
    loaded earlier: a chunk committed after a time zone change must already count days in the
    new zone, or the background rebuild could finish before it. On PostgreSQL the same query
    takes the integration's rollup lock (see `lock_integrations`).
    """
    from usage.models import UsageDaily

    moments = set(moments)
    if not moments:
        return 0
    integration_id = getattr(integration, "pk", integration)
    using = router.db_for_write(UsageDaily)
    with transaction.atomic(using=using, savepoint=False):
        zone = _locked_zone(integration_id, using)
        return refresh_days(integration_id, days_of(moments, zone), zone=zone, locked=True)


def _locked_zone(integration_id: int, using: str) -> tzinfo:
    """The integration's workspace zone, read afresh; on PostgreSQL the same query takes the
    integration's rollup lock (see `lock_integrations`). Call it inside a transaction."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return _integration_zone(integration_id)
    integrations = global_apps.get_model("integrations", "Integration")._meta.db_table
    workspaces = global_apps.get_model("accounts", "Workspace")._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT w.time_zone, pg_advisory_xact_lock(%s + i.id) FROM {integrations} i "
            f"JOIN {workspaces} w ON w.id = i.workspace_id WHERE i.id = %s",
            [ROLLUP_LOCK_BASE, integration_id],
        )
        found = cursor.fetchone()
    return zone_named(found[0] if found else None)


def move_rows(moves: Mapping[tuple, tuple[Decimal, int]], *, using: str | None = None) -> int:
    """Apply re-attribution's moves: {GROUP_COLUMNS key: (quantity, rows)} added to each slice
    (negative for the slice rows left, positive for the one they joined); returns slices changed.

    Re-attribution changes only which application/license a row belongs to, batch by batch in
    pk order; recomputing whole days per batch would read each day once per batch that
    touches it. So its moves are applied by difference, exactly (Decimal, as the base table),
    in the batch's transaction: one INSERT … ON CONFLICT DO UPDATE, then one DELETE of the
    slices left empty. A slice that would go below zero shows a day out of step with the base
    rows (written without upkeep); those days are recomputed on the spot.
    """
    from usage.models import UsageDaily

    moves = {key: value for key, value in moves.items() if value[0] or value[1]}
    if not moves:
        return 0
    using = using or router.db_for_write(UsageDaily)
    # The same moves on each derived level: summed per slice of the level (exact: Decimal + int).
    tables: list[tuple[Any, tuple[str, ...], tuple[str, ...], Mapping[tuple, tuple[Decimal, int]]]] = [
        (UsageDaily, COLUMNS, GROUP_COLUMNS, moves)
    ]
    for level, model in _levels():
        at = [GROUP_COLUMNS.index(c) for c in level.group_columns]
        summed: dict[tuple, list] = {}
        for key, (quantity, count) in moves.items():
            entry = summed.setdefault(tuple(key[i] for i in at), [Decimal(0), 0])
            entry[0] += quantity
            entry[1] += count
        level_moves = {k: (v[0], v[1]) for k, v in summed.items() if v[0] or v[1]}
        tables.append((model, level.columns, level.group_columns, level_moves))
    day_at = GROUP_COLUMNS.index("day")
    integration_at = GROUP_COLUMNS.index("integration_id")
    integrations = sorted({key[integration_at] for key in moves})
    days = [key[day_at] for key in moves]
    out_of_step: dict[int, set[date]] = {}
    with transaction.atomic(using=using, savepoint=False):
        lock_integrations(integrations, using)
        for model, columns, group_columns, model_moves in tables:
            for integration_id, stale in _apply_moves(
                model, columns, group_columns, model_moves, integrations, days, using
            ).items():
                out_of_step.setdefault(integration_id, set()).update(stale)
    for integration_id, stale in out_of_step.items():
        refresh_days(integration_id, stale)
    return len(moves)


def _apply_moves(
    model,
    columns: tuple[str, ...],
    group_columns: tuple[str, ...],
    moves: Mapping[tuple, tuple[Decimal, int]],
    integrations: list[int],
    days: list[date],
    using: str,
) -> dict[int, set[date]]:
    """`move_rows` on one rollup table: one INSERT … ON CONFLICT DO UPDATE per
    MOVES_PER_INSERT slices, then one DELETE of the slices left empty; returns the days found
    out of step, per integration."""  # fmt: skip
    if not moves:
        return {}
    connection = connections[using]
    quote = connection.ops.quote_name
    opts = model._meta
    fields = [opts.get_field(c.removesuffix("_id")) for c in columns]
    table = quote(opts.db_table)
    conflict = ", ".join(
        [quote(f.column) for f in fields[1 : len(group_columns) - 2] if f.name not in ("workspace", "provider")]
        + [f"(COALESCE({quote(f.column)}, 0))" for f in fields[len(group_columns) - 2 : len(group_columns)]]
    )
    quantity, rows = quote("quantity"), quote("rows")
    prefix = f"INSERT INTO {table} ({', '.join(quote(f.column) for f in fields)}) VALUES "
    suffix = (
        f" ON CONFLICT ({conflict}) DO UPDATE SET {quantity} = {table}.{quantity} + EXCLUDED.{quantity}, "
        f"{rows} = {table}.{rows} + EXCLUDED.{rows}"
    )
    placeholder = f"({', '.join(['%s'] * len(fields))})"
    items = [
        [f.get_db_prep_save(v, connection) for f, v in zip(fields, (*key, *value), strict=True)]
        for key, value in moves.items()
    ]
    day_field = opts.get_field("day")
    out_of_step: dict[int, set[date]] = {}
    with connection.cursor() as cursor:
        for i in range(0, len(items), MOVES_PER_INSERT):
            part = items[i : i + MOVES_PER_INSERT]
            cursor.execute(prefix + ", ".join([placeholder] * len(part)) + suffix, [v for item in part for v in item])
        cursor.execute(
            f"DELETE FROM {table} WHERE {quote('integration_id')} IN ({', '.join(['%s'] * len(integrations))}) "
            f"AND {quote('day')} >= %s AND {quote('day')} <= %s AND {rows} <= 0 "
            f"RETURNING {quote('integration_id')}, {quote('day')}, {rows}, {quantity}",
            [*integrations, *(day_field.get_db_prep_save(d, connection) for d in (min(days), max(days)))],
        )
        for integration_id, day, count, total in cursor.fetchall():
            if count < 0 or (total and count == 0):
                out_of_step.setdefault(integration_id, set()).add(day_field.to_python(day))
    return out_of_step


# ------------------------------------------------------------------ upkeep by difference (PostgreSQL store)
# The PostgreSQL store (usage.store) knows, for every row it inserted or rewrote, the slice and
# quantity it had before (none for a new row) and the ones it has now: it sums them per slice
# and local day (new − old, rows +1 / −1) into a temporary table of DELTA_COLUMNS, and these
# functions add that table to the integration's rollups instead of re-aggregating its days
# from the base table. Exact (Decimal sums, as the base table), in the chunk's transaction,
# under the integration's rollup lock like every other rollup writer.
DELTA_COLUMNS: tuple[str, ...] = ("day", *ROLLUP_DIMENSIONS, "metric", "unit", "application_id", "license_id")


def zone_sql_name(zone: tzinfo) -> str:
    """The name a database is given for `zone` by TruncDate (and so by the recompute)."""
    # TruncDate names a zone with this private helper; the public API has no twin of it.
    return django_timezone._get_timezone_name(zone)  # type: ignore[attr-defined]


def day_sql(column: str, zone_name: str, using: str) -> tuple[str, tuple]:
    """SQL of the local day of `column` (a UTC instant) in the zone `zone_name`: exactly the
    expression TruncDate(column, tzinfo=zone) compiles to, so both paths agree on every day."""
    return connections[using].ops.datetime_cast_date_sql(column, (), zone_name)


def apply_delta(
    integration, table: str, zone_name: str, *, fallback: Iterable[datetime], removed: Iterable[datetime] = ()
) -> int:
    """Add the per-slice differences staged in the temporary `table` (DELTA_COLUMNS, quantity,
    rows; days counted in the zone `zone_name`) to `integration`'s daily rollups, then
    recompute every derived level (rollups.LEVELS) of those days from them; returns the rollup rows written.

    `integration` is an Integration (its workspace and provider name new slices). Takes the
    integration's rollup lock and reads the zone afresh, as refresh_moments does: when the
    workspace changed its zone since the differences were computed they are dropped and the
    days of `fallback` (the bucket_starts of every row of the chunk) are recomputed instead.
    The days of `removed` (bucket_starts of rows deleted in the same transaction) are
    recomputed from the base table after the differences are added. One INSERT … ON CONFLICT
    DO UPDATE adds them, in slice order, then one DELETE drops the slices left with no row; a
    slice that would fall below zero shows a day out of step with the base table (written
    without upkeep): that day is recomputed.
    """
    from usage.models import UsageDaily

    integration_id = integration.pk
    using = router.db_for_write(UsageDaily)
    connection = connections[using]
    with transaction.atomic(using=using, savepoint=False):
        zone = _locked_zone(integration_id, using)
        if zone_sql_name(zone) != zone_name:
            moments = set(fallback) | set(removed)
            return refresh_days(integration_id, days_of(moments, zone), zone=zone, locked=True)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT {connection.ops.quote_name('day')} FROM {table}")
            days = {row[0] for row in cursor.fetchall()}
        written, stale = _add_delta(integration, table, days, using) if days else (0, set())
        recomputed = days_of(removed, zone) | stale
        if recomputed:
            written += refresh_days(integration_id, recomputed, zone=zone, locked=True)
        if days - recomputed:
            _refresh_levels(integration_id, _range_filter(day_ranges(days - recomputed), zone)[1], using)
        return written


def _add_delta(integration, table: str, days: set[date], using: str) -> tuple[int, set[date]]:
    """`apply_delta`'s two statements on UsageDaily: returns (slices written, days out of step)."""
    from usage.models import UsageDaily

    connection = connections[using]
    quote = connection.ops.quote_name
    opts: Any = UsageDaily._meta
    target = quote(opts.db_table)
    column = {c: quote(opts.get_field(c.removesuffix("_id")).column) for c in COLUMNS}
    grouped = ", ".join(quote(c) for c in DELTA_COLUMNS)
    conflict = ", ".join(
        [column[c] for c in GROUP_COLUMNS if c not in ("workspace_id", "provider", "application_id", "license_id")]
        + [f"(COALESCE({column[c]}, 0))" for c in ("application_id", "license_id")]
    )
    quantity, rows, day = column["quantity"], column["rows"], column["day"]
    day_field = opts.get_field("day")
    first, last = (day_field.get_db_prep_save(d, connection) for d in (min(days), max(days)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {target} ({', '.join(column[c] for c in COLUMNS)}) "
            f"SELECT %s, %s, %s, {grouped}, SUM({quote('quantity')}), SUM({quote('rows')}) FROM {table} "
            f"WHERE {quote('day')} >= %s AND {quote('day')} <= %s GROUP BY {grouped} "
            f"HAVING SUM({quote('quantity')}) <> 0 OR SUM({quote('rows')}) <> 0 ORDER BY {grouped} "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {quantity} = {target}.{quantity} + EXCLUDED.{quantity}, "
            f"{rows} = {target}.{rows} + EXCLUDED.{rows}",
            [integration.workspace_id, integration.pk, integration.provider, first, last],
        )
        written = cursor.rowcount
        cursor.execute(
            f"DELETE FROM {target} WHERE {column['integration_id']} = %s AND {day} >= %s AND {day} <= %s "
            f"AND {rows} <= 0 RETURNING {day}, {rows}, {quantity}",
            [integration.pk, first, last],
        )
        stale = {day_field.to_python(d) for d, count, total in cursor.fetchall() if count < 0 or (total and not count)}
    return written, stale


def days_by_integration(daily: QuerySet) -> dict[int, set[date]]:
    """{integration id: local days} of some rollup rows (read before a delete that cascades)."""
    found: dict[int, set[date]] = {}
    for integration_id, day in daily.order_by().values_list("integration_id", "day").distinct():
        found.setdefault(integration_id, set()).add(day)
    return found


def refresh_by_integration(days: Mapping[int, Iterable[date]]) -> int:
    """`refresh_days` for each integration's days."""
    return sum(refresh_days(integration_id, found) for integration_id, found in sorted(days.items()))


def _first_whole_day(cutoff: datetime | None, zone: tzinfo) -> date | None:
    """The first local day that starts at or after `cutoff` (None: no cutoff)."""
    if cutoff is None:
        return None
    day = local_day(cutoff, zone)
    return day if day_start(day, zone) >= cutoff else day + timedelta(days=1)


def refresh_integration(
    integration_id: int, *, zone: tzinfo | None = None, apps=None, on_span: Callable[[], object] | None = None
) -> int:
    """Recompute every rollup row of one integration, REBUILD_SPAN_DAYS local days per
    transaction (a year of a large integration never holds its lock for minutes; pages see each
    span switch at once), then drop rollup rows outside its first..last day. `on_span()` is
    called after each span (a job's heartbeat: a large integration takes many minutes)."""
    record_model, daily_model = _models(apps)
    zone = zone or _integration_zone(integration_id, apps)
    using = router.db_for_write(daily_model)
    bounds = (
        record_model._base_manager.using(using)
        .filter(integration_id=integration_id)
        .aggregate(first=Min("bucket_start"), last=Max("bucket_start"))
    )
    written = 0
    # Raw months past the retention (DOOW_RAW_RETENTION_MONTHS) are gone: their days' rollups
    # are the only record left, so a rebuild starts at the first local day wholly kept and
    # leaves the days before it as they are.
    kept_from = _first_whole_day(retention_cutoff(), zone)
    if bounds["first"] is not None:
        first, last = local_day(bounds["first"], zone), local_day(bounds["last"], zone)
        if kept_from is not None:
            first = max(first, kept_from)
        span = first
        while span <= last:
            end = min(span + timedelta(days=REBUILD_SPAN_DAYS - 1), last)
            days = (span + timedelta(days=i) for i in range((end - span).days + 1))
            written += refresh_days(integration_id, days, zone=zone, apps=apps)
            span = end + timedelta(days=1)
            if on_span is not None:
                on_span()
    with transaction.atomic(using=using):
        lock_integrations([integration_id], using)
        for model in (daily_model, *(model for _, model in _levels(apps))):
            stale = model._base_manager.using(using).filter(integration_id=integration_id)
            if kept_from is not None:
                stale = stale.filter(day__gte=kept_from)
            if bounds["first"] is not None:
                stale = stale.filter(Q(day__lt=first) | Q(day__gt=last))
            stale.delete()
    return written


def rebuild_workspace(
    workspace,
    *,
    on_integration: Callable[[int, int], object] | None = None,
    on_span: Callable[[], object] | None = None,
    apps=None,
) -> int:
    """Recompute all rollups of a workspace in its current time zone, integration by
    integration (see `refresh_integration`); returns rows written.

    `on_integration(done, total)` is called after each integration (progress for a job),
    `on_span()` after each span of days within one (its heartbeat).
    """
    _, daily_model = _models(apps)
    global_or_historical = apps or global_apps
    workspace_model = global_or_historical.get_model("accounts", "Workspace")
    integration_model = global_or_historical.get_model("integrations", "Integration")
    workspace = workspace_model._base_manager.get(pk=getattr(workspace, "pk", workspace))
    zone = zone_of(workspace)
    # Base rows belong to the workspace's integrations (deleting one cascades to its rows).
    integration_ids = sorted(
        set(integration_model._base_manager.filter(workspace_id=workspace.pk).values_list("pk", flat=True))
        | set(
            daily_model._base_manager.filter(workspace_id=workspace.pk)
            .values_list("integration_id", flat=True)
            .distinct()
        )
    )
    written = 0
    for done, integration_id in enumerate(integration_ids, start=1):
        written += refresh_integration(integration_id, zone=zone, apps=apps, on_span=on_span)
        if on_integration is not None:
            on_integration(done, len(integration_ids))
    return written


def rebuild_all(apps=None) -> int:
    """Rebuild every workspace's rollups (used by the migration that creates the table)."""
    workspace_model = (apps or global_apps).get_model("accounts", "Workspace")
    return sum(rebuild_workspace(pk, apps=apps) for pk in workspace_model._base_manager.values_list("pk", flat=True))


# ------------------------------------------------------------------ queries
def narrow_enough(columns: Iterable[str] | None) -> bool:
    """True when a query grouping and filtering by these columns (field names, `_id` or not)
    can read the narrow rollup: None means "unknown: any column"."""
    return columns is not None and NARROW.covers(columns)


def level_for(columns: Iterable[str] | None) -> Level | None:
    """The first derived level (LEVELS: the total rollup, the narrow one, the project one)
    holding every one of these columns; None: UsageDaily."""
    if columns is None:
        return None
    columns = tuple(columns)
    return next((level for level in LEVELS if level.covers(columns)), None)


def daily_for(workspace, columns: Iterable[str] | None = None) -> QuerySet:
    """The workspace's daily rollup rows: where every aggregating page starts. Integrations
    reading a provider account another one already counts are left out, so no total adds one
    account twice (their own pages read `integration.usage_daily`).

    `day` is the local calendar day in the workspace's zone, so date filters are plain
    `day__gte`/`day__lte` on local dates; sum `quantity` per (metric, unit) as with base rows.

    `columns`: every column the caller will filter, group or read (besides quantity and rows).
    When they are all one derived level's (`level_for`: the total rollup, without dimensions,
    else the narrow rollup, per model and region, else the project rollup), the rows come from it: the same sums over several times
    fewer rows. Without `columns`, UsageDaily (every dimension).
    """
    from usage.models import UsageDaily

    level = level_for(columns)
    model = level.model() if level else UsageDaily
    rows = model.objects.filter(workspace_id=getattr(workspace, "pk", workspace))
    uncounted = _uncounted(workspace)
    return rows.exclude(integration_id__in=uncounted) if uncounted else rows


def _uncounted(workspace) -> frozenset[int]:
    """Integrations no total may add: a provider account another integration already counts
    (integrations.models.IntegrationQuerySet.uncounted_ids). Read once per workspace object, so
    a page that starts several aggregates from `daily_for` asks once."""
    cached = getattr(workspace, "_uncounted_integration_ids", None)
    if cached is not None:
        return cached
    integration_model = global_apps.get_model("integrations", "Integration")
    found = frozenset(
        integration_model.objects.filter(workspace_id=getattr(workspace, "pk", workspace)).uncounted_ids()
    )
    if not isinstance(workspace, int):
        workspace._uncounted_integration_ids = found
    return found


def totals_match(workspace) -> bool:
    """True when the rollups sum to the base table per integration, local day (in the
    workspace's zone), metric, unit, application and license: the check of
    `rebuild_rollups --check` and of tests. Reads the whole base table of the workspace."""
    from usage.models import UsageDaily, UsageRecord

    keys = ("integration_id", "day", "metric", "unit", "application_id", "license_id")
    pk = getattr(workspace, "pk", workspace)
    zone = workspace_zone(pk)
    base = {
        row[:-2]: row[-2:]
        for row in UsageRecord.objects.filter(workspace_id=pk)
        .order_by()
        .annotate(day=TruncDate("bucket_start", tzinfo=zone))
        .values_list(*keys)
        .annotate(Sum("quantity"), Count("pk"))
    }
    daily = {
        row[:-2]: row[-2:]
        for row in UsageDaily.objects.filter(workspace_id=pk)
        .order_by()
        .values_list(*keys)
        .annotate(Sum("quantity"), Sum("rows"))
    }
    return base == daily and narrow_matches(pk)


def narrow_matches(workspace) -> bool:
    """True when every derived level equals UsageDaily summed to its columns (every slice)."""
    from usage.models import UsageDaily

    pk = getattr(workspace, "pk", workspace)
    for level, model in _levels():
        expected = {row[:-2]: row[-2:] for row in _summed(UsageDaily.objects.filter(workspace_id=pk), level) if row[-1]}
        found = {
            row[:-2]: row[-2:] for row in model.objects.filter(workspace_id=pk).order_by().values_list(*level.columns)
        }
        if expected != found:
            return False
    return True


def fill_level(level: Level, apps=None, using: str | None = None) -> int:
    """Build one derived level of every workspace from UsageDaily (the migration that creates
    it): one INSERT … SELECT … GROUP BY."""
    _, daily_model = _models(apps)
    model = level.model(apps)
    using = using or router.db_for_write(model)
    with transaction.atomic(using=using):
        model._base_manager.using(using).all().delete()
        return _insert_from(_summed(daily_model._base_manager.using(using).all(), level), model, level.columns)


def fill_narrow(apps=None, using: str | None = None) -> int:
    """`fill_level` of the narrow rollup (its migration)."""
    return fill_level(NARROW, apps, using)
