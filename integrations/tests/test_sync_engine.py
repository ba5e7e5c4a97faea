"""The sync engine against the OpenAI sandbox: totals, idempotence, resumption, error mapping."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integrations import engine, services
from integrations.models import Integration, SyncRun
from integrations.tasks import sync_integration
from sandbox import openai as truth_source
from usage.models import UsageRecord

D0 = datetime(2026, 11, 2, tzinfo=UTC)
D3 = D0 + timedelta(days=3)
USAGE_PATH = "/openai/v1/organization/usage/completions"  # the usage a sync cannot do without
TOKEN_METRICS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_input_tokens": "input_cached_tokens",
    "cache_write_tokens": "input_cache_write_tokens",
    "requests": "num_model_requests",
}


def _field(row, name):
    return row[name] if isinstance(row, dict) else getattr(row, name)


def truth_tokens(start: datetime, end: datetime) -> dict[tuple, Decimal]:
    """True totals per (metric, day, project, model) from the sandbox's own data."""
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in truth_source.truth_usage(start, end):
        hour = _field(row, "hour_start")
        for metric, source in TOKEN_METRICS.items():
            value = _field(row, source)
            if value:
                totals[(metric, hour.date(), _field(row, "project_id"), _field(row, "model"))] += Decimal(value)
    return dict(totals)


def truth_cost(start: datetime, end: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in truth_source.truth_costs(start, end):
        totals[(_field(row, "day").date(), _field(row, "project_id"))] += Decimal(_field(row, "amount"))
    return dict(totals)


def stored_tokens(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    # Completions tokens (the other usage endpoints and the costs stream have their own tests).
    for r in UsageRecord.objects.filter(integration=integration, stream="usage_completions").exclude(
        metric="estimated_cost"
    ):
        if r.quantity:
            totals[(r.metric, r.bucket_start.date(), r.project, r.model)] += r.quantity
    return dict(totals)


def stored_cost(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration, metric="cost"):
        totals[(r.bucket_start.date(), r.project)] += r.quantity
    return dict(totals)


def rounded(d: dict[tuple, Decimal], places: str = "0.000001") -> dict[tuple, Decimal]:
    return {k: v.quantize(Decimal(places)) for k, v in d.items() if v}


def snapshot(integration: Integration) -> list[tuple]:
    return sorted(
        UsageRecord.objects.filter(integration=integration).values_list(
            "bucket_start", "project", "model", "operation", "metric", "quantity"
        )
    )


def sync(integration: Integration, since: datetime | None = D0, until: datetime | None = D3) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")


# ------------------------------------------------------------------ totals and idempotence
def test_sync_reproduces_the_sandbox_true_totals(openai_integration):
    run = sync(openai_integration)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 3
    assert stored_tokens(openai_integration) == truth_tokens(D0, D3)
    assert rounded(stored_cost(openai_integration)) == rounded(truth_cost(D0, D3))
    openai_integration.refresh_from_db()
    assert openai_integration.data_through == D3
    assert openai_integration.status == Integration.Status.ACTIVE
    assert openai_integration.last_success_at is not None


def test_second_sync_changes_nothing(openai_integration):
    sync(openai_integration)
    before = snapshot(openai_integration)
    second = sync(openai_integration)
    assert second.status == SyncRun.Status.SUCCESS
    assert snapshot(openai_integration) == before


def test_scheduled_task_backfills_then_rereads_only_the_restatement_window(openai_integration):
    openai_integration.backfill_days = 2
    openai_integration.save()
    sync_integration.delay(openai_integration.pk)  # the Celery task (eager in tests)
    first = openai_integration.sync_runs.get()
    assert first.status == SyncRun.Status.SUCCESS and first.trigger == "schedule"
    assert stored_tokens(openai_integration) == truth_tokens(first.window_start, first.window_end)
    assert first.window_start == (timezone.now() - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)

    sync_integration.delay(openai_integration.pk)
    second = openai_integration.sync_runs.first()
    openai_integration.refresh_from_db()
    # Later syncs start one restatement window (a day) before the watermark, day-aligned.
    assert second.window_start == (first.window_end - timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert stored_tokens(openai_integration) == truth_tokens(first.window_start, second.window_end)


def test_sync_failing_after_its_first_chunk_resumes_without_double_counting(openai_integration, sandbox, monkeypatch):
    # A day per fetch (a window longer than the fetch span): the first chunk's usage page is
    # served, every later usage request fails.
    monkeypatch.setattr(type(openai_integration.provider_obj), "fetch_span", timedelta(days=1))
    sandbox.fault(USAGE_PATH, 500, after=1, times=1000)
    failed = sync(openai_integration)
    assert failed.status == SyncRun.Status.FAILED
    assert failed.chunks_done == 1
    openai_integration.refresh_from_db()
    assert openai_integration.data_through == D0 + timedelta(days=1)
    assert stored_tokens(openai_integration) == truth_tokens(D0, D0 + timedelta(days=1))

    sandbox.reset()
    resumed = engine.integration_sync(integration_id=openai_integration.pk, until=D3, trigger="command")
    assert resumed.status == SyncRun.Status.SUCCESS
    assert resumed.window_start == D0  # watermark (D0+1d) minus the one-day restatement window
    assert stored_tokens(openai_integration) == truth_tokens(D0, D3)
    assert rounded(stored_cost(openai_integration)) == rounded(truth_cost(D0, D3))


# ------------------------------------------------------------------ error mapping
def _fail_after_good_sync(integration, sandbox, **fault):
    assert sync(integration).status == SyncRun.Status.SUCCESS
    before = snapshot(integration)
    sandbox.fault(USAGE_PATH, **fault)
    run = sync(integration)
    assert snapshot(integration) == before, "a failed sync must not change stored usage"
    integration.refresh_from_db()
    event = integration.events.filter(sync_run=run).exclude(level="info").get()
    return run, event


def test_401_marks_credential_rejected(openai_integration, sandbox):
    run, event = _fail_after_good_sync(openai_integration, sandbox, status=401, times=10)
    assert run.status == SyncRun.Status.FAILED and run.error_category == "credential"
    assert (event.category, event.level, event.http_status) == ("credential", "error", 401)
    assert "credential" in event.message.lower() or "key" in event.message.lower()
    assert event.hint
    assert openai_integration.status == Integration.Status.ERROR
    assert openai_integration.last_error_category == "credential"


def test_project_key_gets_a_scope_event(openai_integration, sandbox):
    assert sync(openai_integration).status == SyncRun.Status.SUCCESS
    before = snapshot(openai_integration)
    openai_integration.set_credential({"api_key": sandbox.OPENAI_PROJECT_KEY})
    openai_integration.save()
    run = sync(openai_integration)
    event = openai_integration.events.filter(sync_run=run).get()
    assert (event.category, event.http_status) == ("scope", 403)
    assert "api.usage.read" in event.message + event.hint
    assert "admin" in event.hint.lower()
    assert snapshot(openai_integration) == before


def test_429_with_short_retry_after_is_honoured_inline(openai_integration, sandbox):
    sandbox.fault(USAGE_PATH, 429, times=1, headers={"Retry-After": "1"})
    run = sync(openai_integration)
    assert run.status == SyncRun.Status.SUCCESS
    assert stored_tokens(openai_integration) == truth_tokens(D0, D3)


def test_429_storm_reschedules_after_retry_after(openai_integration, sandbox):
    before_sync = timezone.now()
    run, event = _fail_after_good_sync(
        openai_integration, sandbox, status=429, times=1000, headers={"Retry-After": "120"}
    )
    assert (event.category, event.level, event.http_status) == ("rate_limit", "warning", 429)
    assert run.error_category == "rate_limit"
    assert openai_integration.status == Integration.Status.ACTIVE  # nothing for the admin to fix yet
    assert openai_integration.next_sync_at >= before_sync + timedelta(seconds=120)


def test_500_backs_off(openai_integration, sandbox):
    run, event = _fail_after_good_sync(openai_integration, sandbox, status=500, times=1000)
    assert (event.category, event.http_status) == ("provider", 500)
    assert openai_integration.next_sync_at > timezone.now()
    assert run.provider_calls >= 4  # retried before giving up


def test_timeout_is_a_network_event(openai_integration, sandbox, settings):
    settings.DOOW_HTTP_TIMEOUT_SECONDS = 0.3
    _run, event = _fail_after_good_sync(openai_integration, sandbox, status=200, delay=1.0, times=1000)
    assert event.category == "network"
    assert "timed out" in event.message.lower()


def test_malformed_json_is_a_provider_response_event(openai_integration, sandbox):
    _run, event = _fail_after_good_sync(
        openai_integration, sandbox, status=200, body="<html>upstream error</html>", times=1000
    )
    assert event.category == "provider"
    assert "json" in event.message.lower()


def test_repeated_credential_failures_pause_the_integration(openai_integration, sandbox):
    sandbox.fault(USAGE_PATH, 401, times=1000)
    for _ in range(engine.PAUSE_AFTER_CREDENTIAL_FAILURES):
        sync(openai_integration)
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.PAUSED
    assert openai_integration.next_sync_at is None
    assert openai_integration.events.filter(category="credential", message__startswith="Paused after").exists()
    assert openai_integration.pk not in engine.integration_dispatch_due()
    with pytest.raises(services.SyncNotAllowed):
        sync(openai_integration)


def test_sync_with_no_usage_records_an_info_event_naming_the_window(openai_integration):
    openai_integration.settings = {**openai_integration.settings, "project_ids": "proj_nobody"}
    openai_integration.save()
    run = sync(openai_integration)
    assert run.status == SyncRun.Status.SUCCESS and run.rows_written == 0
    event = openai_integration.events.get(sync_run=run)
    assert (event.level, event.category) == ("info", "sync")
    assert "2026-11-02 00:00" in event.message and "2026-11-05 00:00" in event.message
    assert "reporting delay" in event.hint


# ------------------------------------------------------------------ lifecycle guards
def test_a_disconnected_integration_cannot_be_verified_paused_resumed_or_synced(openai_integration):
    services.integration_disconnect(integration=openai_integration, keep_data=True)
    openai_integration.refresh_from_db()
    assert openai_integration.get_credential() == {}
    with pytest.raises(services.ConfigurationError):
        services.integration_verify(integration=openai_integration)
    for action in (services.integration_pause, services.integration_resume, services.integration_request_sync):
        with pytest.raises(services.SyncNotAllowed):
            action(integration=openai_integration)
    with pytest.raises(services.SyncNotAllowed):
        sync(openai_integration)


def test_a_private_base_url_is_refused_and_names_its_field(workspace, settings):
    settings.DOOW_ALLOW_PRIVATE_ENDPOINTS = False
    for url, words in (("http://api.example.com/v1", "https"), ("https://127.0.0.1:8443/v1", "private")):
        with pytest.raises(services.ConfigurationError) as excinfo:
            services.integration_create(
                workspace=workspace,
                provider_slug="openai",
                credential={"api_key": "sk-admin-guard-test-0000000000"},
                settings={"base_url": url},
            )
        assert excinfo.value.field == "base_url"
        assert words in excinfo.value.message
    assert not Integration.objects.exists()
