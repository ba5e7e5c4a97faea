"""Under 30 % transport faults a 30-day backfill converges within 5 scheduled syncs, and the
store then holds exactly the sandbox's truth: nothing lost, nothing counted twice.

OpenAI meets resets, short bodies, 5xx, 429 (Retry-After: 0) and answers slower than the
client's timeout. Anthropic meets the same plus 429s without Retry-After, which end a sync by
design (the engine reschedules it with back-off), so its backfill spans several failed syncs
and resumes from the watermark each time; there the bound is 10 syncs, and the totals must
still be exact.

The harness is integrations/tests/chaos.py; the figures are printed (pytest -s) and recorded
as test properties.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from integrations import services
from integrations.models import Integration
from integrations.providers.anthropic.tests.support import cost_operation_of, usage_fields
from integrations.tests.chaos import ChaosReport, backfill_under_chaos
from integrations.tests.test_sync_engine import TOKEN_METRICS, stored_cost, stored_tokens
from sandbox import anthropic as anthropic_truth
from sandbox import openai as openai_truth
from sandbox.chaos import KINDS
from usage.models import UsageRecord

RATE = 0.3
MAX_SYNCS = 5


@pytest.fixture(autouse=True)
def a_fetch_per_day(monkeypatch):
    """A day per fetch, as before fetch spans: ~60 requests per backfill, so every kind of
    fault is met many times and a failure strikes mid-window (with the default 31-day span a
    backfill is a handful of requests, too few for a 30 % fault mix to mean anything)."""
    from integrations.providers.base import Provider

    monkeypatch.setattr(Provider, "fetch_span", timedelta(days=1))


def _check_chaos(report: ChaosReport, record_property, max_syncs: int = MAX_SYNCS) -> None:
    print("\n" + report.summary())
    record_property("chaos_requests", report.requests)
    record_property("chaos_faults", report.faults)
    record_property("chaos_syncs", report.syncs)
    assert report.succeeded, report.summary()
    assert report.syncs <= max_syncs, report.summary()
    assert report.faults >= 0.2 * report.requests, report.summary()  # the chaos really happened
    assert all(report.injected[kind] > 0 for kind in KINDS), report.summary()
    assert report.data_through - report.window_start >= timedelta(days=30)


def _whole_days(totals: dict[tuple, Decimal], before: datetime) -> dict[tuple, Decimal]:
    # Today's cost grows during the day: compare the days that were complete when synced.
    return {k: v for k, v in totals.items() if k[0] < before.date() and v}


# ---------------------------------------------------------------- OpenAI
def _openai_tokens(start: datetime, end: datetime, now: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in openai_truth.truth_usage(start, end, now=now):
        for metric, source in TOKEN_METRICS.items():
            if getattr(row, source):
                totals[(metric, row.hour_start.date(), row.project_id, row.model)] += Decimal(getattr(row, source))
    return dict(totals)


def _openai_cost(start: datetime, end: datetime, now: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in openai_truth.truth_costs(start, end, now=now):
        totals[(row.day.date(), row.project_id)] += row.amount
    return dict(totals)


def test_a_30_day_openai_backfill_converges_under_30_percent_transport_faults(
    openai_integration, sandbox, record_property
):
    assert openai_integration.backfill_days == 30 and openai_integration.data_through is None
    report = backfill_under_chaos(
        integration=openai_integration, sandbox=sandbox, rate=RATE, seed=5, max_syncs=MAX_SYNCS
    )
    _check_chaos(report, record_property)

    start, end, now = report.window_start, report.data_through, report.finished_at
    assert stored_tokens(openai_integration) == _openai_tokens(start, end, now)
    assert _whole_days(stored_cost(openai_integration), end) == _whole_days(_openai_cost(start, end, now), end)


# ---------------------------------------------------------------- Anthropic
@pytest.fixture
def anthropic_integration(workspace, admin_user, sandbox) -> Integration:
    return services.integration_create(
        workspace=workspace,
        provider_slug="anthropic",
        credential={"api_key": anthropic_truth.ADMIN_KEY},
        settings={"base_url": sandbox.url + anthropic_truth.PREFIX},
        created_by=admin_user,
    )


def _anthropic_usage(start: datetime, end: datetime, now: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in anthropic_truth.truth_usage(start, end, now=now):
        for metric, value in usage_fields(row).items():
            totals[(metric, row.hour_start.date(), row.workspace_id or "default", row.model)] += value
    return {k: v for k, v in totals.items() if v}


def _anthropic_stored_usage(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric__in=["cost", "estimated_cost"]):
        totals[(r.metric, r.bucket_start.date(), r.project, r.model)] += r.quantity
    return {k: v for k, v in totals.items() if v}


def _anthropic_cost(start: datetime, end: datetime, now: datetime) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in anthropic_truth.truth_costs(start, end, now=now):
        totals[(row.day.date(), row.workspace_id or "default", row.model or "", cost_operation_of(row))] += row.amount
    return dict(totals)


def _anthropic_stored_cost(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration, metric="cost"):
        totals[(r.bucket_start.date(), r.project, r.model, r.operation)] += r.quantity
    return dict(totals)


def test_a_30_day_anthropic_backfill_converges_exactly_across_syncs_ended_by_429s(
    anthropic_integration, sandbox, record_property
):
    report = backfill_under_chaos(
        integration=anthropic_integration, sandbox=sandbox, rate=RATE, seed=3, max_syncs=10, retry_after=["0", None]
    )
    _check_chaos(report, record_property, max_syncs=10)

    start, end, now = report.window_start, report.data_through, report.finished_at
    assert _anthropic_stored_usage(anthropic_integration) == _anthropic_usage(start, end, now)
    assert _whole_days(_anthropic_stored_cost(anthropic_integration), end) == _whole_days(
        _anthropic_cost(start, end, now), end
    )
