"""Anthropic against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.providers.anthropic.tests import support
from integrations.providers.testing import ProviderContractTests


def true_totals(start: datetime, end: datetime) -> dict[tuple[Any, ...], Decimal]:
    """Per-metric totals the sandbox really holds for an hour- and day-aligned window."""
    return dict(support.usage_truth(start, end) + support.cost_truth(start, end))


class TestAnthropicContract(support.AnthropicSandbox, ProviderContractTests):
    paginated_prefix = support.USAGE_PATH
    truth = true_totals
    cases = support.cases
    emitted_metrics = (*support.TOKEN_METRICS, "api_calls", "cost")
