"""OpenRouter against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from integrations.providers.openrouter.tests import support
from integrations.providers.testing import ProviderContractTests


class TestOpenRouterContract(support.OpenRouterSandbox, ProviderContractTests):
    # /activity has no pagination: a window is read one `date=` request per day, so "every
    # page" here means every day of a multi-day window.
    paginated_prefix = support.ACTIVITY_PATH
    truth = support.truth
    cases = support.cases
    emitted_metrics = tuple(support.FIELDS)
