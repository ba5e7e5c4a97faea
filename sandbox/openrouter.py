"""A fake of OpenRouter's management API: `/activity`, `/key` and `/credits` under `/api/v1`.

Data is deterministic: every (UTC day, endpoint) gets its figures from a SHA-256 of those
values. One endpoint is busy every day (so any past day holds usage); the others are idle on
some days. Tests import `truth_activity` for the true figures; the handlers build every
response from the same function, so they cannot disagree.

Shapes and quirks follow the documented API: `/activity` has no pagination and serves only the
last 30 *completed* UTC days (today never appears); `date=YYYY-MM-DD` narrows it to one day;
`usage` and `byok_usage_inference` are USD as JSON numbers; `completion_tokens` already include
`reasoning_tokens`; errors are `{"error": {"code", "message", "metadata"?}}` with a numeric
code. An inference key gets 403 "Only management keys can perform this operation" from the
management endpoints but may read `/key`. Unconfirmed, and the sandbox's choice: a `date`
outside the 30-day horizon is answered 400 (the connector never asks for one), and every
response carries Cloudflare's `cf-ray` header, which the connector keeps as the request id.
`withdraw_endpoint` changes the answer from then on, as a restated day would
(`clear_changes` undoes it).
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from sandbox.core import Changes, Request, Response, digest, json_response, utcnow

# ---------------------------------------------------------------- keys
# OpenRouter keys share one prefix whatever their kind: only the API can tell them apart.
MANAGEMENT_KEY = "sk-or-v1-sandboxmgmt0123456789abcdef0123456789abcdef0123456789SECRET"
INFERENCE_KEY = "sk-or-v1-sandboxinference0123456789abcdef0123456789abcdef0SECRET"
# A well-formed management key the sandbox treats as revoked: a real 401 without a fault.
REVOKED_KEY = "sk-or-v1-sandboxrevoked000000000000000000000000000000000000SECRET"
KEY_LABEL = "doow-usage-sync"
CREATOR_USER_ID = "user_2sandboxDoowOpenRouter0001"
BASE_PATH = "/api/v1"
NOT_MANAGEMENT_MESSAGE = "Only management keys can perform this operation"
HISTORY_DAYS = 30  # the API serves the last 30 completed UTC days
TOTAL_CREDITS = Decimal("500.00")

DATA_START = date(2024, 6, 1)  # the account has no activity before this day
USD_PLACES = Decimal("0.00000001")
BYOK_FEE = Decimal("0.05")  # OpenRouter's fee on BYOK requests, charged in credits


class Endpoint(NamedTuple):
    model: str
    model_permaslug: str
    provider_name: str
    endpoint_id: str
    input_price: Decimal  # USD per million prompt tokens
    output_price: Decimal  # USD per million completion tokens
    reasoning: bool = False  # a reasoning model: part of its completion tokens are reasoning
    byok: bool = False  # served with the customer's own provider key


ENDPOINTS: tuple[Endpoint, ...] = (
    # The first endpoint is busy every day: any past day in the horizon holds usage.
    Endpoint("openai/gpt-4.1", "openai/gpt-4.1-2025-04-14", "OpenAI",
             "0b6f7d1e-4c0a-4a57-9a0e-5d1c3f1e0a01", Decimal("2.00"), Decimal("8.00")),
    Endpoint("anthropic/claude-sonnet-4", "anthropic/claude-4-sonnet-20250522", "Anthropic",
             "1c2e8f3a-5d1b-4b68-8b1f-6e2d4a2f1b02", Decimal("3.00"), Decimal("15.00")),
    Endpoint("anthropic/claude-sonnet-4", "anthropic/claude-4-sonnet-20250522", "Amazon Bedrock",
             "2d3f9a4b-6e2c-4c79-9c2a-7f3e5b3a2c03", Decimal("3.00"), Decimal("15.00")),
    Endpoint("deepseek/deepseek-r1", "deepseek/deepseek-r1", "DeepInfra",
             "3e4a0b5c-7f3d-4d8a-8d3b-8a4f6c4b3d04", Decimal("0.45"), Decimal("2.15"), reasoning=True),
    Endpoint("deepseek/deepseek-r1", "deepseek/deepseek-r1", "Together",
             "4f5b1c6d-8a4e-4e9b-9e4c-9b5a7d5c4e05", Decimal("3.00"), Decimal("7.00"), reasoning=True),
    Endpoint("meta-llama/llama-3.3-70b-instruct:free", "meta-llama/llama-3.3-70b-instruct", "Chutes",
             "5a6c2d7e-9b5f-4fac-8f5d-ac6b8e6d5f06", Decimal(0), Decimal(0)),
    Endpoint("openai/o4-mini", "openai/o4-mini-2025-04-16", "OpenAI",
             "6b7d3e8f-ac6a-4abd-9a6e-bd7c9f7e6a07", Decimal("1.10"), Decimal("4.40"), reasoning=True, byok=True),
)  # fmt: skip


class ActivityRow(NamedTuple):
    """The true activity of one endpoint on one UTC day, as `/activity` reports it."""

    date: date
    model: str
    model_permaslug: str
    endpoint_id: str
    provider_name: str
    usage: Decimal  # USD of OpenRouter credits spent
    byok_usage_inference: Decimal  # USD spent on the customer's own provider key (BYOK)
    requests: int
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included
    reasoning_tokens: int


def _usd(amount: Decimal) -> Decimal:
    return amount.quantize(USD_PLACES, ROUND_HALF_UP)


@lru_cache(maxsize=20_000)
def _day_rows(day: date) -> tuple[ActivityRow, ...]:
    if day < DATA_START:
        return ()
    rows = []
    for i, ep in enumerate(ENDPOINTS):
        d = digest(day.isoformat(), ep.endpoint_id)
        if i > 0 and d[0] < 100:  # ~40 % of the other endpoints are idle on a given day
            continue
        requests = 1 + d[1] % 60
        prompt = requests * (200 + int.from_bytes(d[2:4], "big") % 2800)
        completion = requests * (50 + int.from_bytes(d[4:6], "big") % 1200)
        reasoning = completion * (20 + d[6] % 60) // 100 if ep.reasoning else 0
        price = _usd((prompt * ep.input_price + completion * ep.output_price) / 1_000_000)
        usage, byok = (_usd(price * BYOK_FEE), price) if ep.byok else (price, Decimal(0))
        rows.append(
            ActivityRow(day, ep.model, ep.model_permaslug, ep.endpoint_id, ep.provider_name,
                        usage, byok, requests, prompt, completion, reasoning)
        )  # fmt: skip
    return tuple(rows)


_changes: Changes[ActivityRow] = Changes()


def withdraw_endpoint(endpoint_id: str) -> None:
    """From now on the endpoint `endpoint_id` reports no activity on any day (e.g. its requests
    were refunded and re-attributed)."""
    _changes.add(lambda row: None if row.endpoint_id == endpoint_id else row)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {"withdraw_endpoint": withdraw_endpoint}


clear_changes = _changes.clear


def _rows(day: date) -> list[ActivityRow]:
    return _changes.apply(_day_rows(day))


def history(now: datetime | None = None) -> tuple[date, date]:
    """(first, last) UTC day `/activity` serves at `now`: the last 30 completed days."""
    today = (now or utcnow()).astimezone(UTC).date()
    return today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1)


def truth_activity(start: datetime, end: datetime, *, now: datetime | None = None) -> list[ActivityRow]:
    """Rows of the UTC days starting in [start, end) that `/activity` serves at `now`."""
    first, last = history(now)
    day = start.astimezone(UTC).date()
    if datetime(day.year, day.month, day.day, tzinfo=UTC) < start:
        day += timedelta(days=1)
    rows: list[ActivityRow] = []
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < end:
        if first <= day <= last:
            rows.extend(_rows(day))
        day += timedelta(days=1)
    return rows


# ---------------------------------------------------------------- errors
def _error_json(status: int, message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


def error_body(status: int) -> dict[str, Any]:
    """The error JSON OpenRouter sends for `status`; used for injected faults."""
    messages = {
        400: "Invalid request",
        401: "User not found.",
        403: NOT_MANAGEMENT_MESSAGE,
        404: "Not Found",
        429: "Rate limit exceeded",
    }
    if status >= 500:
        return _error_json(status, "Internal Server Error")
    return _error_json(status, messages.get(status, f"Request failed (HTTP {status})"))


def common_headers() -> dict[str, str]:
    return {"cf-ray": f"{secrets.token_hex(8)}-FRA"}


def _respond(status: int, payload: Any) -> Response:
    return json_response(status, payload, common_headers())


# ---------------------------------------------------------------- dispatch
def handle(request: Request) -> Response:
    path = request.path.rstrip("/")
    routes = {f"{BASE_PATH}/activity": _activity, f"{BASE_PATH}/key": _key, f"{BASE_PATH}/credits": _credits}
    route = routes.get(path)
    if route is None:
        return _respond(404, _error_json(404, "Not Found"))
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or key not in (MANAGEMENT_KEY, INFERENCE_KEY):
        return _respond(401, _error_json(401, "No auth credentials found" if not key else "User not found."))
    if request.method != "GET":
        return _respond(405, _error_json(405, f"Method {request.method} not allowed"))
    if key == INFERENCE_KEY and route is not _key:  # /key describes any key, of any kind
        return _respond(403, _error_json(403, NOT_MANAGEMENT_MESSAGE))
    return route(request)


def _activity(request: Request) -> Response:
    first, last = history()
    raw = request.arg("date")
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            return _respond(400, _error_json(400, "Invalid date format, expected YYYY-MM-DD"))
        if not first <= day <= last:
            return _respond(400, _error_json(400, "Date must be within the last 30 completed UTC days"))
        days = [day]
    else:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    rows = [row for day in days for row in _rows(day)]
    # Newest first, as the dashboard lists it: the connector must not rely on any order.
    rows.sort(key=lambda r: (r.date, r.usage), reverse=True)
    return _respond(200, {"data": [_row_json(r) for r in rows]})


def _row_json(row: ActivityRow) -> dict[str, Any]:
    return {
        "date": row.date.isoformat(),
        "model": row.model,
        "model_permaslug": row.model_permaslug,
        "endpoint_id": row.endpoint_id,
        "provider_name": row.provider_name,
        "usage": float(row.usage),
        "byok_usage_inference": float(row.byok_usage_inference),
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
    }


def _spent(days: int) -> Decimal:
    today = utcnow().date()
    return sum((r.usage for i in range(1, days + 1) for r in _rows(today - timedelta(days=i))), Decimal(0))


def _key(request: Request) -> Response:
    management = request.headers["authorization"].partition(" ")[2].strip() == MANAGEMENT_KEY
    month = float(_spent(30))
    return _respond(
        200,
        {
            "data": {
                "label": KEY_LABEL if management else "sk-or-v1-san...ET",
                "limit": None if management else 100,
                "limit_remaining": None if management else 74.5,
                "limit_reset": None if management else "monthly",
                "include_byok_in_limit": False,
                "usage": month,
                "usage_daily": float(_spent(1)),
                "usage_weekly": float(_spent(7)),
                "usage_monthly": month,
                "byok_usage": 0,
                "is_free_tier": False,
                "is_management_key": management,
                "is_provisioning_key": management,  # the deprecated name of the same flag
                "creator_user_id": CREATOR_USER_ID,
                "expires_at": None,
                "rate_limit": {
                    "requests": -1,
                    "interval": "10s",
                    "note": "This field is deprecated and safe to ignore.",
                },
            }
        },
    )


def _credits(request: Request) -> Response:
    return _respond(200, {"data": {"total_credits": float(TOTAL_CREDITS), "total_usage": float(_spent(30))}})
