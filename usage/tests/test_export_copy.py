"""The CSV export's PostgreSQL path (`COPY (SELECT …) TO STDOUT`, usage/export_copy.py): the same
bytes as the Python writer on hostile data and under every filter, through the page and
`export_usage`; memory that does not grow with the rows; an abandoned download ends the COPY."""

from __future__ import annotations

import io
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import cycle, islice

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from integrations.management.options import day_bounds
from usage.export import export_order, usage_export_queryset
from usage.export_copy import ROWS_PER_BLOCK, copy_export_supported, usage_csv_stream, usage_csv_write
from usage.models import Application, UsageRecord
from usage.queries import filtered
from usage.tests.test_export import make_integration, make_license

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY … TO STDOUT is PostgreSQL's"),
]

START = datetime(2026, 3, 1, tzinfo=UTC)

# Text a provider, an import or an admin could put in a name: formulas (with and without leading
# quotes), CSV's own characters, newlines, unicode, COPY's markers, and the empty string.
HOSTILE_TEXT = [
    "gpt-4o",
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\tTAB first",
    "\rCR first",
    "'=quoted formula",
    "''+twice quoted",
    "'",
    "''",
    "'plain",
    "a,b",
    'say "hi"',
    '"',
    "line1\nline2",
    "line1\r\nline2",
    "trailing newline\n",
    "ünïcødé 日本語 🚀",
    "–en dash first",
    " leading space",
    "trailing space ",
    "\\.",
    "\\N",
    "NULL",
    "x\ty",
    "50% off %s %(x)s",  # placeholders: the filters reach COPY as parameters, never as SQL
    "",
]
HOSTILE_QUANTITIES = [
    "0",
    "-0",
    "1",
    "1234.000000000",
    "0.5",
    "-1.5",
    "0.000000001",
    "-0.000000001",
    "123456789012345678901.123456789",  # 30 digits: more than Decimal's default 28
    "-999999999999999999999.999999999",
    "1E+3",
    "42.10",
]


def _python(records) -> str:
    out = io.StringIO()
    usage_csv_write(out, records, use_copy=False)
    return out.getvalue()


def _copy(records) -> str:
    out = io.StringIO()
    usage_csv_write(out, records, use_copy=True)
    return out.getvalue()


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("export_usage", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def hostile(workspace, other_workspace):
    """Two integrations of the workspace (and one of another) holding every hostile text in every
    text column, every hostile quantity, odd bucket times, and attribution with hostile names."""
    openai = make_integration(workspace, name='=OpenAI, "prod"')
    bedrock = make_integration(workspace, name="Bedrock", provider="aws_bedrock")
    elsewhere = make_integration(other_workspace, name="Not ours")
    apps = [
        Application.objects.create(workspace=workspace, name=name)
        for name in ("=cmd|' /C calc'!A0", 'Support "Bot", v2', "Bot\nnewline", "'-quoted")
    ]
    licenses = [
        make_license(workspace, apps[0], plan_name="@Enterprise"),
        make_license(workspace, apps[1], plan_name='Team, "x"'),
    ]
    attribution = [(None, None), (apps[0], licenses[0]), (apps[1], licenses[1]), (apps[2], None), (apps[3], None)]
    texts = cycle(HOSTILE_TEXT)
    records = []
    for i in range(len(HOSTILE_TEXT) * 3):
        integration = (openai, bedrock)[i % 2]
        # Times on and off the hour, with seconds and microseconds (truncated, never rounded).
        start = START + timedelta(days=i % 9, hours=i, seconds=(i * 7) % 60, microseconds=999_999 if i % 4 == 0 else 0)
        application, license_ = attribution[i % len(attribution)]
        dims = dict(zip(("account", "project", "region", "model", "deployment", "endpoint", "resource", "operation", "api_key"),
                        islice(texts, 9), strict=True))  # fmt: skip
        records.append(
            UsageRecord(
                workspace=workspace,
                integration=integration,
                provider=integration.provider if i % 3 else next(texts),
                bucket_start=start,
                bucket_end=start + timedelta(hours=1),
                metric=("input_tokens", "cost", next(texts)[:32])[i % 3],
                quantity=Decimal(HOSTILE_QUANTITIES[i % len(HOSTILE_QUANTITIES)]),
                unit=("tokens", "USD", next(texts)[:16])[i % 3],
                application=application,
                license=license_,
                **dims,
            )
        )
    # Ties on bucket_start: the order falls back to the id, in both paths.
    for n in range(3):
        records.append(
            UsageRecord(workspace=workspace, integration=openai, provider="openai", bucket_start=START, bucket_end=START + timedelta(hours=1),
                        metric="requests", quantity=Decimal(n), unit="requests", model=f"tie-{n}")
        )  # fmt: skip
    UsageRecord.objects.bulk_create(records)
    # Changing an indexed column writes a new version of the row at the heap's end and a new
    # index entry: the tied rows are then stored (and indexed) out of id order, so only an
    # explicit ORDER BY … id puts them back.
    UsageRecord.objects.filter(model="tie-0").update(model="tie-zero")
    UsageRecord.objects.create(
        workspace=other_workspace, integration=elsewhere, provider="openai", bucket_start=START, bucket_end=START + timedelta(hours=1),
        metric="requests", quantity=Decimal(1), unit="requests", model="other-tenant",
    )  # fmt: skip
    return {"openai": openai, "bedrock": bedrock, "apps": apps, "licenses": licenses}


def test_postgresql_exports_through_copy():
    assert copy_export_supported(UsageRecord.objects.all())


def test_copy_writes_the_python_writers_bytes_on_hostile_data(workspace, hostile):
    records = usage_export_queryset(workspace=workspace)
    python = _python(records)
    assert python.count("\r\n") > len(HOSTILE_TEXT) * 3  # the data set is really there
    # integration_name (after provenance, before the later dimensions): the hostile name guarded
    # and quoted in both paths.
    assert ",provenance,integration_name," in python.splitlines()[0] + ","
    assert ',reported,"\'=OpenAI, ""prod""",' in python and ",Bedrock," in python
    assert "'=HYPERLINK" in python and '"line1\nline2"' in python and "123456789012345678901.123456789" in python
    assert _copy(records) == python
    assert _command("--workspace", "acme") == python
    assert "other-tenant" not in python


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "2026-03-03"),
        ("--until", "2026-03-04"),
        ("--since", "2026-03-02", "--until", "2026-03-05"),
        ("--since", "2026-04-01"),  # no rows: the header alone
    ],
)
def test_command_filters_give_the_python_writers_bytes(workspace, hostile, args):
    expected = _command_python(workspace, hostile, *args)
    assert _command("--workspace", "acme", *args) == expected


@pytest.mark.parametrize("which", ["openai", "bedrock"])
def test_command_integration_filter_gives_the_python_writers_bytes(workspace, hostile, which):
    integration = hostile[which]
    expected = _python(usage_export_queryset(workspace=workspace, integration_id=integration.pk))
    assert expected.count("\r\n") > 10
    assert _command("--workspace", "acme", "--integration", str(integration.pk)) == expected


def _command_python(workspace, hostile, *args: str) -> str:
    options = dict(zip(args[::2], args[1::2], strict=True))
    since, until = day_bounds(options.get("--since"), options.get("--until"))
    return _python(usage_export_queryset(workspace=workspace, since=since, until=until))


def _page_filters(hostile) -> list[dict[str, str]]:
    apps, licenses = hostile["apps"], hostile["licenses"]
    return [
        {},
        {"date_from": "2026-03-02"},
        {"date_to": "2026-03-04"},
        {"date_from": "2026-03-02", "date_to": "2026-03-06"},
        {"provider": "aws_bedrock"},
        {"integration": str(hostile["openai"].pk)},
        {"application": str(apps[0].pk)},
        {"application": "none"},
        {"license": str(licenses[1].pk)},
        {"license": "none"},
        {"model": "a,b"},
        {"model": "50% off %s %(x)s"},
        {"project": '=HYPERLINK("http://x","y")'},
        {"region": "ünïcødé 日本語 🚀"},
        {"metric": "cost"},
        {"metric": "input_tokens", "provider": "openai", "date_from": "2026-03-03"},
    ]


def test_page_downloads_give_the_python_writers_bytes_under_every_filter(member_client, workspace, hostile):
    url = reverse("usage:export", kwargs={"ws": "acme"})
    seen_rows = set()
    for params in _page_filters(hostile):
        response = member_client.get(url, {"format": "csv", **params})
        assert response.status_code == 200, params
        body = b"".join(response.streaming_content)
        expected = _python(export_order(filtered(workspace, params))).encode()
        assert body == expected, params
        seen_rows.add(body.count(b"\r\n"))
    assert len(seen_rows) > 5  # the filters really narrow the rows


def test_the_stream_starts_with_the_header_then_blocks_of_rows(workspace):
    integration = make_integration(workspace)
    _insert_rows(workspace.pk, integration.pk, 2 * ROWS_PER_BLOCK + 3)
    pieces = list(usage_csv_stream(usage_export_queryset(workspace=workspace)))
    assert [piece.count(b"\r\n") for piece in pieces] == [1, ROWS_PER_BLOCK, ROWS_PER_BLOCK, 3]


# ---------------------------------------------------------------- memory
def _insert_rows(workspace_id: int, integration_id: int, count: int, first: int = 0) -> None:
    """`count` hourly rows, written by the server itself (a test of 200k rows must not spend its
    time building them in Python)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {UsageRecord._meta.db_table}
                (workspace_id, integration_id, provider, bucket_start, bucket_end, account, project, region, model,
                 deployment, endpoint, resource, operation, api_key, metric, quantity, unit, provenance, stream, labels, updated_at)
            SELECT %s, %s, 'openai', %s + n * interval '1 hour', %s + (n + 1) * interval '1 hour', 'org-1',
                   'proj_' || (n %% 25), 'us-east-1', 'gpt-4o-' || (n %% 40), '', '', '', '', '',
                   'input_tokens', n * 1.5, 'tokens', 'reported', '', '{{}}', now()
            FROM generate_series(%s, %s) AS n""",
            [workspace_id, integration_id, START, START, first, first + count - 1],
        )


class CountingSink:
    """A standard output that keeps nothing: counts what it is given."""

    def __init__(self) -> None:
        self.chars = 0
        self.lines = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass


def _traced_peak_of_export() -> tuple[int, CountingSink]:
    sink = CountingSink()
    tracemalloc.start()
    try:
        call_command("export_usage", "--workspace", "acme", stdout=sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, sink


def test_memory_does_not_grow_with_the_rows(workspace):
    integration = make_integration(workspace)
    _insert_rows(workspace.pk, integration.pk, 20_000)
    small_peak, small = _traced_peak_of_export()
    _insert_rows(workspace.pk, integration.pk, 180_000, first=20_000)
    big_peak, big = _traced_peak_of_export()
    assert small.lines == 20_001 and big.lines == 200_001
    assert big.chars > 20 * 2**20  # 20 MiB written …
    assert big_peak < 2 * 2**20  # … through less than 2 MiB of Python memory at the peak,
    assert big_peak < small_peak + 256 * 2**10  # the same peak as for a tenth of the rows


# ---------------------------------------------------------------- a download abandoned midway
@pytest.mark.django_db(transaction=True)
def test_an_abandoned_download_ends_the_copy_and_the_connection_stays_usable(workspace):
    integration = make_integration(workspace)
    _insert_rows(workspace.pk, integration.pk, 50 * ROWS_PER_BLOCK)
    stream = usage_csv_stream(usage_export_queryset(workspace=workspace))
    assert next(stream).startswith(b"provider,integration,")
    assert next(stream).count(b"\r\n") == ROWS_PER_BLOCK
    stream.close()  # what Django does when the client goes away
    assert UsageRecord.objects.filter(workspace=workspace).count() == 50 * ROWS_PER_BLOCK
    assert _command("--workspace", "acme").count("\r\n") == 50 * ROWS_PER_BLOCK + 1
