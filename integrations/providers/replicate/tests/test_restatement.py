"""Replicate through the real engine, twice, with the listing changed in between: a model's
predictions deleted leave no row in the hours re-read (and the nightly job that was still
running converges), while the day before the re-read window and imported rows keep theirs."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.replicate.tests.support import days_ago
from integrations.tests.restatement import import_rows, nonzero, stored_rows
from sandbox import replicate as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
SDXL = "stability-ai/sdxl"


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration(
        "replicate", {"api_token": fake.API_TOKEN}, {"base_url": sandbox.url + fake.PREFIX + "/v1"}
    )


def sync(integration: Integration, since: datetime | None, until: datetime) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def truth(start: datetime, end: datetime, now: datetime | None = None) -> dict:
    totals: Counter = Counter()
    for row in [*fake.truth_usage(start, end, now=now), *fake.truth_training_usage(start, end, now=now)]:
        totals[("requests", row.hour_start, row.model, row.deployment)] += row.requests
        totals[("compute_seconds", row.hour_start, row.model, row.deployment)] += row.compute_seconds
        if row.input_tokens is not None:
            totals[("input_tokens", row.hour_start, row.model, row.deployment)] += row.input_tokens
            totals[("output_tokens", row.hour_start, row.model, row.deployment)] += row.output_tokens or 0
    return nonzero(totals)


def stored(integration: Integration, start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    rows = UsageRecord.objects.filter(integration=integration, bucket_start__gte=start, bucket_start__lt=end).exclude(
        metric="estimated_cost"
    )
    for r in rows.exclude(provenance="imported"):
        totals[(r.metric, r.bucket_start, r.model, r.deployment)] += r.quantity
    return nonzero(totals)


def test_deleted_predictions_leave_no_rows_in_the_reread_hours(integration):
    d3, d2, d1 = days_ago(3), days_ago(2), days_ago(1)
    early = d1 + timedelta(minutes=15)  # the nightly job created at 23:50 is still processing
    with fake.clock(early):
        sync(integration, d3, d1)
    assert stored(integration, d3, d1) == truth(d3, d1, now=early)
    import_rows(integration, [{"bucket_start": d2, "bucket_end": d2 + timedelta(hours=1), "model": SDXL,
                               "metric": "requests", "quantity": "7", "unit": "requests"}])  # fmt: skip
    # SDXL's predictions (its fine-tunes are another stream, "trainings", which this test leaves be).
    sdxl = (
        UsageRecord.objects.filter(integration=integration, model=SDXL)
        .exclude(provenance="imported")
        .exclude(stream="trainings")
    )
    ghosts = sdxl.filter(bucket_start__gte=d2).count()
    kept = stored_rows(integration, model=SDXL, bucket_start__lt=d2)
    assert ghosts and kept

    fake.delete_predictions(SDXL)
    run = sync(integration, None, d1)  # scheduled: re-reads the restatement window, the last day
    assert run.window_start == d2
    assert stored(integration, d2, d1) == truth(d2, d1)  # deleted ones gone, the running job converged
    assert not sdxl.filter(bucket_start__gte=d2).exists() and run.rows_removed == ghosts
    assert stored_rows(integration, model=SDXL, bucket_start__lt=d2) == kept  # not re-read
    imported = UsageRecord.objects.get(integration=integration, provenance="imported")
    assert (imported.model, imported.quantity) == (SDXL, 7)
