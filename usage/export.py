"""CSV export of normalized usage: the `export_usage` command and (later) the pages share it.

Rows are streamed from the database with `.iterator()` and written one by one, so memory
stays flat however many records a workspace holds.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from usage.models import DIMENSION_FIELDS, UsageRecord

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from accounts.models import Workspace

# The stable column order of design.md ("Management commands"); scripts rely on it.
CSV_COLUMNS: tuple[str, ...] = (
    "provider",
    "integration",
    "bucket_start",
    "bucket_end",
    *DIMENSION_FIELDS,
    "metric",
    "quantity",
    "unit",
    "application",
    "license",
)
CHUNK_SIZE = 2000

# What is read per record; attribution (issue 5) adds its fields here.
_VALUES: tuple[str, ...] = ("provider", "integration_id", "bucket_start", "bucket_end", *DIMENSION_FIELDS, "metric", "quantity", "unit")


class _Writable(Protocol):
    def write(self, s: str, /) -> Any: ...


def usage_export_queryset(
    *,
    workspace: Workspace,
    integration_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[UsageRecord]:
    """The workspace's records whose bucket starts in [since, until), oldest first.

    Starts from the tenant; the caller checks that `integration_id` belongs to it.
    """
    records = UsageRecord.objects.filter(workspace=workspace)
    if integration_id is not None:
        records = records.filter(integration_id=integration_id)
    if since is not None:
        records = records.filter(bucket_start__gte=since)
    if until is not None:
        records = records.filter(bucket_start__lt=until)
    return records.order_by("bucket_start", "pk")


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, e.g. 2026-01-31T13:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_quantity(quantity: Decimal) -> str:
    """A plain decimal: no exponent, no trailing zeros (1234, 0.5)."""
    if quantity == 0:
        return "0"  # also turns -0 and 0E-9 into "0"
    return format(quantity.normalize(), "f")


def attribution_columns(record: Mapping[str, Any]) -> tuple[str, str]:
    """The (application, license) a record was attributed to.

    Hook for issue 5 (attribution): empty until records carry an Application and a License.
    """
    return "", ""


def usage_csv_rows(records: QuerySet[UsageRecord]) -> Iterator[list[str]]:
    """The header, then one list of strings per record, streamed in chunks."""
    yield list(CSV_COLUMNS)
    for r in records.values(*_VALUES).iterator(chunk_size=CHUNK_SIZE):
        application, license_ = attribution_columns(r)
        yield [
            r["provider"],
            str(r["integration_id"]),
            format_time(r["bucket_start"]),
            format_time(r["bucket_end"]),
            *(r[d] for d in DIMENSION_FIELDS),
            r["metric"],
            format_quantity(r["quantity"]),
            r["unit"],
            application,
            license_,
        ]


def write_rows_csv(out: _Writable, rows: Iterable[list[str]]) -> int:
    """Write rows to a text file object; returns the number of rows after the header."""
    writer = csv.writer(out)
    count = -1
    for row in rows:
        writer.writerow(row)
        count += 1
    return max(count, 0)


def usage_write_csv(out: _Writable, records: QuerySet[UsageRecord]) -> int:
    """Write the CSV export of `records` to `out`; returns the number of data rows."""
    rows = usage_csv_rows(records)
    try:
        return write_rows_csv(out, rows)
    finally:
        rows.close()  # a reader that went away (broken pipe) must not leave the cursor open
