"""Factories for alert tests: usage rows go through the rollup upkeep like every write path."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from integrations.models import Integration
from integrations.testing import make_integration
from usage.models import UsageRecord
from usage.rollups import refresh_integration


def put_spend(
    integration: Integration, amounts: dict[date, str], *, metric: str = "cost", unit: str = "USD", **fields
) -> None:
    """One hourly row per day (at noon UTC) with `amount`, replacing that day's earlier rows of
    the same metric, then the rollups recomputed."""
    for day, amount in amounts.items():
        start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        UsageRecord.objects.update_or_create(
            workspace=integration.workspace,
            integration=integration,
            bucket_start=start,
            bucket_end=start + timedelta(hours=1),
            metric=metric,
            **fields,
            defaults={"provider": integration.provider, "quantity": Decimal(amount), "unit": unit},
        )
    refresh_integration(integration.pk)


def clear_spend(integration: Integration) -> None:
    UsageRecord.objects.filter(integration=integration).delete()
    refresh_integration(integration.pk)


@pytest.fixture
def openai(workspace) -> Integration:
    return make_integration(workspace)


@pytest.fixture
def no_anomalies(workspace):
    """Budget and integration tests look at their own alerts only."""
    from alerts.models import AnomalyRule

    return AnomalyRule.objects.create(workspace=workspace, enabled=False)


@pytest.fixture(autouse=True)
def pinned_clock(request: pytest.FixtureRequest):
    """The alert scenarios are written for December 2026 (budgets of that month, its weekdays):
    every test here runs from 2026-12-06T12:00Z whatever DOOW_TEST_CLOCK says, like a test marked
    `clock` (conftest.py); the ones that need another moment travel there themselves."""
    import time_machine

    moment = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with time_machine.travel(moment, tick=True):
        yield moment
