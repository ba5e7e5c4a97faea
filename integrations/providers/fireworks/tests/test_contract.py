"""Fireworks against the shared provider contract (integrations/providers/testing.py).

Contract fetches pass no state, so they read billing only (a metrics scrape needs the state
that remembers the previous one); the estimates have their own tests in test_metrics.py."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.fireworks import provider
from integrations.providers.fireworks.tests import support
from integrations.providers.testing import ProviderContractTests
from sandbox import fireworks as fw


class TestFireworksContract(ProviderContractTests):
    provider = provider
    slug = "fireworks"
    fault_prefix = "/fireworks/v1/accounts/"
    paginated_prefix = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/billingUsage"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": fw.API_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox.url + "/fireworks", "account_id": fw.ACCOUNT_ID}

    def small_window(self) -> Window:
        return Window(support.days_ago(2), support.days_ago(1))

    def pagination_window(self) -> Window:
        # 40 days: billingUsage takes at most 31 days per request, so each usage type needs two.
        return Window(support.days_ago(41), support.days_ago(1))

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.billing_truth(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_billing_metric() -> None:
    totals = support.billing_truth(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {("input_tokens",), ("output_tokens",), ("compute_seconds",), ("training_tokens",)}
    assert all(v > 0 for v in totals.values())
