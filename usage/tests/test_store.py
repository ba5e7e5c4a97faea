"""The usage store: idempotent upsert, and a constant number of queries per chunk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from integrations.providers.base import UsageSample
from usage import rollups
from usage.models import Application, AttributionRule, UsageRecord
from usage.store import usage_store_samples

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def samples(n: int, quantity: int = 10) -> list[UsageSample]:
    return [
        UsageSample(
            bucket_start=T0 + timedelta(hours=i),
            bucket_end=T0 + timedelta(hours=i + 1),
            metric="input_tokens",
            quantity=Decimal(quantity + i),
            model=f"model-{i % 3}",
            project="proj_a",
        )
        for i in range(n)
    ]


def test_storing_twice_stores_once_and_replaces(integration):
    assert usage_store_samples(integration=integration, samples=samples(5)) == 5
    usage_store_samples(integration=integration, samples=samples(5, quantity=100))
    assert UsageRecord.objects.filter(integration=integration).count() == 5
    assert sorted(UsageRecord.objects.values_list("quantity", flat=True)) == [Decimal(100 + i) for i in range(5)]


def test_duplicates_inside_one_chunk_are_collapsed(integration):
    batch = samples(3) + samples(3)
    assert usage_store_samples(integration=integration, samples=batch) == 3
    assert UsageRecord.objects.count() == 3


def test_dimensions_are_part_of_the_key(integration):
    a = samples(1)[0]
    b = UsageSample(**{**a.__dict__, "project": "proj_b"})
    usage_store_samples(integration=integration, samples=[a, b])
    assert UsageRecord.objects.count() == 2


@pytest.mark.parametrize("n", [10, 1500])
def test_a_chunk_costs_a_constant_number_of_queries(integration, n, django_assert_num_queries):
    app = Application.objects.create(workspace=integration.workspace, name="Chatbot")
    AttributionRule.objects.create(
        workspace=integration.workspace, provider="openai", model="model-[01]", application=app
    )
    # The workspace's rules for the provider (attribution), then one INSERT … ON CONFLICT DO
    # UPDATE, whatever N is (up to the batch size of 2000 rows), then the daily rollups of the
    # days written: the workspace's time zone, one DELETE and one INSERT … SELECT, and the same
    # two for each level derived from it (rollups.LEVELS). On PostgreSQL, whatever N is: the rules, the workspace's time
    # zone, (re)create the staging and delta tables (with the write's planner settings), COPY
    # into the staging table (not a query the test sees), the one write statement inside a
    # savepoint (3), the planner settings reset; then the rollups by difference: the lock and
    # the zone, the delta's days, one INSERT … ON CONFLICT, one DELETE of empty slices, and the
    # derived levels' DELETE and INSERT … SELECT of those days.
    levels = 2 * len(rollups.LEVELS)
    with django_assert_num_queries(11 + levels if connection.vendor == "postgresql" else 5 + levels):
        usage_store_samples(integration=integration, samples=samples(n))
    assert UsageRecord.objects.count() == n
    assert UsageRecord.objects.filter(application=app).count() == len([i for i in range(n) if i % 3 != 2])
