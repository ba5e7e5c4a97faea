"""A fake of Anthropic's Usage and Cost Analytics API (beta): `GET /v1/organizations/analytics/usage`
and `GET /v1/organizations/analytics/cost`, served from the same truth as the legacy reports in
sandbox/anthropic.py (so both paths describe one organization).

Shapes follow Anthropic's SDK reference (BetaAnalyticsUsageItem / BetaAnalyticsCostItem,
anthropic-beta `analytics-usage-cost-2026-08-24`): a flat, paged list of rows, each
`{"starting_at", "ending_at", "group": {dimension: value or null}, "usage": {...}}` (or `"cost":
{"amount", "currency", "list_amount", "requests"}`), in `{"data", "has_more", "next_page"}`.
Deliberately strict where the real API's leniency is unknown, and conservative where its limits
are documented for the sibling Enterprise analytics reports only: the beta header is required,
`starting_at` may not be before 2026-01-01 nor 365 days or more in the past, a range spans at
most 31 days, and each time bucket holds at most GROUP_CAP groups, the largest, with no
remainder row.

Only ANALYTICS_ADMIN_KEY may read it; every other admin key gets 403 `permission_error`, as an
organization or key that cannot read the beta would (the sandbox's usual ADMIN_KEY among them,
so the legacy path stays what the other tests drive). `cap_groups` lowers the group cap and
`refuse` makes every key refused, from now on (`clear_changes` undoes both).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox import anthropic as legacy
from sandbox.core import Request, Response, epoch, from_epoch, utcnow

ANALYTICS_ADMIN_KEY = "sk-ant-admin01-sandbox-analytics-0123456789SECRET"
BETA = "analytics-usage-cost-2026-08-24"
USAGE_PATH = "/v1/organizations/analytics/usage"
COST_PATH = "/v1/organizations/analytics/cost"
EARLIEST = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = timedelta(days=365)
MAX_RANGE = timedelta(days=31)
GROUP_CAP = 100
PAGE_DEFAULT, PAGE_MAX = 200, 1000  # rows per page
WIDTHS = {"1h": legacy.HOUR, "1d": legacy.DAY}
# The dimensions a row of either report may be broken out by (each null unless grouped by).
GROUP_FIELDS = ("actor", "actor_type", "agent_id", "api_key_id", "claude_tag_category", "claude_tag_user_id",
                "context_window", "deployment_id", "environment_id", "inference_geo", "model", "organization_id",
                "product", "rbac_group_id", "service_tier", "session_id", "slack_channel_id", "speed",
                "user_profile_id", "workspace_id")  # fmt: skip
COST_GROUP_FIELDS = (*GROUP_FIELDS, "cost_type", "token_type")
# What the sandbox can break its truth out by; other group_by[] values are accepted and stay null.
USAGE_KEPT = ("workspace_id", "model", "service_tier", "context_window", "inference_geo")
COST_KEPT = (*USAGE_KEPT, "cost_type", "token_type")

_lock = threading.Lock()
_state: dict[str, Any] = {"cap": GROUP_CAP, "refused": False}


def cap_groups(cap: str) -> None:
    """From now on each time bucket reports at most `cap` groups (the largest)."""
    with _lock:
        _state["cap"] = int(cap)


def refuse() -> None:
    """From now on every key is refused (403), as when the organization loses the beta."""
    with _lock:
        _state["refused"] = True


def clear_changes() -> None:
    with _lock:
        _state.update(cap=GROUP_CAP, refused=False)


_BadRequest = legacy._BadRequest  # the legacy helpers' parameter errors are answered alike


def handle(request: Request) -> Response:
    """The analytics routes, behind sandbox.anthropic.handle's key and version checks."""
    if request.headers.get("x-api-key", "").strip() != ANALYTICS_ADMIN_KEY or _state["refused"]:
        return legacy._respond(403, legacy._error_json(
            "permission_error", "This API key cannot read the usage and cost analytics reports of this organization."))  # fmt: skip
    betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}
    if BETA not in betas:
        return legacy._respond(400, legacy._error_json("invalid_request_error", f"anthropic-beta: {BETA} is required"))
    try:
        if request.path.rstrip("/") == USAGE_PATH:
            return _report(request, USAGE_KEPT, _usage_rows, "usage")
        return _report(request, COST_KEPT, _cost_rows, "cost")
    except _BadRequest as exc:
        return legacy._respond(400, legacy._error_json("invalid_request_error", str(exc)))


def _range(request: Request) -> tuple[int, int]:
    start = legacy._time(request, "starting_at", True)
    assert start is not None
    now = utcnow()
    end = legacy._time(request, "ending_at", False) or epoch(min(now, from_epoch(start) + MAX_RANGE))
    if start < epoch(EARLIEST):
        raise _BadRequest("starting_at: must be no earlier than 2026-01-01T00:00:00Z")
    if start <= epoch(now - RETENTION):
        raise _BadRequest("starting_at: must be within the last 365 days")
    if end <= start:
        raise _BadRequest("ending_at: must be after starting_at")
    if end - start > MAX_RANGE.total_seconds():
        raise _BadRequest("ending_at: the range may span at most 31 days")
    return start, end


def _usage_rows(start: int, stop: int, groups: list[str]) -> list[tuple[tuple[Any, ...], dict[str, Any], int]]:
    totals: dict[tuple[Any, ...], list[int]] = {}
    for row in legacy.truth_usage(from_epoch(start), from_epoch(stop)):
        key = tuple(getattr(row, g) if g in groups else None for g in USAGE_KEPT)
        t = totals.setdefault(key, [0] * 8)
        for i, value in enumerate((row.uncached_input_tokens, row.cache_read_input_tokens, row.cache_creation_5m,
                                   row.cache_creation_1h, row.output_tokens, row.web_search_requests,
                                   row.code_execution_requests, 1)):  # fmt: skip
            t[i] += value
    out: list[tuple[tuple[Any, ...], dict[str, Any], int]] = []
    for key, t in totals.items():
        usage: dict[str, Any] = {
            "uncached_input_tokens": t[0],
            "cache_read_input_tokens": t[1],
            "cache_creation": {"ephemeral_5m_input_tokens": t[2], "ephemeral_1h_input_tokens": t[3]},
            "output_tokens": t[4],
            "server_tool_use": {"web_search_requests": t[5], "code_execution_requests": t[6]},
            "requests": t[7],
            "total_tokens": sum(t[:5]),
        }
        out.append((key, {"usage": usage}, sum(t[:5])))
    return out


def _hour_costs(hour_ts: int) -> list[legacy.CostRow]:
    """The cost rows of one reported hour, each the growth of its day's row over that hour: the
    day's priced totals after the hour less those before it (each rounded as the legacy report
    rounds a day), so a day's hours add up to exactly what the legacy cost report says."""
    day_ts = hour_ts - hour_ts % legacy.DAY
    if hour_ts >= legacy._visible_until(None):
        return []  # not reported yet

    def by_item(hours: int) -> dict[tuple[Any, ...], legacy.CostRow]:
        rows = legacy._cost_changes.apply(legacy._day_costs(day_ts, hours)) if hours else []
        return {row._replace(amount_cents=Decimal(0)): row for row in rows}

    before, after = by_item((hour_ts - day_ts) // legacy.HOUR), by_item((hour_ts - day_ts) // legacy.HOUR + 1)
    out = []
    for item, row in after.items():
        grown = row.amount_cents - (before[item].amount_cents if item in before else Decimal(0))
        if grown:
            out.append(row._replace(day=from_epoch(hour_ts), amount_cents=grown))
    return out


def _cost_rows(start: int, stop: int, groups: list[str]) -> list[tuple[tuple[Any, ...], dict[str, Any], Decimal]]:
    hourly = stop - start == legacy.HOUR
    found = _hour_costs(start) if hourly else legacy.truth_costs(from_epoch(start), from_epoch(stop))
    totals: dict[tuple[Any, ...], Decimal] = {}
    for row in found:
        key = tuple(getattr(row, g) if g in groups else None for g in COST_KEPT)
        totals[key] = totals.get(key, Decimal(0)) + row.amount_cents
    return [
        (
            key,
            {"cost": {"amount": f"{cents:f}", "currency": "USD", "list_amount": f"{cents:f}", "requests": None}},
            cents,
        )
        for key, cents in totals.items()
    ]


def _report(
    request: Request,
    kept: tuple[str, ...],
    rows_of: Callable[[int, int, list[str]], list[tuple[tuple[Any, ...], dict[str, Any], Any]]],
    what: str,
) -> Response:
    width_name = request.arg("time_bucket_width") or "1d"
    if width_name not in WIDTHS:
        raise _BadRequest(f"time_bucket_width: Input should be '1d' or '1h'; got {width_name!r}")
    width = WIDTHS[width_name]
    fields = COST_GROUP_FIELDS if what == "cost" else GROUP_FIELDS
    groups = legacy._array(request, "group_by", fields)
    limit = legacy._limit(request, PAGE_DEFAULT, PAGE_MAX)
    start, end = _range(request)
    rows: list[dict[str, Any]] = []
    first = start - start % width
    for bucket in range(first, end, width):
        found = sorted(rows_of(bucket, bucket + width, groups), key=lambda r: (-r[2], tuple(v or "" for v in r[0])))
        for key, metrics, _size in found[: _state["cap"]]:  # the largest groups; no remainder row
            group = dict.fromkeys(fields)
            group.update(zip(kept, key, strict=True))
            rows.append({"starting_at": legacy.iso(bucket), "ending_at": legacy.iso(bucket + width), "group": group,
                         **metrics})  # fmt: skip
    query = _query_hash(request)
    offset = _offset(request.arg("page"), query) if request.arg("page") else 0
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return legacy._respond(
        200, {"data": page, "has_more": more, "next_page": _cursor(offset + limit, query) if more else None}
    )


def _query_hash(request: Request) -> str:
    query = sorted((k, v) for k, values in request.query.items() if k != "page" for v in values)
    return hashlib.sha256(json.dumps(query).encode()).hexdigest()[:12]


def _cursor(offset: int, query: str) -> str:
    return "page_" + base64.b64encode(f"{offset}:{query}".encode()).decode()


def _offset(token: str | None, query: str) -> int:
    try:
        offset, of = base64.b64decode((token or "").removeprefix("page_"), validate=True).decode().split(":")
        if of != query:
            raise ValueError
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _BadRequest("page: the page token does not belong to this query") from None


# Served under the legacy fake's prefix, behind its key and version checks (sandbox.app imports
# this module so that it registers).
legacy.EXTRA_ROUTES.update({USAGE_PATH: handle, COST_PATH: handle})
legacy.CHANGES.update({"cap_analytics_groups": cap_groups, "refuse_analytics": refuse})
legacy.EXTRA_CLEARS.append(clear_changes)
