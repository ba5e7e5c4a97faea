"""export_usage --format csv: the docs/architecture.md columns, their order and formats, attribution
labels, tenant scoping, day bounds, and streaming."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from integrations.testing import make_integration
from usage.export import CSV_COLUMNS, format_quantity, license_label, usage_csv_rows, usage_export_queryset
from usage.models import Application, License, UsageRecord
from usage.testing import make_record

# docs/architecture.md, "Management commands", spelled out so a change to the exporter cannot silently
# change the contract.
EXPECTED_HEADER = [
    "provider",
    "integration",
    "bucket_start",
    "bucket_end",
    "account",
    "project",
    "region",
    "model",
    "deployment",
    "endpoint",
    "resource",
    "operation",
    "api_key",
    "metric",
    "quantity",
    "unit",
    "application",
    "license",
    "provenance",
    "integration_name",
    # issue 13's dimensions, appended after the earlier additions.
    "service_tier",
    "batch",
    "context_window",
    "inference_geo",
    "speed",
]
DAY1 = datetime(2026, 1, 1, tzinfo=UTC)


def make_license(workspace, application: Application, plan_name: str = "Scale tier") -> License:
    return License.objects.create(
        workspace=workspace,
        application=application,
        plan_name=plan_name,
        kind=License.Kind.COMMITMENT,
        start_date=date(2026, 1, 1),
        committed_amount=Decimal(1000),
    )


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def _export(*args: str) -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("export_usage", *args, stdout=out)
    header, rows = parse_csv(out.getvalue())
    assert header == EXPECTED_HEADER
    return rows


@pytest.fixture
def records(workspace):
    integration = make_integration(workspace)
    make_record(
        integration,
        DAY1 + timedelta(hours=13),
        "input_tokens",
        "1234.000000000",
        "tokens",
        account="org-1",
        project="proj_a",
        model="gpt-4o",
        api_key="key_abc",
        service_tier="priority",
        batch="false",
    )
    make_record(integration, DAY1 + timedelta(days=1), "cost", "0.500000000", "USD", account="org-1", project="proj_a")
    make_record(integration, DAY1 + timedelta(days=2, hours=23), "requests", "7", "requests", model="gpt-4o")
    return integration


def test_csv_columns_order_and_formats(records):
    rows = _export("--workspace", "acme")
    assert [r["metric"] for r in rows] == ["input_tokens", "cost", "requests"]
    tokens, cost, requests = rows
    assert tokens == {
        "provider": "openai",
        "integration": str(records.pk),
        "bucket_start": "2026-01-01T13:00:00Z",
        "bucket_end": "2026-01-01T14:00:00Z",
        "account": "org-1",
        "project": "proj_a",
        "region": "",
        "model": "gpt-4o",
        "deployment": "",
        "endpoint": "",
        "resource": "",
        "operation": "",
        "api_key": "key_abc",
        "metric": "input_tokens",
        "quantity": "1234",
        "unit": "tokens",
        "application": "",
        "license": "",
        "provenance": "reported",
        "integration_name": "OpenAI prod",
        "service_tier": "priority",
        "batch": "false",
        "context_window": "",
        "inference_geo": "",
        "speed": "",
    }
    assert (cost["metric"], cost["quantity"], cost["unit"]) == ("cost", "0.5", "USD")
    assert requests["quantity"] == "7"
    assert list(CSV_COLUMNS) == EXPECTED_HEADER


def test_application_and_license_columns_name_the_attribution(records, workspace):
    support = Application.objects.create(workspace=workspace, name="Support Bot", vendor="OpenAI")
    scale = make_license(workspace, support, "Scale tier")
    other = Application.objects.create(workspace=workspace, name="Internal wiki")
    tokens, cost, _requests = UsageRecord.objects.order_by("bucket_start")
    UsageRecord.objects.filter(pk=tokens.pk).update(application=support, license=scale)
    UsageRecord.objects.filter(pk=cost.pk).update(application=other)

    rows = _export("--workspace", "acme")

    assert [(r["application"], r["license"]) for r in rows] == [
        ("Support Bot", "Support Bot – Scale tier"),
        ("Internal wiki", ""),
        ("", ""),  # unattributed
    ]
    assert license_label("Support Bot", "Scale tier") == str(scale)  # the same label as the pages


def test_labels_are_read_once_per_application_and_license(records, workspace, django_assert_max_num_queries):
    support = Application.objects.create(workspace=workspace, name="Support Bot")
    scale = make_license(workspace, support)
    for i in range(50):
        make_record(
            records,
            DAY1 + timedelta(days=3, hours=i),
            "output_tokens",
            "1",
            "tokens",
            application=support,
            license=scale,
        )
    rows = usage_csv_rows(usage_export_queryset(workspace=workspace))
    next(rows)
    # One SELECT of the records, one of the application, one of the license, one of the
    # integration's name: not one per row.
    with django_assert_max_num_queries(4):
        assert (
            sum(
                1
                for r in rows
                if r[CSV_COLUMNS.index("license")] == "Support Bot – Scale tier"
                and r[CSV_COLUMNS.index("integration_name")] == "OpenAI prod"
            )
            == 50
        )


def test_only_the_workspaces_own_usage_is_exported(records, other_workspace):
    foreign = make_integration(other_workspace, name="Globex OpenAI")
    make_record(foreign, DAY1, "input_tokens", "99", "tokens", model="foreign-model")
    rows = _export("--workspace", "acme")
    assert {r["integration"] for r in rows} == {str(records.pk)}
    assert all(r["model"] != "foreign-model" for r in rows)


def test_integration_filter(records, workspace):
    second = make_integration(workspace, name="OpenAI staging")
    make_record(second, DAY1, "output_tokens", "5", "tokens")
    assert {r["integration"] for r in _export("--workspace", "acme")} == {str(records.pk), str(second.pk)}
    rows = _export("--workspace", "acme", "--integration", str(second.pk))
    assert [(r["integration"], r["metric"]) for r in rows] == [(str(second.pk), "output_tokens")]


def test_integration_of_another_workspace_is_refused(records, other_workspace):
    foreign = make_integration(other_workspace, name="Globex OpenAI")
    with pytest.raises(CommandError, match="no integration"):
        _export("--workspace", "acme", "--integration", str(foreign.pk))


def test_unknown_workspace_is_refused(db):
    with pytest.raises(CommandError, match="No workspace"):
        _export("--workspace", "nope")


def test_since_and_until_are_whole_utc_days_inclusive(records):
    rows = _export("--workspace", "acme", "--since", "2026-01-02", "--until", "2026-01-03")
    # 2026-01-01 13:00 is before; 2026-01-02 00:00 and 2026-01-03 23:00 are inside.
    assert [r["metric"] for r in rows] == ["cost", "requests"]
    assert [r["metric"] for r in _export("--workspace", "acme", "--until", "2026-01-01")] == ["input_tokens"]


def test_bad_dates_are_refused(records):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        _export("--workspace", "acme", "--since", "01/02/2026")
    with pytest.raises(CommandError, match="before"):
        _export("--workspace", "acme", "--since", "2026-01-03", "--until", "2026-01-01")


def test_unknown_format_is_refused(records):
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("export_usage", "--workspace", "acme", "--format", "xlsx", stdout=io.StringIO())


def test_empty_export_is_just_the_header(workspace):
    assert _export("--workspace", "acme") == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1234.000000000", "1234"),
        ("0.500000000", "0.5"),
        ("1E+3", "1000"),
        ("0.000000001", "0.000000001"),
        ("0E-9", "0"),
        ("-0", "0"),
        ("123456789012345678901.5", "123456789012345678901.5"),
        ("-2.50", "-2.5"),
    ],
)
def test_quantity_is_a_plain_decimal(value, text):
    assert format_quantity(Decimal(value)) == text


def test_rows_are_streamed_in_chunks(records, django_assert_max_num_queries):
    rows = usage_csv_rows(usage_export_queryset(workspace=records.workspace))
    assert next(rows) == EXPECTED_HEADER  # a generator: nothing is read before it is asked for
    # The records, then the integration's name once (integration_name), not once per row.
    with django_assert_max_num_queries(2):
        assert len(list(rows)) == 3
