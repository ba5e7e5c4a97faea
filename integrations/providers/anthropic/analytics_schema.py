"""Shapes of Anthropic's Usage and Cost Analytics API (beta), validated at the boundary and
regrouped into the legacy reports' buckets, so that one mapping (schema.usage_samples /
schema.cost_samples) keys both paths' rows alike.

The analytics reports are a flat, paged list of rows, each one period and one combination of
the grouped dimensions (Anthropic's SDK reference, BetaAnalyticsUsageItem / BetaAnalyticsCostItem):

    {"data": [{"starting_at", "ending_at",
               "group": {"workspace_id", "model", "service_tier", ...: value or null},
               "usage": {"uncached_input_tokens", "cache_read_input_tokens",
                         "cache_creation": {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"},
                         "output_tokens", "server_tool_use", "requests", "total_tokens"}}
              | {..., "cost": {"amount", "currency", "list_amount", "requests"}}],
     "has_more", "next_page"}

A row's metrics have the legacy usage row's names (and, for costs, `amount` in cents as a
decimal string), so the legacy row parsers read a row's dimensions and metrics merged.
`requests`, `total_tokens` and `list_amount` are not read: `requests` also counts code
execution spans, `total_tokens` is the sum of the token fields, and the list price is not what
is billed (see docs/providers/anthropic.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from integrations.providers.anthropic.schema import (
    CostResult,
    UsageResult,
    _cost_result,
    _span,
    _usage_result,
    shape,
)
from integrations.providers.base import align_down
from integrations.providers.toolkit import Bucket

R = TypeVar("R")


@dataclass(frozen=True)
class AnalyticsPage(Generic[R]):
    """One page of an analytics report: its rows, each (start, end, parsed row)."""

    rows: tuple[tuple[datetime, datetime, R], ...]
    has_more: bool
    next_page: str | None

    def cursor(self) -> str | None:
        """For paginate(): None on the last page; "" (a loop) when has_more comes without a cursor."""
        return (self.next_page or "") if self.has_more else None


def _page(body: Any, what: str, metrics: str, parse_row: Any) -> AnalyticsPage[Any]:
    body = shape.obj(body, what)
    rows = []
    for where, item in shape.objects(body.get("data"), f"{what}.data"):
        group = shape.opt_obj(item, "group", where)
        values = shape.obj(item.get(metrics), f"{where}.{metrics}")
        # Dimensions and metrics never share a name; a row naming one twice is not this shape.
        if set(group) & set(values):
            raise shape.bad(f"{where}.group and {where}.{metrics} share a field")
        rows.append((*_span(item, where), parse_row({**group, **values}, where)))
    return AnalyticsPage(tuple(rows), shape.flag(body, "has_more", what), shape.opt_str(body, "next_page", what))


def parse_analytics_usage_page(body: Any) -> AnalyticsPage[UsageResult]:
    return _page(body, "analytics usage report", "usage", _usage_result)


def parse_analytics_cost_page(body: Any) -> AnalyticsPage[CostResult]:
    return _page(body, "analytics cost report", "cost", _cost_result)


def buckets(rows: list[tuple[datetime, datetime, R]], width: timedelta) -> list[Bucket[R]]:
    """The rows of a report gathered into the legacy report's time buckets of `width` (rows of
    a finer bucket width into the bucket that holds them), in time order; rows of one bucket
    keep their order."""
    gathered: dict[datetime, list[R]] = {}
    for start, _end, row in rows:
        gathered.setdefault(align_down(start, width), []).append(row)
    return [
        Bucket(start, start + width, tuple(found)) for start, found in sorted(gathered.items(), key=lambda kv: kv[0])
    ]
