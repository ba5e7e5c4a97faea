"""Helpers for tests in every app that need usage rows without a sync."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from usage import rollups
from usage.models import Application, License, UsageRecord


def new_record(integration: Any, start: datetime, metric: str = "cost", quantity: Any = "1", unit: str = "USD",
               **fields: Any) -> UsageRecord:  # fmt: skip
    """An hourly base row of `integration`, not saved (for bulk_create, then a rollup rebuild)."""
    return UsageRecord(
        workspace_id=integration.workspace_id,
        integration=integration,
        provider=integration.provider,
        bucket_start=start,
        bucket_end=start + timedelta(hours=1),
        metric=metric,
        quantity=Decimal(str(quantity)),
        unit=unit,
        **fields,
    )


def make_record(integration: Any, start: datetime, metric: str = "cost", quantity: str = "1", unit: str = "USD",
                **fields: Any) -> UsageRecord:  # fmt: skip
    """An hourly base row written directly, and its day's rollup recomputed, as every write path
    does (the pages read rollups)."""
    record = new_record(integration, start, metric, quantity, unit, **fields)
    record.save(force_insert=True)
    rollups.refresh_moments(integration.pk, [start])
    return record


def make_license(application: Application, plan_name: str, kind: str, start_date: date, **fields: Any) -> License:
    """A license of `application`, in the application's workspace."""
    return License.objects.create(
        workspace=application.workspace,
        application=application,
        plan_name=plan_name,
        kind=kind,
        start_date=start_date,
        **fields,
    )
