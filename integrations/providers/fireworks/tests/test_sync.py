"""Fireworks through the real sync engine: true billing totals per metric, model, deployment and
day; the first sync only records a metrics baseline; a later one stores the integrated estimates;
a repeated sync changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.base import align_down, align_up
from integrations.providers.fireworks import provider
from integrations.providers.fireworks.tests.support import (
    DAY,
    HOUR,
    billing_truth,
    days_ago,
    expected_estimates,
)
from integrations.providers.testing import assert_totals_equal
from integrations.tests.restatement import stored_rows
from sandbox import fireworks as fw
from usage.models import UsageRecord

METRICS_PATH = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/metrics"


def sync(integration: Integration, since: datetime | None = None) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, f"{run.error_category}: {run.error}"
    return run


def stored(integration: Integration, provenance: str) -> Counter:
    """Stored totals per (metric, day, model, deployment, resource, region)."""
    totals: Counter = Counter()
    for r in UsageRecord.objects.filter(integration=integration, provenance=provenance):
        totals[(r.metric, r.bucket_start.date(), r.model, r.deployment, r.resource, r.region)] += r.quantity
    return totals


def truth(start: datetime, end: datetime, now: datetime) -> Counter:
    def key(row) -> tuple:
        if hasattr(row, "deployment"):
            d = row.deployment
            return (row.day.date(), d.base_model, d.id, d.accelerator_type, d.placement)
        if hasattr(row, "training_tokens"):  # a fine-tuning job's GPU seconds name the accelerator
            return (row.day.date(), row.model, "", fw.TRAINING_ACCELERATOR if row.accelerator_seconds else "", "")
        return (row.day.date(), row.model, "", "", "")

    totals = billing_truth(start, end, now=now, key=key)
    # Training tokens name no accelerator (only the GPU seconds of the same job do).
    for k in [k for k in totals if k[0] == "training_tokens" and k[4]]:
        totals[(*k[:4], "", *k[5:])] += totals.pop(k)
    return totals


def derived(integration: Integration) -> dict[tuple, Decimal]:
    return {
        (r.bucket_start, r.model, r.metric): r.quantity
        for r in UsageRecord.objects.filter(integration=integration, provenance="derived")
    }


def test_sync_stores_true_billing_totals_and_integrated_metrics(integration, sandbox, clock) -> None:
    # "Now" for the connector and the sandbox: 20 minutes into the hour after the engine's last
    # bucket boundary (the engine itself runs on the real clock and ends its window there).
    latest = align_down(datetime.now(UTC) - provider.reporting_delay, HOUR)
    t0 = clock.advance(seconds=(latest + timedelta(minutes=20) - clock()).total_seconds())
    since = days_ago(3)

    run = sync(integration, since=since)
    assert run.chunks_total >= 3
    assert_totals_equal(stored(integration, "reported"), truth(since, align_up(latest, DAY), t0), "first sync")
    assert derived(integration) == {}, "the first sync only records a metrics baseline"
    integration.refresh_from_db()
    assert integration.provider_state["metrics"]["scraped_at"] == t0.isoformat()
    assert len(sandbox.requests(METRICS_PATH)) == 1, "only the chunk reaching the present scrapes"

    first = stored_rows(integration)
    sync(integration)
    assert stored_rows(integration) == first, "a second sync at the same instant changes nothing"

    t1 = clock.advance(minutes=50)  # crosses into the next hour
    sync(integration)
    assert derived(integration) == {
        (hour, model, metric): quantity.quantize(Decimal("0.001"))
        for (hour, model, metric), quantity in expected_estimates(t0, t1).items()
    }
    assert {k[0] for k in derived(integration)} == {latest, latest + HOUR}
    # Today's billing row grew with the hour that elapsed: replaced, never added to.
    assert_totals_equal(stored(integration, "reported"), truth(since, align_up(latest, DAY), t1), "third sync")

    third = stored_rows(integration)
    sync(integration)
    assert stored_rows(integration) == third
    assert all(r.unit == "tokens" for r in UsageRecord.objects.filter(metric__endswith="tokens"))
    assert set(UsageRecord.objects.filter(metric="compute_seconds").values_list("unit", flat=True)) == {"seconds"}
