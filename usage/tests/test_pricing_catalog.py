"""The one mapping table from provider model ids to price entries (usage/pricing/catalog.py),
and the dated compute table: every id shape the connectors store finds its list price."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from usage.pricing.catalog import (
    INCLUDED,
    Deployments,
    TableRef,
    TokenRef,
    bedrock_model,
    compute_table,
    parse_compute_table,
    price_ref,
)
from usage.pricing.prices import list_price

DAY = date(2026, 11, 2)
AZURE = Deployments({
    "gpt-4o-prod": ("GlobalStandard", 450),
    "gpt-4o-batch": ("GlobalBatch", 0),
    "gpt-4o-ptu": ("ProvisionedManaged", 15),
    "gpt-4o-ptu-unsized": ("GlobalProvisionedManaged", 0),
})  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "dims", "genai_model"),
    [
        ("openai", {"model": "gpt-4o-2024-08-06"}, "openai/gpt-4o"),
        ("openai", {"model": "o3-mini-2025-01-31"}, "openai/o3-mini"),
        ("anthropic", {"model": "claude-sonnet-4-20250514"}, "anthropic/claude-sonnet-4-0"),
        ("groq", {"model": "llama-3.3-70b-versatile"}, "groq/llama-3.3-70b-versatile"),
        ("groq", {"model": "openai/gpt-oss-120b"}, "groq/openai/gpt-oss-120b"),
        ("fireworks", {"model": "accounts/fireworks/models/llama-v3p1-8b-instruct"}, "fireworks/llama-v3p1-8b-instruct"),
        # OpenRouter permaslugs (dated) and free variants
        ("openrouter", {"model": "openai/gpt-4.1-2025-04-14"}, "openrouter/openai/gpt-4.1"),
        ("openrouter", {"model": "openai/gpt-4o-2024-08-06"}, "openrouter/openai/gpt-4o"),
        ("openrouter", {"model": "openai/gpt-4o-2024-05-13"}, "openrouter/openai/gpt-4o-2024-05-13"),  # priced apart
        ("openrouter", {"model": "anthropic/claude-4-sonnet-20250522"}, "openrouter/anthropic/claude-sonnet-4"),
        ("openrouter", {"model": "anthropic/claude-4-opus-20250522"}, "openrouter/anthropic/claude-opus-4"),
        ("openrouter", {"model": "anthropic/claude-3.7-sonnet-20250219"}, "openrouter/anthropic/claude-3.7-sonnet"),
        ("openrouter", {"model": "meta-llama/llama-3.3-70b-instruct:free"}, "openrouter/meta-llama/llama-3.3-70b-instruct"),
        # Bedrock: plain ids, system inference profiles, ARNs of both
        ("aws_bedrock", {"model": "anthropic.claude-3-5-sonnet-20241022-v2:0"}, "aws/regional.anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("aws_bedrock", {"model": "anthropic.claude-3-5-sonnet-20241022-v2:0",
                         "deployment": "us.anthropic.claude-3-5-sonnet-20241022-v2:0"}, "aws/regional.anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("aws_bedrock", {"model": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"}, "aws/amazon.nova-pro-v1:0"),
        ("aws_bedrock", {"model": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-70b-instruct-v1:0"},
         "aws/meta.llama3-1-70b-instruct-v1:0"),
        # Azure: the deployment's model "<name>-<version>" (dated or numeric version)
        ("azure_openai", {"model": "gpt-4o-2024-08-06", "deployment": "gpt-4o-prod"}, "azure/gpt-4o"),
        ("azure_openai", {"model": "gpt-4.1-2025-04-14", "deployment": "gpt-41-agents"}, "azure/gpt-4.1"),
        ("azure_openai", {"model": "text-embedding-3-large-1", "deployment": "embeddings-large"}, "azure/text-embedding-3-large"),
        # Vertex: the model parsed from the SKU description, SKU id in resource
        ("google_vertex", {"model": "gemini-2.5-flash", "resource": "A1F3-5C2E-7B90", "operation": "text input"}, "google/gemini-2.5-flash"),
        ("google_vertex", {"model": "gemini-2.0-flash", "resource": "18CA-CD9F-E207", "operation": "text input (batch)"}, "google/gemini-2.0-flash"),
    ],
)  # fmt: skip
def test_provider_model_ids_find_their_genai_prices_entry(provider, dims, genai_model):
    ref = price_ref(provider, metrics=frozenset({"input_tokens", "output_tokens"}), deployments=AZURE, **dims)
    assert isinstance(ref, TokenRef)
    price = list_price(ref, DAY)
    assert price is not None and price.source == "genai-prices"
    assert price.reference.split()[1] == genai_model
    assert price.per_unit["input_tokens"] > 0


def test_batch_deployments_and_skus_are_half_the_standard_price():
    standard = list_price(
        price_ref("azure_openai", model="gpt-4o-2024-08-06", deployment="gpt-4o-prod", deployments=AZURE), DAY
    )
    batch = list_price(
        price_ref("azure_openai", model="gpt-4o-2024-08-06", deployment="gpt-4o-batch", deployments=AZURE), DAY
    )
    assert batch.per_unit["output_tokens"] * 2 == standard.per_unit["output_tokens"]
    online = list_price(price_ref("google_vertex", model="gemini-2.0-flash", operation="text input"), DAY)
    offline = list_price(price_ref("google_vertex", model="gemini-2.0-flash", operation="text input (batch)"), DAY)
    assert offline.per_unit["input_tokens"] * 2 == online.per_unit["input_tokens"]


def test_batch_and_flex_traffic_is_half_the_standard_price():
    def per_output(provider: str, model: str, **tier: str) -> Decimal:
        return list_price(price_ref(provider, model=model, **tier), DAY).per_unit["output_tokens"]

    standard = per_output("openai", "gpt-4o-2024-08-06", service_tier="default", batch="false")
    assert per_output("openai", "gpt-4o-2024-08-06", service_tier="default", batch="true") * 2 == standard
    assert per_output("openai", "gpt-4o-2024-08-06", service_tier="flex", batch="false") * 2 == standard
    assert (
        per_output("openai", "gpt-4o-2024-08-06", service_tier="priority", batch="false") == standard
    )  # no premium listed
    claude = per_output("anthropic", "claude-sonnet-4-20250514", service_tier="standard")
    assert per_output("anthropic", "claude-sonnet-4-20250514", service_tier="batch") * 2 == claude


def test_azure_ptu_deployments_are_priced_by_the_hour_per_ptu():
    ref = price_ref("azure_openai", model="gpt-4o-2024-08-06", deployment="gpt-4o-ptu", deployments=AZURE,
                    metrics=frozenset({"input_tokens"}))  # fmt: skip
    assert ref == TableRef("azure_openai", "ptu", "ProvisionedManaged", Decimal(15))
    price = list_price(ref, DAY)
    assert price.per_hour == 15 * Decimal("2.00")
    assert price.cost({"input_tokens": Decimal(10**9)}, hours=Decimal(24)) == 24 * 15 * Decimal("2.00")
    # A PTU deployment whose size the last Test connection did not learn cannot be priced.
    assert price_ref("azure_openai", model="gpt-4o", deployment="gpt-4o-ptu-unsized", deployments=AZURE) is None


@pytest.mark.parametrize(
    ("provider", "dims", "metrics", "expected"),
    [
        ("replicate", {"model": "stability-ai/sdxl"}, {"requests", "compute_seconds"}, TableRef("replicate", "hardware", "gpu-l40s")),
        ("replicate", {"model": "black-forest-labs/flux-schnell"}, {"requests", "compute_seconds"},
         TableRef("replicate", "prediction", "black-forest-labs/flux-schnell")),
        ("replicate", {"model": "doow-sandbox/invoice-ocr", "deployment": "doow-sandbox/invoice-ocr-prod"}, {"compute_seconds"}, None),
        ("fireworks", {"model": "accounts/fireworks/models/llama-v3p3-70b-instruct", "resource": "NVIDIA_H100_80GB",
                       "deployment": "chat-us"}, {"compute_seconds"}, TableRef("fireworks", "gpu", "NVIDIA_H100_80GB")),
        ("fireworks", {"model": "accounts/fireworks/models/llama-v3p3-70b-instruct", "stream": "metrics"}, {"input_tokens"}, INCLUDED),
        ("fireworks", {"model": "accounts/fireworks/models/llama-v3p1-8b-instruct", "stream": "billing_training"},
         {"training_tokens"}, None),
        ("fireworks", {"model": "accounts/fireworks/models/qwen2p5-7b-instruct", "resource": "NVIDIA_H100_80GB",
                       "operation": "training", "stream": "billing_training"}, {"compute_seconds"},
         TableRef("fireworks", "gpu", "NVIDIA_H100_80GB")),
        ("aws_bedrock", {"model": "application-inference-profile/abc123",
                         "deployment": "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc123"}, {"input_tokens"}, None),
        ("google_vertex", {"model": "", "operation": "Imagen 3 Image Generation - Predictions"}, {"input_tokens"}, None),
        ("authress", {"resource": "/v1/users"}, {"api_calls"}, None),
        # Anthropic's server tools: web searches have a list price per search, the others none
        ("anthropic", {"model": "claude-sonnet-4-20250514", "operation": "web_search"}, {"api_calls"},
         TokenRef("anthropic", "claude-sonnet-4-20250514", tool="web_search")),
        ("anthropic", {"model": "claude-sonnet-4-20250514", "operation": "code_execution"}, {"api_calls"}, None),
        ("anthropic", {"model": "claude-sonnet-4-20250514", "operation": "web_fetch"}, {"api_calls"}, None),
    ],
)  # fmt: skip
def test_compute_priced_included_and_unknown_usage(provider, dims, metrics, expected):
    assert price_ref(provider, metrics=frozenset(metrics), **dims) == expected


def test_gpu_hours_and_hardware_seconds_come_from_the_dated_table():
    h100 = TableRef("fireworks", "gpu", "NVIDIA_H100_80GB")
    before, after = list_price(h100, date(2025, 8, 31)), list_price(h100, date(2025, 9, 1))
    assert before.per_unit["compute_seconds"] * 3600 == Decimal("5.80")  # accelerator-seconds → GPU hours
    assert after.per_unit["compute_seconds"] * 3600 == Decimal("4.00")  # a price change takes effect on its day
    assert "https://fireworks.ai/pricing" in after.reference
    assert list_price(h100, date(2024, 12, 31)) is None  # before the first known price: unpriced
    l40s = list_price(TableRef("replicate", "hardware", "gpu-l40s"), DAY)
    assert l40s.cost({"compute_seconds": Decimal(1000), "requests": Decimal(7)}, hours=Decimal(1)) == Decimal("0.975")


def test_every_table_price_has_a_source_and_an_effective_date():
    table = compute_table()
    assert {e.provider for e in table.entries} == {"replicate", "fireworks", "azure_openai"}
    for entry in table.entries:
        assert entry.source_url.startswith("https://") and entry.effective_date.year >= 2025 and entry.price_usd > 0
    with pytest.raises(ValueError, match="malformed"):
        parse_compute_table({"prices": [{"provider": "x", "kind": "gpu", "key": "k", "per": "minute",
                                         "price_usd": "1", "effective_date": "2025-01-01", "source_url": "https://x"}]})  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("eu.anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("arn:aws:bedrock:eu-west-1:1:inference-profile/eu.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
        ("arn:aws:bedrock:us-east-1:1:provisioned-model/xyz", ""),
    ],
)
def test_bedrock_ids_name_their_foundation_model(raw, model):
    assert bedrock_model(raw) == model


def test_a_web_search_is_priced_per_search_and_nothing_else():
    """Anthropic lists web searches at $10 per 1,000 (https://docs.anthropic.com/en/docs/about-claude/pricing)."""
    ref = price_ref(
        "anthropic", model="claude-sonnet-4-20250514", operation="web_search", metrics=frozenset({"api_calls"})
    )
    assert isinstance(ref, TokenRef)
    price = list_price(ref, DAY)
    assert price is not None and dict(price.per_unit) == {"api_calls": Decimal("0.01")}
    assert price.cost({"api_calls": Decimal(250)}, hours=Decimal(1)) == Decimal("2.50")


def test_a_key_whose_price_bills_none_of_its_metrics_gets_no_estimate_never_zero():
    """gpt-4o lists no per-request price: a key holding only requests is unpriced, not $0."""
    from datetime import UTC, datetime, timedelta

    from integrations.providers.base import UsageSample
    from usage.pricing.catalog import NO_DEPLOYMENTS
    from usage.pricing.estimate import estimate_samples

    hour = datetime(2026, 11, 2, 9, tzinfo=UTC)

    def sample(metric: str, quantity: int, model: str) -> UsageSample:
        return UsageSample(hour, hour + timedelta(hours=1), metric, Decimal(quantity), model=model, stream="s")

    estimates = estimate_samples(
        "openai",
        [sample("requests", 12, "gpt-4o-2024-08-06"), sample("input_tokens", 1000, "gpt-4o-mini-2024-07-18")],
        deployments=NO_DEPLOYMENTS, overrides=None,
    )  # fmt: skip
    assert [(e.model, e.quantity > 0) for e in estimates] == [("gpt-4o-mini-2024-07-18", True)]
