"""Fireworks against the shared provider contract (integrations/providers/testing.py).

Contract fetches pass no state, so they read billing only (a metrics scrape needs the state
that remembers the previous one); the estimates have their own tests in test_metrics.py."""

from __future__ import annotations

from integrations.providers.fireworks.tests import support
from integrations.providers.testing import ProviderContractTests


class TestFireworksContract(support.FireworksSandbox, ProviderContractTests):
    paginated_prefix = support.BILLING_PATH
    truth = support.billing_truth
    cases = support.cases
    emitted_metrics = ("input_tokens", "output_tokens", "compute_seconds", "training_tokens")
