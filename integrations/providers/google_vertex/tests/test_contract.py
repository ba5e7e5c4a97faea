"""Google Vertex AI against the shared provider contract (integrations/providers/testing.py).

The fault prefix covers the token endpoint too, so 401, 429, 5xx and unreadable bodies are
checked on the google-auth path as well as on BigQuery's."""

from __future__ import annotations

from typing import Any

from integrations.providers.base import Window
from integrations.providers.google_vertex import provider
from integrations.providers.google_vertex.tests import support
from integrations.providers.testing import ProviderContractTests


class TestGoogleVertexContract(ProviderContractTests):
    provider = provider
    fault_prefix = "/google_vertex/"
    paginated_prefix = support.QUERIES_PATH
    truth = support.true_totals
    cases = support.cases
    emitted_metrics = ("cost", "input_tokens", "cached_input_tokens", "output_tokens")

    def credential(self, sandbox: Any) -> dict[str, str]:
        return support.credential(sandbox)

    def settings(self, sandbox: Any) -> dict[str, str]:
        return support.settings(sandbox)

    def small_window(self) -> Window:
        return Window(support.days_ago(3), support.days_ago(2))

    def pagination_window(self) -> Window:
        # 7 days ≈ 340 result rows: four pages of the sandbox's 100.
        return Window(support.days_ago(9), support.days_ago(2))
