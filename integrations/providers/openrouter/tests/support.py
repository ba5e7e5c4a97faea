"""Test support: recorded responses (fixtures/*.json, built from the documented shapes) with
the samples the connector must make of them, computed by hand; windows; the sandbox's truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.base import UsageSample, Window
from integrations.providers.openrouter import provider
from integrations.providers.openrouter.schema import activity_samples, parse_activity
from integrations.providers.testing import SandboxHooks, days_ago, fixture_loader
from sandbox.openrouter import MANAGEMENT_KEY, ActivityRow, truth_activity

FIXTURES = Path(__file__).parent / "fixtures"
SANDBOX_PREFIX = "/openrouter/api/v1"
ACTIVITY_PATH = f"{SANDBOX_PREFIX}/activity"
# Our metric -> the sandbox row's field (reasoning_tokens is inside completion_tokens).
FIELDS = {
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "requests": "requests",
    "cost": "usage",
    "byok_cost": "byok_usage_inference",  # stored only where it is not 0
}


def base_url(sandbox: Any) -> str:
    return sandbox.url + SANDBOX_PREFIX


class OpenRouterSandbox(SandboxHooks):
    """The sandbox's OpenRouter account (a management key), for the contract and failure tests."""

    provider = provider
    fault_prefix = f"{SANDBOX_PREFIX}/"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": MANAGEMENT_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": base_url(sandbox)}

    def pagination_window(self) -> Window:
        # Two days: read a day per request (a longer window is one request without `date`).
        return Window(days_ago(3), days_ago(1))


load = fixture_loader(FIXTURES)


def truth(start: datetime, end: datetime, key: Callable[[ActivityRow], tuple[Any, ...]] = lambda r: ()) -> Counter:
    """The sandbox's true totals per (metric, *key(row)) for the days served in [start, end)."""
    totals: Counter = Counter()
    for row in truth_activity(start, end):
        for metric, field in FIELDS.items():
            if metric == "byok_cost" and not getattr(row, field):
                continue  # no BYOK spend: no row
            totals[(metric, *key(row))] += Decimal(getattr(row, field))
    return totals


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _samples(
    day: str, model: str, endpoint: str, provider: str, figures: tuple[int, int, int, str]
) -> list[UsageSample]:
    start = _day(day)
    return [
        UsageSample(start, start + timedelta(days=1), metric, Decimal(value), unit="USD" if metric == "cost" else "",
                    model=model, endpoint=endpoint, deployment=provider)
        for metric, value in zip(("input_tokens", "output_tokens", "requests", "cost"), figures, strict=True)
    ]  # fmt: skip


GPT41 = ("openai/gpt-4.1-2025-04-14", "550e8400-e29b-41d4-a716-446655440000", "OpenAI")
R1 = ("deepseek/deepseek-r1", "3e4a0b5c-7f3d-4d8a-8d3b-8a4f6c4b3d04", "DeepInfra")
O4 = ("openai/o4-mini-2025-04-16", "6b7d3e8f-ac6a-4abd-9a6e-bd7c9f7e6a07", "OpenAI")
LLAMA = ("meta-llama/llama-3.3-70b-instruct:free", "5a6c2d7e-9b5f-4fac-8f5d-ac6b8e6d5f06", "Chutes")
SONNET = ("anthropic/claude-4-sonnet-20250522", "1c2e8f3a-5d1b-4b68-8b1f-6e2d4a2f1b02", "Anthropic")
SONNET_BEDROCK = ("anthropic/claude-4-sonnet-20250522", "2d3f9a4b-6e2c-4c79-9c2a-7f3e5b3a2c03", "Amazon Bedrock")

# activity_day.json: output_tokens are completion_tokens as given, although reasoning_tokens
# are > 0 (900 + 650 of DeepSeek's 2300, 320 of o4-mini's 410): reasoning is never added again.
# DeepSeek's two rows share our key and add up; o4-mini is BYOK: cost is the credits spent
# (usage), not byok_usage_inference, which is kept as byok_cost (only where it is not 0); the
# free model has no permaslug: its slug is the model.
EXPECTED_DAY = [
    *_samples("2025-08-24", *GPT41, (50, 125, 5, "0.015")),
    *_samples("2025-08-24", *R1, (1500, 2300, 4, "0.0062525")),
    *_samples("2025-08-24", *O4, (4000, 410, 2, "0.00094")),
    UsageSample(
        _day("2025-08-24"),
        _day("2025-08-25"),
        "byok_cost",
        Decimal("0.0188"),
        unit="USD",
        model=O4[0],
        endpoint=O4[1],
        deployment=O4[2],
    ),
    *_samples("2025-08-24", *LLAMA, (2100, 640, 7, "0")),
]
# activity_month.json (no `date` filter): two days, two endpoints of one model.
EXPECTED_MONTH = [
    *_samples("2025-08-24", *SONNET, (30000, 2300, 12, "0.1245")),
    *_samples("2025-08-24", *SONNET_BEDROCK, (6000, 1000, 2, "0.033")),
    *_samples("2025-08-23", *SONNET, (250000, 30000, 40, "1.2")),
]


def parsed(name: str, days: Any = None) -> list[UsageSample]:
    return activity_samples(parse_activity(load(name)), days=days)


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [
        ("activity_day.json", parsed("activity_day.json"), EXPECTED_DAY),
        ("activity_month.json", parsed("activity_month.json"), EXPECTED_MONTH),
    ]
