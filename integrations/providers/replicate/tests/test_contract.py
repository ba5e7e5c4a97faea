"""Replicate against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.replicate.tests import support
from integrations.providers.testing import ProviderContractTests


class TestReplicateContract(support.ReplicateSandbox, ProviderContractTests):
    slug = "replicate"
    paginated_prefix = support.PREDICTIONS_PATH

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.truth(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_metric_the_connector_emits() -> None:
    totals = support.truth(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {("requests",), ("compute_seconds",), ("input_tokens",), ("output_tokens",)}
    assert all(v > 0 for v in totals.values())
