"""A fake of Fireworks AI's account usage APIs: `billingUsage` (JSON) and `metrics` (Prometheus text).

Data is deterministic. Serverless tokens per (hour, model) and accelerator seconds per (hour,
deployment) come from SHA-256 digests; only hours that have fully elapsed by `clock()` count,
so today's daily rows grow during the day. Metric rates per deployment are a pure function of
the 30-second slot of `clock()` (Fireworks refreshes them every 30 s). Tests import the
`truth_*` functions; the handlers build every response from them, so they cannot disagree.
`clock` is a module attribute so an in-process test can freeze or advance the sandbox's time.
`withdraw_model` and `withdraw_deployment` change the billing answer from then on, as a
restated bill would (`clear_changes` undoes them).

Shapes follow the documented API as a gRPC gateway serves it: int64 counts as JSON strings,
fields holding their default value (0, "", empty list) left out, errors as
`{"code", "message", "details"}`. The metrics endpoint allows 6 requests a minute per account
and answers 429 beyond (with Retry-After: sandbox choice, the real header is unconfirmed).
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from sandbox.core import Changes, Request, Response, digest, epoch, from_epoch, json_response, offset_time, utcnow

# ---------------------------------------------------------------- the fake account
ACCOUNT_ID = "doow-sandbox"
OTHER_ACCOUNT_ID = "globex-sandbox"  # exists, but the sandbox key has no access to it
API_KEY = "fw_sandbox0123456789abcdefSECRET"
OTHER_ACCOUNT_KEY = "fw_sandboxGlobex0123456789SECRET"  # a valid key of OTHER_ACCOUNT_ID
REVOKED_KEY = "fw_sandboxRevoked0000000000SECRET"  # well-formed, but answered 401
KEY_ACCOUNTS = {API_KEY: ACCOUNT_ID, OTHER_ACCOUNT_KEY: OTHER_ACCOUNT_ID}

DATA_START = datetime(2024, 1, 1, tzinfo=UTC)
SERVERLESS_MODELS: tuple[str, ...] = (
    "accounts/fireworks/models/llama-v3p1-8b-instruct",
    "accounts/fireworks/models/deepseek-v3",
    "accounts/fireworks/models/nomic-embed-text-v1p5",  # embeddings: no completion tokens
)
EMBEDDING_MODELS = {"accounts/fireworks/models/nomic-embed-text-v1p5"}


@dataclass(frozen=True)
class Deployment:
    id: str
    base_model: str
    accelerator_type: str
    placement: str
    accelerators: int  # per replica


# Two deployments share a base model: the connector aggregates metrics by base_model.
DEPLOYMENTS: tuple[Deployment, ...] = (
    Deployment("chat-us", "accounts/fireworks/models/llama-v3p3-70b-instruct", "NVIDIA_H100_80GB", "US", 2),
    Deployment("chat-eu", "accounts/fireworks/models/llama-v3p3-70b-instruct", "NVIDIA_H100_80GB", "EUROPE", 2),
    Deployment("coder", "accounts/fireworks/models/qwen2p5-coder-32b-instruct", "NVIDIA_A100_80GB", "US", 1),
)
SERIES = (
    "tokens_prompt_total:sum_by_deployment",
    "tokens_cached_prompt_total:sum_by_deployment",
    "request_counter_total:sum_by_deployment",
)
METRICS_LIMIT, METRICS_PERIOD = 6, 60.0  # requests per seconds, per account
MAX_SPAN = timedelta(days=31)
HOUR, DAY, SLOT = 3600, 86400, 30


clock: Callable[[], datetime] = utcnow  # the sandbox's "now"; tests may replace it


class ServerlessDay(NamedTuple):
    day: datetime  # UTC midnight
    model: str
    prompt_tokens: int
    completion_tokens: int


class DedicatedDay(NamedTuple):
    day: datetime
    deployment: Deployment
    accelerator_seconds: int


class TrainingDay(NamedTuple):
    day: datetime
    model: str  # the base model fine-tuned
    training_tokens: int
    accelerator_seconds: int  # GPU-billed jobs (reinforcement fine-tuning); 0 for token-billed SFT


# Fine-tuning jobs: SFT billed per training token; RFT also by GPU time on this accelerator.
TRAINING_MODELS: tuple[str, ...] = (
    "accounts/fireworks/models/llama-v3p1-8b-instruct",
    "accounts/fireworks/models/qwen2p5-7b-instruct",
)
RFT_MODELS = {"accounts/fireworks/models/qwen2p5-7b-instruct"}
TRAINING_ACCELERATOR = "NVIDIA_H100_80GB"


class Rates(NamedTuple):
    """Per-second rates of one deployment, as its three series report them."""

    prompt_tokens: Decimal
    cached_prompt_tokens: Decimal
    requests: Decimal


# ---------------------------------------------------------------- restatements
_serverless_changes: Changes[ServerlessDay] = Changes()
_dedicated_changes: Changes[DedicatedDay] = Changes()


def withdraw_model(model: str) -> None:
    """From now on the bill holds no serverless usage of `model` (e.g. refunded)."""
    _serverless_changes.add(lambda row: None if row.model == model else row)


_undated = threading.Event()


def omit_row_times() -> None:
    """From now on billing rows come without startTime/endTime (seen on some answers): a client
    can place them only by asking for one day at a time."""
    _undated.set()


def withdraw_deployment(deployment_id: str) -> None:
    """From now on the bill holds no accelerator time of the deployment `deployment_id`."""
    _dedicated_changes.add(lambda row: None if row.deployment.id == deployment_id else row)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {
    "withdraw_model": withdraw_model,
    "withdraw_deployment": withdraw_deployment,
    "omit_row_times": omit_row_times,
}


def clear_changes() -> None:
    _undated.clear()
    _serverless_changes.clear()
    _dedicated_changes.clear()


# ---------------------------------------------------------------- truth
@lru_cache(maxsize=100_000)
def _serverless_hour(hour_ts: int) -> tuple[tuple[str, int, int], ...]:
    if hour_ts < epoch(DATA_START) or digest("fw-idle", hour_ts)[0] < 38:  # ~15 % idle hours
        return ()
    rows = []
    for model in SERVERLESS_MODELS:
        d = digest("fw", hour_ts, model)
        if d[0] < 77:  # ~30 % of models idle in a busy hour
            continue
        requests = 1 + d[1] % 60
        prompt = requests * (120 + int.from_bytes(d[2:4], "big") % 3000)
        completion = 0 if model in EMBEDDING_MODELS else requests * (20 + int.from_bytes(d[4:6], "big") % 800)
        rows.append((model, prompt, completion))
    return tuple(rows)


def _replicas(deployment: Deployment, hour_ts: int) -> int:
    """Replicas running in that hour: 0 (scaled to zero, ~20 %), 1 or 2."""
    if hour_ts < epoch(DATA_START):
        return 0
    d = digest("fw-replicas", hour_ts, deployment.id)
    return 0 if d[0] < 51 else 1 + d[1] % 2


def _elapsed_hours(start: datetime, end: datetime, now: datetime | None) -> range:
    """Hours starting in [start, end) that have fully elapsed by `now` (the sandbox clock)."""
    now_ts = epoch(now or clock())
    first = -(-epoch(start) // HOUR) * HOUR
    return range(first, min(epoch(end), now_ts - HOUR + 1), HOUR)


def truth_serverless(start: datetime, end: datetime, *, now: datetime | None = None) -> list[ServerlessDay]:
    """Serverless tokens per UTC day and model, from the elapsed hours of [start, end)."""
    totals: dict[tuple[int, str], list[int]] = {}
    for hour_ts in _elapsed_hours(start, end, now):
        for model, prompt, completion in _serverless_hour(hour_ts):
            t = totals.setdefault((hour_ts - hour_ts % DAY, model), [0, 0])
            t[0] += prompt
            t[1] += completion
    return _serverless_changes.apply(
        ServerlessDay(from_epoch(day), model, p, c) for (day, model), (p, c) in sorted(totals.items())
    )


def truth_dedicated(start: datetime, end: datetime, *, now: datetime | None = None) -> list[DedicatedDay]:
    """Accelerator seconds per UTC day and deployment, from the elapsed hours of [start, end)."""
    totals: dict[tuple[int, int], int] = {}
    for hour_ts in _elapsed_hours(start, end, now):
        for i, deployment in enumerate(DEPLOYMENTS):
            seconds = _replicas(deployment, hour_ts) * deployment.accelerators * HOUR
            if seconds:
                key = (hour_ts - hour_ts % DAY, i)
                totals[key] = totals.get(key, 0) + seconds
    return _dedicated_changes.apply(
        DedicatedDay(from_epoch(day), DEPLOYMENTS[i], s) for (day, i), s in sorted(totals.items())
    )


def truth_training(start: datetime, end: datetime, *, now: datetime | None = None) -> list[TrainingDay]:
    """Fine-tuning per UTC day and base model, from the elapsed hours of [start, end): a job
    runs in ~10 % of hours per model."""
    totals: dict[tuple[int, str], list[int]] = {}
    for hour_ts in _elapsed_hours(start, end, now):
        for model in TRAINING_MODELS:
            d = digest("fw-train", hour_ts, model)
            if d[0] >= 26:
                continue
            t = totals.setdefault((hour_ts - hour_ts % DAY, model), [0, 0])
            t[0] += 100_000 + int.from_bytes(d[1:4], "big") % 4_000_000
            if model in RFT_MODELS:
                t[1] += 8 * (600 + int.from_bytes(d[4:6], "big") % 3000)
    return [TrainingDay(from_epoch(day), model, tok, sec) for (day, model), (tok, sec) in sorted(totals.items())]


def truth_rates(at: datetime) -> dict[str, Rates]:
    """Each deployment's rates at `at`: constant within a 30-second slot, 0 while scaled to zero."""
    slot = epoch(at) // SLOT
    hour_ts = epoch(at) // HOUR * HOUR
    out = {}
    for deployment in DEPLOYMENTS:
        replicas = _replicas(deployment, hour_ts)
        d = digest("fw-rate", slot, deployment.id)
        prompt = Decimal(10_000 + int.from_bytes(d[0:2], "big") % 290_000) / 100 * replicas
        cached = (prompt * (d[2] % 81) / 100).quantize(Decimal("0.01"), ROUND_DOWN)
        requests = Decimal(10 + d[3] % 490) / 100 * replicas
        out[deployment.id] = Rates(prompt, cached, requests)
    return out


# ---------------------------------------------------------------- errors
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4}


def _error_json(status: int, message: str) -> dict[str, Any]:
    return {"code": GRPC_CODES.get(status, 2), "message": message, "details": []}


def error_body(status: int) -> dict[str, Any]:
    """The error JSON the gateway sends for `status`; used for injected faults."""
    messages = {
        401: "unauthenticated: invalid API key",
        403: "permission denied",
        404: "not found",
        429: "rate limit exceeded, please retry later",
        503: "service unavailable",
    }
    default = "internal error" if status >= 500 else f"request failed (HTTP {status})"
    return _error_json(status, messages.get(status, default))


def common_headers() -> dict[str, str]:
    return {"x-request-id": uuid.uuid4().hex}


def _respond(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, payload, {**common_headers(), **(headers or {})})


def _fail(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _respond(status, _error_json(status, message), headers)


# ---------------------------------------------------------------- dispatch
_PATH_RE = re.compile(r"^/v1/accounts/([^/]+)/(billingUsage|metrics)$")


def handle(request: Request) -> Response:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key_account = KEY_ACCOUNTS.get(key.strip()) if scheme.lower() == "bearer" else None
    if key_account is None:
        return _fail(401, "unauthenticated: missing or invalid API key")
    match = _PATH_RE.match(request.path.rstrip("/"))
    if match is None:
        return _fail(404, f"no route for {request.method} {request.path}")
    if request.method != "GET":
        return _fail(405, f"method {request.method} not allowed")
    account, resource = match.groups()
    if account not in KEY_ACCOUNTS.values():
        return _fail(404, f"account {account!r} not found")
    if account != key_account:
        return _fail(403, f"permission denied: the API key has no access to account {account!r}")
    if resource == "metrics":
        return _metrics(account)
    try:
        return _billing_usage(request, account)
    except _BadRequest as exc:
        return _fail(400, str(exc))


class _BadRequest(Exception):
    pass


# ---------------------------------------------------------------- billingUsage
GROUPS = {
    "SERVERLESS": {"model_name", "api_key_id", "api_key_name"},
    "DEDICATED_DEPLOYMENT": {"deployment_name", "accelerator_type"},
    "TRAINING": set(),
}
ANNOTATION_GROUPS = {"annotations.team", "annotations.project", "annotations.environment"}


def _time_arg(request: Request, name: str) -> datetime:
    raw = request.arg(name)
    if not raw:
        raise _BadRequest(f"invalid argument: {name} is required")
    invalid = f"invalid argument: {name} {raw!r} is not an RFC 3339 timestamp"
    no_offset = f"invalid argument: {name} needs a time zone offset"
    return offset_time(raw, _BadRequest, invalid=invalid, no_offset=no_offset).astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(day: datetime, start: datetime, end: datetime) -> dict[str, str]:
    return {"startTime": _rfc3339(max(day, start)), "endTime": _rfc3339(min(day + timedelta(days=1), end))}


def _billing_usage(request: Request, account: str) -> Response:
    start, end = _time_arg(request, "startTime"), _time_arg(request, "endTime")
    if end <= start:
        raise _BadRequest("invalid argument: start_time must be before end_time")
    if end - start > MAX_SPAN:
        raise _BadRequest("invalid argument: end_time must not be more than 31 days after start_time")
    usage_type = request.arg("usageType") or "USAGE_TYPE_UNSPECIFIED"
    if usage_type != "USAGE_TYPE_UNSPECIFIED" and usage_type not in GROUPS:
        raise _BadRequest(f"invalid argument: unknown usage_type {usage_type!r}")
    allowed = ANNOTATION_GROUPS | (
        set().union(*GROUPS.values()) if usage_type == "USAGE_TYPE_UNSPECIFIED" else GROUPS[usage_type]
    )
    for group in request.args("groupBy"):
        if group not in allowed:
            raise _BadRequest(f"invalid argument: cannot group {usage_type} usage by {group!r}")
    if (request.arg("timezone") or "UTC") != "UTC":
        raise _BadRequest("invalid argument: the sandbox serves timezone UTC only")
    body: dict[str, Any] = {}
    if usage_type in ("USAGE_TYPE_UNSPECIFIED", "SERVERLESS"):
        groups = request.args("groupBy")
        if "api_key_id" in groups or "api_key_name" in groups:
            body["serverlessCosts"] = [item for row in truth_serverless(start, end)
                                       for item in _serverless_by_key_json(row, start, end, groups)]  # fmt: skip
        else:
            body["serverlessCosts"] = [_serverless_json(row, start, end) for row in truth_serverless(start, end)]
    if usage_type in ("USAGE_TYPE_UNSPECIFIED", "DEDICATED_DEPLOYMENT"):
        body["dedicatedCosts"] = [_dedicated_json(row, start, end, account) for row in truth_dedicated(start, end)]
    if usage_type in ("USAGE_TYPE_UNSPECIFIED", "TRAINING"):
        body["trainingCosts"] = [_training_json(row, start, end) for row in truth_training(start, end)]
    if _undated.is_set():
        for rows in body.values():
            for row in rows:
                row.pop("startTime", None)
                row.pop("endTime", None)
    # proto3 JSON: an empty repeated field is left out, not sent as [].
    return _respond(200, {k: v for k, v in body.items() if v})


# The account's API keys (id, name); grouped by api_key_id / api_key_name, each serverless day
# of a model is split between them (the split is part of the truth: `serverless_by_key`).
SERVERLESS_KEYS: tuple[tuple[str, str], ...] = (
    ("key_sandboxProd0001", "production"),
    ("key_sandboxJobs0002", "batch-jobs"),
)


def serverless_by_key(row: ServerlessDay) -> list[tuple[str, str, int, int]]:
    """(api key id, api key name, prompt tokens, completion tokens) of one true serverless day."""
    share = digest("fw-key", epoch(row.day), row.model)[0] % 101  # percent sent with the first key
    first = (row.prompt_tokens * share // 100, row.completion_tokens * share // 100)
    parts = ((*SERVERLESS_KEYS[0], *first),
             (*SERVERLESS_KEYS[1], row.prompt_tokens - first[0], row.completion_tokens - first[1]))  # fmt: skip
    return [part for part in parts if part[2] or part[3]]


def _serverless_by_key_json(
    row: ServerlessDay, start: datetime, end: datetime, groups: list[str]
) -> list[dict[str, Any]]:
    out = []
    for key_id, key_name, prompt, completion in serverless_by_key(row):
        item = _serverless_json(row._replace(prompt_tokens=prompt, completion_tokens=completion), start, end)
        item["group"] = {
            **item["group"],
            **{g: v for g, v in (("api_key_id", key_id), ("api_key_name", key_name)) if g in groups},
        }
        if "api_key_id" in groups:
            item["apiKeyId"] = key_id  # deprecated top-level copy, only when grouped by it
        out.append(item)
    return out


def _serverless_json(row: ServerlessDay, start: datetime, end: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"modelName": row.model, "promptTokens": str(row.prompt_tokens)}
    if row.completion_tokens:  # a zero count is omitted, as proto3 JSON does
        out["completionTokens"] = str(row.completion_tokens)
    return {
        **out,
        **_span(row.day, start, end),
        "usageType": "TEXT_COMPLETION_INFERENCE_USAGE",
        "group": {"model_name": row.model},
    }


def _dedicated_json(row: DedicatedDay, start: datetime, end: datetime, account: str) -> dict[str, Any]:
    deployment = row.deployment
    return {
        "deploymentId": deployment.id,
        "acceleratorType": deployment.accelerator_type,
        "acceleratorSeconds": str(row.accelerator_seconds),
        **_span(row.day, start, end),
        "baseModel": deployment.base_model,
        "placement": deployment.placement,
        "group": {
            "deployment_name": f"accounts/{account}/deployments/{deployment.id}",
            "accelerator_type": deployment.accelerator_type,
        },
    }


def _training_json(row: TrainingDay, start: datetime, end: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"baseModel": row.model, "trainingTokens": str(row.training_tokens)}
    if row.accelerator_seconds:  # proto3 JSON leaves out 0 and ""
        out |= {"acceleratorType": TRAINING_ACCELERATOR, "acceleratorSeconds": str(row.accelerator_seconds)}
    return {**out, **_span(row.day, start, end), "usageType": "TRAINING"}


# ---------------------------------------------------------------- metrics
_limit_lock = threading.Lock()
_metrics_calls: dict[str, deque[float]] = {}


def reset_metrics_limits() -> None:
    """Forget past metrics requests (tests share one sandbox process; call between tests)."""
    with _limit_lock:
        _metrics_calls.clear()


def _metrics(account: str) -> Response:
    now = clock().timestamp()
    with _limit_lock:
        calls = _metrics_calls.setdefault(account, deque())
        while calls and calls[0] <= now - METRICS_PERIOD:
            calls.popleft()
        if len(calls) >= METRICS_LIMIT:
            wait = max(1, math.ceil(calls[0] + METRICS_PERIOD - now))
            return _fail(429, "rate limit exceeded: at most 6 metrics requests per minute", {"Retry-After": str(wait)})
        calls.append(now)
    return Response(
        200,
        metrics_text(account).encode(),
        {**common_headers(), "Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def metrics_text(account: str, at: datetime | None = None) -> str:
    """The exposition the endpoint serves at `at` (default: the sandbox clock)."""
    rates = truth_rates(at or clock())
    helps = (
        "Rate of prompt tokens per deployment",
        "Rate of cached prompt tokens per deployment",
        "Request rate per deployment",
    )
    lines: list[str] = []
    for i, (series, text) in enumerate(zip(SERIES, helps, strict=True)):
        lines += [f"# HELP {series} {text}", f"# TYPE {series} gauge"]
        for deployment in DEPLOYMENTS:
            labels = (
                f'base_model="{deployment.base_model}",deployment="accounts/{account}/deployments/{deployment.id}",'
                f'deployment_account="{account}",deployment_id="{deployment.id}"'
            )
            lines.append(f"{series}{{{labels}}} {rates[deployment.id][i]:.2f}")
    # A latency histogram the connector has no use for, as the real endpoint also serves some.
    lines += ["# TYPE latency_to_first_token_ms histogram"]
    for deployment in DEPLOYMENTS:
        label = f'deployment_id="{deployment.id}",base_model="{deployment.base_model}"'
        lines += [
            f'latency_to_first_token_ms_bucket{{{label},le="250"}} 7',
            f'latency_to_first_token_ms_bucket{{{label},le="+Inf"}} 9',
            f"latency_to_first_token_ms_sum{{{label}}} 1520",
            f"latency_to_first_token_ms_count{{{label}}} 9",
        ]
    return "\n".join(lines) + "\n"
