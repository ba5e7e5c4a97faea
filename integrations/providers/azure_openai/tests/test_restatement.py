"""Azure OpenAI through the real engine, twice, with the subscription changed in between: a
deleted deployment's metrics (kept by Azure, now without a model) replace its rows instead of
doubling them; an account no longer discovered is not answered and keeps its rows; imported
rows stay."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.azure_openai.tests import support
from integrations.tests.restatement import import_rows, nonzero, stored_rows
from sandbox import azure_openai as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
EASTUS, WESTEUROPE = fake.ACCOUNTS[0], fake.ACCOUNTS[3]
DEPLOYMENT = EASTUS.deployments[0]  # gpt-4o-prod


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("azure_openai", support.credential(), support.settings(sandbox))


def sync(integration: Integration, since: datetime, until: datetime) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def truth(start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    for r in fake.truth_usage(start, end):
        for metric, field in support.FIELDS.items():
            totals[(metric, r.hour_start, r.resource_group, r.account, r.deployment, r.model)] += getattr(r, field)
    return nonzero(totals)


def stored(integration: Integration, **exclude: str) -> dict:
    totals: Counter = Counter()
    for r in (
        UsageRecord.objects.filter(integration=integration)
        .exclude(metric="estimated_cost")
        .exclude(provenance="imported")
        .exclude(**exclude)
    ):
        totals[(r.metric, r.bucket_start, r.project, r.resource, r.deployment, r.model)] += r.quantity
    return nonzero(totals)


def test_a_deleted_deployment_is_replaced_and_an_undiscovered_account_keeps_its_rows(integration):
    d2, d1 = support.days_ago(2), support.days_ago(1)
    import_rows(integration, [{"bucket_start": d2, "bucket_end": d1, "resource": EASTUS.name, "deployment": DEPLOYMENT.name,
                               "metric": "cost", "quantity": "80", "unit": "USD"}])  # fmt: skip
    sync(integration, d2, d1)
    assert stored(integration) == truth(d2, d1)
    named = UsageRecord.objects.filter(integration=integration, resource=EASTUS.name, deployment=DEPLOYMENT.name,
                                       model=DEPLOYMENT.model_id)  # fmt: skip
    ghosts = named.count()
    west_before = stored_rows(integration, resource=WESTEUROPE.name)
    assert ghosts and west_before

    fake.delete_deployment(EASTUS.name, DEPLOYMENT.name)
    fake.remove_account(WESTEUROPE.name)
    run = sync(integration, d2, d1)
    # The deployment's metrics are still there, without a model: replaced, not doubled.
    assert not named.exists() and run.rows_removed == ghosts
    assert stored(integration, resource=WESTEUROPE.name) == truth(d2, d1)  # the new truth (west is gone from it)
    assert {m for (_, _, _, a, dep, m) in truth(d2, d1) if a == EASTUS.name and dep == DEPLOYMENT.name} == {""}
    # Not discovered, so not answered: the account's rows stay as they were.
    assert stored_rows(integration, resource=WESTEUROPE.name) == west_before
    assert UsageRecord.objects.filter(integration=integration, provenance="imported").count() == 1
