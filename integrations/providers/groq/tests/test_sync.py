"""Groq through the real sync engine: an integration created (and verified) by the service,
synced against the sandbox, stores the true totals; a second sync changes nothing; tier and
rename problems become the documented events."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.base import ScopeError
from integrations.providers.groq.tests.support import days_ago, true_totals
from integrations.services import integration_create
from integrations.tests.restatement import stored_rows
from sandbox import groq as sandbox_groq
from usage.models import UsageRecord

D0, D3 = days_ago(4), days_ago(1)
NAMES_PATH = "/groq" + sandbox_groq.PREFIX + "/api/v1/label/__name__/values"


@pytest.fixture
def groq_integration(create_integration, sandbox) -> Integration:
    return create_integration(
        "groq", {"api_key": sandbox_groq.ENTERPRISE_KEY}, {"base_url": sandbox_groq.base_url(sandbox.url)}
    )


def sync(integration: Integration) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=D0, until=D3, trigger="command")


def stored(integration: Integration) -> Counter:
    totals: Counter = Counter()
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost"):
        totals[(r.metric, r.bucket_start.date(), r.project, r.model)] += r.quantity
    return totals


def test_sync_stores_the_true_totals_per_metric_model_project_and_day(groq_integration) -> None:
    assert groq_integration.identity["summary"].startswith("Groq Enterprise metrics · 3 projects")
    run = sync(groq_integration)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 3
    # one fetch for the three days: one name discovery + one query per metric
    assert run.provider_calls == 1 + 3
    expected = true_totals(D0, D3, lambda r: (r.hour_start.date(), r.project_id, r.model))
    assert stored(groq_integration) == expected
    records = UsageRecord.objects.filter(integration=groq_integration).exclude(metric="estimated_cost")
    assert set(records.values_list("provenance", flat=True)) == {"derived"}
    assert all(q == q.to_integral_value() for q in records.values_list("quantity", flat=True))
    groq_integration.refresh_from_db()
    assert groq_integration.data_through == D3 and groq_integration.status == Integration.Status.ACTIVE


def test_second_sync_changes_nothing(groq_integration) -> None:
    sync(groq_integration)
    before = stored_rows(groq_integration)
    assert before
    second = sync(groq_integration)
    assert second.status == SyncRun.Status.SUCCESS
    assert stored_rows(groq_integration) == before


def test_connecting_a_non_enterprise_key_fails_with_the_tier_explained(workspace, admin_user, sandbox) -> None:
    with pytest.raises(ScopeError, match="Enterprise tier only"):
        integration_create(
            workspace=workspace,
            provider_slug="groq",
            credential={"api_key": sandbox_groq.DEVELOPER_KEY},
            settings={"base_url": sandbox_groq.base_url(sandbox.url)},
        )
    assert not Integration.objects.exists()


def test_a_key_moved_off_enterprise_gets_a_scope_event_and_keeps_stored_usage(groq_integration, sandbox) -> None:
    sync(groq_integration)
    before = stored_rows(groq_integration)
    groq_integration.set_credential({"api_key": sandbox_groq.DEVELOPER_KEY})
    groq_integration.save()
    run = sync(groq_integration)
    assert run.status == SyncRun.Status.FAILED and run.error_category == "scope"
    event = groq_integration.events.filter(sync_run=run).get()
    assert (event.category, event.http_status) == ("scope", 404)
    assert "Enterprise tier only" in event.message and "Enterprise" in event.hint
    assert sandbox_groq.DEVELOPER_KEY not in event.message + event.hint
    assert stored_rows(groq_integration) == before


def test_renamed_metrics_stop_the_sync_with_a_configuration_event(groq_integration, sandbox) -> None:
    sandbox.fault(NAMES_PATH, 200, times=10, body={"status": "success", "data": ["requests:increase1m"]})
    run = sync(groq_integration)
    assert run.status == SyncRun.Status.FAILED and run.error_category == "configuration"
    event = groq_integration.events.filter(sync_run=run).get()
    assert "lists none of the metrics this app reads" in event.message
    assert not UsageRecord.objects.filter(integration=groq_integration).exists()


def test_idle_hours_store_no_rows_and_every_row_is_a_whole_hour(groq_integration) -> None:
    sync(groq_integration)
    assert not UsageRecord.objects.filter(integration=groq_integration, quantity=Decimal(0)).exists()
    hours = set(UsageRecord.objects.filter(integration=groq_integration).values_list("bucket_start", flat=True))
    assert all(h.minute == 0 and h.second == 0 for h in hours)
    assert len(hours) < 3 * 24, "idle hours store nothing"
    assert min(hours) >= D0 and max(hours) <= D3 - timedelta(hours=1)
