"""Azure OpenAI against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.providers.azure_openai import provider
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import Window
from integrations.providers.testing import ProviderContractTests


class TestAzureOpenAIContract(ProviderContractTests):
    provider = provider
    fault_prefix = "/azure_openai/"  # the token endpoint and every ARM call
    paginated_prefix = support.ACCOUNTS_PATH  # accounts come 2 per page, linked by nextLink
    cases = support.cases
    emitted_metrics = (
        "input_tokens",
        "output_tokens",
        "requests",
        "throttled_requests",
        "failed_requests",
        "provisioned_hours",
        "cached_input_tokens",
        "cache_write_tokens",
    )

    def credential(self, sandbox: Any) -> dict[str, str]:
        return support.credential()

    def settings(self, sandbox: Any) -> dict[str, str]:
        return support.settings(sandbox)

    def pagination_window(self) -> Window:
        # 9 days: the account listing takes 3 pages, the metrics two 7-day timespans per account.
        return Window(support.days_ago(10), support.days_ago(1))

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        return support.truth(window)
