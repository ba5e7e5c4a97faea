"""OpenAI against the shared provider contract (integrations/providers/testing.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.providers.openai.tests import support
from integrations.providers.testing import ProviderContractTests
from sandbox.openai import USAGE_KINDS, truth_costs, truth_kind, truth_usage

USAGE_FIELDS = {
    "input_tokens": "input_tokens",
    "cached_input_tokens": "input_cached_tokens",
    "cache_write_tokens": "input_cache_write_tokens",
    "output_tokens": "output_tokens",
    "requests": "num_model_requests",
}


# The other usage endpoints' fields (sandbox.openai.USAGE_KINDS) -> our metrics.
KIND_FIELDS = {"input_tokens": "input_tokens", "num_model_requests": "requests", "images": "images",
               "characters": "characters", "seconds": "audio_seconds", "usage_bytes": "storage_byte_days",
               "num_sessions": "sessions"}  # fmt: skip


def true_totals(start: datetime, end: datetime, **filters: Any) -> dict[tuple[Any, ...], Decimal]:
    """Per-metric totals the sandbox really holds for an hour- and day-aligned window: every
    usage endpoint, the costs and their billed quantities."""
    project_ids = filters.get("project_ids")
    usage = [r for r in truth_usage(start, end) if not project_ids or r.project_id in project_ids]
    costs = [r for r in truth_costs(start, end) if not project_ids or r.project_id in project_ids]
    totals = {(metric,): Decimal(sum(getattr(r, field) for r in usage)) for metric, field in USAGE_FIELDS.items()}
    for name, kind in USAGE_KINDS.items():
        for row in truth_kind(name, start, end):
            if project_ids and row.project_id not in project_ids:
                continue
            for field, value in zip(kind.fields, row.values, strict=True):
                key = (KIND_FIELDS[field],)
                totals[key] = totals.get(key, Decimal(0)) + value
    totals[("cost",)] = sum((r.amount for r in costs), Decimal(0))
    totals[("billed_quantity",)] = Decimal(sum(r.quantity for r in costs))
    return totals


class TestOpenAIContract(support.OpenAISandbox, ProviderContractTests):
    paginated_prefix = support.USAGE_PATH
    truth = true_totals
    cases = support.cases
    emitted_metrics = (*USAGE_FIELDS, *KIND_FIELDS.values(), "cost", "billed_quantity")
