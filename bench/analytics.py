"""Benchmark: the analytics pages, ingest, export and the dispatcher at millions of usage rows,
each figure printed beside its physical reference measured in the same run.

PostgreSQL only (the production database). The data set follows the analytics issue: one
workspace, hourly usage of 40 models (4 integrations of 10 models) × 25 projects × 4 metrics
per hour (4,000 rows an hour), loaded with COPY; projects map to 5 applications through rules,
one project in five stays unattributed; two licenses. Pages are fetched through Django's test
client as the workspace admin (server time: routing, queries, templates).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/analytics.py
    BENCH_ROWS=10000000 … bench/analytics.py           # the 10M figure (loads ~2 min more)
    … bench/analytics.py --only pages,ingest --repeat 30

The database `doow_bench` (or $BENCH_DB) on that server is dropped and created afresh unless --reuse is given
(then an existing load of the same size is kept and only measured).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# BENCH_DB names the scratch database, so two benchmark runs on one server never share one.
BENCH_DB = os.environ.get("BENCH_DB", "doow_bench")
WORKSPACE = "bench"
ADMIN = "bench-admin"
PROVIDERS = ("openai", "anthropic", "aws_bedrock", "azure_openai")
MODELS_PER_PROVIDER = 10
PROJECTS = [f"proj_{i:02d}" for i in range(25)]
METRICS = (("input_tokens", "tokens"), ("output_tokens", "tokens"), ("requests", "requests"), ("cost", "USD"))
ROWS_PER_HOUR = len(PROVIDERS) * MODELS_PER_PROVIDER * len(PROJECTS) * len(METRICS)
APPLICATIONS = ("Support Bot", "Search", "Copilot", "Analytics", "Back office")
COLUMNS = (
    "workspace_id", "integration_id", "provider", "bucket_start", "bucket_end", "account", "project", "region",
    "model", "deployment", "endpoint", "resource", "operation", "api_key", "metric", "quantity", "unit",
    "provenance", "stream", "updated_at", "application_id", "license_id", "rule_id",
)  # fmt: skip


def _server_url(database: str) -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/analytics.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    return urlunsplit(parts._replace(path="/" + database))


def prepare_database(reuse: bool) -> None:
    import psycopg

    with psycopg.connect(_server_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone()
        if exists and not reuse:
            conn.execute(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")
            exists = None
        if not exists:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = _server_url(BENCH_DB)


def setup_django() -> None:
    os.environ.update(
        DEBUG="false", SECRET_KEY="bench-secret-key", FERNET_KEYS="bench-fernet-key", DOOW_ENV_FILE="",
        DOOW_ALLOW_PRIVATE_ENDPOINTS="true", CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER="true",
        ALLOWED_HOSTS="testserver", STATIC_ROOT=str(BASE_DIR / "var" / "bench-static"),
    )  # fmt: skip
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doow.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("collectstatic", interactive=False, verbosity=0)  # production's manifest storage


# ---------------------------------------------------------------- figures
def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm caches, compile templates
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def report(label: str, times: list[float], reference: str = "") -> None:
    line = f"  {label:52} p50 {ms(statistics.median(times)):>9}  p95 {ms(percentile(times, 0.95)):>9}"
    print(line + (f"   | {reference}" if reference else ""), flush=True)


# ---------------------------------------------------------------- data
def _quantity(n: int, metric: str) -> str:
    if metric == "cost":
        return f"{n % 200_000 / 10_000:.4f}"  # up to $20.00 per row
    if metric == "requests":
        return str(1 + n % 50)
    return str(100 + n % 50_000)


def _null(value: int | None) -> str:
    return "\\N" if value is None else str(value)


def sample_lines(workspace_id: int, integrations: dict[str, int], hours: list[datetime], attribution) -> Iterator[str]:
    """COPY text lines, one hour at a time; quantities from cheap integer hashing, so the load
    is limited by the database, not by this generator."""
    now = datetime.now(UTC).isoformat()
    combos = []
    for provider in PROVIDERS:
        for m in range(MODELS_PER_PROVIDER):
            model = f"{provider}-model-{m}"
            for project in PROJECTS:
                app_id, license_id, rule_id = attribution(project)
                for metric, unit in METRICS:
                    head = f"{workspace_id}\t{integrations[provider]}\t{provider}\t"
                    dims = f"acct-1\t{project}\tus-east-1\t{model}\t\t\t\t\t\t{metric}\t"
                    tail = f"\t{unit}\treported\tusage\t{now}\t{_null(app_id)}\t{_null(license_id)}\t{_null(rule_id)}\n"
                    combos.append((head, dims, tail, metric, len(combos) * 2654435761))
    for hour in hours:
        start, end = hour.isoformat(), (hour + timedelta(hours=1)).isoformat()
        h = int(hour.timestamp()) // 3600 * 40503
        yield "".join(
            f"{head}{start}\t{end}\t{dims}{_quantity((salt ^ h) >> 7, metric)}{tail}" for head, dims, tail, metric, salt in combos
        )


def copy_lines(chunks: Iterator[str], table: str = "usage_usagerecord", columns: tuple[str, ...] = COLUMNS) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # psycopg 3
            for chunk in chunks:
                copy.write(chunk)


def load(rows: int) -> dict:
    """Workspace, admin, integrations, applications, rules, licenses, and `rows` usage rows
    (whole hours, ending at the last full hour) loaded by COPY. Returns the figures."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from accounts.models import Membership, Workspace
    from integrations.models import Integration
    from usage.models import Application, AttributionRule, License, UsageRecord

    call_command("migrate", verbosity=0)
    workspace = Workspace.objects.filter(slug=WORKSPACE).first()
    if workspace and UsageRecord.objects.filter(workspace=workspace).count() == rows // ROWS_PER_HOUR * ROWS_PER_HOUR:
        return {"reused": True}
    workspace = Workspace.objects.create(name="Bench Corp", slug=WORKSPACE)
    user = get_user_model().objects.create_user(ADMIN, password="bench-password-1")
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.ADMIN)
    integrations = {}
    for provider in PROVIDERS:
        integration = Integration(workspace=workspace, provider=provider, name=f"{provider} (bench)")
        integration.set_credential({"api_key": "bench-key-0000000000000000000000"})
        integration.save()
        integrations[provider] = integration.pk
    apps = [Application.objects.create(workspace=workspace, name=name) for name in APPLICATIONS]
    today = datetime.now(UTC).date()
    licenses = [
        License.objects.create(workspace=workspace, application=apps[0], plan_name="Enterprise", kind=License.Kind.COMMITMENT,
                               start_date=today.replace(day=1) - timedelta(days=60), committed_amount=Decimal("500000")),
        License.objects.create(workspace=workspace, application=apps[1], plan_name="Team", kind=License.Kind.PAY_AS_YOU_GO,
                               start_date=today.replace(month=1, day=1)),
    ]  # fmt: skip
    mapping: dict[str, tuple] = {}
    for i, project in enumerate(PROJECTS):
        if i % 5 == 4:
            mapping[project] = (None, None, None)  # unattributed
            continue
        app = apps[i % len(apps)]
        lic = next((x for x in licenses if x.application_id == app.pk), None)
        for provider in PROVIDERS:
            rule = AttributionRule.objects.create(
                workspace=workspace, provider=provider, project=project, application=app, license=lic, priority=100
            )
        mapping[project] = (app.pk, lic.pk if lic else None, rule.pk)  # the rule id is one of four: fine here

    hours = rows // ROWS_PER_HOUR
    last = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=hours)
    started = time.perf_counter()
    with transaction.atomic():
        copy_lines(sample_lines(workspace.pk, integrations, [first + timedelta(hours=h) for h in range(hours)], mapping.get))
    count = hours * ROWS_PER_HOUR
    copy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE usage_usagerecord")
    analyze_seconds = time.perf_counter() - started
    # The daily rollups every write path keeps (COPY bypasses them): rebuilt as a time zone
    # change would, so the overview reads what production would hold.
    from usage import rollups

    started = time.perf_counter()
    rollups.rebuild_workspace(workspace)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE usage_usagedaily")
    rollup_seconds = time.perf_counter() - started
    return {"rows": count, "copy_seconds": copy_seconds, "analyze_seconds": analyze_seconds, "rollup_seconds": rollup_seconds,
            "first": first, "last": last}


# ---------------------------------------------------------------- measurements
def measure_pages(repeat: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Workspace

    workspace = Workspace.objects.get(slug=WORKSPACE)
    client = Client()
    client.force_login(get_user_model().objects.get(username=ADMIN))
    integration = workspace.integrations.order_by("pk").first()
    today = datetime.now(UTC).date()
    since = (today - timedelta(days=30)).isoformat()

    def get(url: str, **extra: str) -> Callable[[], object]:
        def fetch() -> object:
            response = client.get(url, **extra)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return fetch

    # The physical reference: the bare aggregate the explorer's "30 days by model" needs.
    def raw_sum() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT model, metric, unit, SUM(quantity) FROM usage_usagerecord "
                "WHERE workspace_id = %s AND bucket_start >= %s GROUP BY model, metric, unit",
                [workspace.pk, since],
            )
            cursor.fetchall()

    reference = timed(raw_sum, max(3, repeat // 3))
    ref = f"raw SUM … GROUP BY model, 30 days, base table: p50 {ms(statistics.median(reference))}"
    # The overview's physical reference: the bare grouped read of the money rollups it makes
    # (last month's first day .. today), without counting, naming or rendering.
    def rollup_sum() -> None:
        first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT integration_id, day, metric, unit, provider, model, application_id, SUM(quantity) "
                "FROM usage_usagedaily WHERE workspace_id = %s AND day >= %s AND metric IN ('cost', 'estimated_cost') "
                "GROUP BY 1, 2, 3, 4, 5, 6, 7",
                [workspace.pk, first],
            )
            cursor.fetchall()

    rollup_reference = timed(rollup_sum, max(3, repeat // 3))
    rollup_ref = f"bare grouped SUM of the money rollups, 2 months: p50 {ms(statistics.median(rollup_reference))}"
    overview = reverse("accounts:workspace", kwargs={"ws": WORKSPACE})
    explorer = reverse("usage:explorer", kwargs={"ws": WORKSPACE})
    pages = [
        ("overview (workspace home)", get(overview), rollup_ref),
        ("overview, split by model (htmx chart)", get(f"{overview}?by=model", HTTP_HX_REQUEST="true"), ""),
        ("explorer, default view", get(explorer), ""),
        ("explorer, 30 days split by model", get(f"{explorer}?date_from={since}&group=model"), ref),
        ("explorer, htmx filter (one provider)", get(f"{explorer}?provider=anthropic", HTTP_HX_REQUEST="true"), ""),
        ("integration detail", get(reverse("integrations:detail", kwargs={"ws": WORKSPACE, "pk": integration.pk})), ""),
        ("integration usage section", get(reverse("integrations:usage", kwargs={"ws": WORKSPACE, "pk": integration.pk}), HTTP_HX_REQUEST="true"), ""),
        ("unattributed usage", get(reverse("inventory:unattributed", kwargs={"ws": WORKSPACE})), ""),
        ("applications", get(reverse("inventory:applications", kwargs={"ws": WORKSPACE})), ""),
        ("licenses (usage)", get(reverse("usage:licenses", kwargs={"ws": WORKSPACE})), ""),
    ]  # fmt: skip
    print(f"pages ({repeat} requests each, after one warm-up):", flush=True)
    for label, fetch, reference_text in pages:
        report(label, timed(fetch, repeat), reference_text)


class CountingSink:
    """Counts what a writer produces; keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0

    def write(self, text: str | bytes) -> int:
        self.bytes += len(text)
        self.lines += text.count("\n" if isinstance(text, str) else b"\n")
        return len(text)

    def flush(self) -> None:
        pass


def measure_ingest(samples_count: int = 100_000) -> None:
    """100k new samples through the store, then the same again (restatement: every key
    conflicts), beside COPY of the same rows into the same table (rolled back)."""
    from django.db import connection, transaction

    from accounts.models import Workspace
    from integrations.models import Integration
    from integrations.providers.base import UsageSample
    from usage.store import usage_store_samples

    workspace = Workspace.objects.get(slug=WORKSPACE)
    integration = Integration(workspace=workspace, provider="openai", name=f"ingest {time.time_ns()} (bench)")
    integration.set_credential({"api_key": "bench-key-0000000000000000000000"})
    integration.save()
    hours = max(1, samples_count // (MODELS_PER_PROVIDER * len(PROJECTS) * len(METRICS)))
    first = datetime(2024, 1, 1, tzinfo=UTC)  # history older than the loaded hours
    samples = [
        UsageSample(
            bucket_start=first + timedelta(hours=h), bucket_end=first + timedelta(hours=h + 1), metric=metric,
            quantity=Decimal(_quantity(h * 7919 + m * 104729 + p * 31 + i, metric)), unit=unit, account="acct-1",
            project=project, region="us-east-1", model=f"openai-model-{m}",
        )
        for h in range(hours) for m in range(MODELS_PER_PROVIDER) for p, project in enumerate(PROJECTS)
        for i, (metric, unit) in enumerate(METRICS)
    ]  # fmt: skip
    n = len(samples)

    class Rollback(Exception):
        pass

    started = time.perf_counter()
    try:
        with transaction.atomic():
            lines = (
                f"{workspace.pk}\t{integration.pk}\topenai\t{s.bucket_start.isoformat()}\t{s.bucket_end.isoformat()}\t"
                f"{s.account}\t{s.project}\t{s.region}\t{s.model}\t\t\t\t\t\t{s.metric}\t{s.quantity}\t{s.unit}\t"
                f"reported\tusage\t{s.bucket_start.isoformat()}\t\\N\t\\N\t\\N\n"
                for s in samples
            )
            copy_lines(iter(["".join(lines)]))
            copy_seconds = time.perf_counter() - started
            raise Rollback
    except Rollback:
        pass
    copy_rate = n / copy_seconds
    print(f"ingest of {n:,} samples (attribution and upkeep included), reference COPY into the same table: {copy_rate:,.0f} rows/s", flush=True)
    for label in ("new rows", "restated rows (every key conflicts)"):
        started = time.perf_counter()
        with transaction.atomic():
            usage_store_samples(integration=integration, samples=samples)
        seconds = time.perf_counter() - started
        print(f"  {label:52} {n / seconds:>9,.0f} rows/s   | {n / seconds / copy_rate:.2f}× COPY", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM usage_usagerecord WHERE integration_id = %s", [integration.pk])
    integration.delete()


def measure_export() -> None:
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Workspace

    workspace = Workspace.objects.get(slug=WORKSPACE)
    sink = CountingSink()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        query = f"COPY (SELECT {', '.join(COLUMNS)} FROM usage_usagerecord WHERE workspace_id = {workspace.pk}) TO STDOUT WITH CSV"
        with cursor.cursor.copy(query) as copy:
            for data in copy:
                sink.write(bytes(data))
    copy_seconds = time.perf_counter() - started
    copy_rate = sink.lines / copy_seconds
    print(f"CSV export of the workspace ({sink.lines:,} rows), reference COPY … TO STDOUT CSV: {copy_rate:,.0f} rows/s", flush=True)
    for fmt in ("csv", "focus"):
        sink = CountingSink()
        started = time.perf_counter()
        call_command("export_usage", "--workspace", WORKSPACE, "--format", fmt, stdout=sink)
        seconds = time.perf_counter() - started
        rate = (sink.lines - 1) / seconds
        print(f"  export_usage --format {fmt:5}  {sink.bytes / 2**20:,.0f} MiB {'':22} {rate:>9,.0f} rows/s   | {rate / copy_rate:.2f}× COPY", flush=True)


def measure_many_integrations(count: int, repeat: int) -> None:
    """The integration list with `count` integrations in the workspace, and one dispatcher tick
    over `count` due integrations (queries counted; tasks published to an in-memory broker)."""
    from celery import current_app
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import Membership, Workspace
    from integrations import engine
    from integrations.models import Integration

    slug = "bench-many"
    Workspace.objects.filter(slug=slug).delete()
    workspace = Workspace.objects.create(name="Bench Many", slug=slug)
    user = get_user_model().objects.get(username=ADMIN)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.ADMIN)
    template = Integration(workspace=workspace, provider="openai", name="template")
    template.set_credential({"api_key": "bench-key-0000000000000000000000"})
    past = timezone.now() - timedelta(minutes=5)
    Integration.objects.bulk_create(
        [
            Integration(workspace=workspace, provider=PROVIDERS[i % len(PROVIDERS)], name=f"Integration {i:05d}",
                        credential=template.credential, next_sync_at=past)
            for i in range(count)
        ],
        batch_size=2000,
    )  # fmt: skip
    client = Client()
    client.force_login(user)
    url = reverse("integrations:list", kwargs={"ws": slug})

    def page() -> None:
        assert client.get(url).status_code == 200

    print(f"{count:,} integrations in one workspace:", flush=True)
    report("integration list", timed(page, repeat))
    current_app.conf.task_always_eager = False
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        enqueued = engine.integration_dispatch_due()
        seconds = time.perf_counter() - started
    print(f"  dispatcher, one tick over {count:,} due: {len(enqueued):,} enqueued, {len(queries.captured_queries):,} queries, {ms(seconds)}", flush=True)
    current_app.conf.task_always_eager = True
    Workspace.objects.filter(slug=slug).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "1000000")))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep an existing load of the same size")
    parser.add_argument("--only", default="pages,ingest,export,many", help="comma list of: pages, ingest, export, many")
    parser.add_argument("--integrations", type=int, default=10_000, help="for the list page and the dispatcher")
    args = parser.parse_args()
    prepare_database(args.reuse)
    setup_django()
    from django.db import connection

    figures = load(args.rows)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(f"PostgreSQL {version}, {os.cpu_count()} cores; {args.rows:,} usage rows requested ({ROWS_PER_HOUR:,} per hour)")
    if not figures.get("reused"):
        rate = figures["rows"] / figures["copy_seconds"]
        print(f"load: COPY {figures['rows']:,} rows in {figures['copy_seconds']:.1f} s ({rate:,.0f} rows/s), ANALYZE {figures['analyze_seconds']:.1f} s")
        print(f"load: daily rollups rebuilt in {figures['rollup_seconds']:.1f} s (the overview reads them)")
    only = set(args.only.split(","))
    if "pages" in only:
        measure_pages(args.repeat)
    if "ingest" in only:
        measure_ingest()
    if "export" in only:
        measure_export()
    if "many" in only:
        measure_many_integrations(args.integrations, max(5, args.repeat // 2))


if __name__ == "__main__":
    main()
