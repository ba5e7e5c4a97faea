"""Benchmark: a usage CSV import job (the worker's side of an upload), phase by phase.

Generates a Doow-export CSV of N rows, then times what usage/import_jobs.py does with it:
checking every line (parse), attributing and compiling the rows (prepare, outside any
transaction), and the one transaction that stores them (on SQLite: how long the write lock
is held), then the whole job again end to end (a re-import of the same file). As a physical
reference from the same run it times a raw sqlite3 `executemany` of N rows with the same
number of columns into a bare table (no ORM, no unique index), and reports peak memory.

    .venv/bin/python bench/import_throughput.py [--rows 200000]         # SQLite in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/import_throughput.py
"""

from __future__ import annotations

import argparse
import csv
import io
import resource
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from bench.django_setup import start  # noqa: E402

tmp = start()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from accounts.models import Workspace  # noqa: E402
from integrations.models import Integration  # noqa: E402
from usage import importer  # noqa: E402
from usage.export import CSV_COLUMNS  # noqa: E402
from usage.import_jobs import usage_import_request, usage_import_run  # noqa: E402
from usage.store import usage_prepare_samples, usage_store_prepared  # noqa: E402


def make_csv(rows: int) -> bytes:
    """Hourly input tokens for 20 models × 10 projects, as many hours back as `rows` needs."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(rows):
        hour = start + timedelta(hours=i // 200)
        row = {
            "bucket_start": f"{hour:%Y-%m-%dT%H:%M:%SZ}",
            "bucket_end": f"{hour + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
            "account": "acct",
            "project": f"proj_{i % 10}",
            "model": f"model-{i // 10 % 20}",
            "metric": "input_tokens",
            "quantity": str(i),
            "unit": "tokens",
        }
        writer.writerow(
            [row.get(column, "") for column in CSV_COLUMNS]
        )  # by name: the export's columns grow at the end
    return out.getvalue().encode()


def reference(rows: int, columns: int) -> float:
    """Seconds for sqlite3.executemany of `rows` rows into a bare table in a temp file."""
    db = sqlite3.connect(tmp / "reference.sqlite3")
    db.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(columns))})")
    values = [tuple(f"value-{r}-{c}" for c in range(columns)) for r in range(rows)]
    started = time.perf_counter()
    with db:
        db.executemany(f"INSERT INTO t VALUES ({', '.join('?' * columns)})", values)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def line(label: str, rows: int, seconds: float) -> None:
    print(f"{label:44} {seconds:7.2f}s {rows / seconds:10.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    call_command("migrate", verbosity=0)
    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    integration = Integration(
        workspace=workspace, provider="authress", name="Bench import", settings={"base_url": "http://127.0.0.1:9"}
    )
    integration.set_credential({"access_key": "sc_bench.kid.acc_bench.secret"})
    integration.save()
    data = make_csv(rows)
    print(f"{rows} rows, {len(data) / 1024 / 1024:.1f} MB, {connection.vendor}")

    started = time.perf_counter()
    parsed = importer.parse_usage_csv(data, provider=integration.provider, integration_id=integration.pk)
    line("check every line (parse)", rows, time.perf_counter() - started)
    started = time.perf_counter()
    prepared = [
        usage_prepare_samples(integration=integration, samples=parsed.samples[i : i + importer.PROGRESS_EVERY])
        for i in range(0, rows, importer.PROGRESS_EVERY)
    ]
    line("attribute + compile (outside the transaction)", rows, time.perf_counter() - started)
    started = time.perf_counter()
    with transaction.atomic():
        for batch in prepared:
            usage_store_prepared(prepared=batch)
    line("store: the one transaction (write lock held)", rows, time.perf_counter() - started)
    del parsed, prepared

    started = time.perf_counter()
    job = usage_import_request(
        integration=integration, stream=io.BytesIO(data), size=len(data), source="bench.csv", enqueue=False
    )
    job = usage_import_run(job_id=job.pk)
    assert job.status == job.Status.DONE and job.rows == rows, (job.status, job.error, job.problems[:3])
    line("whole import job again (same file: replaces)", rows, time.perf_counter() - started)

    columns = len([f for f in integration.usage_records.model._meta.concrete_fields if not f.primary_key])
    line(f"reference: raw sqlite3 executemany, {columns} columns", rows, reference(rows, columns))
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
