"""Replicate against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from integrations.providers.replicate.tests import support
from integrations.providers.testing import ProviderContractTests


class TestReplicateContract(support.ReplicateSandbox, ProviderContractTests):
    paginated_prefix = support.PREDICTIONS_PATH
    truth = support.truth
    cases = support.cases
    emitted_metrics = ("requests", "compute_seconds", "input_tokens", "output_tokens")
