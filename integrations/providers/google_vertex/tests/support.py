"""Test support: recorded responses (fixtures/*.json, built from BigQuery's documented shapes)
with the samples the connector must make of them, computed by hand; the sandbox's credential
and settings; past windows; and the sandbox's true totals, from its own declared SKU meanings
(not from the connector's parser)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.base import UsageSample
from integrations.providers.google_vertex.schema import (
    billing_rows,
    billing_samples,
    parse_query_response,
)
from integrations.providers.testing import days_ago as days_ago  # the tests of this provider import it from here
from integrations.providers.testing import fixture_loader
from sandbox import google_vertex as fake

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
QUERIES_PATH = f"/google_vertex/bigquery/v2/projects/{fake.PROJECT_ID}/queries"
TOKEN_PATH = "/google_vertex/token"
TOKEN_METRICS = {"input": ("input_tokens",), "output": ("output_tokens",),
                 "cached_input": ("input_tokens", "cached_input_tokens")}  # fmt: skip


load = fixture_loader(FIXTURES)


def base_url(sandbox: Any) -> str:
    return sandbox.url + fake.PREFIX


def credential(sandbox: Any, **kwargs: str) -> dict[str, str]:
    return {"service_account_json": fake.service_account_json(sandbox.url, **kwargs)}


def settings(sandbox: Any, **overrides: str) -> dict[str, str]:
    return {"billing_table": fake.BILLING_TABLE, "location": fake.LOCATION, "base_url": base_url(sandbox), **overrides}


# ---------------------------------------------------------------- truth
def true_totals(start: datetime, end: datetime, key: Callable[[fake.BillingRow], tuple[Any, ...]] = lambda r: ()
                ) -> dict[tuple[Any, ...], Decimal]:  # fmt: skip
    """(metric, *key(row)) → quantity; cost is net (gross + credits), as a plain sum of samples is."""
    totals: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for row in fake.truth_rows(start, end):
        totals[("cost", *key(row))] += row.cost + row.credits
        for metric in TOKEN_METRICS.get(row.sku.tokens, ()):
            totals[(metric, *key(row))] += row.usage_amount
    return dict(totals)


def by_day_project_region_model(row: fake.BillingRow) -> tuple[Any, ...]:
    return (row.day, row.project_id, row.region or "", row.sku.model)


# ---------------------------------------------------------------- the recorded page
def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def _sample(day: str, metric: str, quantity: str, *, project: str, region: str, model: str, sku: str,
            operation: str) -> UsageSample:  # fmt: skip
    unit = "USD" if metric == "cost" else "tokens"
    return UsageSample(_at(day), _at(day) + timedelta(days=1), metric, Decimal(quantity), unit=unit, account=ACCOUNT,
                       project=project, region=region, model=model, resource=sku, operation=operation)  # fmt: skip


_N1 = "Vertex AI: Online/Batch Prediction N1 Predefined Instance Core running in Americas"
# By hand: the cached-input SKU feeds input_tokens AND cached_input_tokens; "1.5E5" is 150000;
# credits become a separate negative cost with operation "credits" (a null credits adds none);
# characters and seconds keep only their cost; a null project/region is "".
EXPECTED_PAGE = [
    _sample("2024-11-01", "cost", "0.36", project="acme-chatbot", region="us-central1", model="gemini-2.5-flash",
            sku="FDBB-1F2C-7E3A", operation="text input"),
    _sample("2024-11-01", "input_tokens", "1200000", project="acme-chatbot", region="us-central1",
            model="gemini-2.5-flash", sku="FDBB-1F2C-7E3A", operation="text input"),
    _sample("2024-11-01", "cost", "0.012", project="acme-chatbot", region="us-central1", model="gemini-2.5-flash",
            sku="2A1E-5B7C-90D4", operation="cached text input"),
    _sample("2024-11-01", "cost", "-0.012", project="acme-chatbot", region="us-central1", model="gemini-2.5-flash",
            sku="2A1E-5B7C-90D4", operation="credits"),
    _sample("2024-11-01", "input_tokens", "400000", project="acme-chatbot", region="us-central1",
            model="gemini-2.5-flash", sku="2A1E-5B7C-90D4", operation="cached text input"),
    _sample("2024-11-01", "cached_input_tokens", "400000", project="acme-chatbot", region="us-central1",
            model="gemini-2.5-flash", sku="2A1E-5B7C-90D4", operation="cached text input"),
    _sample("2024-11-01", "cost", "0.375", project="acme-chatbot", region="us-central1", model="gemini-2.5-flash",
            sku="8C3D-44E1-A6F2", operation="thinking text output"),
    _sample("2024-11-01", "output_tokens", "150000", project="acme-chatbot", region="us-central1",
            model="gemini-2.5-flash", sku="8C3D-44E1-A6F2", operation="thinking text output"),
    _sample("2024-11-01", "cost", "0.0046875", project="acme-chatbot", region="", model="gemini-1.5-flash",
            sku="5E6F-0A1B-C2D3", operation="text input"),
    _sample("2024-11-01", "cost", "2.62656", project="", region="us-central1", model="", sku="6D1F-12E4-375C",
            operation=_N1),
    _sample("2024-11-01", "cost", "0.2", project="acme-research", region="europe-west4", model="gemini-2.5-pro",
            sku="F6A8-AB7D-C0E5", operation="text output"),
    _sample("2024-11-01", "cost", "-0.06", project="acme-research", region="europe-west4", model="gemini-2.5-pro",
            sku="F6A8-AB7D-C0E5", operation="credits"),
    _sample("2024-11-01", "output_tokens", "20000", project="acme-research", region="europe-west4",
            model="gemini-2.5-pro", sku="F6A8-AB7D-C0E5", operation="text output"),
    _sample("2024-11-02", "cost", "0.09", project="acme-chatbot", region="us-central1", model="gemini-2.5-flash",
            sku="FDBB-1F2C-7E3A", operation="text input"),
    _sample("2024-11-02", "input_tokens", "300000", project="acme-chatbot", region="us-central1",
            model="gemini-2.5-flash", sku="FDBB-1F2C-7E3A", operation="text input"),
]  # fmt: skip


def parsed_page(name: str = "query_results_page.json") -> list[UsageSample]:
    page = parse_query_response(load(name))
    return billing_samples(billing_rows(page.fields, page.rows), account=ACCOUNT)


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [("query_results_page.json", parsed_page(), EXPECTED_PAGE)]
