"""The prompt-cache metrics of Anthropic models in "Models – Usage" (cacheReadInputTokens,
ephemeral5mInputTokens, ephemeral1hInputTokens): mapped like Anthropic's own usage report
(cached_input_tokens, cache_write_tokens, and both inside input_tokens), against a response of
the documented shape and against the sandbox; an account that does not know them is read
without them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from integrations.providers.azure_openai.schema import metrics_samples, parse_metrics
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import Window
from integrations.providers.testing import assert_totals_equal, totals_by
from sandbox import azure_openai as sandbox_azure

SWEDEN = next(a for a in sandbox_azure.ACCOUNTS if a.name == "doow-sbx-sweden")  # serves Claude
CACHE_NAMES = "cacheReadInputTokens,ephemeral5mInputTokens,ephemeral1hInputTokens"


def at(hour: int) -> datetime:
    return datetime(2024, 11, 1, hour, tzinfo=UTC)


def test_recorded_cache_metrics_become_cached_and_cache_write_tokens_inside_input() -> None:
    series = parse_metrics(support.load("metrics_anthropic_cache.json"))
    kinds = {
        "claude-sonnet": ("claude-sonnet-4-5-20250929", "Anthropic"),
        "llama-maas": ("Llama-3.3-70B-Instruct-1", "Meta"),
    }
    samples = metrics_samples(series, account=support.RECORDED_ACCOUNT, start=at(0), end=at(2),
                              models={d: m for d, (m, _) in kinds.items()}, formats={d: f for d, (_, f) in kinds.items()})  # fmt: skip
    assert sorted((s.bucket_start.hour, s.deployment, s.metric, s.quantity) for s in samples) == [
        # InputTokens 120 + 5000 read + 700 written (5 minutes): every prompt token.
        (0, "claude-sonnet", "cache_write_tokens", 700),
        (0, "claude-sonnet", "cached_input_tokens", 5000),
        (0, "claude-sonnet", "input_tokens", 5820),
        (0, "claude-sonnet", "output_tokens", 300),
        # Another vendor's model without cache metrics: as before.
        (0, "llama-maas", "input_tokens", 900),
        (0, "llama-maas", "output_tokens", 150),
        # 40 + 2000 written for an hour; an explicit 0 read is stored as 0.
        (1, "claude-sonnet", "cache_write_tokens", 2000),
        (1, "claude-sonnet", "cached_input_tokens", 0),
        (1, "claude-sonnet", "input_tokens", 2040),
        (1, "claude-sonnet", "output_tokens", 80),
    ]
    assert {s.unit for s in samples if "cache" in s.metric} == {"tokens"}


def test_fetch_reads_the_cache_metrics_of_anthropic_deployments_only(provider, credential, azure_settings, http):
    window = Window(support.days_ago(3), support.days_ago(1))
    samples = list(provider.fetch(credential, azure_settings, window, http=http))
    assert_totals_equal(
        totals_by(samples, "resource", "deployment"), support.truth(window, lambda r: (r.account, r.deployment))
    )
    cached = {(s.resource, s.deployment) for s in samples if s.metric == "cached_input_tokens" and s.quantity}
    written = {(s.resource, s.deployment) for s in samples if s.metric == "cache_write_tokens" and s.quantity}
    assert cached and written, "the sandbox's Anthropic deployments read and write the cache"
    anthropic = {(a.name, d.name) for a in sandbox_azure.accounts() for d in a.deployments if d.format == "Anthropic"}
    assert cached | written <= anthropic
    # The cache tokens are part of input_tokens, row by row, never more than it.
    by_key: dict[tuple, dict[str, object]] = {}
    for s in samples:
        by_key.setdefault((s.bucket_start, s.resource, s.deployment), {})[s.metric] = s.quantity
    for metrics in by_key.values():
        cache = metrics.get("cached_input_tokens", 0) + metrics.get("cache_write_tokens", 0)  # type: ignore[operator]
        assert cache <= metrics.get("input_tokens", 0)  # type: ignore[operator]


def test_an_account_that_does_not_know_the_cache_metrics_is_read_without_them(
    provider, credential, azure_settings, http, sandbox
):
    metrics_path = "/azure_openai/arm" + SWEDEN.id + support.METRICS_SUFFIX
    unknown = {
        "error": {
            "code": "BadRequest",
            "message": "Failed to find metric configuration for provider: Microsoft.CognitiveServices, resource "
            f"Type: accounts, metric: {CACHE_NAMES}, Valid metrics: ProcessedPromptTokens,InputTokens",
        }
    }
    sandbox.fault(metrics_path, 400, body=unknown)
    window = Window(support.days_ago(2), support.days_ago(1))
    samples = list(provider.fetch(credential, azure_settings, window, http=http))
    asked = [r["query"]["metricnames"][0] for r in sandbox.requests(metrics_path)]
    assert asked[:2] == [
        f"ProcessedPromptTokens,GeneratedTokens,InputTokens,OutputTokens,{CACHE_NAMES}",
        "ProcessedPromptTokens,GeneratedTokens,InputTokens,OutputTokens",  # still the Models – Usage ones
    ]
    eastus = [s for s in samples if s.resource == SWEDEN.name]
    assert not any("cache" in s.metric for s in eastus)
    # Its Anthropic deployment keeps its InputTokens (uncached prompt tokens) and output.
    got: Counter = Counter()
    for s in eastus:
        got[(s.metric, s.deployment)] += s.quantity
    rows = [r for r in sandbox_azure.truth_usage(window.start, window.end) if r.account == SWEDEN.name]
    claude = [r for r in rows if r.anthropic]
    assert claude, "the Sweden account serves an Anthropic model"
    deployment = claude[0].deployment
    assert got[("input_tokens", deployment)] == sum(r.prompt_tokens for r in rows if r.deployment == deployment)
    assert got[("output_tokens", deployment)] == sum(r.generated_tokens for r in rows if r.deployment == deployment)
