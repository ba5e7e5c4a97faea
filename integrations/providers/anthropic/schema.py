"""Anthropic Admin API shapes, validated at the boundary, and the pure mapping to UsageSamples.

Every `parse_*` function takes decoded JSON and returns small typed objects or raises
ProviderResponseError naming what was wrong (never echoing the body). The `*_samples`
functions turn one bucket into normalized samples.

The usage row has no `cache_creation_input_tokens` (that name belongs to the Messages API's
per-request `usage`); cache writes are the nested `cache_creation.ephemeral_5m_input_tokens`
and `…_1h_…`. Reading the wrong name under-counts input several-fold, so the token fields
are required here and a missing one is an error, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.providers.base import (
    UsageSample,
    align_down,
)
from integrations.providers.toolkit import Bucket, BucketPage, IdPage, Shape, bucket_page, id_page

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Usage and costs of the default workspace come with `workspace_id: null`; we store them
# under this project name (real workspace ids all start with "wrkspc_", so it cannot clash).
DEFAULT_WORKSPACE = "default"
# server_tool_use counters read when present: web search (documented), code execution and web
# fetch (newer rows; absent on older ones) -> api_calls with the tool as operation.
SERVER_TOOLS: tuple[str, ...] = ("web_search_requests", "code_execution_requests", "web_fetch_requests")

shape = Shape("Anthropic")


@dataclass(frozen=True)
class UsageResult:
    workspace_id: str | None
    model: str | None
    uncached_input_tokens: int
    cache_read_input_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    output_tokens: int
    web_search_requests: int | None  # None when the row has no server_tool_use
    # Kept apart (issue 13): each null unless grouped by (speed: when the row carries it).
    service_tier: str | None = None  # standard | batch | priority | flex
    context_window: str | None = None  # 0-200k | 200k-1M (the long-context premium)
    inference_geo: str | None = None  # global | us | not_available
    speed: str | None = None  # standard | fast
    code_execution_requests: int | None = None  # server_tool_use, when present
    web_fetch_requests: int | None = None


@dataclass(frozen=True)
class CostResult:
    amount: Decimal  # dollars (the API sends cents)
    currency: str
    workspace_id: str | None
    description: str | None
    cost_type: str | None
    model: str | None
    token_type: str | None
    service_tier: str | None = None
    context_window: str | None = None
    inference_geo: str | None = None
    speed: str | None = None


@dataclass(frozen=True)
class Organization:
    id: str
    name: str


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    archived: bool


# ---------------------------------------------------------------- validation helpers
def _span(bucket: dict[str, Any], where: str) -> tuple[datetime, datetime]:
    start, end = shape.time(bucket, "starting_at", where), shape.time(bucket, "ending_at", where)
    if end <= start:
        raise shape.bad(f"{where} ends before it starts")
    return start, end


# ---------------------------------------------------------------- parsers
def _usage_result(obj: dict[str, Any], where: str) -> UsageResult:
    creation = shape.obj(obj.get("cache_creation"), f"{where}.cache_creation")
    tool_counts: dict[str, int | None] = dict.fromkeys(SERVER_TOOLS)
    if obj.get("server_tool_use") is not None:
        tools = shape.obj(obj["server_tool_use"], f"{where}.server_tool_use")
        for name in SERVER_TOOLS:
            if tools.get(name) is not None:
                tool_counts[name] = shape.integer(tools, name, f"{where}.server_tool_use", non_negative=True)
    return UsageResult(
        workspace_id=shape.opt_str(obj, "workspace_id", where),
        model=shape.opt_str(obj, "model", where),
        uncached_input_tokens=shape.integer(obj, "uncached_input_tokens", where, non_negative=True),
        cache_read_input_tokens=shape.integer(obj, "cache_read_input_tokens", where, non_negative=True),
        cache_creation_5m=shape.integer(
            creation, "ephemeral_5m_input_tokens", f"{where}.cache_creation", non_negative=True
        ),
        cache_creation_1h=shape.integer(
            creation, "ephemeral_1h_input_tokens", f"{where}.cache_creation", non_negative=True
        ),
        output_tokens=shape.integer(obj, "output_tokens", where, non_negative=True),
        web_search_requests=tool_counts["web_search_requests"],
        service_tier=shape.opt_str(obj, "service_tier", where),
        context_window=shape.opt_str(obj, "context_window", where),
        inference_geo=shape.opt_str(obj, "inference_geo", where),
        speed=shape.opt_str(obj, "speed", where),
        code_execution_requests=tool_counts["code_execution_requests"],
        web_fetch_requests=tool_counts["web_fetch_requests"],
    )


def _cost_result(obj: dict[str, Any], where: str) -> CostResult:
    # Documented as a decimal string in cents; a bare number is accepted too (same unit), never bool.
    cents = shape.number(obj.get("amount"), f"{where}.amount")
    currency = obj.get("currency", "USD")  # "Currently always USD"
    if not isinstance(currency, str) or not currency.strip():
        raise shape.bad(f"{where}.currency is not a currency code")
    return CostResult(
        amount=cents / 100,
        currency=currency.strip().upper(),
        workspace_id=shape.opt_str(obj, "workspace_id", where),
        description=shape.opt_str(obj, "description", where),
        cost_type=shape.opt_str(obj, "cost_type", where),
        model=shape.opt_str(obj, "model", where),
        token_type=shape.opt_str(obj, "token_type", where),
        service_tier=shape.opt_str(obj, "service_tier", where),
        context_window=shape.opt_str(obj, "context_window", where),
        inference_geo=shape.opt_str(obj, "inference_geo", where),
        speed=shape.opt_str(obj, "speed", where),
    )


def parse_usage_page(body: Any) -> BucketPage[UsageResult]:
    return bucket_page(shape, body, "usage report", _span, _usage_result)


def parse_cost_page(body: Any) -> BucketPage[CostResult]:
    return bucket_page(shape, body, "cost report", _span, _cost_result)


def parse_organization(body: Any) -> Organization:
    body = shape.obj(body, "organization")
    org_id = shape.opt_str(body, "id", "organization")
    if not org_id:
        raise shape.bad("organization.id is missing")
    return Organization(org_id, shape.opt_str(body, "name", "organization") or "")


def parse_workspace_list(body: Any) -> IdPage[Workspace]:
    return id_page(
        shape, body, "workspace list",
        lambda obj, where, workspace_id: Workspace(
            workspace_id, shape.opt_str(obj, "name", where) or "", bool(obj.get("archived_at"))
        ),
    )  # fmt: skip


# ---------------------------------------------------------------- mapping


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def project_of(workspace_id: str | None) -> str:
    return workspace_id or DEFAULT_WORKSPACE


def usage_metrics(result: UsageResult) -> list[tuple[str, str, int]]:
    """(metric, operation, quantity) of one usage row, by docs/architecture.md's definitions."""
    cache_write = result.cache_creation_5m + result.cache_creation_1h
    metrics = [
        ("input_tokens", "", result.uncached_input_tokens + result.cache_read_input_tokens + cache_write),
        ("cached_input_tokens", "", result.cache_read_input_tokens),
        ("cache_write_tokens", "", cache_write),
        ("output_tokens", "", result.output_tokens),
    ]
    if result.web_search_requests is not None:
        metrics.append(("api_calls", "web_search", result.web_search_requests))
    if result.code_execution_requests is not None:
        metrics.append(("api_calls", "code_execution", result.code_execution_requests))
    if result.web_fetch_requests is not None:
        metrics.append(("api_calls", "web_fetch", result.web_fetch_requests))
    return metrics


def tier_dimensions(result: UsageResult | CostResult) -> dict[str, str]:
    """The dimensions that say how the traffic was priced, each kept apart ("" when not given)."""
    return {
        "service_tier": result.service_tier or "",
        "context_window": result.context_window or "",
        "inference_geo": result.inference_geo or "",
        "speed": result.speed or "",
    }


def usage_samples(bucket: Bucket[UsageResult], *, account: str, width: timedelta = HOUR) -> list[UsageSample]:
    # The key is always the aligned bucket [start, start + width): the same hour read by two
    # syncs must produce the same key.
    start = align_down(bucket.start, width)
    totals: dict[tuple[Any, ...], int] = {}
    for result in bucket.results:
        tiers = tuple(tier_dimensions(result).items())
        for metric, operation, quantity in usage_metrics(result):
            key = (project_of(result.workspace_id), result.model or "", operation, tiers, metric)
            # Rows sharing our key (split by a dimension we do not group by) add up.
            totals[key] = totals.get(key, 0) + quantity
    return [
        UsageSample(start, start + width, metric, Decimal(quantity), account=account, project=project, model=model,
                    operation=operation, **dict(tiers))
        for (project, model, operation, tiers, metric), quantity in totals.items()
    ]  # fmt: skip


def cost_operation(result: CostResult) -> str:
    """What was billed: the token type for token costs ("output_tokens",
    "cache_creation.ephemeral_5m_input_tokens"…), else the cost type ("web_search",
    "code_execution"), else the free-text description."""
    return result.token_type or result.cost_type or result.description or ""


def cost_samples(bucket: Bucket[CostResult], *, account: str, width: timedelta = DAY) -> list[UsageSample]:
    start = align_down(bucket.start, width)
    totals: dict[tuple[Any, ...], Decimal] = {}
    for result in bucket.results:
        # Standard and batch lines, context-window tiers, geos and speeds stay apart (their dimensions).
        tiers = tuple(tier_dimensions(result).items())
        key = (project_of(result.workspace_id), result.model or "", cost_operation(result), tiers, result.currency)
        totals[key] = totals.get(key, Decimal(0)) + result.amount
    return [
        UsageSample(start, start + width, "cost", amount, unit=currency, account=account, project=project,
                    model=model, operation=operation, **dict(tiers))
        for (project, model, operation, tiers, currency), amount in totals.items()
    ]  # fmt: skip
