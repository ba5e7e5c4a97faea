"""The Usage and Cost Analytics API (beta) as the first path, the legacy reports as the fallback:
the documented shapes parse into the legacy path's samples, each fallback trigger sends the
window to the legacy reports without keeping anything read from the analytics ones, the path
of each window is recorded in the state, and a window read by both paths at different times
is never counted twice."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from integrations import engine
from integrations.http import HttpClient
from integrations.models import Integration, SyncRun
from integrations.providers.anthropic import analytics
from integrations.providers.anthropic.analytics_schema import (
    buckets,
    parse_analytics_cost_page,
    parse_analytics_usage_page,
)
from integrations.providers.anthropic.schema import DAY, HOUR, cost_samples, usage_samples
from integrations.providers.anthropic.tests.support import (
    COSTS_PATH,
    EXPECTED_COSTS,
    EXPECTED_USAGE,
    ORG,
    USAGE_PATH,
    base_url,
    cost_operation_of,
    load,
    usage_items,
)
from integrations.providers.base import (
    Answered,
    CredentialError,
    ProviderResponseError,
    RateLimited,
    UsageSample,
    Window,
)
from integrations.providers.testing import days_ago
from integrations.tests.restatement import nonzero
from sandbox import anthropic as fake
from sandbox import anthropic_analytics as fake_analytics
from usage.models import UsageRecord

ANALYTICS = "/anthropic/v1/organizations/analytics/"
A_USAGE, A_COST = ANALYTICS + "usage", ANALYTICS + "cost"
ANALYTICS_KEY = {"api_key": fake_analytics.ANALYTICS_ADMIN_KEY}
LEGACY_KEY = {"api_key": fake.ADMIN_KEY}


def _a_year_later(sample: UsageSample) -> UsageSample:
    return dataclasses.replace(sample, bucket_start=sample.bucket_start.replace(year=2026),
                               bucket_end=sample.bucket_end.replace(year=2026))  # fmt: skip


# ---------------------------------------------------------------- the documented shapes
def test_the_analytics_usage_rows_make_the_legacy_rows_samples() -> None:
    page = parse_analytics_usage_page(load("analytics_usage_page.json"))
    assert page.has_more and page.cursor() == "page_MjAwOmFiY2RlZg=="
    samples = [s for b in buckets(list(page.rows), HOUR) for s in usage_samples(b, account=ORG, width=HOUR)]
    # The same usage as usage_page.json a year later; every analytics row carries server_tool_use,
    # so the Opus rows also get their (zero) web searches. `requests` is not read.
    opus = [s for s in EXPECTED_USAGE if s.model == "claude-opus-4-1-20250805" and s.metric == "output_tokens"]
    zero_searches = [dataclasses.replace(s, metric="api_calls", operation="web_search", quantity=Decimal(0), unit="calls")
                     for s in opus]  # fmt: skip
    expected = [_a_year_later(s) for s in [*EXPECTED_USAGE, *zero_searches]]
    assert Counter(samples) == Counter(expected)
    assert not any(s.metric == "requests" for s in samples)


def test_the_analytics_hourly_cost_rows_add_up_into_the_legacy_days() -> None:
    page = parse_analytics_cost_page(load("analytics_cost_page.json"))
    assert not page.has_more and page.cursor() is None
    samples = [s for b in buckets(list(page.rows), DAY) for s in cost_samples(b, account=ORG, width=DAY)]
    # 100.5 + 23.28912 cents of standard input in two hours: the legacy report's 123.78912 for the day.
    assert Counter(samples) == Counter(_a_year_later(s) for s in EXPECTED_COSTS)


@pytest.mark.parametrize(
    "broken",
    [
        {"starting_at": "2026-05-14T00:00:00Z", "ending_at": "2026-05-14T01:00:00Z", "group": {}},  # no usage
        {"starting_at": "2026-05-14T00:00:00Z", "ending_at": "2026-05-14T01:00:00Z", "group": {"output_tokens": 1},
         "usage": load("analytics_usage_page.json")["data"][0]["usage"]},  # a field in both
        {"starting_at": "2026-05-14T00:00:00Z", "ending_at": "2026-05-14T01:00:00Z", "group": {},
         "usage": {"uncached_input_tokens": 1, "cache_read_input_tokens": 0, "output_tokens": 1}},  # no cache_creation
    ],
)  # fmt: skip
def test_an_analytics_row_not_in_the_documented_shape_is_unreadable(broken: dict[str, Any]) -> None:
    with pytest.raises(ProviderResponseError):
        parse_analytics_usage_page({"data": [broken], "has_more": False, "next_page": None})


# ---------------------------------------------------------------- the analytics path
def _fetch(provider, credential, settings, window, state=None, answered=None) -> list[UsageSample]:
    return list(provider.fetch(credential, settings, window, http=HttpClient(backoff=1.0, sleep=lambda s: None),
                               state=state, answered=answered))  # fmt: skip


def _paths(state: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    return {
        stream: [(e["path"], e["reason"]) for e in entries] for stream, entries in state[analytics.READ_PATHS].items()
    }


def test_a_key_that_can_read_analytics_gets_the_legacy_samples_from_it(
    provider, provider_settings, three_days, sandbox
):
    state: dict[str, Any] = {}
    answered: list[Answered] = []
    read = _fetch(provider, ANALYTICS_KEY, provider_settings, three_days, state, answered)
    assert read and sandbox.requests(A_USAGE) and sandbox.requests(A_COST)
    assert not sandbox.requests(USAGE_PATH) and not sandbox.requests(COSTS_PATH)
    first = sandbox.requests(A_USAGE)[0]["query"]
    assert first["time_bucket_width"] == ["1h"] and "limit" not in first
    assert first["group_by[]"] == ["model", "workspace_id", "service_tier", "context_window", "inference_geo"]
    assert sandbox.requests(A_COST)[0]["query"]["time_bucket_width"] == ["1h"]  # hours, added up into days
    assert _paths(state) == {"usage_report": [("analytics", "")], "cost_report": [("analytics", "")]}
    assert analytics.REFUSAL not in state

    sandbox.reset()
    legacy_answered: list[Answered] = []
    legacy = _fetch(provider, LEGACY_KEY, provider_settings, three_days, {}, legacy_answered)
    assert sandbox.requests(USAGE_PATH) and sandbox.requests(COSTS_PATH)
    # The same samples (keys, quantities, stream, organization) and the same answers: a window
    # read by either path replaces what the other stored, never adds to it.
    assert Counter(read) == Counter(legacy)
    assert set(answered) == set(legacy_answered)
    starts = [s.bucket_start for s in read]
    assert starts == sorted(starts)


def test_a_key_that_cannot_read_analytics_falls_back_and_is_believed_for_a_day(
    provider, provider_settings, three_days, sandbox, monkeypatch
):
    state: dict[str, Any] = {}
    legacy = _fetch(provider, LEGACY_KEY, provider_settings, three_days, state)
    assert [r["status"] for r in sandbox.requests(ANALYTICS)] == [403], "one refusal spares the cost report"
    assert legacy and sandbox.requests(USAGE_PATH) and sandbox.requests(COSTS_PATH)
    assert state[analytics.REFUSAL]["status"] == 403
    paths = _paths(state)
    assert paths["usage_report"][0][0] == "legacy" and "HTTP 403" in paths["usage_report"][0][1]
    assert paths["cost_report"][0][0] == "legacy" and "refused" in paths["cost_report"][0][1]

    sandbox.reset()
    assert Counter(_fetch(provider, LEGACY_KEY, provider_settings, three_days, state)) == Counter(legacy)
    assert sandbox.requests(ANALYTICS) == [], "a refusal is believed until ANALYTICS_RECHECK has passed"

    monkeypatch.setattr(analytics, "ANALYTICS_RECHECK", timedelta(0))
    _fetch(provider, ANALYTICS_KEY, provider_settings, three_days, state)
    assert sandbox.requests(A_USAGE) and analytics.REFUSAL not in state
    # The windows by path, each with its reason: refused, refusal believed, read again.
    assert [p for p, _ in _paths(state)["usage_report"]] == ["legacy", "legacy", "analytics"]


@pytest.mark.parametrize("status", [404, 400])
def test_an_analytics_report_that_is_not_there_or_refuses_the_request_falls_back(
    status, provider, provider_settings, day, sandbox
):
    sandbox.fault(A_USAGE, status, times=5)
    state: dict[str, Any] = {}
    samples = _fetch(provider, ANALYTICS_KEY, provider_settings, day, state)
    sandbox.reset()
    assert Counter(samples) == Counter(_fetch(provider, LEGACY_KEY, provider_settings, day))
    assert _paths(state)["usage_report"][0][0] == "legacy" and f"HTTP {status}" in _paths(state)["usage_report"][0][1]
    # A missing report is believed for a while (the cost report is not asked); a refused
    # request only for its window (the cost report is).
    assert (analytics.REFUSAL in state) == (status == 404)
    assert _paths(state)["cost_report"][0][0] == ("legacy" if status == 404 else "analytics")


def test_windows_before_2026_or_older_than_365_days_are_not_asked_for(provider, provider_settings, sandbox):
    now = datetime.now(UTC)
    for window in (Window(days_ago(366), days_ago(365)),
                   Window(datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))):  # fmt: skip
        sandbox.reset()
        state: dict[str, Any] = {}
        samples = _fetch(provider, ANALYTICS_KEY, provider_settings, window, state)
        assert samples, "the legacy reports hold usage then"
        assert sandbox.requests(ANALYTICS) == [] and sandbox.requests(USAGE_PATH) and sandbox.requests(COSTS_PATH)
        (path, reason), = _paths(state)["usage_report"]  # fmt: skip
        assert path == "legacy" and ("2026-01-01" in reason or "365 days" in reason), reason
        if window.start < datetime(2026, 1, 1, tzinfo=UTC):
            assert "2026-01-01" in reason, reason  # the first rule that applies is named
        elif window.start < now - timedelta(days=364):
            assert "365 days" in reason, reason


def test_a_bucket_at_the_group_cap_sends_the_whole_window_to_legacy(
    provider, provider_settings, three_days, sandbox, monkeypatch
):
    # Each hour holds its 3 largest groups only, with no remainder row: neither report may be
    # stored in part, so both windows are read from the legacy reports.
    monkeypatch.setattr(analytics, "ANALYTICS_GROUP_CAP", 3)
    sandbox.change("anthropic", "cap_analytics_groups", cap="3")
    state: dict[str, Any] = {}
    answered: list[Answered] = []
    samples = _fetch(provider, ANALYTICS_KEY, provider_settings, three_days, state, answered)
    assert sandbox.requests(A_USAGE) and sandbox.requests(A_COST), "both analytics reports were read first"
    assert sandbox.requests(USAGE_PATH) and sandbox.requests(COSTS_PATH)
    for stream in ("usage_report", "cost_report"):
        (path, reason), = _paths(state)[stream]  # fmt: skip
        assert path == "legacy" and "cap" in reason, reason
    assert analytics.REFUSAL not in state, "a crowded hour is no refusal"
    sandbox.reset()
    legacy_answered: list[Answered] = []
    assert Counter(samples) == Counter(_fetch(provider, LEGACY_KEY, provider_settings, three_days, {}, legacy_answered))
    assert sorted(answered, key=repr) == sorted(legacy_answered, key=repr), "each window answered once, by legacy"


def test_an_unreadable_analytics_answer_sends_only_its_stream_to_legacy(provider, provider_settings, day, sandbox):
    sandbox.fault(
        A_USAGE, 200, body={"data": "not a list", "has_more": False}, headers={"anthropic-organization-id": "org"}
    )
    state: dict[str, Any] = {}
    samples = _fetch(provider, ANALYTICS_KEY, provider_settings, day, state)
    assert (
        _paths(state)["usage_report"][0][0] == "legacy" and "could not be read" in _paths(state)["usage_report"][0][1]
    )
    assert _paths(state)["cost_report"] == [("analytics", "")]
    assert sandbox.requests(USAGE_PATH) and not sandbox.requests(COSTS_PATH)
    sandbox.reset()
    assert Counter(samples) == Counter(_fetch(provider, LEGACY_KEY, provider_settings, day))


def test_an_analytics_answer_without_organization_id_is_not_used(provider, provider_settings, day, sandbox):
    # Stored under an empty account it could not replace the legacy rows of the organization.
    sandbox.fault(A_COST, 200, body={"data": [], "has_more": False, "next_page": None},
                  headers={"anthropic-organization-id": ""})  # fmt: skip
    state: dict[str, Any] = {}
    _fetch(provider, ANALYTICS_KEY, provider_settings, day, state)
    assert _paths(state)["cost_report"][0] == ("legacy", "the analytics report answered without an organization id")
    assert sandbox.requests(COSTS_PATH)


@pytest.mark.parametrize(("status", "error"), [(401, CredentialError), (429, RateLimited)])
def test_a_rejected_key_or_throttling_on_analytics_is_no_reason_to_fall_back(
    status, error, provider, provider_settings, day, sandbox
):
    sandbox.fault(ANALYTICS, status, times=10, headers={"Retry-After": "600"} if status == 429 else None)
    with pytest.raises(error):
        _fetch(provider, ANALYTICS_KEY, provider_settings, day, {})
    assert not sandbox.requests(USAGE_PATH) and not sandbox.requests(COSTS_PATH)


# ---------------------------------------------------------------- through the engine


def _truth(start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    for row in fake.truth_usage(start, end):
        for metric, operation, value in usage_items(row):
            totals[(metric, row.hour_start, row.workspace_id or "default", row.model, operation, row.service_tier)] += (
                value
            )
    for c in fake.truth_costs(start, end):
        totals[
            ("cost", c.day, c.workspace_id or "default", c.model or "", cost_operation_of(c), c.service_tier or "")
        ] += c.amount
    return nonzero(totals)


def _stored(integration: Integration, start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    rows = UsageRecord.objects.filter(integration=integration, bucket_start__gte=start, bucket_start__lt=end)
    for r in rows.exclude(metric="estimated_cost"):
        totals[(r.metric, r.bucket_start, r.project, r.model, r.operation, r.service_tier)] += r.quantity
    return nonzero(totals)


def _sync(integration: Integration, since: datetime) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=days_ago(1), trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    integration.refresh_from_db()
    return run


@pytest.mark.django_db
def test_a_window_read_by_both_paths_at_different_times_is_counted_once(
    create_integration, sandbox, monkeypatch, superuser_client
):
    monkeypatch.setattr(analytics, "ANALYTICS_RECHECK", timedelta(0))
    integration = create_integration("anthropic", ANALYTICS_KEY, {"base_url": base_url(sandbox)})
    d3, d1 = days_ago(3), days_ago(1)
    _sync(integration, d3)
    assert _stored(integration, d3, d1) == _truth(d3, d1)
    rows = UsageRecord.objects.filter(integration=integration).count()
    paths = integration.provider_state[analytics.READ_PATHS]
    assert {e["path"] for entries in paths.values() for e in entries} == {"analytics"}
    # An operator sees the paths on the integration's admin page.
    page = superuser_client.get(reverse("admin:integrations_integration_change", args=[integration.pk]))
    assert page.status_code == 200 and "read_paths" in page.content.decode()

    # The organization loses the beta and a cost is withdrawn: the legacy reports re-read the
    # window, replacing the analytics rows (and removing the withdrawn one), not adding to them.
    sandbox.change("anthropic", "refuse_analytics")
    fake.withdraw_cost("Web Search")
    run = _sync(integration, d3)
    assert _stored(integration, d3, d1) == _truth(d3, d1)
    assert (
        run.rows_removed >= 2
        and not UsageRecord.objects.filter(integration=integration, operation="web_search", metric="cost").exists()
    )
    assert integration.provider_state[analytics.READ_PATHS]["usage_report"][-1]["path"] == "legacy"

    # Readable again (and Web Search charged again): analytics reads the window back.
    sandbox.reset()
    _sync(integration, d3)
    assert _stored(integration, d3, d1) == _truth(d3, d1)
    assert UsageRecord.objects.filter(integration=integration).count() == rows
    assert integration.provider_state[analytics.READ_PATHS]["usage_report"][-1]["path"] == "analytics"
