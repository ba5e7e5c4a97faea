"""Benchmark: memory stays flat while exporting a large usage table (CSV and FOCUS 1.2).

Builds a table of --rows UsageRecords (bulk_create, 10,000 rows per UTC day: 8 models x 13
projects x 4 metrics per hour, plus daily cost rows; most rows attributed to an application and
a license) in a temporary SQLite database, then exports a tenth, half and all of it through the
page's streaming path (usage.queries.filtered → .values_list().iterator() → csv_pieces → bytes)
into a sink that only counts bytes. Each export runs in a fresh child process, so its peak RSS
(getrusage ru_maxrss) is its own; "growth" is that peak minus the child's RSS just before the
export. Flat memory = the same peak at every size.

    .venv/bin/python bench/export_memory.py                   # 1,000,000 rows (about 2 minutes)
    .venv/bin/python bench/export_memory.py --rows 3000000    # the "millions" figure
    .venv/bin/python bench/export_memory.py --tracemalloc     # also Python's traced peak (slower)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/export_memory.py

This measures the Python writer (FOCUS everywhere, the CSV on SQLite). PostgreSQL's CSV goes
through COPY (usage/export_copy.py); bench/analytics.py measures that one, memory included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ROWS_PER_DAY = 10_000
FIRST_DAY = date(2025, 1, 1)
MODELS = [f"model-{i}" for i in range(8)]
PROJECTS = [f"proj_{i:02d}" for i in range(13)]
METRICS = [
    ("input_tokens", "tokens"),
    ("output_tokens", "tokens"),
    ("cached_input_tokens", "tokens"),
    ("requests", "requests"),
]
WORKSPACE = "bench-export"


def setup_django(database_url: str) -> None:
    sys.path.insert(0, str(BASE_DIR))
    os.environ["DATABASE_URL"] = database_url
    os.environ.update(DEBUG="true", DOOW_ALLOW_PRIVATE_ENDPOINTS="true", CELERY_BROKER_URL="memory://")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doow.settings")
    import django

    django.setup()


def peak_rss_mib() -> float:
    """This process's peak resident set. VmHWM (Linux) starts afresh at exec; ru_maxrss would
    carry a large parent's peak over to its children."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------- building the table (child)
def build(rows: int) -> dict:
    """Insert `rows` records with executemany: the point is the export, so the table is made
    as fast as the database takes it (model instances would cost more than the insert)."""
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Workspace
    from integrations.models import Integration
    from usage.models import Application, License, UsageRecord

    call_command("migrate", verbosity=0)
    Workspace.objects.filter(slug=WORKSPACE).delete()
    workspace = Workspace.objects.create(name="Bench export", slug=WORKSPACE)
    integration = Integration(workspace=workspace, provider="openai", name="OpenAI (bench)")
    integration.set_credential({"api_key": "sk-admin-bench-0000000000000000"})
    integration.save()
    app = Application.objects.create(workspace=workspace, name="Support Bot", vendor="OpenAI")
    other = Application.objects.create(workspace=workspace, name="Internal tools", vendor="OpenAI")
    license_ = License.objects.create(
        workspace=workspace, application=app, plan_name="Scale tier", start_date=FIRST_DAY
    )

    fields = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {UsageRecord._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    prep = UsageRecord._meta.get_field("bucket_start")

    def as_db(moment: datetime) -> object:
        return prep.get_db_prep_value(moment, connection)

    now = as_db(timezone.now())
    started = time.perf_counter()
    for d in range(rows // ROWS_PER_DAY):
        day = datetime.combine(FIRST_DAY + timedelta(days=d), datetime.min.time(), tzinfo=UTC)
        batch = []
        for hour in range(24):
            start, end = as_db(day + timedelta(hours=hour)), as_db(day + timedelta(hours=hour + 1))
            for m, model in enumerate(MODELS):
                for p, project in enumerate(PROJECTS):
                    share = (m + p) % 10  # 7 in 10 to the app with a license, 2 to another, 1 none
                    application = app.pk if share < 7 else other.pk if share < 9 else None
                    for metric, unit in METRICS:
                        # fields: workspace, integration, provider, start, end, account, project, region, model,
                        # deployment, endpoint, resource, operation, api_key, metric, quantity, unit,
                        # provenance, updated_at, application, license, rule
                        batch.append((workspace.pk, integration.pk, "openai", start, end, "org-bench", project, "", model,
                                      "", "", "", "", "", metric, Decimal(1000 + hour * m + p), unit, "reported", now,
                                      application, license_.pk if share < 7 else None, None))  # fmt: skip
        start, end = as_db(day), as_db(day + timedelta(days=1))
        for model in MODELS:
            for operation in ("input", "output"):
                batch.append((workspace.pk, integration.pk, "openai", start, end, "org-bench", "", "", model, "", "", "",
                              operation, "", "cost", Decimal("12.345"), "USD", "reported", now, app.pk, None, None))  # fmt: skip
        assert len(batch) == ROWS_PER_DAY
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
    seconds = time.perf_counter() - started
    return {
        "rows": UsageRecord.objects.filter(workspace=workspace).count(),
        "seconds": seconds,
        "vendor": connection.vendor,
    }


# ---------------------------------------------------------------- one export (child process)
class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)


def export_child(fmt: str, days: int, trace: bool) -> dict:
    """One export of the first `days` days into a byte-counting sink."""
    import tracemalloc

    from accounts.models import Workspace
    from usage.export import csv_pieces, export_order, usage_csv_rows
    from usage.export_focus import usage_focus_rows
    from usage.queries import filtered

    rows_of = {"csv": usage_csv_rows, "focus": usage_focus_rows}[fmt]
    workspace = Workspace.objects.get(slug=WORKSPACE)
    params = {"date_from": str(FIRST_DAY), "date_to": str(FIRST_DAY + timedelta(days=days - 1))}
    records = export_order(filtered(workspace, params))
    sink = CountingSink()
    before = peak_rss_mib()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    lines = 0
    for piece in csv_pieces(rows_of(records)):
        lines += piece.count("\n")
        sink.write(piece.encode())  # what StreamingHttpResponse does with each piece
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    return {
        "rows": lines - 1,
        "seconds": seconds,
        "bytes": sink.bytes,
        "rss_before": before,
        "rss_peak": peak_rss_mib(),
        "traced_peak": traced,
    }


def run_child(database_url: str, *args: str) -> dict:
    command = [sys.executable, __file__, "--database-url", database_url, *args]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help=f"table size, a multiple of {ROWS_PER_DAY:,}")
    parser.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc's peak (slower)")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--export", choices=["csv", "focus"], help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    # Children: one builds the table, each of the others runs one export.
    if args.build or args.export:
        setup_django(args.database_url)
        result = build(args.build) if args.build else export_child(args.export, args.days, args.tracemalloc)
        print(json.dumps(result))
        return

    # The parent only orchestrates (no Django, no rows), so nothing it holds reaches the children.
    days = max(1, args.rows // ROWS_PER_DAY)
    database_url = (
        os.environ.get("DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp(prefix='doow-bench-export-')}/bench.sqlite3"
    )
    print(f"building {days * ROWS_PER_DAY:,} usage records ({days} days x {ROWS_PER_DAY:,} rows) …", flush=True)
    built = run_child(database_url, "--build", str(days * ROWS_PER_DAY))
    print(
        f"built {built['rows']:,} rows in {built['seconds']:.1f}s ({built['rows'] / built['seconds']:,.0f} rows/s) [{built['vendor']}]\n"
    )

    sizes = sorted({max(1, days // 10), max(1, days // 2), days})
    header = f"{'format':6} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'MB out':>8} {'RSS before':>11} {'peak RSS':>9} {'growth':>9}"
    print(header + (f" {'traced peak':>12}" if args.tracemalloc else ""))
    for fmt in ("csv", "focus"):
        for size in sizes:
            r = run_child(
                database_url, "--export", fmt, "--days", str(size), *(["--tracemalloc"] if args.tracemalloc else [])
            )
            line = (
                f"{fmt:6} {r['rows']:>10,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>9,.0f} {r['bytes'] / 1e6:>8.1f} "
                f"{r['rss_before']:>7.1f} MiB {r['rss_peak']:>5.1f} MiB {r['rss_peak'] - r['rss_before']:>+5.1f} MiB"
            )
            print(line + (f" {r['traced_peak']:>8.2f} MiB" if args.tracemalloc else ""), flush=True)
    print(
        f"\n[{built['vendor']}; peak RSS = VmHWM of a fresh process per export; growth = peak minus RSS before the export]"
    )


if __name__ == "__main__":
    main()
