"""The usage CSV importer: both formats, every problem with its line number, all or nothing,
idempotent re-import, and a corrected row replacing the stored one."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from integrations.models import Integration, IntegrationEvent
from integrations.providers.base import UsageSample
from integrations.testing import make_integration
from sandbox import authress as fake
from usage import importer
from usage.export import CSV_COLUMNS, usage_csv_rows, usage_export_queryset
from usage.importer import (
    UsageImportError,
    parse_usage_csv,
    usage_import_csv,
    usage_import_file,
)
from usage.models import UsageRecord

NOW = datetime(2025, 4, 1, tzinfo=UTC)
DAY = datetime(2025, 3, 1, tzinfo=UTC)
DOOW_HEADER = "provider,integration,bucket_start,bucket_end,account,project,region,model,deployment,endpoint,resource,operation,api_key,metric,quantity,unit,application,license,provenance,integration_name"


def parse(text: str | bytes, **kwargs) -> list[UsageSample]:
    kwargs.setdefault("now", NOW)
    data = text.encode() if isinstance(text, str) else text
    return parse_usage_csv(data, **kwargs).samples


def problems(text: str | bytes, **kwargs) -> list[str]:
    kwargs.setdefault("now", NOW)
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(UsageImportError) as info:
        parse_usage_csv(data, **kwargs)
    return [str(p) for p in info.value.problems]


def doow(*rows: str, header: str = DOOW_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def row(**cells: str) -> str:
    values = {
        "provider": "authress", "integration": "", "bucket_start": "2025-03-01T00:00:00Z",
        "bucket_end": "2025-03-02T00:00:00Z", "metric": "api_calls", "quantity": "10", "unit": "calls", **cells,
    }  # fmt: skip
    return ",".join(values.get(name, "") for name in DOOW_HEADER.split(","))


@pytest.fixture
def integration(workspace) -> Integration:
    return make_integration(workspace, "Authress", "authress", credential={"access_key": fake.ACCESS_KEY},
                            settings={"base_url": "http://127.0.0.1:9"})  # fmt: skip


def stored(integration: Integration) -> dict[tuple, Decimal]:
    return {
        (r.bucket_start.date(), r.resource, r.operation, r.metric): r.quantity for r in integration.usage_records.all()
    }


# ---------------------------------------------------------------- the two formats
def test_authress_portal_rows_become_daily_api_calls() -> None:
    samples = parse(
        "date,resource,operation,calls\n2025-03-01,/v1/records,POST,87\n2025-03-31,/v1/roles/{roleId},GET,5\n"
    )
    assert samples == [
        UsageSample(DAY, DAY + timedelta(days=1), "api_calls", Decimal(87), unit="calls", resource="/v1/records", operation="POST", provenance="imported"),
        UsageSample(datetime(2025, 3, 31, tzinfo=UTC), NOW, "api_calls", Decimal(5), unit="calls", resource="/v1/roles/{roleId}", operation="GET", provenance="imported"),
    ]  # fmt: skip


def test_authress_needs_only_date_and_calls_and_any_header_case() -> None:
    (sample,) = parse("\ufeffCalls,DATE\n3,2025-03-01\n")
    assert (sample.quantity, sample.resource, sample.operation) == (3, "", "")


def test_doow_rows_keep_every_dimension_and_default_the_unit() -> None:
    text = doow(
        row(account="acc_1", project="p", region="eu-west", model="m", deployment="d", endpoint="e", resource="r",
            operation="o", api_key="k", unit=""),
        row(metric="cost", quantity="0.123456789", unit="EUR", bucket_start="2025-03-01T01:00:00+01:00", bucket_end="2025-03-01T01:00:00"),
        row(metric="input_tokens", quantity="1e3", unit="tokens", application="App", license="L"),
    )  # fmt: skip
    first, cost, tokens = parse(text, provider="authress")
    assert first == UsageSample(DAY, DAY + timedelta(days=1), "api_calls", Decimal(10), unit="calls", account="acc_1", project="p",
                                region="eu-west", model="m", deployment="d", endpoint="e", resource="r", operation="o",
                                api_key="k", provenance="imported")  # fmt: skip
    # An offset is converted to UTC; a time without one is UTC.
    assert (cost.bucket_start, cost.bucket_end, cost.unit, cost.quantity) == (
        DAY,
        DAY + timedelta(hours=1),
        "EUR",
        Decimal("0.123456789"),
    )
    assert (tokens.metric, tokens.quantity, tokens.unit) == ("input_tokens", Decimal(1000), "tokens")


def test_doow_needs_only_its_four_required_columns() -> None:
    (sample,) = parse("bucket_start,bucket_end,metric,quantity\n2025-03-01,2025-03-02,requests,4\n")
    assert (sample.bucket_start, sample.metric, sample.unit, sample.quantity) == (DAY, "requests", "requests", 4)


def test_the_format_can_be_forced() -> None:
    assert problems("date,calls\n2025-03-01,1\n", fmt="doow") == [
        "line 1: missing columns: bucket_start, bucket_end, metric, quantity",
        "line 1: unknown columns: date, calls",
    ]
    assert problems(doow(row()), fmt="authress")[0].startswith("line 1: missing columns: date, calls")
    assert problems("date,calls\n", fmt="csv") == ["unknown format 'csv'; use one of auto, doow, authress"]


# ---------------------------------------------------------------- every problem, with its line
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["the file is empty; the first line must be a header"]),
        ("\n\n", ["the file is empty; the first line must be a header"]),
        ("date,calls\n", ["the file has a header but no data rows"]),
        (
            "day,count\n2025-03-01,1\n",
            [f"line 1: header not recognised; expected {','.join(CSV_COLUMNS)} or date,resource,operation,calls"],
        ),
        ("date,calls,calls\n2025-03-01,1,1\n", ["line 1: duplicated column: calls"]),
        (DOOW_HEADER + ",notes\n", ["line 1: unknown column: notes"]),
        (
            "date,calls\n2025-03-01,1,2\n2025-03-02\n",
            ["line 2: has 3 fields; the header has 2", "line 3: has 1 fields; the header has 2"],
        ),
        (
            "date,calls\n2025-02-30,1\n01/03/2025,1\n",
            [
                "line 2: date '2025-02-30' is not a date such as 2025-03-01",
                "line 3: date '01/03/2025' is not a date such as 2025-03-01",
            ],
        ),
        ("date,calls\n2025-04-02,1\n", ["line 2: date is in the future"]),
        (
            "date,calls\n2025-03-01,-3\n2025-03-02,1.5\n2025-03-03,many\n2025-03-04,\n",
            [
                "line 2: calls '-3' is not a whole, non-negative number",
                "line 3: calls '1.5' is not a whole, non-negative number",
                "line 4: calls 'many' is not a whole, non-negative number",
                "line 5: calls '' is not a whole, non-negative number",
            ],
        ),
        (
            "date,calls\n2025-03-01,1000000000000000000000\n",
            ["line 2: calls '1000000000000000000000' is too large or has more than 9 decimals"],
        ),
        ("date,resource,calls\n2025-03-01," + "r" * 201 + ",1\n", ["line 2: resource is longer than 200 characters"]),
        (
            "date,resource,operation,calls\n2025-03-01,/v1/records,POST,1\n\n2025-03-01,/v1/records,POST,2\n",
            ["line 4: same bucket, dimensions and metric as line 2"],
        ),
        (
            'date,resource,calls\n2025-03-01,"multi\nline",1\n2025-03-01,x,-1\n',
            ["line 4: calls '-1' is not a whole, non-negative number"],
        ),
        ("date,resource,calls\n2025-03-01,a\0b,1\n", ["line 2: contains a NUL character"]),
        (
            'date,resource,calls\n2025-03-01,"' + "x" * 140_000 + '",1\n2025-03-02,a,1\n',
            ["line 2: unreadable CSV (field larger than field limit (131072))"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_authress_problems(text, expected) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (
            {"metric": "tokens"},
            "unknown metric 'tokens' (known: input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, requests, throttled_requests, failed_requests, compute_seconds, provisioned_hours, training_tokens, api_calls, images, characters, audio_seconds, sessions, storage_byte_days, billed_quantity, cost, byok_cost)",
        ),
        (
            {"bucket_start": "yesterday"},
            "bucket_start 'yesterday' is not an ISO 8601 time such as 2025-03-01T00:00:00Z",
        ),
        ({"bucket_end": ""}, "bucket_end '' is not an ISO 8601 time such as 2025-03-01T00:00:00Z"),
        ({"bucket_end": "2025-03-01T00:00:00Z"}, "bucket_end is not after bucket_start"),
        (
            {"bucket_start": "2025-04-01T00:00:01Z", "bucket_end": "2025-04-02T00:00:00Z"},
            "bucket_start is in the future",
        ),
        ({"quantity": "-1"}, "quantity '-1' is negative"),
        ({"quantity": "ten"}, "quantity 'ten' is not a number"),
        ({"quantity": "NaN"}, "quantity 'NaN' is not a finite number"),
        ({"quantity": "0.0000000001"}, "quantity '0.0000000001' is too large or has more than 9 decimals"),
        ({"unit": "tokens"}, "unit 'tokens' is wrong for api_calls; it is measured in calls"),
        ({"metric": "cost", "unit": ""}, "a cost needs its currency code as unit (e.g. USD), not ''"),
        ({"metric": "cost", "unit": "usd"}, "a cost needs its currency code as unit (e.g. USD), not 'usd'"),
        ({"provider": "openai"}, "the row is for provider 'openai', this integration is 'authress'"),
        (
            {"integration": "999"},
            "the row belongs to integration '999', this is integration 7 (empty the integration column to import it here)",
        ),
        ({"model": "m" * 201}, "model is longer than 200 characters"),
        ({"region": "r" * 65}, "region is longer than 64 characters"),
    ],
)
def test_doow_problems(cells, expected) -> None:
    assert problems(doow(row(), row(**cells)), provider="authress", integration_id=7) == [f"line 3: {expected}"]


def test_a_line_with_several_problems_reports_each() -> None:
    assert problems(doow(row(metric="cost", quantity="-1e", unit="X", bucket_end="2024-01-01"))) == [
        "line 2: bucket_end is not after bucket_start",
        "line 2: quantity '-1e' is not a number",
        "line 2: a cost needs its currency code as unit (e.g. USD), not 'X'",
    ]


def test_a_negative_cost_is_a_credit_and_other_metrics_stay_non_negative() -> None:
    # Providers report credits as negative cost rows, and our export writes them so: an export
    # with a credit must import back.
    (credit,) = parse(doow(row(metric="cost", quantity="-1.5", unit="USD")))
    assert (credit.metric, credit.quantity) == ("cost", Decimal("-1.5"))
    assert problems(doow(row(metric="cost", quantity="-1000000000000000000000", unit="USD"))) == [
        "line 2: quantity '-1000000000000000000000' is too large or has more than 9 decimals"
    ]
    assert problems(doow(row(metric="input_tokens", quantity="-1", unit="tokens"))) == [
        "line 2: quantity '-1' is negative"
    ]


def test_the_same_key_twice_is_a_problem_even_when_written_differently() -> None:
    text = doow(row(), row(bucket_start="2025-03-01T01:00:00+01:00", bucket_end="2025-03-02", quantity="11", unit=""))
    assert problems(text) == ["line 3: same bucket, dimensions and metric as line 2"]


def test_only_the_first_problems_are_listed_but_all_are_counted(monkeypatch) -> None:
    monkeypatch.setattr(importer, "MAX_REPORTED_PROBLEMS", 3)
    with pytest.raises(UsageImportError) as info:
        parse_usage_csv(("date,calls\n" + "x,1\n" * 10).encode(), now=NOW)
    assert [p.line for p in info.value.problems] == [2, 3, 4]
    assert (info.value.total, info.value.unlisted) == (10, 7)


def test_size_and_row_limits(monkeypatch) -> None:
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 100)
    assert problems("date,calls\n" + "2025-03-01,1\n" * 10) == [
        "the file is 0.0 MB; the limit is 0 MB (split it by date range)"
    ]
    with pytest.raises(UsageImportError, match="limit is 0 MB"):
        importer.read_limited(io.BytesIO(b"x" * 101))
    with pytest.raises(UsageImportError, match="limit is 0 MB"):
        importer.read_limited(io.BytesIO(b""), size=10_000)  # refused by its size, unread
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 10_000)
    monkeypatch.setattr(importer, "MAX_IMPORT_ROWS", 2)
    text = "date,resource,calls\n2025-03-01,a,1\n2025-03-01,b,1\n2025-03-01,c,1\n2025-03-01,d,1\n"
    assert problems(text) == ["line 4: more than 2 data rows; split the file by date range"]


def test_a_file_that_is_not_utf8_is_refused() -> None:
    assert problems("date,resource,calls\n2025-03-01,Gr\xfcn,1\n".encode("latin-1")) == [
        "line 2: the file is not UTF-8 text (byte 34); save it as UTF-8"
    ]
    # Counted past a BOM and across CR-only line ends, as the CSV reader counts lines.
    assert problems(b"\xef\xbb\xbfdate,calls\r2025-03-01,1\r2025-03-02,\xff\n") == [
        "line 3: the file is not UTF-8 text (byte 39); save it as UTF-8"
    ]


# ---------------------------------------------------------------- storing
def test_a_valid_file_is_stored_with_an_event(integration) -> None:
    text = fake.portal_csv(date(2025, 3, 1), date(2025, 3, 4)).encode()
    result = usage_import_csv(integration=integration, data=text, source="calls.csv", now=NOW)
    truth = fake.truth_calls(date(2025, 3, 1), date(2025, 3, 4))
    assert (result.format, result.rows, result.stored) == ("authress", len(truth), len(truth))
    assert result.date_range == "2025-03-01 – 2025-03-03 (UTC)"
    assert stored(integration) == {(r.day, r.resource, r.operation, "api_calls"): Decimal(r.calls) for r in truth}
    assert set(integration.usage_records.values_list("provenance", "unit", "provider")) == {
        ("imported", "calls", "authress")
    }
    event = integration.events.get()
    assert (event.level, event.category) == ("info", "import")
    assert (
        event.message
        == f"Imported {len(truth)} usage rows for 2025-03-01 – 2025-03-03 (UTC) from calls.csv (Authress portal format)."
    )


def test_a_file_with_any_problem_stores_nothing_and_says_why(integration) -> None:
    good = [f"2025-03-0{d},/v1/records,POST,{d}" for d in range(1, 9)]
    text = "\n".join(
        [
            "date,resource,operation,calls",
            *good,
            "2025-03-09,/v1/records,POST,-1",
            "nope,x,y,1",
            "2025-03-10,a,b,c",
            "2025-03-11,a,b,-2",
        ]
    )
    with pytest.raises(UsageImportError) as info:
        usage_import_csv(integration=integration, data=text.encode(), source="march.csv", now=NOW)
    assert [p.line for p in info.value.problems] == [10, 11, 12, 13]
    assert not UsageRecord.objects.exists()
    event = integration.events.get()
    assert (event.level, event.category) == ("warning", "import")
    assert event.message == (
        "Usage import of march.csv rejected; nothing was stored. line 10: calls '-1' is not a whole, non-negative number; "
        "line 11: date 'nope' is not a date such as 2025-03-01; line 12: calls 'c' is not a whole, non-negative number (and 1 more)"
    )
    assert "import the whole file again" in event.hint


def test_importing_the_same_file_again_changes_nothing(integration) -> None:
    text = fake.portal_csv(date(2025, 3, 1), date(2025, 3, 8)).encode()
    usage_import_csv(integration=integration, data=text, now=NOW)
    before = stored(integration)
    ids = set(integration.usage_records.values_list("pk", flat=True))
    result = usage_import_csv(integration=integration, data=text, now=NOW)
    assert stored(integration) == before and set(integration.usage_records.values_list("pk", flat=True)) == ids
    assert result.stored == len(before)
    assert integration.events.filter(level="info").count() == 2


def test_a_corrected_row_replaces_the_stored_one_and_other_days_stay(integration) -> None:
    usage_import_csv(
        integration=integration,
        data=b"date,resource,operation,calls\n2025-03-01,r,GET,100\n2025-03-02,r,GET,50\n",
        now=NOW,
    )
    usage_import_csv(integration=integration, data=b"date,resource,operation,calls\n2025-03-01,r,GET,120\n", now=NOW)
    assert stored(integration) == {
        (date(2025, 3, 1), "r", "GET", "api_calls"): Decimal(120),
        (date(2025, 3, 2), "r", "GET", "api_calls"): Decimal(50),
    }


def test_an_export_imports_back_unchanged(integration, workspace) -> None:
    usage_import_csv(
        integration=integration, data=fake.portal_csv(date(2025, 3, 1), date(2025, 3, 5)).encode(), now=NOW
    )
    before = stored(integration)
    rows = list(usage_csv_rows(usage_export_queryset(workspace=workspace, integration_id=integration.pk)))
    text = "\n".join(",".join(f'"{cell}"' for cell in r) for r in rows)
    result = usage_import_csv(integration=integration, data=text.encode(), now=NOW)
    assert result.format == "doow" and stored(integration) == before


def test_a_disconnected_integration_takes_no_import(integration) -> None:
    integration.status = Integration.Status.DISCONNECTED
    integration.save()
    with pytest.raises(UsageImportError, match="disconnected"):
        usage_import_csv(integration=integration, data=b"date,calls\n2025-03-01,1\n", now=NOW)
    assert not UsageRecord.objects.exists()
    assert IntegrationEvent.objects.get().level == "warning"


def test_a_file_over_the_limit_is_refused_with_an_event(integration, monkeypatch) -> None:
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 10)
    with pytest.raises(UsageImportError, match="limit"):
        usage_import_file(integration=integration, stream=io.BytesIO(b"date,calls\n2025-03-01,1\n"), source="big.csv")
    assert "Usage import of big.csv rejected" in integration.events.get().message
