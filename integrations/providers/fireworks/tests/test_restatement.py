"""Fireworks through the real engine, with the bill restated between syncs: a serverless model's
usage and a deployment's accelerator time withdrawn leave no billing row behind, while the
metrics estimates (another stream, never answered: no window of a scrape is read twice) and
imported rows stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.base import align_down, align_up
from integrations.providers.fireworks import provider
from integrations.providers.fireworks.tests.support import DAY, HOUR, billing_truth, days_ago
from integrations.providers.testing import assert_totals_equal
from integrations.tests.restatement import import_rows, stored_rows, stored_totals
from sandbox import fireworks as fw
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def sync(integration: Integration, since: datetime | None = None) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, f"{run.error_category}: {run.error}"
    return run


def truth(start: datetime, end: datetime, now: datetime):
    def key(row) -> tuple:
        if hasattr(row, "deployment"):
            return (row.day, row.deployment.base_model, row.deployment.id)
        return (row.day, row.model, "")

    return billing_truth(start, end, now=now, key=key)


def test_withdrawn_billing_rows_go_and_the_metrics_estimates_stay(integration, clock):
    # The connector's (and the sandbox's) "now": 20 minutes past the engine's last bucket, so the
    # last chunk scrapes the metrics; 50 minutes later the second scrape stores estimates.
    latest = align_down(datetime.now(UTC) - provider.reporting_delay, HOUR)
    clock.advance(seconds=(latest + timedelta(minutes=20) - clock()).total_seconds())
    since, end = days_ago(3), align_up(latest, DAY)
    sync(integration, since=since)
    t1 = clock.advance(minutes=50)
    sync(integration)
    estimates = stored_rows(integration, stream="metrics")
    assert estimates and {r[-2] for r in estimates} == {"derived"}
    import_rows(integration, [{"bucket_start": days_ago(2), "bucket_end": days_ago(1), "model": "reserved-capacity",
                               "metric": "compute_seconds", "quantity": "3600", "unit": "seconds"}])  # fmt: skip

    model = UsageRecord.objects.filter(integration=integration, stream="billing_serverless").values_list(
        "model", flat=True
    )[0]
    deployment = fw.DEPLOYMENTS[0]
    withdrawn = UsageRecord.objects.filter(integration=integration, model=model, stream="billing_serverless").count()
    withdrawn += UsageRecord.objects.filter(
        integration=integration, deployment=deployment.id, stream="billing_dedicated"
    ).count()
    # and the list-price estimates of both (GPU hours of the deployment, tokens of the model)
    withdrawn += UsageRecord.objects.filter(
        integration=integration, model=model, stream="billing_serverless:estimate"
    ).count()
    withdrawn += UsageRecord.objects.filter(integration=integration, deployment=deployment.id,
                                            stream="billing_dedicated:estimate").count()  # fmt: skip
    assert withdrawn > 0
    fw.withdraw_model(model)
    fw.withdraw_deployment(deployment.id)
    run = sync(integration, since=since)  # the same instant: the scrape adds nothing new

    billed = stored_totals(integration, "bucket_start", "model", "deployment", provenance="reported")
    assert_totals_equal(billed, truth(since, end, t1))
    assert not UsageRecord.objects.filter(integration=integration, model=model, stream="billing_serverless").exists()
    assert not UsageRecord.objects.filter(
        integration=integration, deployment=deployment.id, stream="billing_dedicated"
    ).exists()
    assert run.rows_removed == withdrawn
    assert stored_rows(integration, stream="metrics") == estimates  # never answered: untouched
    imported = UsageRecord.objects.get(integration=integration, provenance="imported")
    assert (imported.model, imported.quantity) == ("reserved-capacity", 3600)
