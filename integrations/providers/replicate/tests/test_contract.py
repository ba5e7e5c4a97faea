"""Replicate against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.replicate import provider
from integrations.providers.replicate.tests import support
from integrations.providers.testing import ProviderContractTests
from sandbox import replicate as fake


class TestReplicateContract(ProviderContractTests):
    provider = provider
    slug = "replicate"
    fault_prefix = support.PATHS
    paginated_prefix = support.PREDICTIONS_PATH

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_token": fake.API_TOKEN}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox.url + fake.PREFIX + "/v1"}

    def small_window(self) -> Window:
        return Window(support.days_ago(2), support.days_ago(1))

    def pagination_window(self) -> Window:
        # ~240 predictions a day at 100 per page: three days are several pages.
        return Window(support.days_ago(4), support.days_ago(1))

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.truth(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_metric_the_connector_emits() -> None:
    totals = support.truth(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {("requests",), ("compute_seconds",), ("input_tokens",), ("output_tokens",)}
    assert all(v > 0 for v in totals.values())
