"""CSV formula injection: every CSV Doow writes (page downloads and `export_usage`, docs/architecture.md and
FOCUS layouts) prefixes a text cell that would start a spreadsheet formula with a quote, leaves
numbers alone (a credit stays -1.5), and our importer takes its own export back unchanged."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from integrations.models import Integration
from usage.csv_safety import Number, escape_cell, formula_safe_writer, unescape_cell
from usage.dimensions import DIMENSIONS
from usage.export_focus import FOCUS_HEADER
from usage.models import Application, License, UsageRecord
from usage.tests.test_export import DAY1, EXPECTED_HEADER, make_integration, make_record, parse_csv
from usage.tests.test_export_focus import focus_problems

# One of each trigger OWASP names, as a provider or an importer could deliver them.
HOSTILE = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]
# Already quoted by someone: gets one more quote, so the importer can drop exactly one.
QUOTED = "'=already quoted"
HARMLESS = ["gpt-4o", "", "'plain quote", "a=b", " =1+1", "2026-01-01", '{"json":1}']


def quoted(value: str) -> str:
    return "'" + value


# ---------------------------------------------------------------- the rule itself
@pytest.mark.parametrize("value", HOSTILE)
def test_a_text_cell_that_starts_a_formula_gets_a_quote(value):
    assert escape_cell(value) == quoted(value)
    assert unescape_cell(quoted(value)) == value


@pytest.mark.parametrize("value", HARMLESS)
def test_other_text_is_written_as_it_is(value):
    assert escape_cell(value) == value
    assert unescape_cell(value) == value


def test_numbers_are_never_prefixed_even_when_negative():
    for text in ("-1.5", "-0.000000001", "+3", "0"):
        assert escape_cell(Number(text)) == text
    assert escape_cell(-2) == -2 and escape_cell(Decimal("-1.5")) == Decimal("-1.5")
    # The same characters as text are a formula to a spreadsheet.
    assert escape_cell("-1.5") == "'-1.5"


def test_quotes_before_a_trigger_get_one_more_so_the_rule_is_reversible():
    for value in (QUOTED, "''+x", "'\t"):
        assert escape_cell(value) == quoted(value)
        assert unescape_cell(escape_cell(value)) == value


def test_the_writer_escapes_text_cells_only():
    out = io.StringIO()
    writer = formula_safe_writer(out)
    writer.writerow(["=1+1", Number("-1.5"), "ok", "\r@x"])
    writer.writerow(["plain", "a\x00=b", Number("-2")])  # a NUL inside a cell is no cell start
    writer.writerow([-3, Decimal("-1.5"), "@x", None])  # non-text cells: numbers, written as given
    writer.writerow(cell for cell in ("+x", "y"))  # any iterable, as csv.writer takes
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["'=1+1", "-1.5", "ok", "'\r@x"],
        ["plain", "a\x00=b", "-2"],
        ["-3", "-1.5", "'@x", ""],
        ["'+x", "y"],
    ]


def test_no_module_writes_csv_without_the_safe_writer():
    """Every csv.writer of the product is the one in usage/csv_safety.py (the sandbox fakes a
    provider's own portal file; tests, the faults suite and benchmarks only read or build inputs)."""
    root = Path(settings.BASE_DIR)
    offenders = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if (
            parts[0] in {".venv", "sandbox", "bench", "e2e", "faults", "var"}
            or "tests" in parts
            or path.name.startswith("test_")
        ):
            continue
        text = path.read_text(encoding="utf-8")
        if ("csv.writer(" in text or "csv.DictWriter(" in text) and path.name != "csv_safety.py":
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


# ---------------------------------------------------------------- exports


@pytest.fixture
def hostile(workspace):
    """Hostile names everywhere a name can come from: dimensions, the application, the license,
    the integration and its project names; plus an honest credit of -1.5."""
    integration = make_integration(
        workspace,
        name="=cmd|' /C calc'!A0",
        identity={"details": {"projects": [{"id": "proj_1", "name": "@SUM(1+1)"}]}},
    )
    app = Application.objects.create(workspace=workspace, name='=HYPERLINK("http://x","y")')
    lic = License.objects.create(workspace=workspace, application=app, plan_name="-2+3", kind=License.Kind.PAY_AS_YOU_GO,
                                 start_date=DAY1.date())  # fmt: skip
    for i, value in enumerate([*HOSTILE, QUOTED]):
        make_record(integration, DAY1 + timedelta(hours=i), "input_tokens", "10", "tokens",
                    **dict.fromkeys(DIMENSIONS, value),
                    application=app, license=lic)  # fmt: skip
    make_record(
        integration,
        DAY1 + timedelta(days=1),
        "cost",
        "-1.5",
        "USD",
        project="proj_1",
        model="gpt-4o",
        operation="credits",
    )
    make_record(integration, DAY1 + timedelta(days=1), "cost", "2.25", "USD", project="proj_1", model="gpt-4o")
    return integration


def _download(client, **params: str) -> str:
    response = client.get(reverse("usage:export", kwargs={"ws": "acme"}), params)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("export_usage", "--workspace", "acme", *args, stdout=out)
    return out.getvalue()


def _assert_no_formula(rows: list[dict[str, str]]) -> None:
    for row in rows:
        for column, cell in row.items():
            assert cell[:1] not in {"=", "+", "@", "\t", "\r"}, (column, cell)
            if cell.startswith("-"):
                assert Decimal(cell) < 0, (column, cell)  # only a number may start with a minus


def _check_csv(text: str) -> None:
    header, rows = parse_csv(text)
    assert header == EXPECTED_HEADER
    tokens = [r for r in rows if r["metric"] == "input_tokens"]
    assert [r["model"] for r in tokens] == [quoted(v) for v in [*HOSTILE, QUOTED]]
    for row, value in zip(tokens, [*HOSTILE, QUOTED], strict=True):
        assert {name: row[name] for name in DIMENSIONS} == dict.fromkeys(DIMENSIONS, quoted(value))
        assert row["application"] == quoted('=HYPERLINK("http://x","y")')
        assert row["license"] == quoted('=HYPERLINK("http://x","y") – -2+3')
        assert row["quantity"] == "10"
    credit, cost = [r for r in rows if r["metric"] == "cost"]
    assert (credit["quantity"], credit["operation"], cost["quantity"]) == ("-1.5", "credits", "2.25")
    _assert_no_formula(rows)


def _check_focus(text: str) -> None:
    header, rows = parse_csv(text)
    assert header == list(FOCUS_HEADER)
    tokens = [r for r in rows if r["x_Metric"] == "input_tokens"]
    assert [r["x_Model"] for r in tokens] == [quoted(v) for v in [*HOSTILE, QUOTED]]
    assert [r["SkuId"] for r in tokens] == [quoted(v) for v in [*HOSTILE, QUOTED]]
    assert {r["BillingAccountName"] for r in rows} == {quoted("=cmd|' /C calc'!A0")}
    assert {r["SubAccountName"] for r in rows if r["SubAccountId"] == "proj_1"} == {quoted("@SUM(1+1)")}
    credit = next(r for r in rows if r["ChargeCategory"] == "Credit")
    assert (credit["BilledCost"], credit["EffectiveCost"], credit["ListCost"], credit["ContractedCost"]) == (
        "-1.5",
    ) * 4
    _assert_no_formula(rows)
    # Still FOCUS: the checker of the FOCUS tests finds nothing wrong.
    assert focus_problems(header, rows) == []


def test_a_members_csv_download_prefixes_every_hostile_name(member_client, hostile):
    _check_csv(_download(member_client, format="csv"))


def test_a_members_focus_download_prefixes_every_hostile_name(member_client, hostile):
    _check_focus(_download(member_client, format="focus"))


def test_the_integration_pages_download_prefixes_too(admin_client, hostile):
    _check_csv(_download(admin_client, format="csv", integration=str(hostile.pk)))


def test_export_usage_csv_prefixes_every_hostile_name(hostile):
    _check_csv(_command())


def test_export_usage_focus_prefixes_every_hostile_name(hostile):
    _check_focus(_command("--format", "focus"))


# ---------------------------------------------------------------- back through the importer
def test_an_export_with_hostile_names_and_a_credit_imports_back_unchanged(
    admin_client, hostile, django_capture_on_commit_callbacks
):
    def snapshot() -> set[tuple]:
        return set(hostile.usage_records.values_list("bucket_start", "metric", "quantity", *DIMENSIONS))

    before = snapshot()
    count = UsageRecord.objects.count()
    upload = io.BytesIO(_download(admin_client, format="csv", integration=str(hostile.pk)).encode())
    upload.name = "export.csv"
    with django_capture_on_commit_callbacks(execute=True):  # the import job, as a worker runs it
        response = admin_client.post(
            reverse("integrations:import_usage", kwargs={"ws": "acme", "pk": hostile.pk}),
            {"file": upload, "format": "auto"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 200
    assert "Imported 9 usage rows" in Integration.objects.get(pk=hostile.pk).events.get().message
    # The same keys were replaced, not doubled: every name is as stored, without our quote.
    assert UsageRecord.objects.count() == count
    assert snapshot() == before
    assert not UsageRecord.objects.filter(model__startswith="''").exists()
    assert set(UsageRecord.objects.values_list("provenance", flat=True)) == {"imported"}
