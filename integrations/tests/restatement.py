"""Helpers for the tests that change a provider's answer between two syncs (a re-read never
leaves a ghost): import rows through the real CSV importer, and read back what is stored."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.models import Integration
from integrations.providers.base import DIMENSIONS
from usage.export import CSV_COLUMNS
from usage.importer import usage_import_csv
from usage.models import UsageRecord

ROW_FIELDS = ("bucket_start", "bucket_end", *DIMENSIONS, "metric", "quantity", "unit", "provenance", "stream")


def import_rows(integration: Integration, rows: Iterable[dict[str, Any]]) -> None:
    """Import rows (bucket_start, bucket_end, metric, quantity, unit and any dimensions) with the
    app's CSV importer, as an admin would: they are stored with provenance "imported"."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="raise")
    writer.writeheader()
    for row in rows:
        values = {
            k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else str(v)) for k, v in row.items()
        }
        writer.writerow({"provider": integration.provider, **values})
    usage_import_csv(integration=integration, data=out.getvalue().encode())


def stored_rows(integration: Integration, **filters: Any) -> set[tuple]:
    """Every stored row of the integration (matching `filters`), as comparable tuples."""
    return set(UsageRecord.objects.filter(integration=integration, **filters).values_list(*ROW_FIELDS))


def stored_totals(integration: Integration, *dims: str, **filters: Any) -> Counter:
    """Stored quantity per (metric, *dims); dims are row fields (e.g. "bucket_start", "model")."""
    totals: Counter = Counter()
    for row in (
        UsageRecord.objects.filter(integration=integration, **filters)
        .exclude(metric="estimated_cost")
        .values("metric", "quantity", *dims)
    ):
        totals[(row["metric"], *(row[d] for d in dims))] += row["quantity"]
    return totals


def nonzero(totals: Mapping[Any, Decimal | int]) -> dict[Any, Decimal | int]:
    """The totals without zero entries (a Counter keeps a key whose sum is 0)."""
    return {k: v for k, v in totals.items() if v}
