"""Groq against the shared provider contract (integrations/providers/testing.py).

Prometheus has no pagination; its analogue here is the split of a long window into queries of
at most one day each, so the "paginated" path is query_range over a three-day window."""

from __future__ import annotations

from integrations.providers.groq.tests import support
from integrations.providers.testing import ProviderContractTests


class TestGroqContract(support.GroqSandbox, ProviderContractTests):
    paginated_prefix = support.QUERY_PATH
    truth = support.true_totals
    cases = support.cases
    emitted_metrics = ("input_tokens", "output_tokens", "requests")
