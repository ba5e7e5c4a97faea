"""Benchmark: the analytics pages, ingest, export and the dispatcher at millions of usage rows,
each figure printed beside its physical reference measured in the same run.

PostgreSQL only (the production database). The data set follows the analytics issue: one
workspace, hourly usage of 40 models (4 integrations of 10 models) × 25 projects × 4 metrics
per hour (4,000 rows an hour), loaded with COPY; projects map to 5 applications through rules,
one project in five stays unattributed; two licenses. Pages are fetched through Django's test
client as the workspace admin (server time: routing, queries, templates).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/analytics.py
    BENCH_ROWS=10000000 … bench/analytics.py           # the 10M figure (loads ~2 min more)
    BENCH_DB=dispatch_bench BENCH_BROKER_URL=redis://127.0.0.1:6379/5 … bench/analytics.py --rows 0 --only dispatch
    … bench/analytics.py --only pages,ingest --repeat 30
    … bench/analytics.py --reuse --only export --export-rounds 7 --no-python-writers

The database `doow_bench` (or $BENCH_DB) on that server is dropped and created afresh unless --reuse is given
(then an existing load of the same size is kept and only measured).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
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
    "provenance", "updated_at", "application_id", "license_id", "rule_id", "stream",
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
        DOOW_ALLOW_PRIVATE_ENDPOINTS="true", CELERY_BROKER_URL=os.environ.get("BENCH_BROKER_URL", "memory://"),
        CELERY_TASK_ALWAYS_EAGER="true",
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
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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
                    tail = f"\t{unit}\treported\t{now}\t{_null(app_id)}\t{_null(license_id)}\t{_null(rule_id)}\tusage\n"
                    combos.append((head, dims, tail, metric, len(combos) * 2654435761))
    for hour in hours:
        start, end = hour.isoformat(), (hour + timedelta(hours=1)).isoformat()
        h = int(hour.timestamp()) // 3600 * 40503
        yield "".join(
            f"{head}{start}\t{end}\t{dims}{_quantity((salt ^ h) >> 7, metric)}{tail}"
            for head, dims, tail, metric, salt in combos
        )


def copy_lines(chunks: Iterator[str], table: str = "usage_usagerecord", columns: tuple[str, ...] = COLUMNS) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if (
            table == "usage_usagerecord"
        ):  # the provider's labels: none in the synthetic load (Django sets no DB default)
            cursor.execute("ALTER TABLE usage_usagerecord ALTER COLUMN labels SET DEFAULT '{}'::jsonb")
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # psycopg 3
            for chunk in chunks:
                copy.write(chunk)


ROLLUP_TABLES = ("usage_usagedaily", "usage_usagedailynarrow", "usage_usagedailyproject", "usage_usagedailytotal")


def vacuum_rollups() -> None:
    """VACUUM ANALYZE every rollup level (fresh statistics and visibility map for the pages)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ROLLUP_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")


def load(rows: int) -> dict:
    """Workspace, admin, integrations, applications, rules, licenses, and `rows` usage rows
    (whole hours, ending at the last full hour) loaded by COPY. Returns the figures."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Sum

    from accounts.models import Membership, Workspace
    from integrations.models import Integration
    from usage import rollups
    from usage.models import Application, AttributionRule, License, UsageRecord

    call_command("migrate", verbosity=0)
    workspace = Workspace.objects.filter(slug=WORKSPACE).first()
    count = rows // ROWS_PER_HOUR * ROWS_PER_HOUR
    if workspace and UsageRecord.objects.filter(workspace=workspace).count() == count:
        # Rollups of a load interrupted before they were built (or of older code) are rebuilt.
        if rollups.daily_for(workspace).aggregate(n=Sum("rows"))["n"] != count:
            started = time.perf_counter()
            written = rollups.rebuild_workspace(workspace)
            vacuum_rollups()
            print(f"rollups rebuilt: {written:,} daily rows in {time.perf_counter() - started:.1f} s", flush=True)
        ensure_budgets(workspace)
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
    ensure_budgets(workspace)

    hours = rows // ROWS_PER_HOUR
    last = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=hours)
    started = time.perf_counter()
    with transaction.atomic():
        copy_lines(
            sample_lines(workspace.pk, integrations, [first + timedelta(hours=h) for h in range(hours)], mapping.get)
        )
    copy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE usage_usagerecord")
    analyze_seconds = time.perf_counter() - started
    # COPY bypasses the store, so the daily rollups are built afterwards, as `rebuild_rollups` does.
    started = time.perf_counter()
    rollup_rows = rollups.rebuild_workspace(workspace)
    vacuum_rollups()
    rollup_seconds = time.perf_counter() - started
    return {
        "rows": count, "copy_seconds": copy_seconds, "analyze_seconds": analyze_seconds, "first": first, "last": last,
        "rollup_rows": rollup_rows, "rollup_seconds": rollup_seconds,
    }  # fmt: skip


def ensure_budgets(workspace) -> None:
    """One budget of each scope, so the overview's budget card (read from the month's rollups)
    is inside the measured time; kept on a reused load of older code too."""
    from alerts.models import Budget
    from usage.models import Application, License

    app = Application.objects.get(workspace=workspace, name=APPLICATIONS[0])
    scopes = {
        "Whole company": {"scope": Budget.Scope.WORKSPACE},
        f"{APPLICATIONS[0]} budget": {"scope": Budget.Scope.APPLICATION, "application": app},
        "OpenAI budget": {"scope": Budget.Scope.PROVIDER, "provider": "openai"},
        "Enterprise licence budget": {
            "scope": Budget.Scope.LICENSE, "license": License.objects.filter(workspace=workspace).order_by("pk").first(),
        },
    }  # fmt: skip
    for name, fields in scopes.items():
        Budget.objects.get_or_create(workspace=workspace, name=name, defaults={**fields, "amount": Decimal("250000")})


# ---------------------------------------------------------------- measurements
def measure_pages(repeat: int) -> None:
    """Every aggregating page of the analytics issue, through the test client as the admin,
    beside the bare aggregates they stand for, measured in the same run."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Workspace
    from usage.models import License

    workspace = Workspace.objects.get(slug=WORKSPACE)
    client = Client()
    client.force_login(get_user_model().objects.get(username=ADMIN))
    integration = workspace.integrations.order_by("pk").first()
    license_ = License.objects.filter(workspace=workspace).order_by("pk").first()
    today = datetime.now(UTC).date()
    since = (today - timedelta(days=30)).isoformat()
    quarter = (today - timedelta(days=90)).isoformat()

    def get(url: str, **extra: str) -> Callable[[], object]:
        def fetch() -> object:
            response = client.get(url, **extra)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return fetch

    def sql(statement: str, params: list) -> Callable[[], None]:
        def run() -> None:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                cursor.fetchall()

        return run

    # The physical references: the bare aggregate "30 days split by model" needs, over the
    # hourly base table (what the pages did before) and over the daily rollups (what they read).
    by_model = "SELECT model, metric, unit, SUM(quantity) FROM {table} WHERE workspace_id = %s AND {column} >= %s GROUP BY model, metric, unit"
    base_ref = timed(
        sql(by_model.format(table="usage_usagerecord", column="bucket_start"), [workspace.pk, since]),
        max(3, repeat // 3),
    )
    daily_ref = timed(sql(by_model.format(table="usage_usagedaily", column="day"), [workspace.pk, since]), repeat)
    narrow_ref = timed(
        sql(by_model.format(table="usage_usagedailynarrow", column="day"), [workspace.pk, since]), repeat
    )
    by_project = by_model.replace("model", "project")
    project_daily = timed(sql(by_project.format(table="usage_usagedaily", column="day"), [workspace.pk, since]), repeat)
    project_level = timed(
        sql(by_project.format(table="usage_usagedailyproject", column="day"), [workspace.pk, since]), repeat
    )
    everything = "SELECT provider, metric, unit, SUM(quantity) FROM {table} WHERE workspace_id = %s GROUP BY provider, metric, unit"
    all_ref = timed(sql(everything.format(table="usage_usagedaily"), [workspace.pk]), repeat)
    all_narrow = timed(sql(everything.format(table="usage_usagedailynarrow"), [workspace.pk]), repeat)
    all_total = timed(sql(everything.format(table="usage_usagedailytotal"), [workspace.pk]), repeat)
    month_start = today.replace(day=1).isoformat()
    mtd = "SELECT provider, day, metric, unit, SUM(quantity) FROM {table} WHERE workspace_id = %s AND day >= %s GROUP BY provider, day, metric, unit"
    mtd_ref = timed(sql(mtd.format(table="usage_usagedaily"), [workspace.pk, month_start]), repeat)
    mtd_narrow = timed(sql(mtd.format(table="usage_usagedailynarrow"), [workspace.pk, month_start]), repeat)
    counts = {}
    with connection.cursor() as cursor:
        for table in ROLLUP_TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE workspace_id = %s", [workspace.pk])
            counts[table] = cursor.fetchone()[0]
    print(
        f"rollup rows: daily {counts['usage_usagedaily']:,}, narrow {counts['usage_usagedailynarrow']:,}, "
        f"project {counts['usage_usagedailyproject']:,}, total {counts['usage_usagedailytotal']:,}"
    )
    ref_30 = (
        f"bare SUM … GROUP BY model, 30 days: base table p50 {ms(statistics.median(base_ref))}, "
        f"daily rollup p50 {ms(statistics.median(daily_ref))}, narrow rollup p50 {ms(statistics.median(narrow_ref))}"
    )
    ref_all = (
        f"bare SUM … GROUP BY provider, all days: daily rollup p50 {ms(statistics.median(all_ref))}, "
        f"narrow rollup p50 {ms(statistics.median(all_narrow))}, total rollup p50 {ms(statistics.median(all_total))}"
    )
    ref_project = (
        f"bare SUM … GROUP BY project, 30 days: daily rollup p50 {ms(statistics.median(project_daily))}, "
        f"project rollup p50 {ms(statistics.median(project_level))}"
    )
    ref_mtd = (
        f"bare SUM … GROUP BY provider, day, this month: daily rollup p50 {ms(statistics.median(mtd_ref))}, "
        f"narrow rollup p50 {ms(statistics.median(mtd_narrow))}"
    )
    # The floor: the smallest page of the same stack (session, membership, one tiny query, a
    # template), so the cost of rendering at all on this machine, now, is printed too.
    runs = reverse("integrations:runs", kwargs={"ws": WORKSPACE, "pk": integration.pk})
    floor = timed(get(runs, HTTP_HX_REQUEST="true"), repeat)
    floor_text = f"floor: the integration's runs section (htmx), p50 {ms(statistics.median(floor))}"
    explorer = reverse("usage:explorer", kwargs={"ws": WORKSPACE})
    detail = reverse("integrations:detail", kwargs={"ws": WORKSPACE, "pk": integration.pk})
    section = reverse("integrations:usage", kwargs={"ws": WORKSPACE, "pk": integration.pk})
    htmx = {"HTTP_HX_REQUEST": "true"}
    pages = [
        ("explorer, default view (this month, by provider)", get(explorer), ref_mtd),
        ("explorer, all days, by provider", get(f"{explorer}?range=all"), ref_all),
        ("explorer, 30 days split by model", get(f"{explorer}?date_from={since}&by=model"), ref_30),
        ("explorer, 30 days split by project", get(f"{explorer}?date_from={since}&by=project"), ref_project),
        ("explorer, 90 days by application, per week", get(f"{explorer}?date_from={quarter}&by=application&period=week"), ""),
        ("explorer, all days by integration, per month", get(f"{explorer}?range=all&by=integration&period=month"), ""),
        ("explorer, model + project filter, by region", get(f"{explorer}?range=all&model=openai-model-3&project=proj_07&by=region"), ""),
        ("explorer, unattributed, by license, cost chart", get(f"{explorer}?range=all&application=none&by=license&chart=cost"), ""),
        ("explorer, htmx filter (one provider)", get(f"{explorer}?provider=anthropic", **htmx), ""),
        ("explorer, htmx, rows page 2,000", get(f"{explorer}?range=all&provider=anthropic&page=2000", **htmx), ""),
        ("integration detail", get(detail), ""),
        ("integration usage section (htmx)", get(section, **htmx), ""),
        ("integration usage section, model filter (htmx)", get(f"{section}?model=openai-model-1&metric=cost", **htmx), ""),
        # (Without view=rows the section shows its summary; the page number is then ignored.)
        ("integration usage section, page=1,000 without view=rows (htmx)", get(f"{section}?page=1000", **htmx), ""),
        ("integration usage section, rows page 1,000 (htmx)", get(f"{section}?view=rows&page=1000", **htmx), ""),
        ("unattributed usage", get(reverse("usage_settings:unattributed", kwargs={"ws": WORKSPACE})), ""),
        ("applications", get(reverse("usage_settings:applications", kwargs={"ws": WORKSPACE})), ""),
        ("licenses (usage)", get(reverse("usage:licenses", kwargs={"ws": WORKSPACE})), ""),
        ("license detail (commitment burn-down)", get(reverse("usage:license", kwargs={"ws": WORKSPACE, "pk": license_.pk})), ""),
    ]  # fmt: skip
    overview = optional_url("accounts:workspace", ws=WORKSPACE)
    if overview:  # the spend overview, where it exists
        pages.insert(0, ("overview", get(overview), ""))
    print(
        f"pages ({repeat} requests each, after one warm-up; server time through the test client; {floor_text}):",
        flush=True,
    )
    for label, fetch, reference_text in pages:
        report(label, timed(fetch, repeat), reference_text)


def optional_url(name: str, **kwargs: str) -> str | None:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


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


def measure_ingest(samples_count: int = 100_000, rounds: int = 3) -> None:
    """100k new samples through the store (`usage_store_samples`: attribution, and whatever
    upkeep the store does, included), the same 100k again (a restatement: every key conflicts,
    values unchanged, as most of a provider's re-read window is), the same keys with every
    quantity changed, and those again as the sync engine stores a chunk it read completely
    (`usage_store_chunk` with the window answered: the removal of vanished rows included), each
    beside COPY of the same rows into the same table measured in the same round: committed
    (the store's transaction commits, and its commit waits for the WAL of every row written: so
    does this reference's; its rows are deleted afterwards, untimed) and rolled back (the
    earlier reference, no WAL flush). Rounds alternate references and store, so a noisy
    neighbour hits all three; each figure is the median over the rounds, each ratio the median
    of the rounds' ratios."""
    from django.db import connection, transaction

    from accounts.models import Workspace
    from integrations.models import Integration
    from integrations.providers.base import Answered, UsageSample, Window
    from usage.store import usage_store_chunk, usage_store_samples

    workspace = Workspace.objects.get(slug=WORKSPACE)
    hours = max(1, samples_count // (MODELS_PER_PROVIDER * len(PROJECTS) * len(METRICS)))
    first = datetime(2024, 1, 1, tzinfo=UTC)  # history older than the loaded hours

    def samples(bump: int = 0) -> list[UsageSample]:
        return [
            UsageSample(
                bucket_start=first + timedelta(hours=h), bucket_end=first + timedelta(hours=h + 1), metric=metric,
                quantity=Decimal(_quantity(h * 7919 + m * 104729 + p * 31 + i, metric)) + bump, unit=unit,
                account="acct-1", project=project, region="us-east-1", model=f"openai-model-{m}", stream="usage",
            )
            for h in range(hours) for m in range(MODELS_PER_PROVIDER) for p, project in enumerate(PROJECTS)
            for i, (metric, unit) in enumerate(METRICS)
        ]  # fmt: skip

    batch, changed = samples(), samples(bump=1)
    n = len(batch)

    class Rollback(Exception):
        pass

    def copy_reference(integration: Integration, commit: bool = False) -> float:
        """COPY of the batch's rows for `integration` (one without rows), rolled back; or
        committed (`commit`: the commit's WAL flush timed too, as a store's is) and then
        deleted, untimed."""
        started = time.perf_counter()
        try:
            with transaction.atomic():
                lines = (
                    f"{workspace.pk}\t{integration.pk}\topenai\t{s.bucket_start.isoformat()}\t{s.bucket_end.isoformat()}\t"
                    f"{s.account}\t{s.project}\t{s.region}\t{s.model}\t\t\t\t\t\t{s.metric}\t{s.quantity}\t{s.unit}\t"
                    f"reported\t{s.bucket_start.isoformat()}\t\\N\t\\N\t\\N\tusage\n"
                    for s in batch
                )
                copy_lines(iter(["".join(lines)]))
                seconds = time.perf_counter() - started
                if not commit:
                    raise Rollback
            seconds = time.perf_counter() - started
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM usage_usagerecord WHERE integration_id = %s", [integration.pk])
        except Rollback:
            pass
        return seconds

    answered = [Answered("usage", Window(first, first + timedelta(hours=hours)))]

    def store(integration: Integration, rows: list[UsageSample], answers: list[Answered] | None = None) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            if answers is None:
                usage_store_samples(integration=integration, samples=rows)
            else:  # as the sync engine stores a chunk it read completely: vanished rows removed
                usage_store_chunk(integration=integration, samples=rows, answered=answers)
        return time.perf_counter() - started

    labels = (
        "new rows", "restated rows (every key conflicts, values unchanged)", "restated rows, every quantity changed",
        "restated, unchanged, window answered (removal too)",
    )  # fmt: skip
    figures: dict[str, list[tuple[float, float, float]]] = {label: [] for label in labels}  # rows/s, × two COPYs
    references, committed = [], []

    def new_integration() -> Integration:
        integration = Integration(workspace=workspace, provider="openai", name=f"ingest {time.time_ns()} (bench)")
        integration.set_credential({"api_key": "bench-key-0000000000000000000000"})
        integration.save()
        return integration

    empty = new_integration()  # the reference's rows are new rows too
    for _ in range(rounds):
        integration = new_integration()
        steps = zip(labels, (batch, batch, changed, changed), (None, None, None, answered), strict=True)
        for label, rows, answers in steps:
            reference = n / copy_reference(empty)
            durable = n / copy_reference(empty, commit=True)
            rate = n / store(integration, rows, answers)
            references.append(reference)
            committed.append(durable)
            figures[label].append((rate, rate / durable, rate / reference))
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM usage_usagerecord WHERE integration_id = %s", [integration.pk])
        integration.delete()
    empty.delete()
    print(
        f"ingest of {n:,} samples, {rounds} rounds (attribution, upkeep and the store's commit included), reference "
        f"COPY into the same table, committed: median {statistics.median(committed):,.0f} rows/s; rolled back "
        f"(no WAL flush): {statistics.median(references):,.0f} rows/s (load average now {_load()})",
        flush=True,
    )
    for label, values in figures.items():
        rate = statistics.median(v[0] for v in values)
        ratios = ", ".join(f"{v[1]:.2f}" for v in values)
        rolled = ", ".join(f"{v[2]:.2f}" for v in values)
        print(
            f"  {label:52} {rate:>9,.0f} rows/s   | {statistics.median(v[1] for v in values):.2f}× committed COPY "
            f"(rounds: {ratios}); {statistics.median(v[2] for v in values):.2f}× rolled-back COPY (rounds: {rolled})",
            flush=True,
        )


def measure_export(rounds: int = 5, python_writers: bool = True) -> None:
    """The workspace's CSV export (`export_usage > FILE`, and the page's stream) beside the
    reference, `COPY (SELECT <the table's columns> …) TO STDOUT CSV` of the same rows, each
    writing its bytes into a file of the same directory the same way. Rounds alternate reference,
    command and page; each round's ratio is the reference's time over the contender's, so a
    neighbour's burst moves one round, not one side of the comparison: the median and the
    minimum of the rounds' ratios are printed, by the wall clock and by CPU time (this process
    plus its database backend, read from /proc: steadier than wall time on a shared machine).
    Memory as Python's traced peak while the command streams; the Python writers once each."""
    import tempfile
    import tracemalloc

    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Workspace
    from usage.export import export_order
    from usage.export_copy import usage_csv_stream, usage_csv_write
    from usage.export_focus_copy import usage_focus_write
    from usage.queries import filtered

    workspace = Workspace.objects.get(slug=WORKSPACE)
    folder = Path(tempfile.mkdtemp(prefix="doow-export-bench-"))
    target = folder / "export.csv"

    def reference() -> None:
        # The cheapest client psycopg has: COPY's messages written by a C loop, no Python per row.
        query = f"COPY (SELECT {', '.join(COLUMNS)} FROM usage_usagerecord WHERE workspace_id = {workspace.pk}) TO STDOUT WITH CSV"
        with target.open("wb") as out, connection.cursor() as cursor, cursor.cursor.copy(query) as copy:
            out.writelines(copy)

    def command(fmt: str) -> Callable[[], None]:
        def run() -> None:  # as `export_usage … > FILE` runs: standard output is the file
            with target.open("w") as stdout:
                call_command("export_usage", "--workspace", WORKSPACE, "--format", fmt, stdout=stdout)

        return run

    def page_stream() -> None:
        # What the page's StreamingHttpResponse sends, into the file instead of a socket.
        with target.open("wb") as out:
            for piece in usage_csv_stream(export_order(filtered(workspace, {}))):
                out.write(piece)

    server_cpu = _backend_cpu(connection)

    def timed(fn: Callable[[], None]) -> tuple[float, float, int, int]:
        """Wall seconds, CPU seconds (this process and its database backend), then the file's
        bytes and lines (counted after the clocks stop)."""
        target.unlink(missing_ok=True)
        server, client, started = server_cpu(), time.process_time(), time.perf_counter()
        fn()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - client + server_cpu() - server
        lines = 0
        with target.open("rb") as written:
            while chunk := written.read(1 << 22):
                lines += chunk.count(b"\n")
        return seconds, cpu, target.stat().st_size, lines

    contenders = {
        "export_usage --format csv": command("csv"),
        "page stream, format=csv": page_stream,
        "export_usage --format focus": command("focus"),
    }
    references: list[float] = []
    seconds: dict[str, list[float]] = {label: [] for label in contenders}
    ratios: dict[str, list[float]] = {label: [] for label in contenders}
    cpu_ratios: dict[str, list[float]] = {label: [] for label in contenders}
    sizes: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        base, base_cpu, _, rows = timed(reference)
        references.append(base)
        for label, fn in contenders.items():
            took, cpu, size, lines = timed(fn)
            seconds[label].append(took)
            # rows/s over the reference's rows/s, by the wall clock and by CPU time
            ratios[label].append(base / took * (lines - 1) / rows)
            cpu_ratios[label].append(base_cpu / cpu * (lines - 1) / rows)
            sizes[label] = (size, lines)
    copy_rate = rows / statistics.median(references)
    print(
        f"CSV export of the workspace ({rows:,} rows), {rounds} rounds (reference, command, page, FOCUS in turn); "
        f"reference COPY … TO STDOUT CSV: median {copy_rate:,.0f} rows/s (load average now {_load()})",
        flush=True,
    )
    for label in contenders:
        size, lines = sizes[label]
        rate = (lines - 1) / statistics.median(seconds[label])
        each = ", ".join(f"{r:.2f}" for r in ratios[label])
        print(
            f"  {label:28} {size / 2**20:>6,.0f} MiB {rate:>9,.0f} rows/s   | × COPY, same round: median "
            f"{statistics.median(ratios[label]):.2f}, min {min(ratios[label]):.2f} (rounds: {each})",
            flush=True,
        )
        if not math.isnan(cpu_ratios[label][0]):
            each = ", ".join(f"{r:.2f}" for r in cpu_ratios[label])
            print(
                f"  {'':28} {'':10} {'':16} | by CPU time (client + server): median "
                f"{statistics.median(cpu_ratios[label]):.2f}, min {min(cpu_ratios[label]):.2f} (rounds: {each})",
                flush=True,
            )
    for export_format in ("csv", "focus"):
        target.unlink(missing_ok=True)
        tracemalloc.start()
        command(export_format)()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"  export_usage --format {export_format}: Python's traced peak {peak / 2**20:.2f} MiB "
            f"while writing {target.stat().st_size / 2**20:,.0f} MiB",
            flush=True,
        )
    target.unlink(missing_ok=True)
    folder.rmdir()
    if not python_writers:
        return
    # Once each, for comparison: the Python writers (SQLite's path, PostgreSQL's before COPY).
    for label, write in (
        ("Python writer, format=csv", usage_csv_write),
        ("Python writer, format=focus", usage_focus_write),
    ):
        sink = CountingSink()
        started = time.perf_counter()
        write(sink, export_order(filtered(workspace, {})), use_copy=False)
        rate = (sink.lines - 1) / (time.perf_counter() - started)
        print(
            f"  {label:28} {sink.bytes / 2**20:>6,.0f} MiB {rate:>9,.0f} rows/s   | {rate / copy_rate:.2f}× COPY (one run)",
            flush=True,
        )


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

    def page(number: int = 1) -> Callable[[], None]:
        def fetch() -> None:
            assert client.get(url, {"page": number}).status_code == 200

        return fetch

    print(f"{count:,} integrations in one workspace:", flush=True)
    report("integration list (page 1)", timed(page(), repeat))
    report("integration list (last page)", timed(page(count // 50), repeat))
    current_app.conf.task_always_eager = False
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        enqueued = engine.integration_dispatch_due()
        seconds = time.perf_counter() - started
    print(
        f"  dispatcher, one tick over {count:,} due: {len(enqueued):,} enqueued, {len(queries.captured_queries):,} queries, {ms(seconds)}",
        flush=True,
    )
    current_app.conf.task_always_eager = True
    Workspace.objects.filter(slug=slug).delete()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _backend_cpu(connection: Any) -> Callable[[], float]:
    """The CPU seconds (user + system) its database backend has used so far, read from /proc
    (the server runs on this machine); NaN when it cannot be read."""
    connection.ensure_connection()
    stat = Path(f"/proc/{connection.connection.info.backend_pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


def _ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def measure_dispatch(count: int, stranded: int) -> None:
    """One dispatcher tick over `count` due integrations (`stranded` of them left by a dead
    worker: lease lapsed, run still "running"), published to the configured broker
    ($BENCH_BROKER_URL, default in-memory), beside its two physical floors measured in the same
    run: one bare UPDATE of the same rows (the claim), and `count` bare kombu publishes to the
    same broker (the messages)."""
    from celery import current_app
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from kombu import Queue

    from accounts.models import Workspace
    from integrations import engine
    from integrations.models import Integration, SyncRun

    slug = "bench-dispatch"
    Workspace.objects.filter(slug=slug).delete()
    workspace = Workspace.objects.create(name="Bench Dispatch", slug=slug)
    template = Integration(workspace=workspace, provider="openai", name="template")
    template.set_credential({"api_key": "bench-key-0000000000000000000000"})
    now = timezone.now()
    lapsed = dict(
        next_sync_at=now + timedelta(minutes=14), lock_token="dead-worker", lock_expires_at=now - timedelta(seconds=1)
    )
    created = Integration.objects.bulk_create(
        [
            Integration(workspace=workspace, provider=PROVIDERS[i % len(PROVIDERS)], name=f"Due {i:05d}",
                        credential=template.credential, **(lapsed if i < stranded else {"next_sync_at": now - timedelta(minutes=5)}))
            for i in range(count)
        ],
        batch_size=2000,
    )  # fmt: skip
    SyncRun.objects.bulk_create([SyncRun(integration=i) for i in created[:stranded]], batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE integrations_integration; ANALYZE integrations_syncrun")
    broker = current_app.conf.broker_url.split("://")[0]

    class Rollback(Exception):
        pass

    started = time.perf_counter()
    try:
        with transaction.atomic():
            Integration.objects.filter(workspace=workspace).update(
                next_sync_at=now + timedelta(minutes=15), lock_token=""
            )
            claim_floor = time.perf_counter() - started
            raise Rollback
    except Rollback:
        pass
    reference_queue = Queue("bench-dispatch-reference")
    with current_app.producer_or_acquire() as producer:
        started = time.perf_counter()
        for pk in range(count):
            producer.publish({"args": [pk]}, routing_key=reference_queue.name, declare=[reference_queue], retry=True)
        publish_floor = time.perf_counter() - started
    with current_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(reference_queue.name)

    current_app.conf.task_always_eager = False
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        enqueued = engine.integration_dispatch_due()
        seconds = time.perf_counter() - started
    current_app.conf.task_always_eager = True
    db_seconds = sum(float(q["time"]) for q in queries.captured_queries)
    with current_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(current_app.conf.task_default_queue)
    running = SyncRun.objects.filter(integration__workspace=workspace, status=SyncRun.Status.RUNNING).count()
    print(
        f"dispatcher, one tick over {count:,} due integrations ({stranded:,} stranded by a dead worker), broker {broker}:",
        flush=True,
    )
    print(f"  {'enqueued':52} {len(enqueued):>9,}   | runs left running: {running}", flush=True)
    print(
        f"  {'queries':52} {len(queries.captured_queries):>9,}   | before issue 9: 1 per due integration, at most 1,000 per tick",
        flush=True,
    )
    print(
        f"  {'claim (database time of the tick)':52} {ms(db_seconds):>9}   | bare UPDATE of the same rows: {ms(claim_floor)}",
        flush=True,
    )
    print(
        f"  {'publish (the rest of the tick)':52} {ms(seconds - db_seconds):>9}   | {count:,} bare kombu publishes: {ms(publish_floor)}",
        flush=True,
    )
    print(f"  {'whole tick':52} {ms(seconds):>9}   | beat's period: 60,000 ms", flush=True)
    Workspace.objects.filter(slug=slug).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "1000000")))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep an existing load of the same size")
    parser.add_argument(
        "--only",
        default="pages,ingest,export,many,dispatch",
        help="comma list of: pages, ingest, export, many, dispatch",
    )
    parser.add_argument("--ingest-rounds", type=int, default=3, help="rounds of the ingest figures (median reported)")
    parser.add_argument("--export-rounds", type=int, default=5, help="rounds of the export figures (median, min)")
    parser.add_argument(
        "--no-python-writers", action="store_true", help="export: skip the one run of each Python writer (~2 min)"
    )
    parser.add_argument("--integrations", type=int, default=10_000, help="for the list page and the dispatcher")
    args = parser.parse_args()
    prepare_database(args.reuse)
    setup_django()
    from django.db import connection

    figures = load(args.rows)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(
        f"PostgreSQL {version}, {os.cpu_count()} cores, {_ram_gib():.0f} GiB RAM; {args.rows:,} usage rows requested ({ROWS_PER_HOUR:,} per hour)"
    )
    print(
        f"load average {_load()} (other work on the machine slows every figure alike: compare each with its reference)"
    )
    if not figures.get("reused"):
        rate = figures["rows"] / figures["copy_seconds"]
        print(
            f"load: COPY {figures['rows']:,} rows in {figures['copy_seconds']:.1f} s ({rate:,.0f} rows/s), ANALYZE {figures['analyze_seconds']:.1f} s"
        )
        print(
            f"rollups: {figures['rollup_rows']:,} daily rows built in {figures['rollup_seconds']:.1f} s ({figures['rows'] / figures['rollup_seconds']:,.0f} base rows/s)"
        )
    only = set(args.only.split(","))
    if "pages" in only:
        measure_pages(args.repeat)
        print(f"  (load average after the pages: {_load()})")
    if "ingest" in only:
        measure_ingest(rounds=args.ingest_rounds)
    if "export" in only:
        measure_export(rounds=args.export_rounds, python_writers=not args.no_python_writers)
    if "many" in only:
        measure_many_integrations(args.integrations, max(5, args.repeat // 2))
    if "dispatch" in only:
        measure_dispatch(args.integrations, args.integrations // 10)


if __name__ == "__main__":
    main()
