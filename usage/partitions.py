"""Monthly partitions of the raw usage table on PostgreSQL, and how long raw rows are kept.

On PostgreSQL usage_usagerecord is partitioned by range of bucket_start, one partition per UTC
calendar month (`usage_usagerecord_p202612` holds December 2026) plus a DEFAULT partition that
catches any row no month partition covers, so an insert never fails for want of a partition
(usage's migration converts the table). `usage_partitions_manage`, run daily by beat and by
`manage.py manage_partitions`, keeps that shape:

- creates the partitions of the current month and `months_ahead` months after it;
- moves rows that landed in the DEFAULT partition (an import of old history, a month beat did
  not prepare) into a partition of their own month, so the DEFAULT partition stays small;
- with a retention of N months (DOOW_RAW_RETENTION_MONTHS, 0 = keep forever), drops the
  partitions of months that ended before the first day of the month N months before the
  current one (the current month and N whole months before it stay), and deletes the rows of
  those months still in the DEFAULT partition. Dropping a partition is cheap whatever its size
  (no DELETE, no VACUUM). The daily rollups (usage.UsageDaily) are not touched: totals on the
  pages outlive the raw rows; only the hourly row view and the exports lose those months.

Every step is idempotent: a second run finds nothing to do. On SQLite the table is not
partitioned; the retention is applied with batched DELETEs instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import OperationalError, connections, router, transaction
from django.utils import timezone

from usage.models import UsageRecord

logger = logging.getLogger(__name__)

TABLE = UsageRecord._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
MONTHS_AHEAD = 3
# A partition change waits at most this long for its locks. Dropping a partition needs an
# exclusive lock on the whole table, which waits for running queries (a long export) while
# every new query on the table queues behind the waiting drop: give up soon, skip that
# partition, and try again on the next daily run.
LOCK_TIMEOUT = "2s"
DELETE_BATCH = 5000  # rows per DELETE where rows are deleted one by one (SQLite, DEFAULT partition)
_LOCK_KEY = 0x646F6F77_70617274  # "doowpart": one partition upkeep at a time, across hosts
# Each partition's pages are filled to this percent by inserts (COPY, the store's INSERT): the
# room left lets a restatement that changes a row's quantity (nothing indexed) write the new
# version on the same page, a HOT update with no new index entries, instead of a new row
# version in all ten indexes. docs/performance.md has the measurement and the cost (a
# partition's heap takes 1/0.7 of the pages).
FILLFACTOR = 70


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  # None: the DEFAULT partition
    end: datetime | None


@dataclass
class PartitionReport:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rows_moved: int = 0  # out of the DEFAULT partition into their month's new partition
    rows_deleted: int = 0  # older than the retention, deleted row by row (DEFAULT partition, SQLite)
    skipped: list[str] = field(default_factory=list)  # busy (lock wait timed out): tried again next run
    cutoff: datetime | None = None  # raw rows before this instant are gone (None: kept forever)


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return month.replace(year=index // 12, month=index % 12 + 1)


def retention_cutoff(*, now: datetime | None = None, months: int | None = None) -> datetime | None:
    """The first instant whose raw rows are kept: the first day of the month `months` months
    before the current one (UTC), or None when raw rows are kept forever (months = 0).

    Anything that recomputes from raw rows (a rollup rebuild) must not reach before it."""
    months = settings.DOOW_RAW_RETENTION_MONTHS if months is None else months
    if months <= 0:
        return None
    return add_months(month_start(now or timezone.now()), -months)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def is_partitioned(using: str | None = None) -> bool:
    connection = connections[using or router.db_for_write(UsageRecord)]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cursor.fetchone() is not None


def usage_partitions(using: str | None = None) -> list[Partition]:
    """The partitions of the usage table, month partitions in time order, DEFAULT last."""
    connection = connections[using or router.db_for_write(UsageRecord)]
    if not is_partitioned(connection.alias):
        return []
    with connection.cursor() as cursor:
        # The bounds are printed in the session's TimeZone: cast back by the same session.
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass
            """,
            [TABLE],
        )
        rows = cursor.fetchall()
        partitions = []
        for name, bound in rows:
            if bound == "DEFAULT":
                partitions.append(Partition(name, None, None))
                continue
            start, end = bound.split(" FROM ('", 1)[1].split("') TO ('", 1)
            cursor.execute("SELECT %s::timestamptz, %s::timestamptz", [start, end.removesuffix("')")])
            lower, upper = cursor.fetchone()
            partitions.append(Partition(name, lower, upper))
    return sorted(partitions, key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC)))


def estimated_rows(using: str | None = None) -> int | None:
    """The usage table's row count as PostgreSQL's statistics estimate it (the sum over its
    partitions), or None where there is no such estimate (SQLite, a table never analyzed)."""
    connection = connections[using or router.db_for_read(UsageRecord)]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT sum(c.reltuples) FILTER (WHERE c.reltuples >= 0)::bigint
            FROM pg_class c
            WHERE c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)
               OR (c.oid = %s::regclass AND c.relkind = 'r')  -- a plain table; never a partitioned parent
            """,
            [TABLE, TABLE],
        )
        return cursor.fetchone()[0]


def usage_partitions_manage(
    *, months_ahead: int = MONTHS_AHEAD, retention_months: int | None = None, now: datetime | None = None
) -> PartitionReport:
    """Create the coming months' partitions, empty the DEFAULT partition into month partitions,
    and drop raw months past the retention (see the module docstring). Idempotent."""
    now = now or timezone.now()
    using = router.db_for_write(UsageRecord)
    report = PartitionReport(cutoff=retention_cutoff(now=now, months=retention_months))
    if not is_partitioned(using):
        if report.cutoff is not None:
            report.rows_deleted = _delete_before(using, report.cutoff, table=TABLE)
        return report
    horizon = add_months(month_start(now), months_ahead + 1)
    for partition in usage_partitions(using):
        if partition.end is not None and report.cutoff is not None and partition.end <= report.cutoff:
            try:
                with _upkeep(using) as cursor:
                    cursor.execute(f'DROP TABLE IF EXISTS "{partition.name}"')
            except OperationalError as error:  # lock_timeout: the table is busy
                logger.warning("usage partitions: %s not dropped now (%s)", partition.name, error)
                report.skipped.append(partition.name)
            else:
                report.dropped.append(partition.name)
    if report.cutoff is not None:
        report.rows_deleted = _delete_before(using, report.cutoff, table=DEFAULT_PARTITION)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', bucket_start, 'UTC') FROM {DEFAULT_PARTITION} WHERE bucket_start < %s",
            [horizon],
        )
        stray = {month_start(row[0]) for row in cursor.fetchall()}
    months = sorted(stray | {add_months(month_start(now), n) for n in range(months_ahead + 1)})
    existing = {p.start for p in usage_partitions(using)}
    for month in months:
        if month in existing:
            continue
        try:
            moved = _create_month(using, month)
        except OperationalError as error:
            logger.warning("usage partitions: %s not created now (%s)", partition_name(month), error)
            report.skipped.append(partition_name(month))
            continue
        if moved is not None:
            report.created.append(partition_name(month))
            report.rows_moved += moved
    if report.created or report.dropped or report.rows_deleted or report.skipped:
        logger.info(
            "usage partitions: created %s, dropped %s, %s rows moved out of the default partition, %s deleted",
            report.created, report.dropped, report.rows_moved, report.rows_deleted,
        )  # fmt: skip
    return report


class _upkeep:
    """One partition change: its own transaction, one upkeep at a time, a bounded lock wait."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.atomic = transaction.atomic(using=using)

    def __enter__(self):
        self.atomic.__enter__()
        self.cursor = connections[self.using].cursor()
        self.cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        self.cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        return self.cursor

    def __exit__(self, *exc):
        self.cursor.close()
        return self.atomic.__exit__(*exc)


def _create_month(using: str, month: datetime) -> int | None:
    """Create the partition of `month`, first moving that month's rows out of the DEFAULT
    partition (PostgreSQL refuses a new partition while the DEFAULT one holds rows of its
    range). Returns the rows moved, or None when another run created it meanwhile."""
    name, end = partition_name(month), add_months(month, 1)
    with _upkeep(using) as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return None
        cursor.execute(
            f'CREATE TABLE "{name}" (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING STORAGE) WITH (fillfactor = {FILLFACTOR})'
        )
        cursor.execute(
            f"""
            WITH moved AS (
                DELETE FROM {DEFAULT_PARTITION} WHERE bucket_start >= %s AND bucket_start < %s RETURNING *
            )
            INSERT INTO "{name}" SELECT * FROM moved
            """,
            [month, end],
        )
        moved = cursor.rowcount
        # Attaching builds the partition's indexes and constraints from the parent's.
        cursor.execute(f'ALTER TABLE {TABLE} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [month, end])
    return moved


def _delete_before(using: str, cutoff: datetime, *, table: str) -> int:
    """Delete the rows of `table` with bucket_start before `cutoff`, a batch per transaction."""
    connection = connections[using]
    qn = connection.ops.quote_name
    deleted = 0
    while True:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {qn(table)} WHERE id IN "
                f"(SELECT id FROM {qn(table)} WHERE bucket_start < %s LIMIT {DELETE_BATCH})",
                [connection.ops.adapt_datetimefield_value(cutoff)],
            )
            count = cursor.rowcount
        deleted += count
        if count < DELETE_BATCH:
            return deleted


def set_fillfactor(using: str, fillfactor: int = FILLFACTOR) -> list[str]:
    """Give every existing partition of the usage table (and the table itself when it is not
    partitioned) this fillfactor; rows written from now on leave that room. Returns the tables
    changed. PostgreSQL only: a partitioned table takes no storage parameters, its partitions do."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.oid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%s)) "
            "OR (c.oid = to_regclass(%s) AND c.relkind = 'r') ORDER BY 1",
            [TABLE, TABLE],
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'ALTER TABLE "{table}" SET (fillfactor = {int(fillfactor)})')
    return tables
