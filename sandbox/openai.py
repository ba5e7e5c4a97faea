"""A fake of OpenAI's organization admin API: usage (completions and the other usage
endpoints: embeddings, moderations, images, audio speeches and transcriptions, vector stores,
code interpreter sessions), costs and projects.

Data is deterministic: every (hour, project, model) gets its quantities from a SHA-256 of
those values, some hours have no usage at all, and only hours that have fully elapsed (by the
real clock) carry data. Tests import `truth_usage` / `truth_costs` to know the true totals;
the HTTP handlers build every response from the same two functions, so they cannot disagree.
`relabel_line_item` and `withdraw_model` change the answer from then on, as OpenAI restates
what it reported, and `deny_endpoint` makes one usage endpoint answer 403 "Missing scopes" as a
key with restricted permissions does (`clear_changes` undoes them).

Shapes follow the documented API, including its quirks: empty buckets are listed with
`results: []`, the first bucket starts at the requested `start_time` even when it is not on a
bucket boundary, `amount.value` of a cost is sometimes a JSON number and sometimes a string,
and every response carries `openai-organization` and `x-request-id` headers.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from itertools import islice
from typing import Any, NamedTuple

from sandbox.core import Changes, Request, Response, digest, epoch, from_epoch, json_response, utcnow

# ---------------------------------------------------------------- the fake organization
ORGANIZATION_ID = "org-sandboxDoow2024"
ADMIN_KEY = "sk-admin-sandbox-0123456789abcdefSECRET"
PROJECT_KEY = "sk-proj-sandbox-0123456789abcdefSECRET"
# A well-formed admin key the sandbox treats as revoked: a real 401 without injecting a fault.
REVOKED_ADMIN_KEY = "sk-admin-sandbox-revoked-000000000SECRET"
ADMIN_KEYS_PAGE = "https://platform.openai.com/settings/organization/admin-keys"

DATA_START = datetime(2024, 1, 1, tzinfo=UTC)  # the organization has no usage before this


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: int
    status: str = "active"
    archived_at: int | None = None


PROJECTS: tuple[Project, ...] = (
    Project("proj_sandboxAlpha0001", "Customer chatbot", 1704067200),
    Project("proj_sandboxBravo0002", "Internal search", 1704153600),
    Project("proj_sandboxCharlie03", "Data labelling", 1704240000),
)
MODELS: tuple[str, ...] = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "o3-mini-2025-01-31")


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Cache writes are billed at the input rate (part of "input")."""

    input: Decimal
    cached_input: Decimal
    output: Decimal


PRICES: dict[str, Price] = {
    "gpt-4o-2024-08-06": Price(Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4o-mini-2024-07-18": Price(Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    "o3-mini-2025-01-31": Price(Decimal("1.10"), Decimal("0.55"), Decimal("4.40")),
}
COST_PLACES = Decimal("0.000001")  # costs are rounded per (day, project, line item)
LINE_ITEM_KINDS: tuple[str, ...] = ("input", "cached input", "output")

HOUR = 3600
DAY = 86400


class UsageRow(NamedTuple):
    """The true usage of one project on one model in one hour."""

    hour_start: datetime
    project_id: str
    model: str
    input_tokens: int  # includes cached and cache-write tokens, as OpenAI reports it
    output_tokens: int
    input_cached_tokens: int
    input_cache_write_tokens: int
    num_model_requests: int
    input_audio_tokens: int = 0
    # How the requests were served (group_by service_tier / batch): each row is one of them.
    service_tier: str = "default"
    batch: bool = False


class CostRow(NamedTuple):
    """The true cost of one line item ("<model>, <kind>") of one project on one UTC day."""

    day: datetime  # UTC midnight
    project_id: str
    line_item: str
    amount: Decimal  # USD, rounded to COST_PLACES
    quantity: int = 0  # the tokens billed (costs' quantity / quantity_unit "tokens")
    api_key_id: str = ""  # the key the project's traffic used (group_by api_key_id)


# Each project sends its traffic with one key: costs grouped by api_key_id carry it.
API_KEY_IDS: dict[str, str] = {
    "proj_sandboxAlpha0001": "key_sandboxAlphaKey01",
    "proj_sandboxBravo0002": "key_sandboxBravoKey02",
    "proj_sandboxCharlie03": "key_sandboxCharlieK03",
}
SERVICE_TIERS: tuple[str, ...] = ("default", "default", "flex", "priority")


_usage_changes: Changes[UsageRow] = Changes()
_cost_changes: Changes[CostRow] = Changes()
_denied_endpoints: set[str] = set()


def relabel_line_item(old: str, new: str) -> None:
    """From now on the costs report line item `old` (e.g. "gpt-4o-2024-08-06, input") as `new`."""
    _cost_changes.add(lambda row: row._replace(line_item=new) if row.line_item == old else row)


def withdraw_model(model: str) -> None:
    """From now on `model` has no usage and no cost at all (as if it was never used)."""
    _usage_changes.add(lambda row: None if row.model == model else row)
    _cost_changes.add(lambda row: None if row.line_item.startswith(f"{model},") else row)


def deny_endpoint(endpoint: str) -> None:
    """From now on /organization/usage/<endpoint> answers 403 "Missing scopes", as it does for
    a key whose permissions leave that usage type out."""
    _denied_endpoints.add(endpoint)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {"relabel_line_item": relabel_line_item, "withdraw_model": withdraw_model, "deny_endpoint": deny_endpoint}


def clear_changes() -> None:
    _usage_changes.clear()
    _cost_changes.clear()
    _denied_endpoints.clear()


@lru_cache(maxsize=200_000)
def _hour_rows(hour_ts: int) -> tuple[UsageRow, ...]:
    if hour_ts < epoch(DATA_START):
        return ()
    if digest("idle", hour_ts)[0] < 51:  # ~20 % of hours: nobody used the API at all
        return ()
    rows = []
    for project in PROJECTS:
        if hour_ts < project.created_at:
            continue
        for model in MODELS:
            d = digest(hour_ts, project.id, model)
            if d[0] < 90:  # ~35 % of combinations are idle in a busy hour
                continue
            requests = 1 + d[1] % 40
            input_tokens = requests * (150 + int.from_bytes(d[2:4], "big") % 1800)
            cached = input_tokens * (d[4] % 60) // 100
            cache_write = input_tokens * (d[5] % 10) // 100 if d[6] % 3 == 0 else 0
            output_tokens = requests * (40 + int.from_bytes(d[7:9], "big") % 700)
            audio = requests * (d[9] % 50) if model.startswith("gpt-4o-2") and d[10] % 7 == 0 else 0
            tier, batch = SERVICE_TIERS[d[11] % len(SERVICE_TIERS)], d[12] % 5 == 0
            rows.append(
                UsageRow(
                    from_epoch(hour_ts),
                    project.id,
                    model,
                    input_tokens,
                    output_tokens,
                    cached,
                    cache_write,
                    requests,
                    audio,
                    tier,
                    batch,
                )
            )
    return tuple(rows)


def truth_usage(start: datetime, end: datetime, *, now: datetime | None = None) -> list[UsageRow]:
    """Hourly rows for hours starting in [start, end) that have fully elapsed before `now`."""
    now_ts = epoch(now or utcnow())
    first = -(-epoch(start) // HOUR) * HOUR  # the first hour starting at or after `start`
    rows: list[UsageRow] = []
    for hour_ts in range(first, min(epoch(end), now_ts - HOUR + 1), HOUR):
        rows.extend(_hour_rows(hour_ts))
    return _usage_changes.apply(rows)


@lru_cache(maxsize=20_000)
def _day_costs(day_ts: int, hours: int) -> tuple[CostRow, ...]:
    tokens: dict[tuple[str, str], list[int]] = {}
    for hour_ts in range(day_ts, day_ts + hours * HOUR, HOUR):
        for row in _hour_rows(hour_ts):
            t = tokens.setdefault((row.project_id, row.model), [0, 0, 0])
            t[0] += row.input_tokens - row.input_cached_tokens  # uncached input incl. cache writes
            t[1] += row.input_cached_tokens
            t[2] += row.output_tokens
    rows = []
    for (project_id, model), (uncached, cached, output) in sorted(tokens.items()):
        price = PRICES[model]
        for kind, count, rate in zip(
            LINE_ITEM_KINDS, (uncached, cached, output), (price.input, price.cached_input, price.output), strict=True
        ):
            if count:
                amount = (Decimal(count) * rate / 1_000_000).quantize(COST_PLACES, ROUND_HALF_UP)
                rows.append(
                    CostRow(from_epoch(day_ts), project_id, f"{model}, {kind}", amount, count, API_KEY_IDS[project_id])
                )
    return tuple(sorted(rows, key=lambda r: (r.project_id, r.line_item)))


def truth_costs(start: datetime, end: datetime, *, now: datetime | None = None) -> list[CostRow]:
    """Daily rows for UTC days starting in [start, end), priced from the hours of each day
    that have fully elapsed before `now` (so today's costs grow during the day)."""
    now_ts = epoch(now or utcnow())
    first = -(-epoch(start) // DAY) * DAY
    rows: list[CostRow] = []
    for day_ts in range(first, min(epoch(end), now_ts), DAY):
        hours = max(0, min(24, (now_ts - day_ts) // HOUR))
        rows.extend(_day_costs(day_ts, hours))
    return _cost_changes.apply(rows)


# ---------------------------------------------------------------- the other usage endpoints
@dataclass(frozen=True)
class UsageKind:
    """One of /organization/usage/<name> besides completions: its documented result object,
    the group_by values it accepts, its quantity fields, the model used (None: the result has
    no model) and the sources it is split by (images only)."""

    name: str
    groups: tuple[str, ...]
    fields: tuple[str, ...]
    model: str | None
    sources: tuple[str | None, ...] = (None,)


USAGE_KINDS: dict[str, UsageKind] = {
    k.name: k
    for k in (
        UsageKind("embeddings", ("project_id", "user_id", "api_key_id", "model"),
                  ("input_tokens", "num_model_requests"), "text-embedding-3-small"),
        UsageKind("moderations", ("project_id", "user_id", "api_key_id", "model"),
                  ("input_tokens", "num_model_requests"), "omni-moderation-latest"),
        UsageKind("images", ("project_id", "user_id", "api_key_id", "model", "size", "source"),
                  ("images", "num_model_requests"), "gpt-image-1", ("image.generation", "image.edit")),
        UsageKind("audio_speeches", ("project_id", "user_id", "api_key_id", "model"),
                  ("characters", "num_model_requests"), "gpt-4o-mini-tts"),
        UsageKind("audio_transcriptions", ("project_id", "user_id", "api_key_id", "model"),
                  ("seconds", "num_model_requests"), "whisper-1"),
        UsageKind("vector_stores", ("project_id",), ("usage_bytes",), None),
        UsageKind("code_interpreter_sessions", ("project_id",), ("num_sessions",), None),
    )
}  # fmt: skip


class KindRow(NamedTuple):
    """The true usage of one usage kind by one project (and image source) in one hour; for
    vector_stores, the bytes stored that UTC day (`hour_start` is its midnight)."""

    hour_start: datetime
    kind: str
    project_id: str
    model: str | None
    source: str | None
    values: tuple[int, ...]  # in UsageKind.fields order


def _kind_rows(kind: UsageKind, hour_ts: int) -> list[KindRow]:
    if hour_ts < epoch(DATA_START) or digest("idle", hour_ts)[0] < 51:
        return []
    rows = []
    for project in PROJECTS:
        if hour_ts < project.created_at:
            continue
        for source in kind.sources:
            d = digest(kind.name, hour_ts, project.id, source)
            if d[0] < 128:  # about half of the combinations are idle
                continue
            requests = 1 + d[1] % 20
            per_request = {"input_tokens": 20 + int.from_bytes(d[2:4], "big") % 900, "images": 1 + d[4] % 4,
                           "characters": 100 + int.from_bytes(d[5:7], "big") % 3000, "seconds": 5 + d[7] % 120}  # fmt: skip
            values = tuple(
                requests if field in ("num_model_requests", "num_sessions") else requests * per_request[field]
                for field in kind.fields
            )
            rows.append(KindRow(from_epoch(hour_ts), kind.name, project.id, kind.model, source, values))
    return rows


def _stored_bytes(day_ts: int) -> list[KindRow]:
    rows = []
    for project in PROJECTS:
        if day_ts < project.created_at - project.created_at % DAY:
            continue
        d = digest("vector_stores", day_ts, project.id)
        if d[0] < 64:  # some projects store nothing
            continue
        rows.append(
            KindRow(
                from_epoch(day_ts),
                "vector_stores",
                project.id,
                None,
                None,
                (int.from_bytes(d[1:5], "big") % 5_000_000_000,),
            )
        )
    return rows


def truth_kind(name: str, start: datetime, end: datetime, *, now: datetime | None = None) -> list[KindRow]:
    """Rows of usage kind `name` for hours (vector_stores: UTC days) starting in [start, end)
    that have fully elapsed before `now` (a day of stored bytes is known once it began)."""
    kind = USAGE_KINDS[name]
    now_ts = epoch(now or utcnow())
    if name == "vector_stores":
        first = -(-epoch(start) // DAY) * DAY
        return [row for day_ts in range(first, min(epoch(end), now_ts), DAY) for row in _stored_bytes(day_ts)]
    first = -(-epoch(start) // HOUR) * HOUR
    return [
        row for hour_ts in range(first, min(epoch(end), now_ts - HOUR + 1), HOUR) for row in _kind_rows(kind, hour_ts)
    ]


# ---------------------------------------------------------------- errors
class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _error_json(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _mask(key: str) -> str:
    # OpenAI echoes a masked key in its 401 message; only a prefix and the last 4 characters.
    return f"{key[:6]}{'*' * 10}{key[-4:]}" if len(key) >= 12 else "****"


MISSING_SCOPE_MESSAGE = (
    "You have insufficient permissions for this operation. Missing scopes: api.usage.read. "
    "Check that you have the correct role in your organization (Owner), and if you're using a "
    "restricted API key, that it has the necessary scopes."
)


def error_body(status: int) -> dict[str, Any]:
    """The error JSON OpenAI sends for `status`; used for injected faults."""
    if status == 401:
        return _error_json(
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    if status == 403:  # a 403 that is not about scopes
        return _error_json(
            "Country, region, or territory not supported",
            "request_forbidden",
            code="unsupported_country_region_territory",
        )
    if status == 404:
        return _error_json("Not found.")
    if status == 429:
        return _error_json(
            "Rate limit reached for requests to the admin API. Please try again later.",
            "requests",
            code="rate_limit_exceeded",
        )
    if status >= 500:
        return _error_json("The server had an error while processing your request. Sorry about that!", "server_error")
    return _error_json(f"Invalid request (HTTP {status}).")


def common_headers() -> dict[str, str]:
    return {
        "openai-organization": ORGANIZATION_ID,
        "x-request-id": f"req_{uuid.uuid4().hex}",
        "openai-version": "2020-10-01",
    }


def _respond(status: int, payload: Any) -> Response:
    return json_response(status, payload, common_headers())


# ---------------------------------------------------------------- dispatch
def handle(request: Request) -> Response:
    routes: dict[str, Callable[[Request], Response]] = {
        "/v1/organization/usage/completions": _completions,
        **{f"/v1/organization/usage/{name}": _kind_handler(name) for name in USAGE_KINDS},
        "/v1/organization/costs": _costs,
        "/v1/organization/projects": _projects,
    }
    denied = _authenticate(request)
    if denied is not None:
        return denied
    route = routes.get(request.path.rstrip("/"))
    if route is None:
        return _respond(404, _error_json(f"Invalid URL ({request.method} {request.path})"))
    if request.method != "GET":
        return _respond(405, _error_json(f"Method {request.method} not allowed for {request.path}"))
    try:
        return route(request)
    except _BadRequest as exc:
        return _respond(400, _error_json(exc.message, param=exc.param))


def _authenticate(request: Request) -> Response | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return _respond(
            401,
            _error_json(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            ),
        )
    if key.startswith("sk-admin-") and key != REVOKED_ADMIN_KEY:
        return None
    if key.startswith("sk-proj-"):
        return _respond(403, _error_json(MISSING_SCOPE_MESSAGE))
    return _respond(
        401,
        _error_json(
            f"Incorrect API key provided: {_mask(key)}. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        ),
    )


# ---------------------------------------------------------------- parameters and paging
WIDTHS = {"1m": 60, "1h": HOUR, "1d": DAY}
USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, maximum)
COSTS_LIMITS = (7, 180)


def _int_arg(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _BadRequest(f"Invalid value for '{name}': expected an integer, got {raw!r}.", name) from None


def _encode_cursor(kind: str, ts: int) -> str:
    return "page_" + base64.urlsafe_b64encode(f"{kind}:{ts}".encode()).decode()


def _decode_cursor(token: str, kind: str) -> int:
    try:
        got_kind, _, ts = base64.urlsafe_b64decode(token.removeprefix("page_").encode()).decode().partition(":")
        if got_kind != kind:
            raise ValueError
        return int(ts)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _BadRequest("Invalid 'page' cursor.", "page") from None


def _bucket_bounds(first: int, end: int, width: int) -> Iterator[tuple[int, int]]:
    # The first bucket starts exactly at `first` (the API's quirk for an unaligned start_time)
    # and ends at the next boundary; later ones are aligned.
    start = first
    while start < end:
        stop = start - start % width + width
        yield start, stop
        start = stop


def _paged_buckets(
    request: Request,
    kind: str,
    width: int,
    limits: tuple[int, int],
    results: Callable[[int, int, int], list[dict[str, Any]]],
) -> Response:
    start = _int_arg(request, "start_time")
    if start is None:
        raise _BadRequest("Missing required parameter: 'start_time'.", "start_time")
    end = _int_arg(request, "end_time", epoch(utcnow()))
    assert end is not None
    if end <= start:
        raise _BadRequest("'end_time' must be after 'start_time'.", "end_time")
    default_limit, max_limit = limits
    limit = _int_arg(request, "limit", default_limit)
    assert limit is not None
    if not 1 <= limit <= max_limit:
        raise _BadRequest(
            f"Invalid value for 'limit': must be between 1 and {max_limit} for this bucket width.", "limit"
        )
    first = start
    if request.arg("page"):
        first = _decode_cursor(request.arg("page") or "", kind)
        if not start <= first < end:
            raise _BadRequest("The 'page' cursor does not belong to this query.", "page")
    bounds = list(islice(_bucket_bounds(first, end, width), limit + 1))
    has_more = len(bounds) > limit
    bounds = bounds[:limit]
    data = [{"object": "bucket", "start_time": s, "end_time": e, "results": results(s, e, end)} for s, e in bounds]
    return _respond(
        200,
        {
            "object": "page",
            "data": data,
            "has_more": has_more,
            "next_page": _encode_cursor(kind, bounds[-1][1]) if has_more else None,
        },
    )


def _group_by(request: Request, allowed: Iterable[str]) -> list[str]:
    groups = request.args("group_by")
    for group in groups:
        if group not in allowed:
            raise _BadRequest(f"Invalid value for 'group_by': {group!r}.", "group_by")
    return groups


def _width(request: Request, allowed: tuple[str, ...], default: str) -> tuple[str, int]:
    width = request.arg("bucket_width") or default
    if width not in allowed:
        note = " (minute buckets are not served by the sandbox)" if width == "1m" else ""
        raise _BadRequest(
            f"Invalid value for 'bucket_width': {width!r}. Supported values are: {', '.join(allowed)}{note}.",
            "bucket_width",
        )
    return width, WIDTHS[width]


# ---------------------------------------------------------------- endpoints
COMPLETIONS_GROUPS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "input_cached_tokens",
    "input_cache_write_tokens",
    "input_audio_tokens",
    "num_model_requests",
)


def _completions(request: Request) -> Response:
    width_name, width = _width(request, ("1h", "1d"), "1d")
    groups = _group_by(request, COMPLETIONS_GROUPS)
    project_ids = set(request.args("project_ids"))
    models = set(request.args("models"))

    def results(start: int, stop: int, end: int) -> list[dict[str, Any]]:
        # Hourly truth is the finest grain: an unaligned first bucket holds its whole first hour.
        totals: dict[tuple[Any, ...], list[int]] = {}
        for row in truth_usage(from_epoch(start - start % HOUR), from_epoch(min(stop, end))):
            if (project_ids and row.project_id not in project_ids) or (models and row.model not in models):
                continue
            key = (
                row.project_id if "project_id" in groups else None,
                row.model if "model" in groups else None,
                row.service_tier if "service_tier" in groups else None,
                row.batch if "batch" in groups else None,
            )
            t = totals.setdefault(key, [0] * len(USAGE_FIELDS))
            for i, name in enumerate(USAGE_FIELDS):
                t[i] += getattr(row, name)
        out = []
        for (project_id, model, tier, batch), values in sorted(totals.items(), key=lambda kv: str(kv[0])):
            result: dict[str, Any] = {
                "object": "organization.usage.completions.result",
                **dict(zip(USAGE_FIELDS, values, strict=True)),
            }
            result["output_audio_tokens"] = 0
            # Optional fields are sometimes absent when zero (older API versions omit them).
            if result["input_cache_write_tokens"] == 0 and digest("omit", start, project_id, model)[0] % 2 == 0:
                del result["input_cache_write_tokens"]
            result.update({g: None for g in COMPLETIONS_GROUPS})
            result.update(project_id=project_id, model=model, service_tier=tier, batch=batch)
            out.append(result)
        return out

    return _paged_buckets(request, "usage", width, USAGE_LIMITS[width_name], results)


def _kind_handler(name: str) -> Callable[[Request], Response]:
    kind = USAGE_KINDS[name]

    def handler(request: Request) -> Response:
        if name in _denied_endpoints:
            return _respond(403, _error_json(MISSING_SCOPE_MESSAGE))
        width_name, width = _width(request, ("1h", "1d"), "1d")
        groups = _group_by(request, kind.groups)
        project_ids = set(request.args("project_ids"))

        def results(start: int, stop: int, end: int) -> list[dict[str, Any]]:
            if name == "vector_stores":  # a level, not a flow: the bytes stored on the bucket's day
                day = start - start % DAY
                rows = truth_kind(name, from_epoch(day), from_epoch(min(day + DAY, end)))
            else:
                rows = truth_kind(name, from_epoch(start - start % HOUR), from_epoch(min(stop, end)))
            totals: dict[tuple[Any, ...], list[int]] = {}
            for row in rows:
                if project_ids and row.project_id not in project_ids:
                    continue
                key = (
                    row.project_id if "project_id" in groups else None,
                    row.model if "model" in groups else None,
                    row.source if "source" in groups else None,
                )
                t = totals.setdefault(key, [0] * len(kind.fields))
                for i, value in enumerate(row.values):
                    t[i] += value
            out = []
            for (project_id, model, source), values in sorted(totals.items(), key=lambda kv: str(kv[0])):
                result: dict[str, Any] = {
                    "object": f"organization.usage.{name}.result",
                    **dict(zip(kind.fields, values, strict=True)),
                }
                result.update({g: None for g in kind.groups})
                result["project_id"] = project_id
                if "model" in kind.groups:
                    result["model"] = model
                if "source" in kind.groups:
                    result["source"] = source
                out.append(result)
            return out

        return _paged_buckets(request, name, width, USAGE_LIMITS[width_name], results)

    return handler


COSTS_GROUPS = ("project_id", "line_item", "api_key_id")


def _costs(request: Request) -> Response:
    _width(request, ("1d",), "1d")
    groups = _group_by(request, COSTS_GROUPS)
    project_ids = set(request.args("project_ids"))

    def results(start: int, stop: int, end: int) -> list[dict[str, Any]]:
        totals: dict[tuple[str | None, str | None, str | None], Decimal] = {}
        quantities: dict[tuple[str | None, str | None, str | None], int] = {}
        for row in truth_costs(from_epoch(start - start % DAY), from_epoch(min(stop, end))):
            if project_ids and row.project_id not in project_ids:
                continue
            key = (
                row.project_id if "project_id" in groups else None,
                row.line_item if "line_item" in groups else None,
                row.api_key_id if "api_key_id" in groups else None,
            )
            totals[key] = totals.get(key, Decimal(0)) + row.amount
            quantities[key] = quantities.get(key, 0) + row.quantity
        out = []
        for (project_id, line_item, api_key_id), amount in sorted(totals.items(), key=lambda kv: str(kv[0])):
            # The spec says number; the live API has been seen sending a string. Serve both.
            value: Any = str(amount) if digest("fmt", start, project_id, line_item)[0] % 3 == 0 else float(amount)
            result: dict[str, Any] = {
                "object": "organization.costs.result",
                "amount": {"value": value, "currency": "usd"},
                "line_item": line_item,
                "project_id": project_id,
            }
            if "api_key_id" in groups:
                result["api_key_id"] = api_key_id
            # Recent costs say what was billed, per line item: a quantity only makes sense then.
            if line_item is not None:
                result.update(quantity=quantities[(project_id, line_item, api_key_id)], quantity_unit="tokens")
            out.append(result)
        return out

    return _paged_buckets(request, "costs", DAY, COSTS_LIMITS, results)


def _projects(request: Request) -> Response:
    limit = _int_arg(request, "limit", 20)
    assert limit is not None
    if not 1 <= limit <= 100:
        raise _BadRequest("Invalid value for 'limit': must be between 1 and 100.", "limit")
    include_archived = (request.arg("include_archived") or "").lower() in ("true", "1")
    projects = [p for p in PROJECTS if include_archived or p.status == "active"]
    after = request.arg("after")
    if after:
        ids = [p.id for p in projects]
        if after not in ids:
            raise _BadRequest(f"No project found with id {after!r}.", "after")
        projects = projects[ids.index(after) + 1 :]
    page = projects[:limit]
    data = [
        {
            "id": p.id,
            "object": "organization.project",
            "name": p.name,
            "created_at": p.created_at,
            "archived_at": p.archived_at,
            "status": p.status,
        }
        for p in page
    ]
    return _respond(
        200,
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(projects) > limit,
        },
    )
