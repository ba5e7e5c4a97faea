"""A fake of Anthropic's Admin API: messages usage report, cost report, organization, workspaces.

Data is deterministic: every (hour, workspace, model, service tier) gets its token counts from
a SHA-256 of those values; some hours have no usage at all; an hour's usage becomes visible
REPORTING_DELAY after it ends (Anthropic: "typically within 5 minutes"). Tests import
`truth_usage` / `truth_costs`; the handlers build every response from the same functions.

Shapes follow the documented API: RFC 3339 `starting_at` / `ending_at`, buckets snapped to the
start of the hour/day in UTC, one bucket per interval including empty ones, `page_<base64>`
cursors, the nested `cache_creation {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}`
object (there is no `cache_creation_input_tokens` in this report), the default workspace as
`workspace_id: null`, cost `amount` as a decimal string in CENTS, and errors as
`{"type": "error", "error": {"type", "message"}}` with a `request-id` header. Deliberately
strict where the real API's leniency is unknown: array parameters must use the bracket form
(`group_by[]=model`) and the `anthropic-version` header is required.
`withdraw_cost` and `withdraw_model` change the answer from then on, as Anthropic restates what
it reported (`clear_changes` undoes them).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from sandbox.core import Changes, Request, Response, digest, epoch, from_epoch, json_response, offset_time, utcnow

# ---------------------------------------------------------------- the fake organization
ORGANIZATION_ID = "5f0c9a3e-7d1b-4c2a-9e8f-0a1b2c3d4e5f"
ORGANIZATION_NAME = "Doow Sandbox Org"
ADMIN_KEY = "sk-ant-admin01-sandbox-0123456789abcdefSECRET"
API_KEY = "sk-ant-api03-sandbox-0123456789abcdefSECRET"  # a regular (inference) key
# A well-formed admin key the sandbox treats as revoked: a real 401 without injecting a fault.
REVOKED_ADMIN_KEY = "sk-ant-admin01-sandbox-revoked-00000SECRET"
API_VERSION = "2023-06-01"
PREFIX = "/anthropic"  # the connector's base_url is sandbox.url + PREFIX

DATA_START = datetime(2024, 1, 1, tzinfo=UTC)  # the organization has no usage before this
REPORTING_DELAY = 5 * 60
HOUR = 3600
DAY = 86400


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    created_at: datetime
    archived_at: datetime | None = None
    display_color: str = "#6C5BB9"


WORKSPACES: tuple[Workspace, ...] = (
    Workspace("wrkspc_01SandboxProduction00001", "Production", datetime(2024, 1, 1, tzinfo=UTC)),
    Workspace("wrkspc_01SandboxResearch0000002", "Research", datetime(2024, 3, 1, tzinfo=UTC), None, "#2E7D32"),
    Workspace(
        "wrkspc_01SandboxLegacy000000003",
        "Legacy prototypes",
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2025, 6, 30, tzinfo=UTC),
        "#9E9E9E",
    ),
)


@dataclass(frozen=True)
class Price:
    """USD per million tokens (standard tier; batch is half)."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


PRICES: dict[str, Price] = {
    "claude-sonnet-4-20250514": Price(*map(Decimal, ("3", "15", "3.75", "6", "0.30"))),
    "claude-3-5-haiku-20241022": Price(*map(Decimal, ("0.80", "4", "1", "1.6", "0.08"))),
    "claude-opus-4-1-20250805": Price(*map(Decimal, ("15", "75", "18.75", "30", "1.50"))),
}
MODEL_NAMES = {
    "claude-sonnet-4-20250514": "Claude Sonnet 4",
    "claude-3-5-haiku-20241022": "Claude Haiku 3.5",
    "claude-opus-4-1-20250805": "Claude Opus 4.1",
}
MODELS: tuple[str, ...] = tuple(PRICES)
WEB_SEARCH_CENTS = Decimal(1)  # $10 per 1,000 searches
CODE_EXECUTION_CENTS = Decimal(5)  # the sandbox's flat price per code execution request
CENT_PLACES = Decimal("0.00001")  # amounts like "123.78912" (cents)
# (token_type as the cost report names it, UsageRow field, Price field, description suffix)
TOKEN_TYPES: tuple[tuple[str, str, str, str], ...] = (
    ("uncached_input_tokens", "uncached_input_tokens", "input", "Input Tokens"),
    ("output_tokens", "output_tokens", "output", "Output Tokens"),
    ("cache_read_input_tokens", "cache_read_input_tokens", "cache_read", "Input Tokens, Cache Read"),
    ("cache_creation.ephemeral_5m_input_tokens", "cache_creation_5m", "cache_write_5m", "Cache Write (5m)"),
    ("cache_creation.ephemeral_1h_input_tokens", "cache_creation_1h", "cache_write_1h", "Cache Write (1h)"),
)


class UsageRow(NamedTuple):
    """The true usage of one workspace (None = the default workspace) on one model, one tier, one hour."""

    hour_start: datetime
    workspace_id: str | None
    model: str
    service_tier: str
    uncached_input_tokens: int
    cache_read_input_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    output_tokens: int
    web_search_requests: int
    # Kept apart since issue 13: the >200k premium, where inference ran, code execution.
    context_window: str = "0-200k"
    inference_geo: str = "global"
    code_execution_requests: int = 0

    @property
    def input_tokens(self) -> int:
        return self.uncached_input_tokens + self.cache_read_input_tokens + self.cache_write_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_creation_5m + self.cache_creation_1h


class CostRow(NamedTuple):
    """The true cost of one cost item (description) of one workspace on one UTC day."""

    day: datetime
    workspace_id: str | None
    description: str
    cost_type: str
    model: str | None
    token_type: str | None
    service_tier: str | None
    amount_cents: Decimal
    context_window: str | None = None
    inference_geo: str | None = None

    @property
    def amount(self) -> Decimal:
        """In dollars."""
        return self.amount_cents / 100


_usage_changes: Changes[UsageRow] = Changes()
_cost_changes: Changes[CostRow] = Changes()


def withdraw_cost(description: str) -> None:
    """From now on the cost report no longer holds the item `description` (a credited charge)."""
    _cost_changes.add(lambda row: None if row.description == description else row)


def withdraw_model(model: str) -> None:
    """From now on `model` has no usage and no cost at all."""
    _usage_changes.add(lambda row: None if row.model == model else row)
    _cost_changes.add(lambda row: None if row.model == model else row)


# What POST /_sandbox/changes may call (sandbox.app), by name. Modules that build on this one
# (sandbox/anthropic_analytics.py) add their routes, changes and change-clearers when imported.
CHANGES: dict[str, Callable[..., None]] = {"withdraw_cost": withdraw_cost, "withdraw_model": withdraw_model}
EXTRA_ROUTES: dict[str, Callable[[Request], Response]] = {}
EXTRA_CLEARS: list[Callable[[], None]] = []


def clear_changes() -> None:
    _usage_changes.clear()
    _cost_changes.clear()
    for clear in EXTRA_CLEARS:
        clear()


def _workspace_ids_at(hour_ts: int) -> list[str | None]:
    live = [
        w.id
        for w in WORKSPACES
        if epoch(w.created_at) <= hour_ts and (w.archived_at is None or hour_ts < epoch(w.archived_at))
    ]
    return [None, *live]


@lru_cache(maxsize=200_000)
def _hour_rows(hour_ts: int) -> tuple[UsageRow, ...]:
    if hour_ts < epoch(DATA_START) or digest("idle", hour_ts)[0] < 51:  # ~20 % of hours are idle
        return ()
    rows = []
    for workspace_id in _workspace_ids_at(hour_ts):
        for model in MODELS:
            d = digest(hour_ts, workspace_id or "default", model)
            if d[0] < 90:  # ~35 % of combinations are idle in a busy hour
                continue
            for tier in ("standard", "batch") if d[1] % 4 == 0 else ("standard",):
                e = digest(hour_ts, workspace_id or "default", model, tier)
                requests = 1 + e[0] % 30
                web = e[12] % 6 if tier == "standard" and e[13] % 4 == 0 else 0
                rows.append(
                    UsageRow(
                        from_epoch(hour_ts),
                        workspace_id,
                        model,
                        tier,
                        uncached_input_tokens=requests * (20 + int.from_bytes(e[1:3], "big") % 1500),
                        # Cache reads dominate real traffic: a reader of the wrong field under-counts a lot.
                        cache_read_input_tokens=requests * (int.from_bytes(e[3:5], "big") % 6000) if e[5] % 3 else 0,
                        cache_creation_5m=requests * e[6] * 8 if e[7] % 4 == 0 else 0,
                        cache_creation_1h=requests * e[8] * 12 if e[9] % 6 == 0 else 0,
                        output_tokens=requests * (30 + int.from_bytes(e[10:12], "big") % 900),
                        web_search_requests=web,
                        context_window="200k-1M" if e[14] % 5 == 0 else "0-200k",
                        inference_geo="us" if e[15] % 3 == 0 else "global",
                        code_execution_requests=e[17] % 4 if tier == "standard" and e[18] % 5 == 0 else 0,
                    )
                )
    return tuple(rows)


def _visible_until(now: datetime | None) -> int:
    """Hours starting before this instant are reported (ended at least REPORTING_DELAY ago)."""
    return epoch(now or utcnow()) - REPORTING_DELAY - HOUR + 1


def truth_usage(start: datetime, end: datetime, *, now: datetime | None = None) -> list[UsageRow]:
    """Hourly rows for hours starting in [start, end) that are already reported at `now`."""
    first = -(-epoch(start) // HOUR) * HOUR  # the first hour starting at or after `start`
    rows: list[UsageRow] = []
    for hour_ts in range(first, min(epoch(end), _visible_until(now)), HOUR):
        rows.extend(_hour_rows(hour_ts))
    return _usage_changes.apply(rows)


@lru_cache(maxsize=20_000)
def _day_costs(day_ts: int, hours: int) -> tuple[CostRow, ...]:
    tokens: dict[tuple[str | None, str, str, str, str], dict[str, int]] = {}
    searches: dict[str | None, int] = {}
    executions: dict[str | None, int] = {}
    for hour_ts in range(day_ts, day_ts + hours * HOUR, HOUR):
        for row in _hour_rows(hour_ts):
            key = (row.workspace_id, row.model, row.service_tier, row.context_window, row.inference_geo)
            t = tokens.setdefault(key, {})
            for _type, field, _price, _label in TOKEN_TYPES:
                t[field] = t.get(field, 0) + getattr(row, field)
            searches[row.workspace_id] = searches.get(row.workspace_id, 0) + row.web_search_requests
            executions[row.workspace_id] = executions.get(row.workspace_id, 0) + row.code_execution_requests
    rows = []
    for (workspace_id, model, tier, window, geo), counts in tokens.items():
        price = PRICES[model]
        factor = Decimal("0.5") if tier == "batch" else Decimal(1)
        factor *= Decimal(2) if window == "200k-1M" else Decimal(1)  # the long-context premium
        for token_type, field, price_field, label in TOKEN_TYPES:
            if counts[field]:
                cents = Decimal(counts[field]) * getattr(price, price_field) * factor / 10_000
                description = (f"{MODEL_NAMES[model]} Usage - {label}" + (" (Batch)" if tier == "batch" else "")
                               + (" (Long Context)" if window == "200k-1M" else "") + (" (US)" if geo == "us" else ""))  # fmt: skip
                rows.append(
                    CostRow(from_epoch(day_ts), workspace_id, description, "tokens", model, token_type, tier,
                            cents.quantize(CENT_PLACES, ROUND_HALF_UP), window, geo)
                )  # fmt: skip
    for workspace_id, count in searches.items():
        if count:
            rows.append(
                CostRow(
                    from_epoch(day_ts),
                    workspace_id,
                    "Web Search",
                    "web_search",
                    None,
                    None,
                    None,
                    count * WEB_SEARCH_CENTS,
                )
            )
    for workspace_id, count in executions.items():
        if count:
            rows.append(CostRow(from_epoch(day_ts), workspace_id, "Code Execution Usage", "code_execution", None, None, None,
                                count * CODE_EXECUTION_CENTS))  # fmt: skip
    return tuple(sorted(rows, key=lambda r: (r.workspace_id or "", r.description)))


def truth_costs(start: datetime, end: datetime, *, now: datetime | None = None) -> list[CostRow]:
    """Daily rows for UTC days starting in [start, end), priced from the hours of each day
    already reported at `now` (so today's costs grow during the day)."""
    visible = _visible_until(now)
    first = -(-epoch(start) // DAY) * DAY
    rows: list[CostRow] = []
    for day_ts in range(first, min(epoch(end), visible), DAY):
        hours = max(0, min(24, -(-(visible - day_ts) // HOUR)))
        rows.extend(_day_costs(day_ts, hours))
    return _cost_changes.apply(rows)


# ---------------------------------------------------------------- errors and headers
ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class _BadRequest(Exception):
    pass


def _error_json(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def error_body(status: int) -> dict[str, Any]:
    """The error JSON Anthropic sends for `status`; used for injected faults."""
    type_, message = ERROR_TYPES.get(status, ERROR_TYPES[500] if status >= 500 else ERROR_TYPES[400])
    return _error_json(type_, message)


def common_headers() -> dict[str, str]:
    return {"request-id": f"req_{uuid.uuid4().hex[:24]}", "anthropic-organization-id": ORGANIZATION_ID}


def _respond(status: int, payload: Any) -> Response:
    return json_response(status, payload, common_headers())


# ---------------------------------------------------------------- dispatch
def handle(request: Request) -> Response:
    routes: dict[str, Callable[[Request], Response]] = {
        "/v1/organizations/me": _me,
        "/v1/organizations/workspaces": _workspaces,
        "/v1/organizations/usage_report/messages": _usage,
        "/v1/organizations/cost_report": _costs,
        **EXTRA_ROUTES,
    }
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        return _respond(401, _error_json("authentication_error", "x-api-key header is required"))
    if not key.startswith("sk-ant-admin") or key == REVOKED_ADMIN_KEY:
        # Regular keys are refused like unknown ones (status unconfirmed upstream, likely 401).
        return _respond(401, _error_json("authentication_error", "invalid x-api-key"))
    if not request.headers.get("anthropic-version"):
        return _respond(400, _error_json("invalid_request_error", "anthropic-version: header is required"))
    route = routes.get(request.path.rstrip("/"))
    if route is None:
        return _respond(404, _error_json("not_found_error", f"Not found: {request.method} {request.path}"))
    if request.method != "GET":
        return _respond(405, _error_json("invalid_request_error", f"Method {request.method} not allowed"))
    try:
        return route(request)
    except _BadRequest as exc:
        return _respond(400, _error_json("invalid_request_error", str(exc)))


# ---------------------------------------------------------------- parameters and paging
WIDTHS = {"1m": 60, "1h": HOUR, "1d": DAY}
USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, maximum)
COSTS_LIMITS = (7, 31)
USAGE_GROUPS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo",
                "account_id", "service_account_id")  # fmt: skip
COSTS_GROUPS = ("workspace_id", "description")
# The usage row fields the sandbox splits by (each null unless grouped by).
KEPT_GROUPS = ("workspace_id", "model", "service_tier", "context_window", "inference_geo")


def iso(ts: int) -> str:
    return from_epoch(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(request: Request, name: str, required: bool) -> int | None:
    raw = request.arg(name)
    if not raw:
        if required:
            raise _BadRequest(f"{name}: Field required")
        return None
    invalid = f"{name}: Input should be a valid RFC 3339 datetime"
    return epoch(offset_time(raw, _BadRequest, invalid=invalid, no_offset=f"{name}: Timezone offset required"))


def _array(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    if name in request.query:
        raise _BadRequest(f"{name}: send arrays in the bracket form, {name}[]=…")
    values = request.query.get(f"{name}[]", [])
    for value in values:
        if allowed is not None and value not in allowed:
            raise _BadRequest(f"{name}[]: Input should be one of {', '.join(allowed)}; got {value!r}")
    return values


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.arg("limit")
    try:
        limit = int(raw) if raw else default
    except ValueError:
        raise _BadRequest("limit: Input should be a valid integer") from None
    if not 1 <= limit <= maximum:
        raise _BadRequest(f"limit: must be between 1 and {maximum} for this bucket width")
    return limit


def _cursor(ts: int) -> str:
    return "page_" + base64.b64encode(iso(ts).encode()).decode()


def _decode_cursor(token: str) -> int:
    try:
        return epoch(datetime.fromisoformat(base64.b64decode(token.removeprefix("page_"), validate=True).decode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _BadRequest("page: invalid page token") from None


def _paged(
    request: Request, width: int, limits: tuple[int, int], results: Callable[[int, int], list[dict[str, Any]]]
) -> Response:
    start = _time(request, "starting_at", True)
    end = _time(request, "ending_at", False) or epoch(utcnow())
    assert start is not None
    if end <= start:
        raise _BadRequest("ending_at: must be after starting_at")
    limit = _limit(request, *limits)
    first = start - start % width  # buckets snap to the start of the minute/hour/day in UTC
    if request.arg("page"):
        first = _decode_cursor(request.arg("page") or "")
        if first % width or not start - start % width <= first < end:
            raise _BadRequest("page: the page token does not belong to this query")
    starts = list(range(first, end, width)[: limit + 1])
    has_more = len(starts) > limit
    starts = starts[:limit]
    data = [{"starting_at": iso(s), "ending_at": iso(s + width), "results": results(s, s + width)} for s in starts]
    return _respond(
        200, {"data": data, "has_more": has_more, "next_page": _cursor(starts[-1] + width) if has_more else None}
    )


# ---------------------------------------------------------------- endpoints
def _usage(request: Request) -> Response:
    width_name = request.arg("bucket_width") or "1d"
    if width_name not in WIDTHS:
        raise _BadRequest(f"bucket_width: Input should be '1d', '1h' or '1m'; got {width_name!r}")
    if width_name == "1m":
        raise _BadRequest("bucket_width: minute buckets are not served by the sandbox")
    groups = _array(request, "group_by", USAGE_GROUPS)
    workspace_ids, models = set(_array(request, "workspace_ids")), set(_array(request, "models"))

    def results(start: int, stop: int) -> list[dict[str, Any]]:
        totals: dict[tuple[Any, ...], list[int]] = {}
        for row in truth_usage(from_epoch(start), from_epoch(stop)):
            if (workspace_ids and row.workspace_id not in workspace_ids) or (models and row.model not in models):
                continue
            key = tuple(getattr(row, g) if g in groups else None for g in KEPT_GROUPS)
            t = totals.setdefault(key, [0] * 7)
            for i, value in enumerate((row.uncached_input_tokens, row.cache_read_input_tokens, row.cache_creation_5m,
                                       row.cache_creation_1h, row.output_tokens, row.web_search_requests,
                                       row.code_execution_requests)):  # fmt: skip
                t[i] += value
        out = []
        for (workspace_id, model, tier, window, geo), t in sorted(
            totals.items(), key=lambda kv: tuple(v or "" for v in kv[0])
        ):
            out.append({
                "uncached_input_tokens": t[0],
                "cache_creation": {"ephemeral_1h_input_tokens": t[3], "ephemeral_5m_input_tokens": t[2]},
                "cache_read_input_tokens": t[1],
                "output_tokens": t[4],
                "server_tool_use": {"web_search_requests": t[5], "code_execution_requests": t[6]},
                "api_key_id": None, "workspace_id": workspace_id, "model": model, "service_tier": tier,
                "context_window": window, "inference_geo": geo,
            })  # fmt: skip
        return out

    return _paged(request, WIDTHS[width_name], USAGE_LIMITS[width_name], results)


def _costs(request: Request) -> Response:
    if (request.arg("bucket_width") or "1d") != "1d":
        raise _BadRequest("bucket_width: Input should be '1d'")
    groups = _array(request, "group_by", COSTS_GROUPS)
    by_description = "description" in groups

    def results(start: int, stop: int) -> list[dict[str, Any]]:
        totals: dict[tuple[Any, ...], Decimal] = {}
        for row in truth_costs(from_epoch(start), from_epoch(stop)):
            key = (row.workspace_id if "workspace_id" in groups else None,
                   *((row.description, row.cost_type, row.model, row.token_type, row.service_tier, row.context_window,
                      row.inference_geo) if by_description else (None,) * 7))  # fmt: skip
            totals[key] = totals.get(key, Decimal(0)) + row.amount_cents
        return [
            {
                "currency": "USD",
                "amount": f"{cents:f}",
                "workspace_id": workspace_id,
                "description": description,
                "cost_type": cost_type,
                "context_window": window,
                "model": model,
                "service_tier": tier,
                "token_type": token_type,
                "inference_geo": geo,
            }
            for (workspace_id, description, cost_type, model, token_type, tier, window, geo), cents in sorted(
                totals.items(), key=lambda kv: tuple(v or "" for v in kv[0])
            )
        ]

    return _paged(request, DAY, COSTS_LIMITS, results)


def _me(request: Request) -> Response:
    return _respond(200, {"id": ORGANIZATION_ID, "name": ORGANIZATION_NAME, "type": "organization"})


def _workspaces(request: Request) -> Response:
    limit = _limit(request, 20, 1000)
    include_archived = (request.arg("include_archived") or "").lower() in ("true", "1")
    workspaces = [w for w in WORKSPACES if include_archived or w.archived_at is None]
    if after := request.arg("after_id"):
        ids = [w.id for w in workspaces]
        if after not in ids:
            raise _BadRequest(f"after_id: no workspace {after!r}")
        workspaces = workspaces[ids.index(after) + 1 :]
    page = workspaces[:limit]
    data = [
        {
            "id": w.id,
            "type": "workspace",
            "name": w.name,
            "created_at": iso(epoch(w.created_at)),
            "archived_at": iso(epoch(w.archived_at)) if w.archived_at else None,
            "display_color": w.display_color,
        }
        for w in page
    ]
    return _respond(
        200,
        {
            "data": data,
            "has_more": len(workspaces) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        },
    )
