"""The docs/architecture.md CSV export's entry points (the page and `export_usage`), and its fast path on
PostgreSQL: `COPY (SELECT …) TO STDOUT CSV`, byte for byte what the Python writer
(usage/export.py: usage_csv_rows → formula_safe_writer) produces.

Why: the Python writer turns every row into objects and back into text (≈ 0.1× the rows/s of
PostgreSQL's own COPY, issue 9). Here the server formats each line in C, and Python only moves
blocks of bytes: one CopyData message per row, joined into blocks of `ROWS_PER_BLOCK` rows, so
memory stays flat and nothing is ever materialized.

How each cell matches the Python writer (the tests compare the two outputs byte for byte):
- times: `to_char(… AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`, as format_time's strftime
  (seconds truncated, never rounded);
- quantity: `trim_scale(quantity)` (numeric's text never has an exponent) = format_quantity;
- integration: the id's digits; neither it nor the quantity is guarded (Numbers);
- text cells (provider, dimensions, metric, unit, application, license, integration_name): the formula guard of
  usage/csv_safety.py in SQL — a cell whose text after its leading quotes starts with
  = + - @ TAB or CR gets one more quote — and an empty cell made NULL, because COPY writes a
  non-null empty string as `""` while csv.writer writes nothing; NULL is written as nothing;
- application, license and integration_name: scalar subqueries by id, the license labelled as
  usage.export.license_label; they and the two bucket times are one LATERAL subquery that
  PostgreSQL memoizes (below);
- quoting: COPY CSV and csv.writer's QUOTE_MINIMAL quote the same cells (those holding a comma, a
  double quote, CR or LF) and double inner quotes the same way;
- line ends: COPY ends every row with LF, csv.writer with CRLF. Each block's rows are joined; when
  the block holds exactly one LF per row (no cell with a newline), one bytes.replace turns them
  into CRLF; otherwise each row's last byte is replaced on its own.

The blocks go out as bytes: to the page's response, and to export_usage's file or standard
output's binary layer (`CopyExport.write_bytes`); only a text-only output (a StringIO in tests)
gets them decoded. The rows come in the order of the (workspace, bucket_start, id) index: no sort. Figures and
what each choice saved: docs/performance.md, "Export". SQLite has no COPY: it keeps the Python
writer (`copy_export_supported`); so does FOCUS.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from django.db import connections, transaction

from integrations.models import Integration
from usage.csv_safety import Writable, formula_safe_writer
from usage.dimensions import ADDED_DIMENSIONS, CSV_DIMENSIONS
from usage.export import CSV_COLUMNS, _Echo, csv_pieces, usage_csv_rows, write_rows_closing
from usage.models import Application, License, UsageRecord

if TYPE_CHECKING:
    from django.db.models import QuerySet

# Rows per block handed to the caller (~ 170 bytes a row: blocks of ~ 45 KB). Small enough that
# a block's rows, their join and its CRLF copy stay in the CPU's cache: at 1,000 rows the client
# spent ~ 40% more CPU per row (docs/performance.md, "Export").
ROWS_PER_BLOCK = 256

# The formula guard of usage/csv_safety.py (FORMULA_TRIGGERS, PREFIX) for one text expression,
# with NULL for an empty cell (COPY writes a non-null empty string as `""`, csv.writer as
# nothing). The usual cell starts with a letter (code > 64, above every trigger and the quote)
# and costs one ascii() and one comparison; the others look at their first code again: 0 is the
# empty string (text holds no NUL), a trigger gets the quote, and a leading quote takes the
# regular expression (quotes, then a trigger).
_TRIGGERS = "".join(f" WHEN {ord(c)} THEN '''' || {{x}}" for c in "=+-@\t\r")
_GUARD = (
    "CASE WHEN ascii({x}) > 64 THEN {x} ELSE CASE ascii({x}) WHEN 0 THEN NULL" + _TRIGGERS +
    r" WHEN 39 THEN CASE WHEN {x} ~ E'^\'+[-=+@\t\r]' THEN '''' || {x} ELSE {x} END"
    " ELSE {x} END END"
)  # fmt: skip
_TIME = """to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


def _guard(expression: str) -> str:
    return _GUARD.format(x=expression)


def copy_export_supported(records: QuerySet[UsageRecord]) -> bool:
    """COPY exists on PostgreSQL only; SQLite keeps the Python writer."""
    return connections[records.db].vendor == "postgresql"


def usage_csv_copy_query(records: QuerySet[UsageRecord]) -> tuple[str, tuple[object, ...]]:
    """`COPY (SELECT …) TO STDOUT CSV` over `records` (its filters; any ordering is replaced by the
    export's: oldest bucket first, ties by id), and its parameters.

    The plan it is written for: the (workspace, bucket_start, id) index gives the order, so
    nothing is sorted and the first rows leave at once; what many rows share (the bucket's two
    times, the application's guarded name, the license's label, the integration's name) comes
    from one LATERAL subquery that PostgreSQL memoizes on (bucket_start, bucket_end,
    application, license, integration), so to_char and the lookups run once per bucket and
    attribution, not per row (`OFFSET 0` keeps the subquery from being flattened back into
    per-row expressions). One memoized subquery instead of one per value: each Memoize node
    is a nested loop and a cache probe per row, and five of them cost ~ 0.9 s of server CPU
    per 1,000,000 rows, one ~ 0.25 s. Any other plan writes the same bytes, only slower.
    """
    # The filtered records as a plain subquery (PostgreSQL flattens it: the plan is one scan).
    inner = records.order_by().values_list(
        "id", "provider", "integration_id", "bucket_start", "bucket_end", *CSV_DIMENSIONS, "metric", "quantity", "unit",
        "application_id", "license_id", "provenance", *ADDED_DIMENSIONS,
    )  # fmt: skip
    inner_sql, params = inner.query.sql_with_params()
    application = Application._meta.db_table
    license_ = License._meta.db_table
    integration = Integration._meta.db_table
    columns = {
        "provider": _guard("r.provider"),
        "integration": "r.integration_id",
        "bucket_start": "s.bucket_start",
        "bucket_end": "s.bucket_end",
        **{field: _guard(f"r.{field}") for field in CSV_DIMENSIONS},
        "metric": _guard("r.metric"),
        "quantity": "trim_scale(r.quantity)",
        "unit": _guard("r.unit"),
        "application": "s.application",
        "license": "s.license",
        "provenance": _guard("r.provenance"),
        "integration_name": "s.integration_name",
        **{field: _guard(f"r.{field}") for field in ADDED_DIMENSIONS},
    }
    assert tuple(columns) == CSV_COLUMNS, "the COPY select must list docs/architecture.md's columns in order"
    select = ",\n  ".join(f"{sql} AS {name}" for name, sql in columns.items())
    # usage.export.license_label: "<application> – <plan name>"; NULL without a license.
    label = _guard("(la.name || ' – ' || l.plan_name)")
    # What rows share, computed once per (bucket, attribution, integration) in one memoized
    # subquery; each scalar subquery is NULL when there is no such row (no application, no license).
    shared = {
        "bucket_start": _TIME.format(x="r.bucket_start"),
        "bucket_end": _TIME.format(x="r.bucket_end"),
        "application": f"(SELECT {_guard('name')} FROM {application} WHERE id = r.application_id)",
        "license": (
            f"(SELECT {label} FROM {license_} l JOIN {application} la ON la.id = l.application_id"
            f" WHERE l.id = r.license_id)"
        ),
        "integration_name": f"(SELECT {_guard('name')} FROM {integration} WHERE id = r.integration_id)",
    }
    shared_select = ",\n    ".join(f"{sql} AS {name}" for name, sql in shared.items())
    sql = (
        f"COPY (SELECT\n  {select}\n"
        f"FROM ({inner_sql}) r\n"
        f"LEFT JOIN LATERAL (SELECT\n    {shared_select}\n  OFFSET 0) s ON true\n"
        f"ORDER BY r.bucket_start, r.id) TO STDOUT WITH (FORMAT csv)"
    )
    return sql, params


def _crlf(rows: list[memoryview]) -> bytes:
    """The block's rows, each ending in CRLF instead of COPY's LF."""
    block = b"".join(rows)
    if block.count(b"\n") == len(rows):  # no cell holds a newline: every LF ends a row
        return block.replace(b"\n", b"\r\n")
    return b"".join(bytes(row[:-1]) + b"\r\n" for row in rows)


def _copy_blocks(records: QuerySet[UsageRecord], rows_per_block: int) -> Generator[tuple[bytes, int]]:
    """(block, rows in it), streamed from COPY.

    Closing the generator early (a client that went away) leaves the COPY block, which cancels
    the statement on the server and drains what was already sent.
    """
    sql, params = usage_csv_copy_query(records)
    with transaction.atomic(using=records.db), connections[records.db].cursor() as cursor:
        # JIT compiling this select (inlined and optimized: its cost is far over
        # jit_optimize_above_cost) costs more server time than it saves on calls to ascii() and
        # to_char(): ~20% of the export's server CPU at 1,000,000 rows (docs/performance.md,
        # "Export"). SET LOCAL ends with this transaction.
        cursor.execute("SET LOCAL jit = off")
        with cursor.cursor.copy(sql, params or None) as copy:
            yield from _blocks_of(copy, rows_per_block)


def _blocks_of(copy: Iterable[memoryview], rows_per_block: int) -> Iterator[tuple[bytes, int]]:
    rows: list[memoryview] = []
    for row in copy:  # one CopyData message per row
        rows.append(row)
        if len(rows) >= rows_per_block:
            yield _crlf(rows), len(rows)
            rows = []
    if rows:
        yield _crlf(rows), len(rows)


# ---------------------------------------------------------------- entry points
# (block, rows in it) from a COPY over the records, in blocks of the given number of rows.
CopyBlocks = Callable[["QuerySet[UsageRecord]", int], Generator[tuple[bytes, int]]]
# The Python writer's rows: the header, then one list of cells per record.
PythonRows = Callable[["QuerySet[UsageRecord]"], Iterator[list[str]]]


@dataclass(frozen=True)
class CopyExport:
    """One export with two writers that write the same bytes: COPY on PostgreSQL (`copy_blocks`
    after the `header` line), the Python writer (`python_rows`) elsewhere or with use_copy=False.
    The CSV (below) and FOCUS (usage/export_focus_copy.py) exports are two of these."""

    header: tuple[str, ...]
    copy_blocks: CopyBlocks
    python_rows: PythonRows

    def header_line(self) -> bytes:
        return formula_safe_writer(_Echo()).writerow(self.header).encode()

    def copy_pieces(self, records: QuerySet[UsageRecord], *, rows_per_block: int = ROWS_PER_BLOCK) -> Iterator[bytes]:
        """The header line, then the rows in blocks of UTF-8 bytes, streamed from COPY."""
        yield self.header_line()
        for block, _ in self.copy_blocks(records, rows_per_block):
            yield block

    def stream(self, records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> Iterator[bytes | str]:
        """The export of `records` in pieces for StreamingHttpResponse: COPY on PostgreSQL,
        the Python writer elsewhere (or with use_copy=False). The same bytes either way."""
        if copy_export_supported(records) if use_copy is None else use_copy:
            return self.copy_pieces(records)
        return csv_pieces(self.python_rows(records))

    def write(self, out: Writable, records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> int:
        """Write the export of `records` to the text file `out` (a StringIO, a Django
        OutputWrapper over one); returns the number of data rows. COPY on PostgreSQL (each block
        decoded), the Python writer elsewhere. A binary file takes `write_bytes`: no decoding."""
        if not (copy_export_supported(records) if use_copy is None else use_copy):
            return write_rows_closing(out, self.python_rows(records))
        return self._write_copy(lambda block: out.write(block.decode()), records)

    def write_bytes(self, out: BinaryIO, records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> int:
        """Write the export of `records` to the binary file `out` (export_usage's standard output
        or --output file) as UTF-8; returns the number of data rows. COPY's blocks go out as they
        came (no decode, no encode); the Python writer (SQLite) writes through a text layer."""
        if copy_export_supported(records) if use_copy is None else use_copy:
            return self._write_copy(out.write, records)
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        try:
            return write_rows_closing(text, self.python_rows(records))
        finally:
            text.detach()  # leaves `out` open: its owner closes it

    def _write_copy(self, write: Callable[[bytes], object], records: QuerySet[UsageRecord]) -> int:
        write(self.header_line())
        count = 0
        blocks = self.copy_blocks(records, ROWS_PER_BLOCK)
        try:
            for block, rows in blocks:
                write(block)
                count += rows
        finally:
            blocks.close()  # a reader that went away (broken pipe) ends the COPY at once
        return count


CSV_EXPORT = CopyExport(header=CSV_COLUMNS, copy_blocks=_copy_blocks, python_rows=usage_csv_rows)


def usage_csv_stream(records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> Iterator[bytes | str]:
    """The CSV export of `records` for StreamingHttpResponse (CopyExport.stream)."""
    return CSV_EXPORT.stream(records, use_copy=use_copy)


def usage_csv_write(out: Writable, records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> int:
    """Write the CSV export of `records` to `out`; returns the number of data rows (CopyExport.write)."""
    return CSV_EXPORT.write(out, records, use_copy=use_copy)
