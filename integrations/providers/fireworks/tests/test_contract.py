"""Fireworks against the shared provider contract (integrations/providers/testing.py).

Contract fetches pass no state, so they read billing only (a metrics scrape needs the state
that remembers the previous one); the estimates have their own tests in test_metrics.py."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.fireworks.tests import support
from integrations.providers.testing import ProviderContractTests


class TestFireworksContract(support.FireworksSandbox, ProviderContractTests):
    slug = "fireworks"
    paginated_prefix = support.BILLING_PATH

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.billing_truth(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_billing_metric() -> None:
    totals = support.billing_truth(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {("input_tokens",), ("output_tokens",), ("compute_seconds",), ("training_tokens",)}
    assert all(v > 0 for v in totals.values())
