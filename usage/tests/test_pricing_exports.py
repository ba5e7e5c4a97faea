"""Exports after a real sync: the CSV's provenance column (estimates marked "estimated"), and
FOCUS usage rows priced at list price with ListUnitPrice × PricingQuantity = ListCost."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from integrations import engine
from sandbox import openai as fake_openai
from usage.models import UsageRecord
from usage.tests.test_export import parse_csv
from usage.tests.test_export_focus import focus_problems

pytestmark = pytest.mark.django_db
D0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def synced(openai_integration):
    run = engine.integration_sync(integration_id=openai_integration.pk, since=D0, until=D0 + timedelta(days=1),
                                  trigger="command")  # fmt: skip
    assert run.status == "success"
    return openai_integration


def export(fmt: str) -> tuple[list[str], list[dict[str, str]]]:
    out = io.StringIO()
    call_command("export_usage", "--workspace", "acme", "--format", fmt, stdout=out)
    return parse_csv(out.getvalue())


def test_the_csv_appends_provenance_after_license(synced):
    header, rows = export("csv")
    assert header[header.index("license") + 1] == "provenance"
    by_metric = defaultdict(set)
    for row in rows:
        by_metric[row["metric"]].add(row["provenance"])
    assert by_metric["estimated_cost"] == {"estimated"}
    assert by_metric["input_tokens"] == by_metric["cost"] == {"reported"}
    assert len(rows) == UsageRecord.objects.filter(integration=synced).count()


def test_focus_usage_rows_carry_list_unit_price_and_list_cost(synced):
    header, rows = export("focus")
    assert focus_problems(header, rows) == []
    assert not any(r["x_Metric"] == "estimated_cost" for r in rows)  # its money is the rows' ListCost
    # The completions models' rows (the other usage endpoints: images, speech, storage… have no
    # token price and are listed unpriced, with no money; tested in test_pricing_estimates).
    rows = [r for r in rows if r["x_Model"] in fake_openai.MODELS]
    usage = [r for r in rows if r["x_Metric"] != "cost"]
    assert usage and all(r["ListUnitPrice"] for r in usage if r["x_Metric"].endswith("_tokens"))
    for r in rows:
        if r["ChargeCategory"] == "Usage" and r["ListUnitPrice"]:
            assert Decimal(r["ListUnitPrice"]) * Decimal(r["PricingQuantity"]) == Decimal(r["ListCost"]), r
        elif r["ChargeCategory"] == "Usage":  # OpenAI lists no price per request: null, and no money
            assert (r["x_Metric"], r["ListCost"]) == ("requests", "0")
    # Per key, the token rows' ListCost adds up to the key's list-price estimate (each token once:
    # an input row prices only its uncached part).
    listed: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in usage:
        listed[(r["ChargePeriodStart"], r["SubAccountId"], r["x_Model"])] += Decimal(r["ListCost"])
    estimates = {
        (e.bucket_start.strftime("%Y-%m-%dT%H:%M:%SZ"), e.project, e.model): e.quantity
        for e in UsageRecord.objects.filter(integration=synced, metric="estimated_cost", model__in=fake_openai.MODELS)
    }
    assert listed.keys() == estimates.keys()
    for key, value in listed.items():
        assert abs(value - estimates[key]) <= Decimal("0.000000001"), key
    # The provider's cost rows keep their money in every cost column, a dollar per dollar.
    cost = next(r for r in rows if r["x_Metric"] == "cost")
    assert cost["ListCost"] == cost["BilledCost"] and cost["ListUnitPrice"] == "1"
