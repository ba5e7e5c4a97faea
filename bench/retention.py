"""Benchmark: the monthly partitions of the raw usage table (usage/partitions.py), each figure
beside its physical reference measured in the same run.

PostgreSQL only. Loads BENCH_ROWS (default 600,000) hourly usage rows spread over the six months
before the current one with COPY (they land in the DEFAULT partition, as history imported before
its partitions existed would), then times:

- manage_partitions moving them into month partitions    | COPY of the same rows into a bare table
- the retention dropping the oldest month (the whole daily  | DELETE + VACUUM of the same month's rows from a plain
  manage_partitions run)                                   |   table of all the rows, with the same indexes
- the migration's conversion of the table (and back)     | COPY of the same rows into a bare table

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/retention.py

The database `doow_bench_retention` (or $BENCH_DB) on that server is dropped and created afresh.
"""

from __future__ import annotations

import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

BENCH_DB = os.environ.get("BENCH_DB", "doow_bench_retention")
ROWS = int(os.environ.get("BENCH_ROWS", "600000"))
COMBOS = 250  # model × project × metric rows per hour
COLUMNS = (
    "workspace_id", "integration_id", "provider", "bucket_start", "bucket_end", "account", "project", "region",
    "model", "deployment", "endpoint", "resource", "operation", "api_key", "metric", "quantity", "unit",
    "provenance", "stream", "updated_at",
)  # fmt: skip


def server_url(database: str) -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/retention.py measures PostgreSQL partitions: set DATABASE_URL=postgres://…")
    return urlunsplit(parts._replace(path="/" + database))


def setup() -> None:
    import psycopg

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = server_url(BENCH_DB)
    os.environ.update(
        DEBUG="true", DOOW_ENV_FILE="", CELERY_BROKER_URL="memory://", DOOW_ALLOW_PRIVATE_ENDPOINTS="true",
        DJANGO_SETTINGS_MODULE="doow.settings",
    )  # fmt: skip
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def copy_text(workspace_id: int, integration_id: int, first: datetime, hours: int, span: timedelta) -> str:
    """`hours` hourly buckets of COMBOS rows each, spread evenly over `span` from `first`."""
    out = io.StringIO()
    now = datetime.now(UTC).isoformat()
    span_hours = int(span / timedelta(hours=1))
    hours = min(hours, span_hours)  # one bucket per hour at most: keys stay distinct
    for h in range(hours):
        start = first + timedelta(hours=h * span_hours // hours)
        s, e = start.isoformat(), (start + timedelta(hours=1)).isoformat()
        for c in range(COMBOS):
            out.write(
                f"{workspace_id}\t{integration_id}\topenai\t{s}\t{e}\torg-1\tproj_{c % 25}\t\tmodel-{c // 25 % 5}"
                f"\t\t\t\t\t\t{('input_tokens', 'output_tokens')[c // 125]}\t{h * 7 + c}\ttokens\treported\tusage\t{now}\n"
            )
    return out.getvalue()


def copy_in(cursor, table: str, text: str, columns: tuple[str, ...] = COLUMNS) -> float:
    started = time.perf_counter()
    with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(text)
    return time.perf_counter() - started


def line(label: str, rows: int, seconds: float, reference: str) -> None:
    print(
        f"  {label:46} {rows:>9,} rows {seconds * 1000:>9,.0f} ms {rows / seconds:>10,.0f} rows/s   | {reference}",
        flush=True,
    )


def main() -> None:
    setup()
    import importlib

    from django.apps import apps
    from django.db import connection

    from accounts.models import Workspace
    from integrations.models import Integration
    from usage import partitions

    workspace = Workspace.objects.create(name="Bench", slug="bench")
    integration = Integration(workspace=workspace, provider="openai", name="OpenAI")
    integration.set_credential({"api_key": "sk-admin-bench"})
    integration.save()
    now = datetime.now(UTC)
    first = partitions.add_months(partitions.month_start(now), -6)
    hours = min(ROWS // COMBOS, int((partitions.month_start(now) - first) / timedelta(hours=1)))
    text = copy_text(workspace.pk, integration.pk, first, hours, partitions.month_start(now) - first)
    rows = hours * COMBOS
    print(f"PostgreSQL partitions: {rows:,} rows spread over the 6 months from {first:%Y-%m-%d}")
    with connection.cursor() as cursor:
        cursor.execute("CREATE UNLOGGED TABLE bare (LIKE usage_usagerecord INCLUDING DEFAULTS)")
        bare = copy_in(cursor, "bare", text)
        cursor.execute("DROP TABLE bare")
        copy_in(cursor, "usage_usagerecord", text)  # into the DEFAULT partition: no month partitions yet
        cursor.execute("ANALYZE usage_usagerecord")
    reference = f"COPY into a bare table: {rows / bare:,.0f} rows/s"

    started = time.perf_counter()
    report = partitions.usage_partitions_manage(months_ahead=3)
    line("move out of DEFAULT into month partitions", report.rows_moved, time.perf_counter() - started, reference)

    oldest = partitions.usage_partitions()[0]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{oldest.name}"')
        (month_rows,) = cursor.fetchone()
        cursor.execute("CREATE TABLE plain (LIKE usage_usagerecord INCLUDING DEFAULTS INCLUDING INDEXES)")
        cursor.execute("INSERT INTO plain SELECT * FROM usage_usagerecord")  # the whole table, unpartitioned
        cursor.execute("ANALYZE plain")
        started = time.perf_counter()
        cursor.execute("DELETE FROM plain WHERE bucket_start < %s", [oldest.end])
        assert cursor.rowcount == month_rows
        delete = time.perf_counter() - started
        cursor.execute("VACUUM plain")  # what the DELETE leaves behind (autovacuum would do it later)
        vacuum = time.perf_counter() - started - delete
        cursor.execute("DROP TABLE plain")
    # The DROP statement alone (rolled back), apart from the rest of the daily run.
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(f'DROP TABLE "{oldest.name}"')
        drop_alone = time.perf_counter() - started
        transaction.set_rollback(True)
    started = time.perf_counter()
    months = (now.year - oldest.start.year) * 12 + now.month - oldest.start.month - 1
    report = partitions.usage_partitions_manage(retention_months=months)
    drop = time.perf_counter() - started
    assert report.dropped == [oldest.name], report
    line(f"retention: DROP TABLE {oldest.name[-7:]} alone", month_rows, drop_alone, "(rolled back)")
    line(
        f"retention: the daily run dropping {oldest.name[-7:]}", month_rows, drop,
        f"the same month from a plain indexed table: DELETE {delete * 1000:,.0f} ms + VACUUM {vacuum * 1000:,.0f} ms",
    )  # fmt: skip

    kept = rows - month_rows
    # The partitioning step of usage's migration (0008 before the squash), both ways.
    migration = importlib.import_module("usage.migrations.0001_squashed_0017")
    started = time.perf_counter()
    with connection.schema_editor() as editor:
        migration.unpartition(apps, editor)
    back = time.perf_counter() - started
    started = time.perf_counter()
    with connection.schema_editor() as editor:
        migration.partition(apps, editor)
        migration.fillfactor(apps, editor)
    forward = time.perf_counter() - started
    line("migration: plain → partitioned", kept, forward, reference)
    line("migration reversed: partitioned → plain", kept, back, reference)


if __name__ == "__main__":
    main()
