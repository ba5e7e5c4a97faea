"""Google Vertex AI through the real engine, twice, with the billing export restated in between:
a SKU re-catalogued under a new id and a promotion's credits withdrawn leave no row behind in
the days re-read; the days before keep what they had, and imported rows stay."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.google_vertex.schema import CREDITS_OPERATION, credit_operation
from integrations.providers.google_vertex.tests import support
from integrations.tests.restatement import import_rows, nonzero, stored_rows
from sandbox import google_vertex as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
START, END = support.days_ago(20), support.days_ago(1)
SKU, NEW_ID = fake.SKUS[0].id, "A1F3-5C2E-7C00"


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("google_vertex", support.credential(sandbox), support.settings(sandbox))


def sync(integration: Integration, since: datetime | None = None) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=END, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


PROMOTION = credit_operation("PROMOTION")


def truth(start: datetime, end: datetime) -> dict:
    key = lambda r: (r.day, r.project_id, r.region or "", r.sku.model, r.sku.id)  # noqa: E731
    return nonzero(support.true_totals(start, end, key))


def stored(integration: Integration, start: datetime, end: datetime) -> dict:
    totals: Counter = Counter()
    rows = UsageRecord.objects.filter(integration=integration, bucket_start__gte=start, bucket_start__lt=end).exclude(
        metric="estimated_cost"
    )
    for r in rows.exclude(provenance="imported"):
        totals[(r.metric, r.bucket_start.date(), r.project, r.region, r.model, r.resource)] += r.quantity
    return nonzero(totals)


def test_a_renamed_sku_and_withdrawn_credits_leave_no_ghost(integration):
    day = support.days_ago(2)
    import_rows(integration, [{"bucket_start": day, "bucket_end": support.days_ago(1), "project": fake.PROJECTS[0],
                               "resource": "support-contract", "metric": "cost", "quantity": "40", "unit": "USD"}])  # fmt: skip
    sync(integration, since=START)
    assert stored(integration, START, END) == truth(START, END)
    credits = UsageRecord.objects.filter(integration=integration, project=fake.CREDIT_PROJECT, operation=PROMOTION)
    old_sku = UsageRecord.objects.filter(integration=integration, resource=SKU)
    assert credits.exists() and old_sku.exists()

    fake.rename_sku(SKU, new_id=NEW_ID)
    fake.withdraw_credits(fake.CREDIT_PROJECT)
    before = {"sku": stored_rows(integration, resource=SKU), "credits": stored_rows(integration, operation=PROMOTION)}
    run = sync(integration)  # scheduled: re-reads the 5-day restatement window (from a 7-day chunk start)
    reread = run.window_start
    assert START < reread <= support.days_ago(6)
    assert stored(integration, reread, END) == truth(reread, END)  # the new truth, exactly
    assert not old_sku.filter(bucket_start__gte=reread).exists()
    assert UsageRecord.objects.filter(integration=integration, resource=NEW_ID, bucket_start__gte=reread).exists()
    assert not credits.filter(bucket_start__gte=reread).exists()
    assert run.rows_removed == len({r for r in before["sku"] | before["credits"] if r[0] >= reread})
    # Days before the re-read window keep the old SKU id and the credits: they were not re-read.
    assert stored_rows(integration, resource=SKU) == {r for r in before["sku"] if r[0] < reread}
    assert stored_rows(integration, operation=PROMOTION) == {r for r in before["credits"] if r[0] < reread}
    imported = UsageRecord.objects.get(integration=integration, provenance="imported")
    assert (imported.resource, imported.quantity) == ("support-contract", Decimal(40))


def test_rows_of_the_old_key_are_replaced_in_a_reread_window_never_added(integration):
    """Before services and credit types were read, rows had no endpoint and one untyped
    "credits" operation. A re-read stores the new keys and removes the old-key rows of every day
    it re-read, so the net cost of each day is the truth once, never twice."""
    sync(integration, since=START)
    records = UsageRecord.objects.filter(integration=integration).exclude(provenance="imported")
    # What the previous connector had stored for the same usage: the same rows under the old key.
    records.update(endpoint="")
    records.filter(operation__startswith=CREDITS_OPERATION + ": ").update(operation=CREDITS_OPERATION)
    assert not records.exclude(endpoint="").exists() and records.filter(operation=CREDITS_OPERATION).exists()

    run = sync(integration)  # re-reads the restatement window
    reread = run.window_start
    assert stored(integration, reread, END) == truth(reread, END)  # once, not twice
    fresh = records.filter(bucket_start__gte=reread)
    assert not fresh.filter(endpoint="").exists() and not fresh.filter(operation=CREDITS_OPERATION).exists()
    assert set(fresh.values_list("endpoint", flat=True)) == {
        "Vertex AI",
        "Generative Language API",
        "Claude Sonnet 4.5",
    }
    net = sum(r.quantity for r in fresh.filter(metric="cost"))
    assert net == sum(r.cost + r.credits for r in fake.truth_rows(reread, END))
    # Days before the re-read keep their old-key rows (they were not re-read): still counted once.
    assert records.filter(bucket_start__lt=reread, endpoint="").exists()
    assert not records.filter(bucket_start__lt=reread).exclude(endpoint="").exists()
