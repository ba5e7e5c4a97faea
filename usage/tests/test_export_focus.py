"""FOCUS 1.2 export: every required column present and well-typed, the documented mapping of a
token row and a cost row (docs/export.md), and `export_usage --format focus`.

The FOCUS facts below are copied from the FOCUS 1.2 specification (columns/*.md and
attributes/*.md of FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec at tag v1.2), not from our code.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from integrations.engine import integration_sync
from usage.export import usage_export_queryset
from usage.export_focus import CUSTOM_COLUMNS, FOCUS_COLUMNS, FOCUS_HEADER, usage_focus_rows
from usage.models import Application
from usage.tests.test_export import DAY1, make_integration, make_license, make_record, parse_csv

# Feature level "Mandatory" in FOCUS 1.2 (PricingCategory: mandatory for the official validator).
MANDATORY = {
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName",
    "ServiceCategory", "ServiceName",
}  # fmt: skip
# Conditional columns whose condition holds for AI usage (usage is measured, regions and
# sub accounts exist, price lists name SKUs, our attribution is tagging) and the issue asks for.
CONDITIONAL = {
    "ConsumedQuantity",
    "ConsumedUnit",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceType",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
}
DATETIMES = {"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"}
NOT_NULL_DECIMALS = {"BilledCost", "ContractedCost", "EffectiveCost", "ListCost"}
NULLABLE_DECIMALS = {"ConsumedQuantity", "PricingQuantity", "ListUnitPrice"}
NOT_NULL_STRINGS = {"BillingAccountId", "BillingCurrency", "ChargeCategory", "ChargeFrequency", "InvoiceIssuerName",
                    "ProviderName", "PublisherName", "ServiceCategory", "ServiceName", "ServiceSubcategory"}  # fmt: skip
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"},
    "ServiceCategory": {
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
        "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
        "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
    },
}  # fmt: skip
SUBCATEGORY_PARENT = {
    "AI Platforms": "AI and Machine Learning",
    "Bots": "AI and Machine Learning",
    "Generative AI": "AI and Machine Learning",
    "Machine Learning": "AI and Machine Learning",
    "Natural Language Processing": "AI and Machine Learning",
    "Other (AI and Machine Learning)": "AI and Machine Learning",
    "Identity and Access Management": "Identity",
    "Other (Identity)": "Identity",
}
# DateTimeFormat: extended ISO 8601 in UTC, 'YYYY-MM-DDTHH:mm:ssZ'.
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# NumericFormat: integer, decimal or E notation; no "+" sign, commas, units or currency symbols.
NUMBER = re.compile(r"^-?\d+(\.\d+)?(E-?\d+)?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


def focus_problems(header: list[str], rows: list[dict[str, str]]) -> list[str]:
    """What makes this file not a well-formed FOCUS 1.2 dataset ("" is null in CSV)."""
    problems = [f"missing column {c}" for c in sorted((MANDATORY | CONDITIONAL) - set(header))]
    custom = [c for c in header if c not in FOCUS_COLUMNS]
    if any(not c.startswith("x_") for c in custom):
        problems.append(f"custom columns without the x_ prefix: {custom}")
    if header[: len(header) - len(custom)] != [c for c in header if c in FOCUS_COLUMNS]:
        problems.append("custom columns are intermixed with FOCUS columns")
    for n, row in enumerate(rows, start=2):
        where = f"line {n}"
        bad_times = [column for column in DATETIMES if not DATETIME.match(row[column])]
        problems += [f"{where}: {column}={row[column]!r} is not YYYY-MM-DDTHH:mm:ssZ" for column in bad_times]
        for column in NOT_NULL_DECIMALS | NULLABLE_DECIMALS:
            value = row[column]
            if (value or column in NOT_NULL_DECIMALS) and not NUMBER.match(value):
                problems.append(f"{where}: {column}={value!r} is not a FOCUS decimal")
        for column in NOT_NULL_STRINGS:
            if not row[column].strip():
                problems.append(f"{where}: {column} is null")
        for column, allowed in ALLOWED.items():
            if row[column] and row[column] not in allowed:
                problems.append(f"{where}: {column}={row[column]!r} is not an allowed value")
        if SUBCATEGORY_PARENT.get(row["ServiceSubcategory"]) != row["ServiceCategory"]:
            problems.append(
                f"{where}: ServiceSubcategory {row['ServiceSubcategory']!r} is not under {row['ServiceCategory']!r}"
            )
        if not CURRENCY.match(row["BillingCurrency"]):
            problems.append(f"{where}: BillingCurrency {row['BillingCurrency']!r} is not an ISO 4217 code")
        if not bad_times:
            problems += _row_rules(where, row)
    return problems


def _row_rules(where: str, row: dict[str, str]) -> list[str]:
    problems = []
    usage = row["ChargeCategory"] == "Usage"
    # ConsumedQuantity, PricingQuantity, PricingCategory, SkuId: not null on Usage rows (no
    # corrections here); ConsumedQuantity null on any other category.
    for column in ("ConsumedQuantity", "PricingQuantity", "PricingCategory", "SkuId"):
        if usage and not row[column]:
            problems.append(f"{where}: {column} is null on a Usage row")
    if not usage and row["ConsumedQuantity"]:
        problems.append(f"{where}: ConsumedQuantity on a {row['ChargeCategory']} row")
    for value, companion in (("ConsumedQuantity", "ConsumedUnit"), ("PricingQuantity", "PricingUnit"),
                             ("RegionId", "RegionName"), ("SubAccountId", "SubAccountName"), ("ResourceId", "ResourceType")):  # fmt: skip
        if bool(row[value]) != bool(row[companion]):
            problems.append(f"{where}: {companion} must be null exactly when {value} is")
    if row["ResourceName"] and not row["ResourceId"]:
        problems.append(f"{where}: ResourceName without ResourceId")
    if row["Tags"]:
        try:
            tags = json.loads(row["Tags"])
        except ValueError:
            tags = None
        if not isinstance(tags, dict) or any(isinstance(v, dict | list) for v in tags.values()):
            problems.append(f"{where}: Tags {row['Tags']!r} is not a flat JSON object")
    priced = all(NUMBER.match(row[c]) for c in ("ListUnitPrice", "PricingQuantity", "ListCost"))
    if priced and Decimal(row["ListUnitPrice"]) * Decimal(row["PricingQuantity"]) != Decimal(row["ListCost"]):
        problems.append(f"{where}: ListUnitPrice × PricingQuantity is not ListCost")
    if row["ChargeCategory"] == "Credit" and not (
        row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"]
    ):
        problems.append(f"{where}: a Credit's EffectiveCost, ListCost and ContractedCost must match its BilledCost")

    def parse(column: str) -> datetime:
        return datetime.strptime(row[column], "%Y-%m-%dT%H:%M:%SZ")

    if not parse("ChargePeriodStart") < parse("ChargePeriodEnd"):
        problems.append(f"{where}: the charge period is empty")
    if not parse("BillingPeriodStart") <= parse("ChargePeriodStart") < parse("BillingPeriodEnd"):
        problems.append(f"{where}: the charge does not start within its billing period")
    return problems


def _focus(*args: str) -> tuple[list[str], list[dict[str, str]]]:
    out = io.StringIO()
    call_command("export_usage", "--format", "focus", *args, stdout=out)
    return parse_csv(out.getvalue())


@pytest.fixture
def usage(workspace):
    """Rows of every kind: tokens with a deployment, a cost with a license, a credit, a region."""
    integration = make_integration(
        workspace,
        name="OpenAI prod",
        identity={"account_id": "org-1", "details": {"projects": [{"id": "proj_a", "name": "Support"}]}},
    )
    bot = Application.objects.create(workspace=workspace, name="Support Bot", vendor="OpenAI")
    scale = make_license(workspace, bot, "Scale tier")
    make_record(integration, DAY1 + timedelta(hours=13), "input_tokens", "1234", "tokens", account="org-1",
                project="proj_a", model="gpt-4o", api_key="key_abc", service_tier="priority", batch="false", application=bot)  # fmt: skip
    make_record(integration, DAY1 + timedelta(days=30), "cost", "0.5", "USD", account="org-1", project="proj_a",
                model="gpt-4o", operation="input", application=bot, license=scale)  # fmt: skip
    vertex = make_integration(workspace, name="Vertex", provider="google_vertex")
    start = datetime(2026, 2, 1, tzinfo=UTC)
    make_record(vertex, start, "output_tokens", "10", "tokens", project="p", region="us-central1", model="gemini-2.0-flash",
                resource="SKU-1", operation="output")  # fmt: skip
    make_record(vertex, start, "cost", "-0.25", "USD", project="p", region="us-central1", operation="credits")
    azure = make_integration(workspace, name="Azure", provider="azure_openai")
    make_record(azure, start, "requests", "3", "requests", account="sub-1", region="eastus", model="gpt-4o-mini",
                deployment="chat-prod", resource="my-openai")  # fmt: skip
    return integration


def test_header_is_focus_columns_then_custom_columns_in_a_stable_order(usage):
    header, rows = _focus("--workspace", "acme")
    assert header == list(FOCUS_HEADER)
    assert list(FOCUS_COLUMNS) == sorted(FOCUS_COLUMNS)  # the specification's (alphabetical) order
    assert all(c.startswith("x_") for c in CUSTOM_COLUMNS)
    assert len(rows) == 5  # one FOCUS row per UsageRecord


def test_every_row_is_well_formed_focus(usage):
    header, rows = _focus("--workspace", "acme")
    assert focus_problems(header, rows) == []


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("ChargePeriodStart", "2026-01-01 13:00:00", "is not YYYY-MM-DDTHH:mm:ssZ"),
        ("ChargePeriodEnd", "2026-01-01T14:00:00+00:00", "is not YYYY-MM-DDTHH:mm:ssZ"),
        ("BilledCost", "", "is not a FOCUS decimal"),
        ("ListCost", "1,000", "is not a FOCUS decimal"),
        ("ConsumedQuantity", "1E+3", "is not a FOCUS decimal"),
        ("ConsumedQuantity", "", "ConsumedQuantity is null on a Usage row"),
        ("ChargeCategory", "Spend", "is not an allowed value"),
        ("ServiceSubcategory", "Bots", ""),  # allowed, and under AI: no problem
        ("ServiceSubcategory", "Other (Identity)", "is not under"),
        ("BillingCurrency", "usd", "is not an ISO 4217 code"),
        ("Tags", "[1]", "is not a flat JSON object"),
        ("Tags", '{"a":{"b":1}}', "is not a flat JSON object"),
        ("RegionName", "", ""),  # RegionId is null too on this row
        ("ResourceType", "Deployment", "ResourceType must be null exactly when ResourceId is"),
    ],
)
def test_the_checker_itself_catches_broken_rows(usage, column, value, problem):
    header, rows = _focus("--workspace", "acme")
    row = next(r for r in rows if r["x_Metric"] == "input_tokens")
    row[column] = value
    problems = focus_problems(header, [row])
    assert [p for p in problems if problem in p] if problem else problems == []


def test_a_token_row_is_consumed_quantity_with_zero_cost(usage):
    _, rows = _focus("--workspace", "acme")
    tokens = next(r for r in rows if r["x_Metric"] == "input_tokens")
    assert tokens == {
        "BilledCost": "0",
        "BillingAccountId": "org-1",
        "BillingAccountName": "OpenAI prod",
        "BillingCurrency": "USD",
        "BillingPeriodEnd": "2026-02-01T00:00:00Z",
        "BillingPeriodStart": "2026-01-01T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "ChargeDescription": "OpenAI input tokens — gpt-4o",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": "2026-01-01T14:00:00Z",
        "ChargePeriodStart": "2026-01-01T13:00:00Z",
        "ConsumedQuantity": "1234",
        "ConsumedUnit": "Tokens",
        "ContractedCost": "0",
        "EffectiveCost": "0",
        "InvoiceIssuerName": "OpenAI",
        "ListCost": "0.003085",  # gpt-4o's list price, $2.50 per 1M input tokens (no cached tokens here)
        "ListUnitPrice": "0.0000025",
        "PricingCategory": "Standard",
        "PricingQuantity": "1234",
        "PricingUnit": "Tokens",
        "ProviderName": "OpenAI",
        "PublisherName": "OpenAI",
        "RegionId": "",
        "RegionName": "",
        "ResourceId": "",
        "ResourceName": "",
        "ResourceType": "",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": "OpenAI",
        "ServiceSubcategory": "Generative AI",
        "SkuId": "gpt-4o",
        "SubAccountId": "proj_a",
        "SubAccountName": "Support",
        "Tags": '{"application":"Support Bot"}',
        "x_Provider": "openai",
        "x_Integration": str(usage.pk),
        "x_Metric": "input_tokens",
        "x_Model": "gpt-4o",
        "x_Deployment": "",
        "x_Endpoint": "",
        "x_Resource": "",
        "x_Operation": "",
        "x_ApiKey": "key_abc",
        "x_Provenance": "reported",
        "x_ServiceTier": "priority",
        "x_Batch": "false",
        "x_ContextWindow": "",
        "x_InferenceGeo": "",
        "x_Speed": "",
    }


def test_a_cost_row_is_billed_and_effective_cost_in_its_currency(usage):
    _, rows = _focus("--workspace", "acme")
    cost = next(r for r in rows if r["x_Metric"] == "cost" and r["x_Provider"] == "openai")
    assert {c: cost[c] for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency")} == {
        "BilledCost": "0.5", "EffectiveCost": "0.5", "ListCost": "0.5", "ContractedCost": "0.5", "BillingCurrency": "USD",
    }  # fmt: skip
    assert (cost["ChargeCategory"], cost["ConsumedQuantity"], cost["ConsumedUnit"]) == ("Usage", "0.5", "USD")
    assert (cost["PricingQuantity"], cost["PricingUnit"]) == ("0.5", "USD")
    assert cost["ChargeDescription"] == "OpenAI cost — gpt-4o input"
    assert (cost["SkuId"], cost["x_Operation"]) == ("gpt-4o", "input")
    assert json.loads(cost["Tags"]) == {"application": "Support Bot", "license": "Support Bot – Scale tier"}
    assert (cost["BillingPeriodStart"], cost["BillingPeriodEnd"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")


def test_a_negative_cost_is_a_credit_without_quantities(usage):
    _, rows = _focus("--workspace", "acme")
    credit = next(r for r in rows if r["x_Operation"] == "credits")
    assert (credit["ChargeCategory"], credit["BilledCost"], credit["EffectiveCost"]) == ("Credit", "-0.25", "-0.25")
    assert (
        credit["ConsumedQuantity"] == credit["ConsumedUnit"] == credit["PricingQuantity"] == credit["PricingUnit"] == ""
    )
    assert (credit["ServiceName"], credit["ProviderName"], credit["RegionId"]) == (
        "Google Vertex AI",
        "Google Cloud",
        "us-central1",
    )


def test_only_cost_rows_carry_money_so_billed_cost_sums_to_the_reported_cost(usage):
    _, rows = _focus("--workspace", "acme")
    assert all(Decimal(r["BilledCost"]) == 0 for r in rows if r["x_Metric"] != "cost")
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("0.25")  # 0.5 spent, 0.25 credited


def test_deployments_are_resources_and_regions_are_kept(usage):
    _, rows = _focus("--workspace", "acme")
    azure = next(r for r in rows if r["x_Provider"] == "azure_openai")
    assert (azure["ResourceId"], azure["ResourceType"], azure["x_Resource"]) == ("chat-prod", "Deployment", "my-openai")
    assert (azure["RegionId"], azure["RegionName"], azure["ServiceName"], azure["ProviderName"]) == (
        "eastus", "eastus", "Azure OpenAI", "Microsoft Azure",
    )  # fmt: skip
    assert (azure["ConsumedQuantity"], azure["ConsumedUnit"], azure["Tags"]) == ("3", "Requests", "")


def test_an_account_less_row_is_billed_to_its_integration(usage):
    _, rows = _focus("--workspace", "acme")
    vertex = next(r for r in rows if r["x_Metric"] == "output_tokens")
    assert vertex["BillingAccountId"] == f"doow-integration-{vertex['x_Integration']}"
    assert (vertex["BillingAccountName"], vertex["SubAccountName"]) == ("Vertex", "p")  # no known name: the id


def test_focus_command_honours_the_same_filters(usage, workspace):
    _, rows = _focus("--workspace", "acme", "--integration", str(usage.pk), "--until", "2026-01-01")
    assert [(r["x_Integration"], r["x_Metric"]) for r in rows] == [(str(usage.pk), "input_tokens")]


def test_empty_focus_export_is_just_the_header(workspace):
    assert _focus("--workspace", "acme") == (list(FOCUS_HEADER), [])


def test_focus_rows_are_streamed_with_constant_queries(usage, workspace, django_assert_max_num_queries):
    rows = usage_focus_rows(usage_export_queryset(workspace=workspace))
    assert next(rows) == list(FOCUS_HEADER)
    # The records' SELECT, 3 integrations, 1 application, 1 license: per distinct id, not per row.
    with django_assert_max_num_queries(6):
        assert len(list(rows)) == 5


def test_a_synced_sandbox_account_exports_as_well_formed_focus(workspace, connected_openai):
    """Real rows: connect OpenAI to the sandbox (which attributes to the vendor's application
    by default), sync, and export everything it stored."""
    integration = connected_openai
    assert integration_sync(integration_id=integration.pk).status == "success"
    header, rows = _focus("--workspace", "acme")
    # every row but the estimates (their money is the usage rows' ListCost)
    # One row per record but the estimates and what is no charge of this issuer (billed quantities, BYOK).
    assert (
        len(rows)
        == integration.usage_records.exclude(metric__in=["estimated_cost", "billed_quantity", "byok_cost"]).count()
        > 0
    )
    assert focus_problems(header, rows) == []
    assert {r["x_Metric"] for r in rows} >= {"input_tokens", "output_tokens", "cost"}
    assert {json.loads(r["Tags"])["application"] for r in rows} == {"OpenAI"}
    reported = sum(integration.usage_records.filter(metric="cost").values_list("quantity", flat=True), Decimal(0))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == reported
