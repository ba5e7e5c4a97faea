"""Test support: recorded responses (fixtures/*.json, built from the documented shapes) with
the samples the connector must make of them, computed by hand; and past windows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.base import UsageSample, Window
from integrations.providers.openai import provider
from integrations.providers.openai.schema import (
    completions_samples,
    cost_samples,
    parse_completions_page,
    parse_costs_page,
)
from integrations.providers.testing import SandboxHooks, days_ago, fixture_loader

FIXTURES = Path(__file__).parent / "fixtures"
USAGE_PATH = "/openai/v1/organization/usage/completions"
ORG = "org-recorded"


class OpenAISandbox(SandboxHooks):
    """The sandbox's OpenAI organisation, for the contract and failure tests."""

    provider = provider
    fault_prefix = "/openai/v1/organization/"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": sandbox.OPENAI_ADMIN_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox.openai_base_url}

    def pagination_window(self) -> Window:
        # 9 days of hourly buckets = 216 buckets: two pages at 168 per page.
        return Window(days_ago(10), days_ago(1))


load = fixture_loader(FIXTURES)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _bucket(start: str, end: str, project: str, model: str, tier: str, batch: str, **quantities: int
            ) -> list[UsageSample]:  # fmt: skip
    """The samples of one completions result: one per metric."""
    return [UsageSample(_at(start), _at(end), metric, Decimal(quantity), account=ORG, project=project, model=model,
                        service_tier=tier, batch=batch) for metric, quantity in quantities.items()]  # fmt: skip


# Service tier and batch are kept as reported: "priority" / "false", "default" / "true", and in
# the 02:00 bucket "default" with batch null ("": not reported).
# The first bucket starts at 00:30 (the API's quirk for an unaligned start_time): its samples
# are keyed on the aligned hour. The 01:00 bucket is empty: no samples. In the 02:00 bucket
# input_cached_tokens is null and input_cache_write_tokens absent: no samples for those.
EXPECTED_COMPLETIONS = [
    *_bucket("2024-11-01T00:00", "2024-11-01T01:00", "proj_abc", "gpt-4o-2024-08-06", "priority", "false",
             input_tokens=1200, cached_input_tokens=400, cache_write_tokens=100, output_tokens=300, requests=4),
    *_bucket("2024-11-01T00:00", "2024-11-01T01:00", "proj_def", "gpt-4o-mini-2024-07-18", "default", "true",
             input_tokens=500, cached_input_tokens=0, output_tokens=50, requests=2),
    *_bucket("2024-11-01T02:00", "2024-11-01T03:00", "proj_abc", "o3-mini-2025-01-31", "default", "",
             input_tokens=90, output_tokens=10, requests=1),
]  # fmt: skip

# 0.0125 arrives as a JSON number, "1.034" as a string; a line item without "<model>, " is
# kept whole as the operation. The second day is an empty bucket. The API key is kept; a
# quantity is kept with its unit (billed_quantity), and left out when its unit is null.
EXPECTED_COSTS = [
    UsageSample(_at("2024-11-01"), _at("2024-11-02"), "cost", Decimal("0.0125"), unit="USD", account=ORG,
                project="proj_abc", model="gpt-4o-2024-08-06", operation="input", api_key="key_abc"),
    UsageSample(_at("2024-11-01"), _at("2024-11-02"), "billed_quantity", Decimal("5000"), unit="tokens", account=ORG,
                project="proj_abc", model="gpt-4o-2024-08-06", operation="input", api_key="key_abc"),
    UsageSample(_at("2024-11-01"), _at("2024-11-02"), "cost", Decimal("1.034"), unit="USD", account=ORG,
                project="proj_abc", model="gpt-4o-2024-08-06", operation="output", api_key="key_abc"),
    UsageSample(_at("2024-11-01"), _at("2024-11-02"), "cost", Decimal("0.5"), unit="USD", account=ORG,
                project="proj_def", operation="Web search tool calls"),
]  # fmt: skip


def parsed_completions() -> list[UsageSample]:
    page = parse_completions_page(load("completions_page.json"))
    return [s for bucket in page.buckets for s in completions_samples(bucket, account=ORG)]


def parsed_costs() -> list[UsageSample]:
    page = parse_costs_page(load("costs_page.json"))
    return [s for bucket in page.buckets for s in cost_samples(bucket, account=ORG)]


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [
        ("completions_page.json", parsed_completions(), EXPECTED_COMPLETIONS),
        ("costs_page.json", parsed_costs(), EXPECTED_COSTS),
    ]
