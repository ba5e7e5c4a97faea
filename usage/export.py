"""CSV export of normalized usage (the docs/architecture.md columns), shared by `export_usage` and the page.

Rows are streamed from the database with `.values_list(...).iterator(chunk_size=…)`: no model
instance per row and no list of all rows, so memory stays flat however many records a workspace
holds (bench/export_memory.py measures it). Application names and license labels are read once
per id and cached: a workspace has a handful of them, not one per row. The FOCUS 1.2 writer
(usage/export_focus.py) reuses these pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import TYPE_CHECKING

from integrations.models import Integration
from usage.csv_safety import Number, Writable, formula_safe_writer
from usage.dimensions import ADDED_DIMENSIONS, CSV_DIMENSIONS
from usage.models import Application, License, UsageRecord

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from accounts.models import Workspace

# The stable column order of docs/architecture.md ("Management commands"); scripts rely on it.
CSV_COLUMNS: tuple[str, ...] = (
    "provider",
    "integration",
    "bucket_start",
    "bucket_end",
    *CSV_DIMENSIONS,
    "metric",
    "quantity",
    "unit",
    "application",
    "license",
    # Appended columns (docs/architecture.md: added columns go at the end only).
    "provenance",  # reported | derived | imported | estimated
    "integration_name",  # the integration's name as it is now (the `integration` column is its id)
    *ADDED_DIMENSIONS,  # service_tier, batch, context_window, inference_geo, speed (docs/dimensions.md)
)
# Rows fetched per database round trip; also the batch the page streams at a time.
CHUNK_SIZE = 2000
# CSV lines joined into one piece of the HTTP response: fewer, larger writes to the socket.
LINES_PER_PIECE = 500

# What is read of a record first, by both exports (this CSV and FOCUS, usage/export_focus.py):
# plain columns only (ids, not joins), as tuples in this order.
RECORD_VALUES: tuple[str, ...] = (
    "provider",
    "integration_id",
    "bucket_start",
    "bucket_end",
    *CSV_DIMENSIONS,
    "metric",
    "quantity",
    "unit",
)
_VALUES: tuple[str, ...] = (*RECORD_VALUES, "application_id", "license_id", "provenance", *ADDED_DIMENSIONS)


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
    return export_order(records)


def export_order(records: QuerySet[UsageRecord]) -> QuerySet[UsageRecord]:
    """Oldest bucket first, ties by id: the same rows always come out in the same order."""
    return records.order_by("bucket_start", "pk")


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, e.g. 2026-01-31T13:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TimeFormatter:
    """format_time with a one-entry memo: consecutive rows mostly share their bucket, and
    strftime is the dearest step of a row."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._text = ""

    def __call__(self, moment: datetime) -> str:
        if moment != self._last:
            self._last, self._text = moment, format_time(moment)
        return self._text


ZERO = Number("0")
# normalize() rounds to its context's precision, 28 digits by default; a stored quantity has up
# to 30 (max_digits), and an export must not round it.
_EXACT = Context(prec=64)


def format_quantity(quantity: Decimal) -> Number:
    """A plain decimal: no exponent, no trailing zeros (1234, 0.5, -1.5), every stored digit
    kept; a Number, so the CSV writer never takes a negative amount for a formula."""
    if quantity == 0:
        return ZERO  # also turns -0 and 0E-9 into "0"
    return Number(format(quantity.normalize(_EXACT), "f"))


def license_label(application_name: str, plan_name: str) -> str:
    """How a license is named in exports: "<application> – <plan>", as on the pages and in
    admin (License.__str__). A plan name alone ("Enterprise") is ambiguous across applications."""
    return f"{application_name} – {plan_name}"


class AttributionLabels:
    """Application names, license labels and integration names by id, each read with one query
    the first time it is met. A workspace holds a few dozen of them, so this stays small
    whatever the row count."""

    def __init__(self) -> None:
        self._applications: dict[int, str] = {}
        self._licenses: dict[int, str] = {}
        self._integrations: dict[int, str] = {}

    def integration(self, pk: int) -> str:
        return self._cached(self._integrations, pk, self._integration_name)

    def application(self, pk: int | None) -> str:
        return "" if pk is None else self._cached(self._applications, pk, self._application_name)

    def license(self, pk: int | None) -> str:
        return "" if pk is None else self._cached(self._licenses, pk, self._license_label)

    @staticmethod
    def _cached(cache: dict[int, str], pk: int, read: Callable[[int], str]) -> str:
        text = cache.get(pk)
        if text is None:
            text = cache[pk] = read(pk)
        return text

    @staticmethod
    def _integration_name(pk: int) -> str:
        return Integration.objects.filter(pk=pk).values_list("name", flat=True).first() or ""

    @staticmethod
    def _application_name(pk: int) -> str:
        return Application.objects.filter(pk=pk).values_list("name", flat=True).first() or ""

    @staticmethod
    def _license_label(pk: int) -> str:
        found = License.objects.filter(pk=pk).values_list("application__name", "plan_name").first()
        return license_label(*found) if found else ""


def usage_csv_rows(records: QuerySet[UsageRecord]) -> Iterator[list[str]]:
    """The header, then one list of strings per record, streamed in chunks. Numbers (the
    integration id, the quantity) are `Number`s; everything else is text that the writer
    guards against formulas."""
    yield list(CSV_COLUMNS)
    labels = AttributionLabels()
    when = TimeFormatter()
    ends = TimeFormatter()
    middle = 4 + len(CSV_DIMENSIONS)
    for row in records.values_list(*_VALUES).iterator(chunk_size=CHUNK_SIZE):
        provider, integration_id, start, end = row[:4]
        dimensions, added = row[4:middle], row[middle + 6 :]
        metric, quantity, unit, application_id, license_id, provenance = row[middle : middle + 6]
        yield [
            provider,
            Number(integration_id),
            when(start),
            ends(end),
            *dimensions,
            metric,
            format_quantity(quantity),
            unit,
            labels.application(application_id),
            labels.license(license_id),
            provenance,
            labels.integration(integration_id),
            *added,
        ]


# ---------------------------------------------------------------- writing
class _Echo:
    """A file-like object whose write() returns what it is given: csv.writer formats a line
    and hands it back, and nothing accumulates."""

    def write(self, line: str) -> str:
        return line


def csv_pieces(rows: Iterable[list[str]], *, lines_per_piece: int = LINES_PER_PIECE) -> Iterator[str]:
    """CSV text in pieces of a few hundred lines, for StreamingHttpResponse."""
    writer = formula_safe_writer(_Echo())
    piece: list[str] = []
    try:
        for row in rows:
            piece.append(writer.writerow(row))
            if len(piece) >= lines_per_piece:
                yield "".join(piece)
                piece.clear()
        if piece:
            yield "".join(piece)
    finally:
        # A client that went away closes this generator: close the cursor's generator too.
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def write_rows_csv(out: Writable, rows: Iterable[list[str]]) -> int:
    """Write rows to a text file object; returns the number of rows after the header."""
    writer = formula_safe_writer(out)
    count = -1
    for row in rows:
        writer.writerow(row)
        count += 1
    return max(count, 0)


def write_rows_closing(out: Writable, rows: Iterator[list[str]]) -> int:
    try:
        return write_rows_csv(out, rows)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # a reader that went away (broken pipe) must not leave the cursor open


def usage_write_csv(out: Writable, records: QuerySet[UsageRecord]) -> int:
    """Write the CSV export of `records` to `out`; returns the number of data rows."""
    return write_rows_closing(out, usage_csv_rows(records))
