"""Test support: recorded responses (fixtures/*.json, built from the documented shapes) with
the samples the connector must make of them, computed by hand; past windows; true totals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.azure_openai.schema import (
    Account,
    metrics_samples,
    parse_accounts_page,
    parse_deployments_page,
    parse_metrics,
)
from integrations.providers.base import UsageSample, Window
from integrations.providers.testing import days_ago as days_ago  # the tests of this provider import it from here
from integrations.providers.testing import fixture_loader
from sandbox import azure_openai as sandbox_azure

FIXTURES = Path(__file__).parent / "fixtures"
SUB = "1f0e2d3c-aaaa-4bbb-8ccc-0123456789ab"
ACCOUNTS_PATH = (
    f"/azure_openai/arm/subscriptions/{sandbox_azure.SUBSCRIPTION_ID}/providers/Microsoft.CognitiveServices/accounts"
)
METRICS_SUFFIX = "/providers/Microsoft.Insights/metrics"
TOKEN_PATH = f"/azure_openai/login/{sandbox_azure.TENANT_ID}/oauth2/v2.0/token"
FIELDS = {
    "input_tokens": "input_tokens",  # InputTokens, plus an Anthropic model's cache reads and writes
    "cached_input_tokens": "cache_read",
    "cache_write_tokens": "cache_write",
    "output_tokens": "generated_tokens",
    "requests": "requests",
    "throttled_requests": "throttled",
    "failed_requests": "failed",
    "provisioned_hours": "provisioned",
}


load = fixture_loader(FIXTURES)


def credential(client_id: str = sandbox_azure.CLIENT_ID, secret: str = sandbox_azure.CLIENT_SECRET) -> dict[str, str]:
    return {"tenant_id": sandbox_azure.TENANT_ID, "client_id": client_id, "client_secret": secret}


def settings(sandbox: Any, **extra: str) -> dict[str, str]:
    return {
        "subscription_id": sandbox_azure.SUBSCRIPTION_ID,
        "base_url": sandbox.url + "/azure_openai/arm",
        "login_url": sandbox.url + "/azure_openai/login",
        **extra,
    }


def truth(window: Window, key: Callable[[Any], tuple[Any, ...]] = lambda r: ()) -> Counter:
    """The sandbox's true totals per (metric, *key(row)) over hour-aligned `window`."""
    totals: Counter = Counter()
    for row in sandbox_azure.truth_usage(window.start, window.end):
        for metric, field in FIELDS.items():
            totals[(metric, *key(row))] += Decimal(getattr(row, field))
    return totals


# ---------------------------------------------------------------- recorded fixtures
RECORDED_ACCOUNT = Account(
    id=f"/subscriptions/{SUB}/resourceGroups/rg-ai-prod/providers/Microsoft.CognitiveServices/accounts/contoso-openai-eus",
    name="contoso-openai-eus",
    subscription_id=SUB,
    resource_group="rg-ai-prod",
    location="eastus",
    kind="OpenAI",
)


def _at(hour: int) -> datetime:
    return datetime(2024, 11, 1, hour, tzinfo=UTC)


def _sample(hour: int, metric: str, quantity: int, deployment: str, model: str) -> UsageSample:
    return UsageSample(
        _at(hour),
        _at(hour + 1),
        metric,
        Decimal(quantity),
        account=SUB,
        project="rg-ai-prod",
        region="eastus",
        resource="contoso-openai-eus",
        deployment=deployment,
        model=model,
    )


GPT4O, ADA = "gpt-4o-2024-08-06", "text-embedding-ada-002-2"
# Points without `total` make no sample; the explicit 0.0 of gpt-35-legacy at 00:00 is stored as
# 0. gpt-35-legacy is not in the deployment list (deleted): its model is empty. The embeddings
# deployment has no GeneratedTokens series at all.
EXPECTED_METRICS = [
    _sample(0, "input_tokens", 1200, "gpt-4o-prod", GPT4O),
    _sample(0, "output_tokens", 300, "gpt-4o-prod", GPT4O),
    _sample(0, "requests", 4, "gpt-4o-prod", GPT4O),
    _sample(0, "input_tokens", 0, "gpt-35-legacy", ""),
    _sample(0, "input_tokens", 3000, "embeddings", ADA),
    _sample(0, "requests", 6, "embeddings", ADA),
    _sample(1, "input_tokens", 500, "gpt-35-legacy", ""),
    _sample(1, "output_tokens", 50, "gpt-35-legacy", ""),
    _sample(1, "requests", 2, "gpt-35-legacy", ""),
    _sample(2, "input_tokens", 90, "gpt-4o-prod", GPT4O),
    _sample(2, "output_tokens", 10, "gpt-4o-prod", GPT4O),
    _sample(2, "requests", 1, "gpt-4o-prod", GPT4O),
]


def parsed_metrics() -> list[UsageSample]:
    deployments = parse_deployments_page(load("deployments_page.json")).items
    return metrics_samples(
        parse_metrics(load("metrics_response.json")),
        account=RECORDED_ACCOUNT,
        models={d.name: d.model for d in deployments},
        start=_at(0),
        end=_at(3),
    )


def recorded_accounts() -> list[Account]:
    return list(parse_accounts_page(load("accounts_page.json")).items)


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [("metrics_response.json", parsed_metrics(), EXPECTED_METRICS)]
