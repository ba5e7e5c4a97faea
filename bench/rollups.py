"""Benchmark: the daily rollups' upkeep and rebuild, each beside a physical reference measured in
the same run on the same rows.

PostgreSQL only. Loads the data set of bench/analytics.py (4,000 hourly rows an hour over 4
integrations, by COPY), then times:
- a rebuild of the workspace's rollups (`usage.rollups.rebuild_workspace`), against the bare
  `INSERT … SELECT … GROUP BY` of the same rows into a scratch table;
- one day's refresh of one integration (what a stored chunk adds), against the bare
  `SELECT … GROUP BY` of that day;
- storing one hour of one integration again (1,000 samples, all conflicts) with its upkeep,
  against the same upsert without upkeep.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/rollups.py [--rows 960000]

The database `doow_bench_rollups` (or $BENCH_DB) is dropped and created afresh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR / "bench"))
os.environ.setdefault("BENCH_DB", "doow_bench_rollups")

import analytics  # noqa: E402  (bench/analytics.py: database, Django, the COPY load)


def seconds_of(fn, repeat: int) -> list[float]:
    return analytics.timed(fn, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 960_000)))
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    analytics.prepare_database(reuse=False)
    analytics.setup_django()

    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connection, transaction

    from accounts.models import Workspace
    from integrations.providers.base import UsageSample
    from usage import rollups
    from usage.models import UsageDaily, UsageRecord
    from usage.store import usage_prepare_samples, usage_store_prepared, usage_store_samples

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:  # bench/analytics.py's COPY leaves `stream` out: "" as Django would
        cursor.execute("ALTER TABLE usage_usagerecord ALTER COLUMN stream SET DEFAULT ''")
    figures = analytics.load(args.rows)
    rows = figures["rows"]
    print(
        f"load: COPY {rows:,} rows in {figures['copy_seconds']:.1f} s ({rows / figures['copy_seconds']:,.0f} rows/s)",
        flush=True,
    )
    workspace = Workspace.objects.get(slug=analytics.WORKSPACE)

    # -- rebuild, against the bare INSERT … SELECT … GROUP BY of the same rows
    started = time.perf_counter()
    written = rollups.rebuild_workspace(workspace)
    rebuild = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE usage_usagedaily")
    group = ", ".join(c for c in rollups.GROUP_COLUMNS if c != "day")
    day = "(bucket_start AT TIME ZONE 'UTC')::date"
    bare = (
        f"SELECT {group}, {day} AS day, SUM(quantity), COUNT(*) FROM usage_usagerecord "
        f"WHERE workspace_id = %s GROUP BY {group}, {day}"
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE scratch AS {bare} WITH NO DATA", [workspace.pk])
        cursor.execute(f"INSERT INTO scratch {bare}", [workspace.pk])
        transaction.set_rollback(True)
    reference = time.perf_counter() - started
    print(
        f"rebuild of {rows:,} base rows into {written:,} rollup rows, reference bare INSERT … SELECT … GROUP BY: {rows / reference:,.0f} rows/s"
    )
    print(
        f"  rollups.rebuild_workspace {'':26} {rows / rebuild:>9,.0f} rows/s   | {reference / rebuild:.2f}× the bare statement"
    )

    # -- one day of one integration, as a stored chunk refreshes it
    integration = workspace.integrations.order_by("pk").first()
    zone = rollups.zone_of(workspace)
    last = UsageRecord.objects.filter(integration=integration).latest("bucket_start").bucket_start
    target = rollups.local_day(last - timedelta(days=1), zone)
    start, end = rollups.day_bounds(target, target, zone)
    day_rows = UsageRecord.objects.filter(
        integration=integration, bucket_start__gte=start, bucket_start__lt=end
    ).count()

    def refresh() -> None:
        with transaction.atomic():
            rollups.refresh_days(integration.pk, {target})

    def bare_day() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {group}, SUM(quantity), COUNT(*) FROM usage_usagerecord WHERE integration_id = %s "
                f"AND bucket_start >= %s AND bucket_start < %s GROUP BY {group}",
                [integration.pk, start, end],
            )
            cursor.fetchall()

    ours, ref = seconds_of(refresh, args.repeat), seconds_of(bare_day, args.repeat)
    print(
        f"refresh of one day of one integration ({day_rows:,} base rows), reference bare SELECT … GROUP BY of that day: p50 {analytics.ms(statistics.median(ref))}"
    )
    analytics.report(
        "rollups.refresh_days (DELETE + INSERT … SELECT)",
        ours,
        f"{statistics.median(ours) / statistics.median(ref):.2f}× the bare aggregate",
    )

    # -- one hour stored again (all conflicts), with and without upkeep
    hour = last
    samples = [
        UsageSample(bucket_start=r.bucket_start, bucket_end=r.bucket_end, metric=r.metric, quantity=r.quantity + 1, unit=r.unit,
                    account=r.account, project=r.project, region=r.region, model=r.model)
        for r in UsageRecord.objects.filter(integration=integration, bucket_start=hour)
    ]  # fmt: skip

    def store_with_upkeep() -> None:
        with transaction.atomic():
            usage_store_samples(integration=integration, samples=samples)

    def store_without_upkeep() -> None:
        prepared = usage_prepare_samples(integration=integration, samples=samples)
        with transaction.atomic():
            usage_store_prepared(prepared=prepared)

    ours, ref = seconds_of(store_with_upkeep, args.repeat), seconds_of(store_without_upkeep, args.repeat)
    print(
        f"storing one hour again ({len(samples):,} samples, all conflicts), reference the same store without rollup upkeep: p50 {analytics.ms(statistics.median(ref))}"
    )
    analytics.report(
        "usage_store_samples with upkeep",
        ours,
        f"{statistics.median(ours) / statistics.median(ref):.2f}× without upkeep",
    )
    assert rollups.totals_match(workspace), "rollups differ from the base table after the benchmark"
    print(f"rollups match the base table ({UsageDaily.objects.filter(workspace=workspace).count():,} rollup rows)")


if __name__ == "__main__":
    main()
