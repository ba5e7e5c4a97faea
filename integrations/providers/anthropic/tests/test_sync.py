"""Anthropic through the real sync engine: created and verified by the service, synced, and the
store holds the sandbox's true totals per metric, model, workspace and day; again, nothing moves."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.anthropic.tests.support import (
    USAGE_PATH,
    base_url,
    cost_operation_of,
    days_ago,
    usage_fields,
)
from integrations.tests.restatement import stored_rows
from sandbox import anthropic as fake
from usage.models import UsageRecord

START, END = days_ago(4), days_ago(1)


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("anthropic", {"api_key": fake.ADMIN_KEY}, {"base_url": base_url(sandbox)})


def sync(integration: Integration) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=START, until=END, trigger="command")


def true_usage(start: datetime, end: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in fake.truth_usage(start, end):
        for metric, value in usage_fields(row).items():
            totals[(metric, row.hour_start.date(), row.workspace_id or "default", row.model)] += value
    return {k: v for k, v in totals.items() if v}


def true_cost(start: datetime, end: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in fake.truth_costs(start, end):
        totals[(row.day.date(), row.workspace_id or "default", row.model or "", cost_operation_of(row))] += row.amount
    return dict(totals)


def stored_usage(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in (
        UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost").exclude(metric="cost")
    ):
        totals[(r.metric, r.bucket_start.date(), r.project, r.model)] += r.quantity
    return {k: v for k, v in totals.items() if v}


def stored_cost(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration, metric="cost"):
        assert r.unit == "USD"
        totals[(r.bucket_start.date(), r.project, r.model, r.operation)] += r.quantity
    return dict(totals)


def test_create_verifies_and_stores_the_identity(integration) -> None:
    assert integration.identity["account_id"] == fake.ORGANIZATION_ID
    assert integration.identity["account_name"] == fake.ORGANIZATION_NAME
    assert len(integration.identity["details"]["workspaces"]) == 1 + len(fake.WORKSPACES)
    assert integration.verified_at is not None


def test_sync_reproduces_the_sandbox_true_totals(integration) -> None:
    run = sync(integration)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 3
    assert stored_usage(integration) == true_usage(START, END)
    assert stored_cost(integration) == true_cost(START, END)  # exact: cents / 100 fits the store's 9 places
    assert set(UsageRecord.objects.filter(integration=integration).values_list("account", flat=True)) == {
        fake.ORGANIZATION_ID
    }
    integration.refresh_from_db()
    assert integration.data_through == END and integration.status == Integration.Status.ACTIVE


def test_second_sync_changes_nothing(integration) -> None:
    assert sync(integration).status == SyncRun.Status.SUCCESS
    before = stored_rows(integration)
    second = sync(integration)
    assert second.status == SyncRun.Status.SUCCESS and second.rows_written == len(before)
    assert stored_rows(integration) == before


def test_sync_failing_after_its_first_chunk_resumes_without_double_counting(integration, sandbox, monkeypatch) -> None:
    # A day per fetch (a window longer than the fetch span): the first day is stored, the second fails.
    monkeypatch.setattr(type(integration.provider_obj), "fetch_span", timedelta(days=1))
    sandbox.fault(USAGE_PATH, 500, after=1, times=1000)
    failed = sync(integration)
    assert failed.status == SyncRun.Status.FAILED and failed.chunks_done == 1
    sandbox.reset()
    assert sync(integration).status == SyncRun.Status.SUCCESS
    assert stored_usage(integration) == true_usage(START, END)
    assert stored_cost(integration) == true_cost(START, END)


def test_rejected_key_is_a_credential_event(integration, sandbox) -> None:
    sandbox.fault("/anthropic/v1/organizations/", 401, times=10)
    run = sync(integration)
    event = integration.events.filter(sync_run=run).get()
    assert (run.error_category, event.category, event.http_status) == ("credential", "credential", 401)
    assert event.request_id.startswith("req_") and "console.anthropic.com/settings/admin-keys" in event.hint
    assert fake.ADMIN_KEY not in event.message + event.hint


def test_regular_key_is_a_permission_event_without_any_call(integration, sandbox) -> None:
    integration.set_credential({"api_key": fake.API_KEY})
    integration.save()
    sandbox.clear_requests()  # the fixture's verify calls
    run = sync(integration)
    event = integration.events.filter(sync_run=run).get()
    assert (event.category, event.level) == ("permission", "error")
    assert "regular API key" in event.message and "(sk-ant-admin…)" in event.message
    assert sandbox.requests() == [] and UsageRecord.objects.filter(integration=integration).count() == 0


def test_throttling_is_a_rate_limit_warning(integration, sandbox) -> None:
    sandbox.fault("/anthropic/v1/organizations/", 429, times=1000, headers={"retry-after": "120"})
    run = sync(integration)
    event = integration.events.filter(sync_run=run).get()
    assert (event.category, event.level, event.http_status) == ("rate_limit", "warning", 429)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


# ------------------------------------------------------------------ the documented commands
def connect(*args: str) -> int:
    out = io.StringIO()
    call_command("connect", "anthropic", "--workspace", "acme", *args, stdout=out)
    return int(out.getvalue().strip().splitlines()[-1])


def test_connect_and_sync_commands_as_documented(sandbox, db) -> None:
    pk = connect("--credential", f"api_key={fake.ADMIN_KEY}", "--setting", f"base_url={base_url(sandbox)}")
    integration = Integration.objects.get(pk=pk)
    assert integration.identity["account_id"] == fake.ORGANIZATION_ID
    call_command("sync", str(pk), "--since", f"{START:%Y-%m-%d}", "--until", f"{END - timedelta(days=1):%Y-%m-%d}",
                 stdout=io.StringIO())  # fmt: skip
    assert stored_usage(integration) == true_usage(START, END)


def test_connect_refuses_a_regular_key_before_any_call(sandbox, db) -> None:
    with pytest.raises(CommandError) as info:
        connect("--credential", f"api_key={fake.API_KEY}", "--setting", f"base_url={base_url(sandbox)}")
    assert str(info.value).startswith("permission:") and fake.API_KEY not in str(info.value)
    assert sandbox.requests() == []
