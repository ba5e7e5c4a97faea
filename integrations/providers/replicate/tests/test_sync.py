"""Replicate through the real sync engine: the sandbox's true totals stored per metric, model,
deployment and day; a second sync changes nothing; running predictions converge on the
restatement re-read without double counting; failures become events."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.replicate.tests.support import PREDICTIONS_PATH, days_ago
from integrations.tests.restatement import stored_rows
from sandbox import replicate as fake
from usage.models import UsageRecord


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration(
        "replicate", {"api_token": fake.API_TOKEN}, {"base_url": sandbox.url + fake.PREFIX + "/v1"}
    )


def sync(integration: Integration, since: datetime | None, until: datetime) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")


def truth(start: datetime, end: datetime, now: datetime | None = None) -> dict[tuple, Decimal]:
    """True totals per (metric, day, model, deployment)."""
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in [*fake.truth_usage(start, end, now=now), *fake.truth_training_usage(start, end, now=now)]:
        key = (row.hour_start.date(), row.model, row.deployment)
        totals[("requests", *key)] += row.requests
        totals[("compute_seconds", *key)] += row.compute_seconds
        if row.input_tokens is not None:
            totals[("input_tokens", *key)] += row.input_tokens
            totals[("output_tokens", *key)] += row.output_tokens or 0
    return dict(totals)


def stored(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost"):
        totals[(r.metric, r.bucket_start.date(), r.model, r.deployment)] += r.quantity
    return dict(totals)


def metric_total(integration: Integration, metric: str) -> Decimal:
    return sum((r.quantity for r in UsageRecord.objects.filter(integration=integration, metric=metric)), Decimal(0))


def test_connect_verifies_and_stores_the_identity(integration) -> None:
    assert integration.identity["account_id"] == fake.ACCOUNT["username"]
    assert integration.verified_at is not None


def test_sync_reproduces_the_sandbox_true_totals(integration) -> None:
    start, end = days_ago(4), days_ago(1)
    run = sync(integration, start, end)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 3
    assert stored(integration) == truth(start, end)
    assert set(UsageRecord.objects.filter(integration=integration).values_list("account", flat=True)) == {
        fake.ACCOUNT["username"]
    }
    integration.refresh_from_db()
    assert integration.data_through == end and integration.status == Integration.Status.ACTIVE


def test_second_sync_changes_nothing(integration) -> None:
    start, end = days_ago(4), days_ago(1)
    sync(integration, start, end)
    before = stored_rows(integration)
    assert sync(integration, start, end).status == SyncRun.Status.SUCCESS
    assert stored_rows(integration) == before


def test_running_predictions_converge_on_the_next_sync_without_double_counting(integration) -> None:
    start, end = days_ago(2), days_ago(1)
    early = end + timedelta(minutes=15)  # the nightly job created at 23:50 is still processing
    assert any(p.status_at(fake._us(early)) == "processing" for p in fake.truth_predictions(start, end))

    with fake.clock(early):
        first = sync(integration, start, end)
    assert first.status == SyncRun.Status.SUCCESS, first.error
    assert stored(integration) == truth(start, end, now=early)
    requests_before, seconds_before = (
        metric_total(integration, "requests"),
        metric_total(integration, "compute_seconds"),
    )
    rows_before = UsageRecord.objects.filter(integration=integration).count()

    # The scheduled path: no `since`, so the engine re-reads one restatement window (a day)
    # before the watermark; by now every prediction has finished.
    second = sync(integration, None, end)
    assert second.status == SyncRun.Status.SUCCESS, second.error
    assert second.window_start == start
    assert stored(integration) == truth(start, end)
    assert metric_total(integration, "requests") == requests_before  # replaced, never added
    assert metric_total(integration, "compute_seconds") > seconds_before
    assert UsageRecord.objects.filter(integration=integration).count() == rows_before

    after = stored_rows(integration)
    sync(integration, None, end)
    assert stored_rows(integration) == after


def test_a_revoked_token_becomes_a_credential_event(integration, sandbox) -> None:
    start, end = days_ago(3), days_ago(1)
    sync(integration, start, end)
    before = stored_rows(integration)
    integration.set_credential({"api_token": fake.REVOKED_TOKEN})
    integration.save()
    run = sync(integration, start, end)
    event = integration.events.filter(sync_run=run).exclude(level="info").get()
    assert (run.status, event.category, event.http_status) == (SyncRun.Status.FAILED, "credential", 401)
    assert "replicate.com/account/api-tokens" in event.hint
    assert fake.REVOKED_TOKEN not in event.message + event.hint
    assert stored_rows(integration) == before


def test_throttling_storm_is_a_rate_limit_event_and_keeps_stored_usage(integration, sandbox) -> None:
    start, end = days_ago(3), days_ago(1)
    sync(integration, start, end)
    before = stored_rows(integration)
    sandbox.fault(PREDICTIONS_PATH, 429, times=1000, headers={"Retry-After": "120"})
    run = sync(integration, start, end)
    event = integration.events.filter(sync_run=run).exclude(level="info").get()
    assert (run.error_category, event.category, event.http_status) == ("rate_limit", "rate_limit", 429)
    assert stored_rows(integration) == before


def test_connect_and_sync_commands(db, sandbox) -> None:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    base_url = sandbox.url + fake.PREFIX + "/v1"
    call_command(
        "connect", "replicate", "--workspace", "acme", "--credential", f"api_token={fake.API_TOKEN}",
        "--setting", f"base_url={base_url}", stdout=out,
    )  # fmt: skip
    pk = int(out.getvalue().strip().splitlines()[-1])
    assert fake.API_TOKEN not in out.getvalue()
    start, end = days_ago(2), days_ago(1)
    day = f"{start:%Y-%m-%d}"  # --until reads through the end of the day it names
    call_command("sync", str(pk), "--since", day, "--until", day, stdout=io.StringIO())
    assert stored(Integration.objects.get(pk=pk)) == truth(start, end)
