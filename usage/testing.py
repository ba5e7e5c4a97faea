"""Helpers for tests in every app that need usage rows without a sync."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from usage import rollups
from usage.models import UsageRecord


def make_record(integration: Any, start: datetime, metric: str = "cost", quantity: str = "1", unit: str = "USD",
                **fields: Any) -> UsageRecord:  # fmt: skip
    """An hourly base row written directly, and its day's rollup recomputed, as every write path
    does (the pages read rollups)."""
    record = UsageRecord.objects.create(
        workspace=integration.workspace,
        integration=integration,
        provider=integration.provider,
        bucket_start=start,
        bucket_end=start + timedelta(hours=1),
        metric=metric,
        quantity=Decimal(quantity),
        unit=unit,
        **fields,
    )
    rollups.refresh_moments(integration.pk, [start])
    return record
