"""OpenAI through the real engine, twice, with the sandbox's answer changed in between: a cost
line item re-labelled or a model with no more usage leaves no row beside its replacement; rows
outside the re-read window, outside the project filter, of the other stream and imported rows
stay; rows stored before streams existed are cleaned up on their first re-read too."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.openai.tests.support import days_ago
from integrations.tests.restatement import import_rows, nonzero, stored_rows, stored_totals
from sandbox import openai as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
ALPHA, BRAVO, CHARLIE = (p.id for p in fake.PROJECTS)
O3 = "o3-mini-2025-01-31"
USAGE_FIELDS = {"input_tokens": "input_tokens", "cached_input_tokens": "input_cached_tokens",
                "cache_write_tokens": "input_cache_write_tokens", "output_tokens": "output_tokens",
                "requests": "num_model_requests"}  # fmt: skip


def sync(integration: Integration, since: datetime | None = None) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=days_ago(1), trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def true_costs(start: datetime, end: datetime, projects: set[str] | None = None) -> dict:
    totals: Counter = Counter()
    for row in fake.truth_costs(start, end):
        if projects is None or row.project_id in projects:
            totals[(row.day, row.project_id, row.line_item)] += row.amount
    return nonzero(totals)


def stored_costs(integration: Integration, start: datetime, end: datetime, projects: set[str] | None = None) -> dict:
    totals: Counter = Counter()
    synced = UsageRecord.objects.filter(integration=integration, metric="cost").exclude(provenance="imported")
    for r in synced.filter(bucket_start__gte=start, bucket_start__lt=end):
        if projects is None or r.project in projects:
            totals[(r.bucket_start, r.project, f"{r.model}, {r.operation}" if r.model else r.operation)] += r.quantity
    return nonzero(totals)


def true_usage(start: datetime, end: datetime, projects: set[str] | None = None) -> dict:
    totals: Counter = Counter()
    for row in fake.truth_usage(start, end):
        if projects is None or row.project_id in projects:
            for metric, name in USAGE_FIELDS.items():
                totals[(metric, row.hour_start, row.project_id, row.model)] += getattr(row, name)
    return nonzero(totals)


def stored_usage(integration: Integration, start: datetime, end: datetime, projects: set[str] | None = None) -> dict:
    totals = stored_totals(integration, "bucket_start", "project", "model", stream="usage_completions",
                           bucket_start__gte=start, bucket_start__lt=end)  # fmt: skip
    return nonzero({k: v for k, v in totals.items() if projects is None or k[2] in projects})


def test_a_relabelled_line_item_leaves_no_ghost_inside_the_reread_window_only(openai_integration):
    integration = openai_integration
    d4, d2, d1 = days_ago(4), days_ago(2), days_ago(1)
    adjustment = {"bucket_start": d2, "bucket_end": d1, "project": ALPHA, "operation": "manual adjustment",
                  "metric": "cost", "quantity": "5.25", "unit": "USD"}  # fmt: skip
    import_rows(integration, [adjustment])
    sync(integration, since=d4)
    assert stored_costs(integration, d4, d1) == true_costs(d4, d1)
    old = next(r.line_item for r in fake.truth_costs(d2, d1) if r.project_id == BRAVO)
    # The line item's cost and its billed quantity (both from the costs stream) are relabelled.
    old_rows = UsageRecord.objects.filter(integration=integration, stream="costs", model=old.partition(", ")[0],
                                          operation=old.partition(", ")[2])  # fmt: skip
    ghosts = old_rows.filter(bucket_start=d2).count()
    assert ghosts >= 1
    kept_old_days = set(old_rows.filter(bucket_start__lt=d2).values_list("bucket_start", "project", "quantity"))
    usage_before = stored_rows(integration, stream="usage_completions")

    fake.relabel_line_item(old, old.replace(", ", ", priority "))
    run = sync(integration)  # scheduled: re-reads the restatement window, the last day only
    assert run.window_start == d2
    # The re-read day holds the new truth exactly: the relabelled item once, under its new name.
    assert stored_costs(integration, d2, d1) == true_costs(d2, d1)
    assert not old_rows.filter(bucket_start=d2).exists() and run.rows_removed == ghosts
    # Days not re-read keep what they had; the other stream is as it was; the import stays.
    assert set(old_rows.filter(bucket_start__lt=d2).values_list("bucket_start", "project", "quantity")) == kept_old_days
    assert stored_rows(integration, stream="usage_completions") == usage_before
    imported = UsageRecord.objects.get(integration=integration, provenance="imported")
    assert (imported.bucket_start, imported.operation, imported.quantity) == (d2, "manual adjustment", Decimal("5.25"))

    # Re-reading everything converges on the new truth for every day.
    sync(integration, since=d4)
    assert stored_costs(integration, d4, d1) == true_costs(d4, d1)
    assert stored_usage(integration, d4, d1) == true_usage(d4, d1)


def test_a_model_without_usage_loses_its_rows_inside_the_project_filter_only(openai_integration):
    integration = openai_integration
    d2, d1 = days_ago(2), days_ago(1)
    sync(integration, since=d2)
    charlie_o3 = stored_rows(integration, project=CHARLIE, model=O3)
    assert charlie_o3 and stored_rows(integration, project=ALPHA, model=O3)

    integration.settings = {**integration.settings, "project_ids": f"{ALPHA},{BRAVO}"}
    integration.save()
    fake.withdraw_model(O3)
    run = sync(integration, since=d2)
    both = {ALPHA, BRAVO}
    assert stored_usage(integration, d2, d1, both) == true_usage(d2, d1, both)
    assert stored_costs(integration, d2, d1, both) == true_costs(d2, d1, both)
    assert not stored_rows(integration, project__in=both, model=O3)
    assert run.rows_removed > 0
    # Charlie was not asked for (the filter): not answered, so its rows stay as they were.
    assert stored_rows(integration, project=CHARLIE, model=O3) == charlie_o3


def test_the_runs_table_and_the_sync_command_say_how_many_rows_were_removed(openai_integration, admin_client):
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    d2 = days_ago(2)
    sync(openai_integration, since=d2)
    fake.withdraw_model(O3)
    out = StringIO()
    call_command(
        "sync", str(openai_integration.pk), "--since", f"{d2:%Y-%m-%d}", "--until", f"{d2:%Y-%m-%d}", stdout=out
    )
    run = SyncRun.objects.filter(integration=openai_integration).first()
    assert run.rows_removed > 0 and f"Rows removed (no longer reported): {run.rows_removed}" in out.getvalue()
    page = admin_client.get(
        reverse("integrations:detail", kwargs={"ws": openai_integration.workspace.slug, "pk": openai_integration.pk})
    )
    assert f"−{run.rows_removed}" in page.content.decode()
