"""OpenRouter through the real sync engine: connect, sync, re-sync, backfill past the horizon."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from integrations import engine
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.base import PermissionDenied
from integrations.providers.openrouter.tests.support import (
    ACTIVITY_PATH,
    base_url,
    days_ago,
    truth,
)
from integrations.services import integration_create
from integrations.tests.restatement import stored_rows
from sandbox.openrouter import INFERENCE_KEY, KEY_LABEL, MANAGEMENT_KEY
from usage.models import UsageRecord

DAY = timedelta(days=1)


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("openrouter", {"api_key": MANAGEMENT_KEY}, {"base_url": base_url(sandbox)})


def sync(integration: Integration, since: datetime | None = None, until: datetime | None = None) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")


def stored(integration: Integration) -> Counter:
    """Stored totals per (metric, day, model, endpoint, provider)."""
    totals: Counter = Counter()
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost"):
        totals[(r.metric, r.bucket_start.date(), r.model, r.endpoint, r.deployment)] += r.quantity
    return totals


def true(start: datetime, end: datetime) -> Counter:
    return truth(start, end, lambda r: (r.date, r.model_permaslug, r.endpoint_id, r.provider_name))


def test_connect_verifies_and_keeps_the_identity(integration) -> None:
    assert integration.identity["account_name"] == KEY_LABEL
    assert integration.verified_at is not None


def test_connect_with_an_inference_key_is_refused(workspace, admin_user, sandbox) -> None:
    with pytest.raises(PermissionDenied):
        integration_create(
            workspace=workspace,
            provider_slug="openrouter",
            credential={"api_key": INFERENCE_KEY},
            settings={"base_url": base_url(sandbox)},
        )
    assert not Integration.objects.exists()


def test_sync_reproduces_the_true_totals_and_a_second_sync_changes_nothing(integration, sandbox) -> None:
    since, until = days_ago(5), days_ago(1)
    run = sync(integration, since, until)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 4 and run.provider_calls == 1  # one request, 4 days stored
    assert stored(integration) == true(since, until)
    costs = UsageRecord.objects.filter(integration=integration, metric="cost")
    assert costs.exists() and set(costs.values_list("unit", flat=True)) == {"USD"}
    integration.refresh_from_db()
    assert integration.data_through == until and integration.status == Integration.Status.ACTIVE

    before = stored_rows(integration)
    again = sync(integration, since, until)
    assert again.status == SyncRun.Status.SUCCESS
    assert stored_rows(integration) == before


def test_first_backfill_beyond_30_days_stores_the_horizon_without_error(integration, sandbox) -> None:
    integration.backfill_days = 45
    integration.save()
    sandbox.clear_requests()  # forget verify's probe
    first = sync(integration)
    assert first.status == SyncRun.Status.SUCCESS, first.error
    # The window reaches 45 days back (44 whole days end before the delay in the first hour of
    # a UTC day), but only the days the API serves are read: one request without `date` per
    # fetch span of ≤31 days (two here), or (within minutes of UTC midnight) one per day.
    assert first.window_start <= days_ago(45) + DAY
    assert first.chunks_total == (first.window_end - first.window_start) // DAY >= 44
    dates = sorted(r["query"].get("date", ["all"])[0] for r in sandbox.requests(ACTIVITY_PATH))
    assert dates == ["all", "all"] or (dates[0] == days_ago(30).date().isoformat() and len(dates) <= 30)
    assert all(r["status"] == 200 for r in sandbox.requests())
    assert stored(integration) == true(first.window_start, first.window_end)
    assert not IntegrationEvent.objects.filter(integration=integration, level=IntegrationEvent.Level.ERROR).exists()

    # The next sync re-reads the restatement window (two days before the watermark) only.
    sandbox.reset()
    second = sync(integration)
    assert second.status == SyncRun.Status.SUCCESS
    assert second.window_start == first.window_end - 2 * DAY
    assert len(sandbox.requests(ACTIVITY_PATH)) == (second.window_end - second.window_start).days
    assert stored(integration) == true(first.window_start, second.window_end)


def test_sync_never_reads_today(integration, sandbox) -> None:
    sandbox.clear_requests()
    run = sync(integration, days_ago(2))
    assert run.status == SyncRun.Status.SUCCESS
    assert run.window_end <= days_ago(0)
    today = datetime.now(UTC).date().isoformat()
    assert today not in [r["query"].get("date", ["all"])[0] for r in sandbox.requests(ACTIVITY_PATH)]
    assert max(r.bucket_start for r in UsageRecord.objects.filter(integration=integration)) < days_ago(0)


def test_sync_with_a_key_turned_into_an_inference_key_records_a_permission_event(integration, sandbox) -> None:
    integration.set_credential({"api_key": INFERENCE_KEY})
    integration.save()
    run = sync(integration, days_ago(3), days_ago(1))
    assert run.status == SyncRun.Status.FAILED
    event = IntegrationEvent.objects.filter(integration=integration, category="permission").get()
    assert "inference API key" in event.message and "management-keys" in event.hint
    assert event.http_status == 403 and INFERENCE_KEY not in event.message + event.hint
    assert not UsageRecord.objects.filter(integration=integration).exists()
