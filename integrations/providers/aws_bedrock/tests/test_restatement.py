"""AWS Bedrock through the real engine against moto, twice, with CloudWatch changed in between:
a listed model that now reports nothing in some hours loses its rows there, while a model
ListMetrics stopped listing and no sync remembers is not answered and keeps its rows (and so
does its plain sibling, which is still listed and unchanged); imported rows stay. A model an
earlier sync saw is still read after ListMetrics stops listing it (a backfill of an older window)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.aws_bedrock.tests.support import (
    MODELS,
    REGIONS,
    ROLE_ARN,
    days_ago,
    forget_datapoints,
    hide_from_list_metrics,
    true_totals,
)
from integrations.providers.testing import assert_totals_equal
from integrations.tests.restatement import import_rows, stored_rows
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
UNLISTED = ("us-east-1", "us.anthropic.claude-3-5-haiku-20241022-v1:0")  # its plain sibling stays listed
SILENT = ("eu-central-1", "eu.amazon.nova-pro-v1:0")
DIMS = ("region", "model", "deployment", "bucket_start")


@pytest.fixture
def integration(create_integration, seeded) -> Integration:
    return create_integration("aws_bedrock", {"role_arn": ROLE_ARN}, {"regions": ",".join(REGIONS)})


def sync(integration: Integration, window) -> SyncRun:
    run = engine.integration_sync(
        integration_id=integration.pk, since=window.start, until=window.end, trigger="command"
    )
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def stored(integration: Integration, **filters) -> Counter:
    totals: Counter = Counter()
    for r in (
        UsageRecord.objects.filter(integration=integration, **filters)
        .exclude(metric="estimated_cost")
        .exclude(provenance="imported")
    ):
        totals[(r.metric, *(getattr(r, d) for d in DIMS))] += r.quantity
    return totals


def only(models: dict[str, tuple[str, ...]], *keep: tuple[str, str]) -> dict[str, tuple[str, ...]]:
    return {r: tuple(m for m in ids if (r, m) in keep) for r, ids in models.items()}


def without(models: dict[str, tuple[str, ...]], *drop: tuple[str, str]) -> dict[str, tuple[str, ...]]:
    return {r: tuple(m for m in ids if (r, m) not in drop) for r, ids in models.items()}


def rows_of(integration: Integration, region_model: tuple[str, str], since: datetime | None = None) -> set[tuple]:
    region, model_id = region_model
    lookup = {"deployment": model_id} if model_id.startswith(("us.", "eu.")) else {"model": model_id, "deployment": ""}
    if since is not None:
        lookup["bucket_start__gte"] = since
    return stored_rows(integration, region=region, **lookup)


def test_a_model_that_went_quiet_loses_its_rows_and_an_unlisted_one_keeps_them(integration, seeded):
    d3, d2, d1 = seeded.start, days_ago(2), seeded.end
    import_rows(integration, [{"bucket_start": d2, "bucket_end": d1, "region": "us-east-1", "resource": "provisioned-throughput",
                               "metric": "cost", "quantity": "12.5", "unit": "USD"}])  # fmt: skip
    sync(integration, seeded)
    assert_totals_equal(stored(integration), true_totals(d3, d1, *DIMS))
    unlisted_before = rows_of(integration, UNLISTED)
    silenced = rows_of(integration, SILENT, since=d2)
    assert unlisted_before and silenced

    assert forget_datapoints(*UNLISTED) > 0  # ListMetrics no longer lists it at all
    assert forget_datapoints(*SILENT, start=d2) > 0  # still listed (earlier datapoints), silent since d2
    # A connection made afresh remembers no model: nothing tells it the unlisted one existed.
    Integration.objects.filter(pk=integration.pk).update(provider_state={})
    run = sync(integration, seeded)

    # The unlisted model was not read: not answered, its rows stay exactly as they were.
    assert rows_of(integration, UNLISTED) == unlisted_before
    # The silent model: nothing from d2 on, its earlier hours still the truth.
    assert not rows_of(integration, SILENT, since=d2)
    assert_totals_equal(
        stored(integration, region=SILENT[0], deployment=SILENT[1]),
        true_totals(d3, d2, *DIMS, models=only(MODELS, SILENT)),
    )
    assert run.rows_removed == len(silenced)
    # Every other model (the unlisted one's plain sibling included) is the unchanged truth.
    others = without(MODELS, UNLISTED, SILENT)
    expected = true_totals(d3, d1, *DIMS, models=others)
    got = Counter({k: v for k, v in stored(integration).items() if (k[1], k[3] or k[2]) not in (UNLISTED, SILENT)})
    assert_totals_equal(got, expected)
    assert UsageRecord.objects.filter(integration=integration, provenance="imported").count() == 1


def test_a_backfill_reads_a_model_idle_for_two_weeks_that_an_earlier_sync_saw(integration, seeded, monkeypatch):
    d3, d1 = seeded.start, seeded.end
    sync(integration, seeded)
    integration.refresh_from_db()
    remembered = integration.provider_state["models_seen"]["AWS/Bedrock"]["us-east-1"]
    assert ["ModelId", UNLISTED[1]] in remembered

    # Two weeks on, ListMetrics no longer lists the profile, but CloudWatch keeps its hours.
    hide_from_list_metrics(monkeypatch, UNLISTED[1])
    UsageRecord.objects.filter(integration=integration).delete()
    run = sync(integration, seeded)

    assert rows_of(integration, UNLISTED)  # read by its remembered id
    assert_totals_equal(stored(integration), true_totals(d3, d1, *DIMS))
    assert run.rows_removed == 0


def test_without_memory_the_idle_model_is_missed_and_its_rows_stay(integration, seeded, monkeypatch):
    sync(integration, seeded)
    before = rows_of(integration, UNLISTED)
    hide_from_list_metrics(monkeypatch, UNLISTED[1])
    Integration.objects.filter(pk=integration.pk).update(provider_state={})
    sync(integration, seeded)
    assert rows_of(integration, UNLISTED) == before  # not read, not answered: nothing removed
