"""Import usage from a CSV file into one integration: all rows, or none.

Two shapes are accepted (chosen by the header, or forced with `fmt`):

- **doow**: the columns of `manage.py export_usage` (usage.export.CSV_COLUMNS). Required:
  bucket_start, bucket_end, metric, quantity; `unit` defaults to the metric's unit (cost needs
  its currency code); missing dimension columns are empty. `provider` and `integration`, when
  filled in, must name the target integration (a row of another provider or integration is an
  error, so a workspace-wide export cannot be poured into one integration by mistake); clear
  those cells to import such rows on purpose. `application` and `license` are ignored:
  attribution is the app's own work, never taken from a file.
- **authress**: the Authress portal's daily call counts `date, resource, operation, calls`
  (date and calls required). Each row becomes metric `api_calls` (unit `calls`) for the UTC
  day [date, date + 1 day).

Times must lie within the dates Doow accepts (usage.dates: from 2000-01-01; a bucket may end
at most one year after today, and may not start in the future). Our own export prefixes a text
cell that would start a spreadsheet formula with a quote (usage.csv_safety); a doow file's text
cells have that one quote removed again, so an export imports back with every name as stored.
A negative quantity is accepted for `cost` only (a credit, as providers report them).

Every row is checked and every problem is reported with its line number; a file with any
problem stores nothing. A valid file is stored through usage.store in one transaction, so
importing the same file again changes nothing and a corrected row replaces the old figure.
Imported rows carry provenance "imported".
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import chain
from typing import IO, TYPE_CHECKING

from django.db import transaction

from integrations.events import integration_record_event
from integrations.models import IntegrationEvent
from integrations.providers.base import DIMENSIONS, METRICS, UsageSample
from usage.csv_safety import unescape_cell
from usage.dates import EARLIEST_DAY, bounds_text, earliest_moment, latest_moment
from usage.export import CSV_COLUMNS
from usage.models import UsageRecord
from usage.pricing.estimate import ESTIMATED_COST, pricing_estimate_samples
from usage.pricing.overrides import load_overrides
from usage.rollups import refresh_moments
from usage.store import usage_prepare_samples, usage_store_prepared

if TYPE_CHECKING:
    from integrations.models import Integration

# progress(phase, done, total): phase "checking" (lines checked) or "storing" (rows prepared of total).
Progress = Callable[[str, int, int], None]

MAX_IMPORT_BYTES = 20 * 1024 * 1024  # ~150k export rows; bigger exports split by date range
MAX_IMPORT_ROWS = 200_000
MAX_REPORTED_PROBLEMS = 50  # the rest are counted, not listed
# Progress is reported (and the rows to store prepared) this many lines at a time.
PROGRESS_EVERY = 2000
FORMATS = ("auto", "doow", "authress")
FORMAT_LABELS = {"doow": "Doow export", "authress": "Authress portal"}
DOOW_REQUIRED = ("bucket_start", "bucket_end", "metric", "quantity")
AUTHRESS_COLUMNS = ("date", "resource", "operation", "calls")
AUTHRESS_REQUIRED = ("date", "calls")
DISCONNECTED = "this integration is disconnected; add the provider again to import usage"
DOOW_EXAMPLE = (
    ",".join(CSV_COLUMNS)
    + "\nauthress,,2025-03-01T00:00:00Z,2025-03-02T00:00:00Z,,,,,,,/v1/records,POST,,api_calls,1520,calls,,,,"
)
AUTHRESS_EXAMPLE = "date,resource,operation,calls\n2025-03-01,/v1/users/{userId}/resources,GET,1520"
PROVENANCE = "imported"
IMPORTABLE_METRICS = tuple(m for m in METRICS if m != ESTIMATED_COST)  # estimates are computed, not imported
_QUANTITY_LIMIT = Decimal(10) ** 21  # UsageRecord.quantity: 30 digits, 9 of them decimals
_LENGTHS: dict[str, int] = {d: UsageRecord._meta.get_field(d).max_length for d in DIMENSIONS}  # type: ignore[union-attr,misc]
# The doow columns our export writes as text (usage.csv_safety may have prefixed them); the
# times, the quantity and the integration id are written as they are.
_TEXT_COLUMNS = frozenset(CSV_COLUMNS) - {"integration", "bucket_start", "bucket_end", "quantity"}
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class ImportProblem:
    line: int | None  # None: the file as a whole
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class UsageImportError(Exception):
    """The file was refused; nothing was stored. `problems` lists the first of `total`."""

    def __init__(self, problems: list[ImportProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        super().__init__("; ".join(str(p) for p in problems[:3]))

    @property
    def unlisted(self) -> int:
        return self.total - len(self.problems)


@dataclass(frozen=True)
class ParsedUsage:
    format: str
    samples: list[UsageSample]

    @property
    def first_start(self) -> datetime:
        return min(s.bucket_start for s in self.samples)

    @property
    def last_end(self) -> datetime:
        return max(s.bucket_end for s in self.samples)


@dataclass(frozen=True)
class ImportResult:
    format: str
    rows: int
    stored: int
    first_start: datetime
    last_end: datetime

    @property
    def date_range(self) -> str:
        return date_range(self.first_start, self.last_end)


@dataclass
class _Problems:
    items: list[ImportProblem] = field(default_factory=list)
    total: int = 0

    def add(self, line: int | None, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            self.items.append(ImportProblem(line, message))


# ---------------------------------------------------------------- small parsers
def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _parse_time(text: str) -> datetime | None:
    """ISO 8601; a trailing Z or any offset is converted to UTC, a time without one is UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 with an offset has no UTC equivalent: keep the wall time, which the
        # range check then refuses like any time at the ends of the calendar.
        return moment.replace(tzinfo=UTC)


def _parse_quantity(text: str, what: str, *, negative: bool = False) -> Decimal | str:
    """A plain decimal the store can hold (non-negative unless `negative`), or the reason it is not."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return f"{what} {_show(text)} is not a number"
    if not value.is_finite():
        return f"{what} {_show(text)} is not a finite number"
    if value < 0 and not negative:
        return f"{what} {_show(text)} is negative"
    if value.copy_abs() >= _QUANTITY_LIMIT or -value.as_tuple().exponent > 9:  # type: ignore[operator]  # exact: abs() rounds to 28 digits
        return f"{what} {_show(text)} is too large or has more than 9 decimals"
    return value


def _outside(name: str, text: str, now: datetime) -> str:
    return f"{name} {_show(text)} is outside the dates Doow accepts ({bounds_text(now=now)})"


def date_range(start: datetime, end: datetime) -> str:
    """'2025-03-01 – 2025-03-31 (UTC)' for the buckets between start and end (exclusive)."""
    last = (end - timedelta(microseconds=1)).date()
    first = start.date()
    return f"{first} (UTC)" if first == last else f"{first} – {last} (UTC)"


def detect_format(header: list[str]) -> str | None:
    names = set(header)
    if set(AUTHRESS_REQUIRED) <= names <= set(AUTHRESS_COLUMNS):
        return "authress"
    if set(DOOW_REQUIRED) <= names:
        return "doow"
    return None


# ---------------------------------------------------------------- row checks
def _doow_row(
    values: dict[str, str], line: int, problems: _Problems, *, provider: str, integration_id: int | None, now: datetime
) -> UsageSample | None:
    before = problems.total
    values = {name: unescape_cell(value) if name in _TEXT_COLUMNS else value for name, value in values.items()}
    if values.get("provider") and provider and values["provider"] != provider:
        problems.add(line, f"the row is for provider {_show(values['provider'])}, this integration is {provider!r}")
    if values.get("integration") and integration_id is not None and values["integration"] != str(integration_id):
        problems.add(
            line,
            f"the row belongs to integration {_show(values['integration'])}, this is integration {integration_id} "
            "(empty the integration column to import it here)",
        )
    metric = values["metric"]
    if metric == ESTIMATED_COST:  # an export's estimates: recomputed from prices, never imported
        return None
    if metric not in METRICS:
        problems.add(line, f"unknown metric {_show(metric)} (known: {', '.join(IMPORTABLE_METRICS)})")
    start, end = _parse_time(values["bucket_start"]), _parse_time(values["bucket_end"])
    for name, moment in (("bucket_start", start), ("bucket_end", end)):
        if moment is None:
            problems.add(line, f"{name} {_show(values[name])} is not an ISO 8601 time such as 2025-03-01T00:00:00Z")
    if start and end and end <= start:
        problems.add(line, "bucket_end is not after bucket_start")
    if start and start < earliest_moment():
        problems.add(line, _outside("bucket_start", values["bucket_start"], now))
    elif start and start > now:
        problems.add(line, "bucket_start is in the future")
    if end and not earliest_moment() < end <= latest_moment(now=now):
        problems.add(line, _outside("bucket_end", values["bucket_end"], now))
    # A credit is a negative cost; a negative count of tokens or calls means nothing.
    quantity = _parse_quantity(values["quantity"], "quantity", negative=metric == "cost")
    if isinstance(quantity, str):
        problems.add(line, quantity)
    unit = values.get("unit", "")
    if metric in ("cost", "byok_cost"):
        if not (len(unit) == 3 and unit.isalpha() and unit.isupper()):
            problems.add(line, f"a cost needs its currency code as unit (e.g. USD), not {_show(unit)}")
    elif metric == "billed_quantity":  # the provider's own unit, whatever it is, but one
        if not unit:
            problems.add(line, "billed_quantity needs its unit")
    elif metric in METRICS and unit and unit != METRICS[metric]:
        problems.add(line, f"unit {_show(unit)} is wrong for {metric}; it is measured in {METRICS[metric]}")
    for name, limit in _LENGTHS.items():
        if len(values.get(name, "")) > limit:
            problems.add(line, f"{name} is longer than {limit} characters")
    if problems.total > before:
        return None
    if start is None or end is None or not isinstance(quantity, Decimal):  # for the type checker
        return None
    dims = {d: values.get(d, "") for d in DIMENSIONS}
    return UsageSample(start, end, metric, quantity, unit=unit, provenance=PROVENANCE, **dims)


def _authress_row(
    values: dict[str, str], line: int, problems: _Problems, *, now: datetime, **_: object
) -> UsageSample | None:
    before = problems.total
    try:
        day: date | None = date.fromisoformat(values["date"].strip())
    except ValueError:
        day = None
        problems.add(line, f"date {_show(values['date'])} is not a date such as 2025-03-01")
    if day and day < EARLIEST_DAY:
        problems.add(line, _outside("date", values["date"], now))
    elif day and day > now.date():
        problems.add(line, "date is in the future")
    calls = values["calls"].strip()
    if not calls.isdigit():
        problems.add(line, f"calls {_show(calls)} is not a whole, non-negative number")
    elif isinstance(message := _parse_quantity(calls, "calls"), str):
        problems.add(line, message)
    for name in ("resource", "operation"):
        if len(values.get(name, "")) > _LENGTHS[name]:
            problems.add(line, f"{name} is longer than {_LENGTHS[name]} characters")
    if problems.total > before or day is None:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return UsageSample(
        start,
        start + timedelta(days=1),
        "api_calls",
        Decimal(calls),
        resource=values.get("resource", ""),
        operation=values.get("operation", ""),
        provenance=PROVENANCE,
    )


# ---------------------------------------------------------------- the parser
def _rows(text: str, problems: _Problems) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for each non-blank record; stops at a CSV error."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield line, row
            line = reader.line_num + 1
    except csv.Error as exc:
        problems.add(line, f"unreadable CSV ({exc})")


def parse_usage_csv(
    data: bytes | str,
    *,
    fmt: str = "auto",
    provider: str = "",
    integration_id: int | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ParsedUsage:
    """Validate a whole file into samples (no database access); raise UsageImportError.

    `progress("checking", lines, 0)` is called every PROGRESS_EVERY data lines."""
    if fmt not in FORMATS:
        raise UsageImportError([ImportProblem(None, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")])
    if len(data) > MAX_IMPORT_BYTES:
        raise UsageImportError([_too_large(len(data))])
    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UsageImportError([_not_utf8(raw, exc.start)]) from None
    now = now or datetime.now(UTC)
    problems = _Problems()
    rows = _rows(data.removeprefix("\ufeff"), problems)
    first = next(rows, None)
    if first is None:
        problems.add(None, "the file is empty; the first line must be a header")
        raise UsageImportError(problems.items, problems.total)
    header_line, raw_header = first
    header = [name.strip().lower() for name in raw_header]
    chosen = detect_format(header) if fmt == "auto" else fmt
    if chosen is None:
        problems.add(
            header_line, f"header not recognised; expected {','.join(CSV_COLUMNS)} or {','.join(AUTHRESS_COLUMNS)}"
        )
        raise UsageImportError(problems.items, problems.total)
    known, required = (CSV_COLUMNS, DOOW_REQUIRED) if chosen == "doow" else (AUTHRESS_COLUMNS, AUTHRESS_REQUIRED)
    duplicated = sorted({n for n in header if header.count(n) > 1})
    missing = [n for n in required if n not in header]
    unknown = [n for n in header if n not in known]
    for what, names in (("duplicated", duplicated), ("missing", missing), ("unknown", unknown)):
        if names:
            problems.add(
                header_line, f"{what} column{'s' if len(names) > 1 else ''}: {', '.join(names) or '(empty name)'}"
            )
    if problems.total:
        raise UsageImportError(problems.items, problems.total)

    check: Callable[..., UsageSample | None] = _doow_row if chosen == "doow" else _authress_row
    samples: list[UsageSample] = []
    seen: dict[tuple[object, ...], int] = {}
    count = 0
    for line, row in rows:
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress("checking", count, 0)
        if count > MAX_IMPORT_ROWS:
            problems.add(line, f"more than {MAX_IMPORT_ROWS} data rows; split the file by date range")
            break
        if any("\x00" in cell for cell in row):  # PostgreSQL cannot store it in a text column
            problems.add(line, "contains a NUL character")
            continue
        if len(row) != len(header):
            problems.add(line, f"has {len(row)} fields; the header has {len(header)}")
            continue
        values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
        sample = check(values, line, problems, provider=provider, integration_id=integration_id, now=now)
        if sample is None:
            continue
        key = (sample.bucket_start, sample.bucket_end, sample.metric, *(getattr(sample, d) for d in DIMENSIONS))
        if key in seen:
            problems.add(line, f"same bucket, dimensions and metric as line {seen[key]}")
            continue
        seen[key] = line
        samples.append(sample)
    if not problems.total and not samples:
        problems.add(None, "the file has a header but no data rows")
    if problems.total:
        raise UsageImportError(problems.items, problems.total)
    return ParsedUsage(chosen, samples)


def _not_utf8(data: bytes, offset: int) -> ImportProblem:
    """Where the first byte that is not UTF-8 sits, as a line (counted like the CSV reader
    counts them) and a byte of the file. `offset` is past the BOM, as utf-8-sig reports it."""
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    line = len(_LINE_BREAK.split(data[bom : bom + offset]))
    return ImportProblem(line, f"the file is not UTF-8 text (byte {bom + offset + 1}); save it as UTF-8")


def _too_large(size: int) -> ImportProblem:
    mib = 1024 * 1024
    return ImportProblem(
        None, f"the file is {size / mib:.1f} MB; the limit is {MAX_IMPORT_BYTES // mib} MB (split it by date range)"
    )


def read_limited(stream: IO[bytes], *, size: int | None = None) -> bytes:
    """Read an upload or file, refusing one over MAX_IMPORT_BYTES without reading it all."""
    if size is not None and size > MAX_IMPORT_BYTES:
        raise UsageImportError([_too_large(size)])
    data = stream.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise UsageImportError([_too_large(size or len(data))])
    return data


# ---------------------------------------------------------------- the service
def usage_import_file(
    *,
    integration: Integration,
    stream: IO[bytes],
    size: int | None = None,
    fmt: str = "auto",
    source: str = "",
    now: datetime | None = None,
) -> ImportResult:
    """Read an uploaded or local file (refusing one over the size limit) and import it."""
    try:
        data = read_limited(stream, size=size)
    except UsageImportError as error:
        usage_import_record_rejection(integration=integration, error=error, source=source)
        raise
    return usage_import_csv(integration=integration, data=data, fmt=fmt, source=source, now=now)


def usage_import_csv(
    *,
    integration: Integration,
    data: bytes,
    fmt: str = "auto",
    source: str = "",
    now: datetime | None = None,
    progress: Progress | None = None,
    on_stored: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Validate and store a CSV for `integration` in one transaction, recording an event either way.

    Everything slow (checking every line, attributing and compiling the rows) happens before
    the transaction opens; inside it only the prepared statements run, so an import holds
    SQLite's write lock for seconds, not minutes. `on_stored(result)` runs inside that
    transaction: what it writes commits with the rows, or not at all.
    """
    try:
        if integration.status == integration.Status.DISCONNECTED:
            raise UsageImportError([ImportProblem(None, DISCONNECTED)])
        parsed = parse_usage_csv(
            data, fmt=fmt, provider=integration.provider, integration_id=integration.pk, now=now, progress=progress
        )
    except UsageImportError as error:
        usage_import_record_rejection(integration=integration, error=error, source=source)
        raise
    total = len(parsed.samples)
    # The list-price estimates of the imported usage are stored in the same transaction (from the
    # whole file: a key's metrics may sit in different batches), and not counted as imported rows.
    estimates = pricing_estimate_samples(
        integration=integration, samples=parsed.samples, overrides=load_overrides(workspace_id=integration.workspace_id)
    )
    prepared = [
        usage_prepare_samples(integration=integration, samples=estimates[i : i + PROGRESS_EVERY])
        for i in range(0, len(estimates), PROGRESS_EVERY)
    ]
    estimated = sum(batch.rows for batch in prepared)
    for start in range(0, total, PROGRESS_EVERY):
        if progress is not None:
            progress("storing", start, total)
        prepared.append(
            usage_prepare_samples(integration=integration, samples=parsed.samples[start : start + PROGRESS_EVERY])
        )
    if progress is not None:
        progress("storing", total, total)
    with transaction.atomic():
        stored = sum(usage_store_prepared(prepared=batch) for batch in prepared) - estimated
        refresh_moments(integration, chain.from_iterable(batch.bucket_starts for batch in prepared))
        result = ImportResult(parsed.format, total, stored, parsed.first_start, parsed.last_end)
        integration_record_event(
            integration=integration,
            level=IntegrationEvent.Level.INFO,
            category=IntegrationEvent.Category.IMPORT,
            message=(
                f"Imported {result.rows} usage row{'s' if result.rows != 1 else ''} for {result.date_range} "
                f"from {_source(source) or 'a CSV file'} ({FORMAT_LABELS[result.format]} format)."
            ),
            hint="Importing the same rows again replaces them; it never adds them twice.",
        )
        if on_stored is not None:
            on_stored(result)
    return result


def _source(source: str) -> str:
    return " ".join(source.split())[:80]


def usage_import_record_rejection(*, integration: Integration, error: UsageImportError, source: str) -> None:
    """Record a refused file in the event log: the first problems only, each cut short (the
    event log is a summary; the page and the command show the full list)."""
    listed = "; ".join(str(p)[:160] for p in error.problems[:3])
    more = f" (and {error.total - 3} more)" if error.total > 3 else ""
    of = f" of {_source(source)}" if _source(source) else ""
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.WARNING,
        category=IntegrationEvent.Category.IMPORT,
        message=f"Usage import{of} rejected; nothing was stored. {listed}{more}",
        hint="Fix the lines listed and import the whole file again: a file with any error stores nothing.",
    )
