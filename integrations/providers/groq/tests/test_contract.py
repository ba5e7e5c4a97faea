"""Groq against the shared provider contract (integrations/providers/testing.py).

Prometheus has no pagination; its analogue here is the split of a long window into queries of
at most one day each, so the "paginated" path is query_range over a three-day window."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.groq.tests import support
from integrations.providers.testing import ProviderContractTests


class TestGroqContract(support.GroqSandbox, ProviderContractTests):
    slug = "groq"
    paginated_prefix = support.QUERY_PATH

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.true_totals(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_metric_the_connector_emits() -> None:
    totals = support.true_totals(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {("input_tokens",), ("output_tokens",), ("requests",)}
    assert all(v > 0 for v in totals.values())
