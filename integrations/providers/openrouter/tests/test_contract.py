"""OpenRouter against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.base import Window
from integrations.providers.openrouter import provider
from integrations.providers.openrouter.tests import support
from integrations.providers.testing import ProviderContractTests
from sandbox.openrouter import MANAGEMENT_KEY


class TestOpenRouterContract(ProviderContractTests):
    provider = provider
    slug = "openrouter"
    fault_prefix = "/openrouter/api/v1/"
    # /activity has no pagination: a window is read one `date=` request per day, so "every
    # page" here means every day of a multi-day window.
    paginated_prefix = support.ACTIVITY_PATH

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": MANAGEMENT_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": support.base_url(sandbox)}

    def small_window(self) -> Window:
        return Window(support.days_ago(2), support.days_ago(1))

    def pagination_window(self) -> Window:
        # Two days: read a day per request (a longer window is one request without `date`).
        return Window(support.days_ago(3), support.days_ago(1))

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.truth(window.start, window.end)

    def recorded_fixture_cases(self) -> list[tuple[str, list[Any], list[Any]]]:
        return support.cases()


def test_true_totals_cover_every_metric_the_connector_emits() -> None:
    totals = support.truth(support.days_ago(2), support.days_ago(1))
    assert set(totals) == {(m,) for m in support.FIELDS}
    assert all(v > 0 for v in totals.values())
