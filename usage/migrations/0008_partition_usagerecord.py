"""On PostgreSQL, usage_usagerecord becomes a table partitioned by month of bucket_start.

The table is converted in place, in this migration's transaction (it holds an ACCESS
EXCLUSIVE lock on the table while every row is copied and the indexes rebuilt: plan a
maintenance window on a large table: about a minute per million rows, bench/retention.py): the plain table is renamed, a partitioned table
with the same columns takes its name, one partition per month from the oldest row to three
months ahead and a DEFAULT partition are created, the rows are copied, the plain table is
dropped, and its indexes and constraints are recreated on the partitioned table under the same
names — except the primary key, which becomes (id, bucket_start): PostgreSQL requires every
unique constraint of a partitioned table to contain the partition key. Django still sees `id`
as the primary key; ids stay unique because one sequence (usage_usagerecord_id_seq, owned by
the column, continuing after the largest id) numbers every partition. The natural key already
contains bucket_start, so `INSERT … ON CONFLICT` on it works across partitions unchanged.

Partitions after this one are created (and expired raw partitions dropped) by
`manage.py manage_partitions`, run daily by beat (usage/partitions.py).

The SQL is written out here rather than imported from usage/partitions.py, so this migration
keeps doing what it did when that module changes. SQLite keeps the plain table: both
directions are no-ops there.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

from django.db import migrations

TABLE = "usage_usagerecord"
MONTHS_AHEAD = 3


def _month(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)


def _definitions(cursor, table: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The table's plain indexes (CREATE INDEX statements) and its constraints other than the
    primary key (name, type, definition), read from the catalog."""
    cursor.execute(
        """
        SELECT pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY i.indexrelid
        """,
        [table],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        """
        SELECT conname, contype, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype <> 'p' AND contype <> 'n'
        ORDER BY oid
        """,
        [table],
    )
    return indexes, list(cursor.fetchall())


def _recreate(cursor, indexes: list[str], constraints: list[tuple[str, str, str]], source: str) -> None:
    """Indexes and constraints read from `source`, created on TABLE under the same names."""
    on_source = re.compile(rf" ON (ONLY )?(\S+\.)?{re.escape(source)} ")
    for statement in indexes:
        cursor.execute(on_source.sub(f" ON {TABLE} ", statement, count=1))
    for name, _type, definition in constraints:
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')


def partition(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    old = f"{TABLE}_unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
        indexes, constraints = _definitions(cursor, old)
        # Columns, NOT NULLs and plain defaults; not the identity (a partitioned table cannot
        # have one before PostgreSQL 17), not the indexes (built once the rows are in).
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING STORAGE) PARTITION BY RANGE (bucket_start)"
        )
        cursor.execute(f"SELECT min(bucket_start), coalesce(max(id), 0) FROM {old}")
        oldest, last_id = cursor.fetchone()
        month = _month(oldest or datetime.now(UTC))
        stop = _next_month(_month(datetime.now(UTC)))
        for _ in range(MONTHS_AHEAD):
            stop = _next_month(stop)
        while month < stop:
            following = _next_month(month)
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{month:%Y%m} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                [month.isoformat(), following.isoformat()],
            )
            month = following
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
        cursor.execute(f"DROP TABLE {old}")  # its identity sequence and index names go with it
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, bucket_start)")
        _recreate(cursor, indexes, constraints, old)
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq AS bigint OWNED BY {TABLE}.id")
        cursor.execute(f"SELECT setval('{TABLE}_id_seq', %s, %s)", [max(last_id, 1), last_id > 0])
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        cursor.execute(f"ANALYZE {TABLE}")


def unpartition(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    old = f"{TABLE}_partitioned"
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
        indexes, constraints = _definitions(cursor, old)
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING STORAGE)")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")
        (last_id,) = cursor.fetchone()
        cursor.execute(f"DROP TABLE {old}")  # its partitions and sequence go with it
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        sequence = f"pg_get_serial_sequence('{TABLE}', 'id')"
        cursor.execute(f"SELECT setval({sequence}, %s, %s)", [max(last_id, 1), last_id > 0])
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        _recreate(cursor, indexes, constraints, old)


class Migration(migrations.Migration):
    dependencies = [("usage", "0007_rollup_rebuild_jobs")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
