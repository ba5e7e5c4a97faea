"""Anthropic against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.anthropic.tests import support
from integrations.providers.base import Window
from integrations.providers.testing import ProviderContractTests


def true_totals(window: Window) -> dict[tuple[Any, ...], Decimal]:
    """Per-metric totals the sandbox really holds for an hour- and day-aligned window."""
    return dict(support.usage_truth(window.start, window.end) + support.cost_truth(window.start, window.end))


class TestAnthropicContract(support.AnthropicSandbox, ProviderContractTests):
    slug = "anthropic"
    paginated_prefix = support.USAGE_PATH

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return true_totals(window)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_metric_the_connector_emits() -> None:
    totals = true_totals(Window(support.days_ago(2), support.days_ago(1)))
    assert set(totals) == {(m,) for m in (*support.TOKEN_METRICS, "api_calls", "cost")}
    assert all(v > 0 for v in totals.values())
