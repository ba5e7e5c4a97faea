"""Groq through the real engine, twice, with the metrics changed in between: a model whose series
are gone loses its hourly estimates for the metrics read, while a metric Groq no longer lists
(renamed) is not answered and keeps its rows; imported rows stay."""

from __future__ import annotations

from collections import Counter

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.groq.tests.support import days_ago, true_totals
from integrations.tests.restatement import import_rows, stored_rows
from sandbox import groq as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
D2, D1 = days_ago(2), days_ago(1)
NAMES_PATH = "/groq" + fake.PREFIX + "/api/v1/label/__name__/values"
MODEL = fake.MODELS[0]


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("groq", {"api_key": fake.ENTERPRISE_KEY}, {"base_url": fake.base_url(sandbox.url)})


def sync(integration: Integration) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=D2, until=D1, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def stored(integration: Integration, **filters) -> Counter:
    totals: Counter = Counter()
    for r in UsageRecord.objects.filter(integration=integration, provenance="derived", **filters):
        totals[(r.metric, r.bucket_start, r.project, r.model)] += r.quantity
    return totals


def test_a_model_gone_quiet_loses_the_estimates_of_the_metrics_read(integration, sandbox):
    import_rows(integration, [{"bucket_start": D2, "bucket_end": D1, "model": MODEL, "project": fake.PROJECTS[0],
                               "metric": "requests", "quantity": "12", "unit": "requests"}])  # fmt: skip
    sync(integration)
    assert stored(integration) == true_totals(D2, D1, lambda r: (r.hour_start, r.project_id, r.model))
    requests_before = stored_rows(integration, model=MODEL, metric="requests", provenance="derived")
    model_requests = stored(integration, model=MODEL, metric="requests")
    tokens = UsageRecord.objects.filter(
        integration=integration, model=MODEL, metric__in=["input_tokens", "output_tokens"]
    )
    estimates = UsageRecord.objects.filter(integration=integration, model=MODEL, stream="rates:estimate")
    ghosts = tokens.count() + estimates.count()  # the tokens' list-price estimates go with them
    assert ghosts > tokens.count() and requests_before

    fake.withdraw_model(MODEL)
    # Groq lists no requests metric any more (renamed): that metric is not read, so not answered.
    listed = [n for n in fake.METRIC_NAMES if n != fake.REQUESTS]
    sandbox.fault(NAMES_PATH, 200, times=10, body={"status": "success", "data": listed})
    run = sync(integration)
    assert not tokens.exists() and not estimates.exists() and run.rows_removed == ghosts
    assert stored_rows(integration, model=MODEL, metric="requests", provenance="derived") == requests_before
    # The new truth for what was read (tokens); requests: the other models' truth, and the
    # quiet model's old rows, which nothing answered for.
    truth = true_totals(D2, D1, lambda r: (r.hour_start, r.project_id, r.model))
    assert stored(integration) == {k: v for k, v in truth.items() if k[0] != "requests"} | stored(
        integration, metric="requests"
    )
    assert (
        stored(integration, metric="requests")
        == {k: v for k, v in truth.items() if k[0] == "requests"} | model_requests
    )
    assert UsageRecord.objects.get(integration=integration, provenance="imported").quantity == 12
