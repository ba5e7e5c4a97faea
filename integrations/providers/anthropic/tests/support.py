"""Test support: recorded responses (fixtures/*.json, built from the documented shapes) with
the samples the connector must make of them, computed by hand; past windows; sandbox truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.anthropic import provider
from integrations.providers.anthropic.schema import (
    cost_samples,
    parse_cost_page,
    parse_usage_page,
    usage_samples,
)
from integrations.providers.base import UsageSample, Window
from integrations.providers.testing import SandboxHooks, days_ago, fixture_loader
from sandbox import anthropic as fake

FIXTURES = Path(__file__).parent / "fixtures"
ORG = "org-recorded"
WS = "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
SONNET, HAIKU, OPUS = "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022", "claude-opus-4-1-20250805"
USAGE_PATH = "/anthropic/v1/organizations/usage_report/messages"
COSTS_PATH = "/anthropic/v1/organizations/cost_report"
TOKEN_METRICS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")


def base_url(sandbox: Any) -> str:
    return sandbox.url + fake.PREFIX


class AnthropicSandbox(SandboxHooks):
    """The sandbox's Anthropic organisation, for the contract and failure tests."""

    provider = provider
    fault_prefix = "/anthropic/v1/organizations/"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": fake.ADMIN_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": base_url(sandbox)}

    def pagination_window(self) -> Window:
        # 9 days of hourly buckets = 216 buckets: two pages at 168 per page.
        return Window(days_ago(10), days_ago(1))


load = fixture_loader(FIXTURES)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _s(start: str, end: str, metric: str, quantity: str | int, project: str, model: str = "", operation: str = "",
       unit: str = "", **tiers: str) -> UsageSample:  # fmt: skip
    return UsageSample(_at(start), _at(end), metric, Decimal(quantity), unit=unit, account=ORG, project=project,
                       model=model, operation=operation, **tiers)  # fmt: skip


# The Haiku row's service tier, context window, geo and speed, kept apart (issue 13).
FAST_US = {"service_tier": "priority", "context_window": "200k-1M", "inference_geo": "us", "speed": "fast"}


H0, H1, H2, H3 = "2025-05-14T00:00", "2025-05-14T01:00", "2025-05-14T02:00", "2025-05-14T03:00"
# input = uncached + cache read + 5m + 1h creation. The decoy `cache_creation_input_tokens`
# (3 and 0) must not be read: with it, input would be 1500 + 12000 + 3 in the first row.
# The 01:00 bucket is empty: no samples. In the 02:00 bucket a standard and a batch row stay
# apart (service_tier); neither carries server_tool_use, so no api_calls sample there. The
# Haiku row's code execution and web fetch calls are api_calls of those tools.
EXPECTED_USAGE = [
    _s(H0, H1, "input_tokens", 1500 + 12000 + 800 + 400, "default", SONNET),
    _s(H0, H1, "cached_input_tokens", 12000, "default", SONNET),
    _s(H0, H1, "cache_write_tokens", 800 + 400, "default", SONNET),
    _s(H0, H1, "output_tokens", 950, "default", SONNET),
    _s(H0, H1, "api_calls", 0, "default", SONNET, "web_search"),
    _s(H0, H1, "input_tokens", 300, WS, HAIKU, **FAST_US),
    _s(H0, H1, "cached_input_tokens", 0, WS, HAIKU, **FAST_US),
    _s(H0, H1, "cache_write_tokens", 0, WS, HAIKU, **FAST_US),
    _s(H0, H1, "output_tokens", 120, WS, HAIKU, **FAST_US),
    _s(H0, H1, "api_calls", 3, WS, HAIKU, "web_search", **FAST_US),
    _s(H0, H1, "api_calls", 2, WS, HAIKU, "code_execution", **FAST_US),
    _s(H0, H1, "api_calls", 1, WS, HAIKU, "web_fetch", **FAST_US),
    _s(H2, H3, "input_tokens", 50 + 1000 + 200, WS, OPUS, service_tier="standard"),
    _s(H2, H3, "cached_input_tokens", 1000, WS, OPUS, service_tier="standard"),
    _s(H2, H3, "cache_write_tokens", 200, WS, OPUS, service_tier="standard"),
    _s(H2, H3, "output_tokens", 70, WS, OPUS, service_tier="standard"),
    _s(H2, H3, "input_tokens", 25 + 100, WS, OPUS, service_tier="batch"),
    _s(H2, H3, "cached_input_tokens", 0, WS, OPUS, service_tier="batch"),
    _s(H2, H3, "cache_write_tokens", 100, WS, OPUS, service_tier="batch"),
    _s(H2, H3, "output_tokens", 30, WS, OPUS, service_tier="batch"),
]

# Cents to dollars: "123.78912" (standard input) and "10.5" (batch input) stay apart by tier.
D0, D1 = "2025-05-14", "2025-05-15"
EXPECTED_COSTS = [
    _s(
        D0,
        D1,
        "cost",
        "1.2378912",
        "default",
        SONNET,
        "uncached_input_tokens",
        "USD",
        service_tier="standard",
        context_window="0-200k",
    ),
    _s(
        D0,
        D1,
        "cost",
        "0.105",
        "default",
        SONNET,
        "uncached_input_tokens",
        "USD",
        service_tier="batch",
        context_window="0-200k",
    ),
    _s(
        D0,
        D1,
        "cost",
        "0.003",
        WS,
        SONNET,
        "cache_creation.ephemeral_5m_input_tokens",
        "USD",
        service_tier="standard",
        context_window="0-200k",
    ),
    _s(D0, D1, "cost", "2.5", WS, "", "web_search", "USD"),
    _s(D0, D1, "cost", "0.0725", WS, "", "code_execution", "USD"),
]


def parsed_usage() -> list[UsageSample]:
    page = parse_usage_page(load("usage_page.json"))
    return [s for bucket in page.buckets for s in usage_samples(bucket, account=ORG)]


def parsed_costs() -> list[UsageSample]:
    page = parse_cost_page(load("cost_page.json"))
    return [s for bucket in page.buckets for s in cost_samples(bucket, account=ORG)]


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [("usage_page.json", parsed_usage(), EXPECTED_USAGE), ("cost_page.json", parsed_costs(), EXPECTED_COSTS)]


# ---------------------------------------------------------------- the sandbox's truth
def usage_fields(row: fake.UsageRow) -> dict[str, int]:
    """Our metrics of one true usage row, from its raw fields (independently of the connector)."""
    return {
        "input_tokens": row.input_tokens,
        "cached_input_tokens": row.cache_read_input_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "output_tokens": row.output_tokens,
        "api_calls": row.web_search_requests + row.code_execution_requests,
    }


def usage_items(row: fake.UsageRow) -> list[tuple[str, str, int]]:
    """(metric, operation, quantity) of one true usage row: server tool calls by tool."""
    items = [(metric, "", value) for metric, value in usage_fields(row).items() if metric != "api_calls"]
    return [*items, ("api_calls", "web_search", row.web_search_requests),
            ("api_calls", "code_execution", row.code_execution_requests)]  # fmt: skip


def usage_truth(start: datetime, end: datetime, key: Callable[[Any], tuple[Any, ...]] = lambda r: ()) -> Counter:
    totals: Counter = Counter()
    for row in fake.truth_usage(start, end):
        for metric, value in usage_fields(row).items():
            totals[(metric, *key(row))] += Decimal(value)
    return totals


def cost_truth(start: datetime, end: datetime, key: Callable[[Any], tuple[Any, ...]] = lambda r: ()) -> Counter:
    totals: Counter = Counter()
    for row in fake.truth_costs(start, end):
        totals[("cost", *key(row))] += row.amount
    return totals


def cost_operation_of(row: fake.CostRow) -> str:
    """The operation a true cost row should be stored under (docs/providers/anthropic.md)."""
    return row.token_type or row.cost_type or row.description
