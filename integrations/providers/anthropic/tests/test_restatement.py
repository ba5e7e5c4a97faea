"""Anthropic through the real engine, twice, with the sandbox's answer changed in between: a
cost withdrawn, then a model with no more usage, leave no row behind inside the re-read window;
the other stream, the days not re-read and imported rows keep what they had."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.anthropic.tests.support import base_url, cost_operation_of, days_ago, usage_items
from integrations.tests.restatement import import_rows, nonzero, stored_rows
from sandbox import anthropic as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
OPUS = "claude-opus-4-1-20250805"


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("anthropic", {"api_key": fake.ADMIN_KEY}, {"base_url": base_url(sandbox)})


def sync(integration: Integration, since: datetime | None = None) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=days_ago(1), trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def truth(start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    for row in fake.truth_usage(start, end):
        for metric, operation, value in usage_items(row):  # server tool calls are api_calls of that tool
            totals[(metric, row.hour_start, row.workspace_id or "default", row.model, operation)] += value
    for c in fake.truth_costs(start, end):
        totals[("cost", c.day, c.workspace_id or "default", c.model or "", cost_operation_of(c))] += c.amount
    return nonzero(totals)


def stored(integration: Integration, start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    rows = UsageRecord.objects.filter(integration=integration, bucket_start__gte=start, bucket_start__lt=end).exclude(
        metric="estimated_cost"
    )
    for r in rows.exclude(provenance="imported"):
        totals[(r.metric, r.bucket_start, r.project, r.model, r.operation)] += r.quantity
    return nonzero(totals)


def test_a_withdrawn_cost_then_a_model_without_usage_leave_no_ghost(integration):
    d3, d2, d1 = days_ago(3), days_ago(2), days_ago(1)
    support_plan = {"bucket_start": d2, "bucket_end": d1, "project": "default", "operation": "support plan",
              "metric": "cost", "quantity": "20", "unit": "USD"}  # fmt: skip
    import_rows(integration, [support_plan])
    sync(integration, since=d3)
    assert stored(integration, d3, d1) == truth(d3, d1)
    searches = UsageRecord.objects.filter(integration=integration, metric="cost", operation="web_search")
    assert searches.count() >= 2, "the window should hold web search charges"
    usage_before = stored_rows(integration, stream="usage_report")

    fake.withdraw_cost("Web Search")
    run = sync(integration, since=d3)  # re-read both days
    assert stored(integration, d3, d1) == truth(d3, d1)
    assert not searches.exists() and run.rows_removed >= 2
    assert stored_rows(integration, stream="usage_report") == usage_before  # the other stream: as it was
    assert UsageRecord.objects.get(integration=integration, provenance="imported").quantity == Decimal(20)

    opus = UsageRecord.objects.filter(integration=integration, model=OPUS)
    opus_before_d2 = stored_rows(integration, model=OPUS, bucket_start__lt=d2)
    assert opus.filter(bucket_start__gte=d2).exists() and opus_before_d2
    fake.withdraw_model(OPUS)
    run = sync(integration)  # scheduled: re-reads the restatement window, the last day only
    assert run.window_start == d2
    assert stored(integration, d2, d1) == truth(d2, d1)
    assert not opus.filter(bucket_start__gte=d2).exists()
    assert stored_rows(integration, model=OPUS, bucket_start__lt=d2) == opus_before_d2  # not re-read: kept
    assert UsageRecord.objects.filter(integration=integration, provenance="imported").count() == 1
