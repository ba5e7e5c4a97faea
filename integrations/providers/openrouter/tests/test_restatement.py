"""OpenRouter through the real engine, twice, with /activity changed in between (an endpoint's
activity withdrawn) and the clock moved on: the days /activity served again hold the new truth
and no row of the withdrawn endpoint; the days that left the 30-day horizon were not served,
so they are not answered and keep their rows; imported rows stay."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
import time_machine

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.openrouter.tests.support import base_url, days_ago, truth
from integrations.tests.restatement import import_rows, nonzero, stored_rows
from sandbox import openrouter as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
BUSY = fake.ENDPOINTS[0].endpoint_id  # used every day


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("openrouter", {"api_key": fake.MANAGEMENT_KEY}, {"base_url": base_url(sandbox)})


def sync(integration: Integration, since: datetime, until: datetime) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def stored(integration: Integration, start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    rows = UsageRecord.objects.filter(integration=integration, bucket_start__gte=start, bucket_start__lt=end).exclude(
        metric="estimated_cost"
    )
    for r in rows.exclude(provenance="imported"):
        totals[(r.metric, r.bucket_start.date(), r.model, r.endpoint, r.deployment)] += r.quantity
    return nonzero(totals)


def true(start: datetime, end: datetime) -> dict:
    return nonzero(truth(start, end, lambda r: (r.date, r.model_permaslug, r.endpoint_id, r.provider_name)))


def test_an_endpoint_withdrawn_is_removed_from_served_days_only(integration, pinned_clock):
    d30, d28, d1 = days_ago(30), days_ago(28), days_ago(1)
    import_rows(integration, [{"bucket_start": d28, "bucket_end": d28 + timedelta(days=1), "endpoint": BUSY,
                               "metric": "requests", "quantity": "3", "unit": "requests"}])  # fmt: skip
    sync(integration, d30, d1)
    assert stored(integration, d30, d1) == true(d30, d1)
    outside = stored_rows(integration, bucket_start__lt=d28)  # the two days about to leave the horizon
    assert {r[0] for r in outside} == {d30, days_ago(29)}

    fake.withdraw_endpoint(BUSY)
    with time_machine.travel(pinned_clock + timedelta(days=2), tick=True):
        first, _ = fake.history()
        assert first == d28.date()  # d30 and d29 are no longer served
        run = sync(integration, d30, d1)
        assert stored(integration, d28, d1) == true(d28, d1)  # the new truth, on every served day
    assert (
        not UsageRecord.objects.filter(integration=integration, endpoint=BUSY, bucket_start__gte=d28)
        .exclude(provenance="imported")
        .exists()
    )
    # four metrics of the busy endpoint and their list-price estimate, on each of the 27 days re-read
    assert run.rows_removed == 5 * 27
    # Outside the horizon: not served, not answered, kept as they were (the busy endpoint included).
    assert stored_rows(integration, bucket_start__lt=d28) == outside
    imported = UsageRecord.objects.get(integration=integration, provenance="imported")
    assert (imported.endpoint, imported.quantity) == (BUSY, 3)
