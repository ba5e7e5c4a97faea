"""Azure OpenAI through the real sync engine: true totals stored, a second sync changes
nothing, a backfill beyond retention succeeds, and each blocker becomes the right event."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.azure_openai.tests import support
from sandbox import azure_openai as sandbox_azure
from usage.models import UsageRecord

FIELDS = support.FIELDS
EASTUS_METRICS = "/azure_openai/arm" + sandbox_azure.ACCOUNTS[0].id + support.METRICS_SUFFIX


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    """Created the way the form and `connect` create it: vetted settings, verified against the sandbox."""
    return create_integration("azure_openai", support.credential(), support.settings(sandbox))


def truth_by_day(start: datetime, end: datetime) -> dict[tuple, Decimal]:
    """True totals per (metric, day, resource group, account, deployment, model)."""
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in sandbox_azure.truth_usage(start, end):
        for metric, field in FIELDS.items():
            if getattr(r, field):
                totals[(metric, r.hour_start.date(), r.resource_group, r.account, r.deployment, r.model)] += getattr(
                    r, field
                )
    return dict(totals)


def stored_by_day(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost"):
        if r.quantity:
            totals[(r.metric, r.bucket_start.date(), r.project, r.resource, r.deployment, r.model)] += r.quantity
    return dict(totals)


def snapshot(integration: Integration) -> list[tuple]:
    return sorted(
        UsageRecord.objects.filter(integration=integration).values_list(
            "bucket_start", "resource", "deployment", "model", "metric", "quantity", "updated_at"
        )
    )


def sync(integration: Integration, since: datetime, until: datetime) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")


def test_connect_verifies_and_stores_the_identity(integration) -> None:
    assert integration.identity["account_id"] == sandbox_azure.SUBSCRIPTION_ID
    assert "3 Azure OpenAI accounts" in integration.identity["summary"]
    assert integration.verified_at is not None


def test_the_documented_connect_and_sync_commands_work(db, sandbox) -> None:
    out = io.StringIO()
    credential = support.credential()
    settings = support.settings(sandbox)
    call_command(
        "connect", "azure_openai", "--workspace", "acme",
        *(arg for k, v in credential.items() for arg in ("--credential", f"{k}={v}")),
        *(arg for k, v in settings.items() for arg in ("--setting", f"{k}={v}")),
        stdout=out,
    )  # fmt: skip
    integration = Integration.objects.get(pk=int(out.getvalue().strip().splitlines()[-1]))
    assert integration.identity["account_id"] == sandbox_azure.SUBSCRIPTION_ID
    assert sandbox_azure.CLIENT_SECRET not in out.getvalue()
    since, until = support.days_ago(2), support.days_ago(1)
    call_command(
        "sync",
        str(integration.pk),
        "--since",
        f"{since:%Y-%m-%d}",
        "--until",
        f"{since:%Y-%m-%d}",
        stdout=io.StringIO(),
    )
    assert stored_by_day(integration) == truth_by_day(since, until)


def test_sync_reproduces_the_true_totals(integration) -> None:
    start, end = support.days_ago(4), support.days_ago(1)
    run = sync(integration, start, end)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 3
    assert stored_by_day(integration) == truth_by_day(start, end)
    assert set(UsageRecord.objects.filter(integration=integration).values_list("account", flat=True)) == {
        sandbox_azure.SUBSCRIPTION_ID
    }
    integration.refresh_from_db()
    assert integration.data_through == end and integration.status == Integration.Status.ACTIVE


def test_second_sync_changes_nothing(integration) -> None:
    start, end = support.days_ago(4), support.days_ago(1)
    sync(integration, start, end)
    before = [row[:-1] for row in snapshot(integration)]
    second = sync(integration, start, end)
    assert second.status == SyncRun.Status.SUCCESS
    assert [row[:-1] for row in snapshot(integration)] == before


def test_backfill_beyond_retention_succeeds_with_what_exists(integration, monkeypatch) -> None:
    now = datetime.now(UTC)  # the connector's clock, fixed so the retention floor cannot move mid-test
    monkeypatch.setattr("integrations.providers.azure_openai.connector._utcnow", lambda: now)
    start, end = support.days_ago(100), support.days_ago(92)
    run = sync(integration, start, end)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    floor = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=93) + timedelta(hours=1)
    assert stored_by_day(integration) == truth_by_day(floor, end)
    assert not integration.events.exclude(level="info").exists()


def _failed_event(integration, sandbox, **fault):
    start, end = support.days_ago(3), support.days_ago(1)
    assert sync(integration, start, end).status == SyncRun.Status.SUCCESS
    before = snapshot(integration)
    if fault:
        sandbox.fault(**fault)
    run = sync(integration, start, end)
    assert run.status == SyncRun.Status.FAILED
    assert snapshot(integration) == before, "a failed sync must not change stored usage"
    integration.refresh_from_db()
    return integration.events.filter(sync_run=run).exclude(level="info").get()


def test_revoked_secret_is_a_credential_event(integration, sandbox) -> None:
    event = _failed_event(
        integration,
        sandbox,
        path_prefix=support.TOKEN_PATH,
        status=401,
        body=support.load("token_error_invalid_secret.json"),
    )
    assert (event.category, event.level, event.http_status) == ("credential", "error", 401)
    assert "AADSTS7000215" in event.message and "Value" in event.hint
    assert sandbox_azure.CLIENT_SECRET not in event.message + event.hint


def test_lost_role_is_a_permission_event_naming_the_role(integration, sandbox) -> None:
    event = _failed_event(
        integration,
        sandbox,
        path_prefix=EASTUS_METRICS,
        status=403,
        times=10,
        body=support.load("arm_error_authorization_failed.json"),
    )
    assert (event.category, event.http_status) == ("permission", 403)
    assert "Monitoring Reader" in event.hint and "az role assignment create" in event.hint


def test_deleted_subscription_is_a_configuration_event(integration, sandbox) -> None:
    body = {
        "error": {
            "code": "SubscriptionNotFound",
            "message": f"The subscription '{sandbox_azure.SUBSCRIPTION_ID}' could not be found.",
        }
    }
    event = _failed_event(integration, sandbox, path_prefix="/azure_openai/arm/", status=404, times=10, body=body)
    assert (event.category, event.http_status) == ("configuration", 404)
    assert "subscription" in event.message.lower()


def test_metrics_529_storm_is_a_rate_limit_event(integration, sandbox) -> None:
    event = _failed_event(integration, sandbox, path_prefix=EASTUS_METRICS, status=529, times=1000)
    assert (event.category, event.level, event.http_status) == ("rate_limit", "warning", 529)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE  # throttling fixes itself


def test_arm_429_with_short_retry_after_is_honoured_inline(integration, sandbox) -> None:
    sandbox.fault(EASTUS_METRICS, 429, times=1, headers={"Retry-After": "1"})
    start, end = support.days_ago(3), support.days_ago(1)
    assert sync(integration, start, end).status == SyncRun.Status.SUCCESS
    assert stored_by_day(integration) == truth_by_day(start, end)
