"""Groq against the shared provider contract (integrations/providers/testing.py).

Prometheus has no pagination; its analogue here is the split of a long window into queries of
at most one day each, so the "paginated" path is query_range over a three-day window."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.groq import provider
from integrations.providers.groq.tests import support
from integrations.providers.testing import ProviderContractTests
from sandbox import groq as sandbox_groq

API = "/groq" + sandbox_groq.PREFIX + "/api/v1/"


class TestGroqContract(ProviderContractTests):
    provider = provider
    slug = "groq"
    fault_prefix = API
    paginated_prefix = API + "query_range"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": sandbox_groq.ENTERPRISE_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox_groq.base_url(sandbox.url)}

    def small_window(self) -> Window:
        return Window(support.days_ago(2), support.days_ago(1))

    def pagination_window(self) -> Window:
        # three days: three one-day queries for each of the three metrics
        return Window(support.days_ago(4), support.days_ago(1))

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.true_totals(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_metric_the_connector_emits() -> None:
    totals = support.true_totals(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {("input_tokens",), ("output_tokens",), ("requests",)}
    assert all(v > 0 for v in totals.values())
