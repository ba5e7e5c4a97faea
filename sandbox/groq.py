"""A fake of Groq's Enterprise metrics API: Prometheus-compatible (VictoriaMetrics) querying.

Served under `/v1/metrics/prometheus`: `/api/v1/query_range`, `/api/v1/label/<name>/values`,
`/api/v1/labels` and `/api/v1/series` (GET, or POST with a form body, as Prometheus allows).

Data: for every 5-minute step ending at t (t a multiple of 300 s), each (project, model) has
deterministic per-second rates derived from a SHA-256, as the recording rules
`model_project_id:tokens_in:rate5m`, `…:tokens_out:rate5m` and
`model_project_id_status_code:requests:rate5m` would give at t: the rate over (t - 300, t].
Some combinations are absent at a step, some are "0", a few points are "NaN", "+Inf" or "-Inf"
(broken evaluations: they carry no usage). Only steps that have ended by the real clock exist.

Truth (`truth_hourly`): the hour [H, H + 1h) owns the 12 steps ending in (H, H + 1h]; its
tokens (and requests, summed over status codes) are ROUND_HALF_UP(Σ finite rate × 300) — the
sum rounded once, not each step. The handlers serve the same points, so they cannot disagree.

Quirks kept: a non-Enterprise key gets 404 on every metrics path (observed); auth failures
come from Groq's gateway in its OpenAI-style error shape, query errors in Prometheus's
`{"status":"error","errorType","error"}`; like VictoriaMetrics, query_range aligns `start`
down to a multiple of `step`. The recording-rule prefix of a name is not checked: any
`<labels>:tokens_in:rate5m` serves the tokens-in data, so a test can "rename" the metrics by
faking the label-values answer alone. `withdraw_model` changes the answer from then on, as
recomputed recording rules would (`clear_changes` undoes it).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from sandbox.core import Changes, Request, Response, digest, json_response

PREFIX = "/v1/metrics/prometheus"
ENTERPRISE_KEY = "gsk_sandboxEnterprise0123456789abcdefSECRET"
# A valid key of an organization on the free or developer tier: the metrics API answers 404.
DEVELOPER_KEY = "gsk_sandboxDeveloperTier0123456789abSECRET"
REVOKED_KEY = "gsk_sandboxRevoked0000000000000000000SECRET"

TOKENS_IN = "model_project_id:tokens_in:rate5m"
TOKENS_OUT = "model_project_id:tokens_out:rate5m"
REQUESTS = "model_project_id_status_code:requests:rate5m"
# Other metrics Groq lists; the sandbox names them in discovery but serves no data for them.
OTHER_METRICS = (
    "le_model_project_id:tokens_in_bucket:rate5m",
    "le_model_project_id:tokens_out_bucket:rate5m",
    "le_model_project_id:e2e_latency_seconds_bucket:rate5m",
    "model_project_id:prompt_cache_hits:rate5m",
    "model_project_id:prompt_cache_misses:rate5m",
)
METRIC_NAMES = tuple(sorted((TOKENS_IN, TOKENS_OUT, REQUESTS, *OTHER_METRICS)))
KIND_SUFFIXES = {":tokens_in:rate5m": "tokens_in", ":tokens_out:rate5m": "tokens_out", ":requests:rate5m": "requests"}

PROJECTS = ("project_01jsandboxalpha00000001", "project_01jsandboxbravo00000002", "project_01jsandboxcharlie0003")
MODELS = ("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b")
STATUS_CODES = ("200", "400", "429", "500")
STEP = 300
HOUR = 3600
MAX_POINTS = 11_000  # Prometheus's limit per series (VictoriaMetrics allows 30,000)
DATA_START = datetime(2024, 1, 1, tzinfo=UTC)
TEN_THOUSANDTH = Decimal("0.0001")


class Point(NamedTuple):
    kind: str  # tokens_in | tokens_out | requests
    project_id: str
    model: str
    status_code: str  # "" for the token metrics
    value: str  # as served: "12.3456", "0", "NaN", "+Inf", "-Inf"


class HourRow(NamedTuple):
    hour_start: datetime
    project_id: str
    model: str
    input_tokens: int
    output_tokens: int
    requests: int  # all status codes


def _num(raw: bytes, modulo: int) -> str:
    return f"{Decimal(int.from_bytes(raw, 'big') % modulo) * TEN_THOUSANDTH:f}"


def _now_ts() -> int:
    return int(datetime.now(UTC).timestamp())


@lru_cache(maxsize=200_000)
def _step_points(t: int) -> tuple[Point, ...]:
    """Every series' value at the step ending at t (t a multiple of STEP)."""
    if t % STEP or t <= DATA_START.timestamp():
        return ()
    hour = (t - STEP) // HOUR * HOUR
    idle = digest("idle", hour)
    if idle[0] < 40:  # ~15 % of hours nobody calls the API: quiet zeros or no points at all
        quiet = idle[1] % 2 == 0
        return tuple(
            Point(kind, p, m, code, "0")
            for p in PROJECTS
            for m in MODELS
            for kind, code in (("tokens_in", ""), ("tokens_out", ""), ("requests", "200"))
            if quiet
        )
    points: list[Point] = []
    for project in PROJECTS:
        for model in MODELS:
            d = digest(t, project, model)
            if d[0] < 70:  # this combination has no series at this step
                continue
            busy = d[0] >= 95
            values = {
                ("tokens_in", ""): _num(d[1:4], 1_500_000) if busy else "0",
                ("tokens_out", ""): _num(d[4:7], 400_000) if busy else "0",
                ("requests", "200"): _num(d[7:9], 5_000) if busy else "0",
            }
            if busy and d[9] < 30:
                values[("requests", "429")] = _num(d[10:11], 200)
            if busy and d[11] < 8:
                values[("requests", "500")] = _num(d[12:13], 50)
            if busy and d[13] < 15:
                values[("requests", "400")] = _num(d[14:15], 100)
            special = digest("special", t, project, model)[0]
            if special == 0:
                values[("tokens_in", "")] = "NaN"
            elif special == 1:
                values[("tokens_out", "")] = "+Inf"
            elif special == 2:
                values[("requests", "200")] = "-Inf"
            points.extend(Point(kind, project, model, code, v) for (kind, code), v in values.items())
    return tuple(points)


_changes: Changes[Point] = Changes()


def withdraw_model(model: str) -> None:
    """From now on `model` has no series at any step (its usage was never recorded)."""
    _changes.add(lambda point: None if point.model == model else point)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {"withdraw_model": withdraw_model}


clear_changes = _changes.clear


def _points(t: int) -> list[Point]:
    return _changes.apply(_step_points(t))


def _finite(value: str) -> Decimal | None:
    return None if value in ("NaN", "+Inf", "-Inf") else Decimal(value)


def truth_hourly(start: datetime, end: datetime, *, now: datetime | None = None) -> list[HourRow]:
    """True usage per (hour, project, model) for hours starting in [start, end), counting only
    steps that ended by `now`. Rows whose three totals are all zero are left out."""
    now_ts = int((now or datetime.now(UTC)).timestamp())
    first = -(-int(start.timestamp()) // HOUR) * HOUR
    rows: list[HourRow] = []
    for hour in range(first, int(end.timestamp()), HOUR):
        sums: dict[tuple[str, str], list[Decimal]] = {}
        for t in range(hour + STEP, min(hour + HOUR, now_ts) + 1, STEP):
            for point in _points(t):
                value = _finite(point.value)
                if value is not None:
                    index = ("tokens_in", "tokens_out", "requests").index(point.kind)
                    sums.setdefault((point.project_id, point.model), [Decimal(0)] * 3)[index] += value * STEP
        for (project, model), totals in sorted(sums.items()):
            rounded = [int(v.quantize(Decimal(1), ROUND_HALF_UP)) for v in totals]
            if any(rounded):
                rows.append(HourRow(datetime.fromtimestamp(hour, UTC), project, model, *rounded))
    return rows


# ---------------------------------------------------------------- errors and auth
class _BadData(Exception):
    pass


def _prom_error(error_type: str, message: str) -> dict[str, Any]:
    return {"status": "error", "errorType": error_type, "error": message}


def _groq_error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def _unknown_url(request: Request) -> dict[str, Any]:
    return _groq_error(
        f"Unknown request URL: {request.method} {request.path}. Please check the URL for typos, "
        "or see the docs at https://console.groq.com/docs/",
        code="unknown_url",
    )


def error_body(status: int) -> dict[str, Any]:
    """The error JSON Groq sends for `status`: gateway errors in Groq's shape, query errors in
    Prometheus's."""
    if status == 401:
        return _groq_error("Invalid API Key", code="invalid_api_key")
    if status == 403:
        return _groq_error("Permission denied: this organization may not read metrics.", "permission_error")
    if status == 404:
        return _groq_error("Unknown request URL. Please check the URL for typos.", code="unknown_url")
    if status == 429:
        return _groq_error(
            "Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"
        )
    if status == 400:
        return _prom_error("bad_data", 'invalid parameter "query": parse error')
    if status == 422:
        return _prom_error("execution", "query processing would load too many samples into memory")
    if status == 503:
        return _prom_error("unavailable", "the metrics storage is temporarily unavailable")
    if status >= 500:
        return _groq_error("Internal Server Error", "internal_server_error")
    return _groq_error(f"Invalid request (HTTP {status}).")


def common_headers() -> dict[str, str]:
    return {"x-request-id": f"req_{uuid.uuid4().hex[:26]}"}


def _respond(status: int, payload: Any) -> Response:
    return json_response(status, payload, common_headers())


def _authenticate(request: Request) -> Response | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return _respond(401, _groq_error("Invalid API Key", code="invalid_api_key"))
    if key == ENTERPRISE_KEY:
        return None
    if key == DEVELOPER_KEY:  # valid key, but the organization has no metrics API
        return _respond(404, _unknown_url(request))
    return _respond(401, _groq_error("Invalid API Key", code="invalid_api_key"))


# ---------------------------------------------------------------- parameters
_DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# `name`, `name{label="v", …}` or `{__name__="name", …}`; matchers =, !=, =~, !~.
_SELECTOR_RE = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.DOTALL)
_MATCHER_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _params(request: Request) -> dict[str, list[str]]:
    params = {k: list(v) for k, v in request.query.items()}
    if request.method == "POST" and request.body:
        for name, values in parse_qs(request.body.decode(), keep_blank_values=True).items():
            params.setdefault(name, []).extend(values)
    return params


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _time(params: dict[str, list[str]], name: str, default: float | None = None) -> float:
    raw = _one(params, name)
    if raw in (None, ""):
        if default is None:
            raise _BadData(f'invalid parameter "{name}": cannot parse "" to a valid timestamp')
        return default
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw).timestamp()  # "…Z" is accepted since Python 3.11
    except ValueError:
        raise _BadData(f'invalid parameter "{name}": cannot parse "{raw}" to a valid timestamp') from None


def _step(params: dict[str, list[str]]) -> float:
    raw = _one(params, "step") or ""
    match = _DURATION_RE.match(raw)
    try:
        step = int(match[1]) * _DURATION_UNITS[match[2]] if match else float(raw)
    except ValueError:
        raise _BadData(f'invalid parameter "step": cannot parse "{raw}" to a valid duration') from None
    if step <= 0:
        raise _BadData("zero or negative query resolution step widths are not accepted. Try a positive integer")
    return step


def _selector(query: str) -> tuple[str, list[tuple[str, str, str]]]:
    match = _SELECTOR_RE.match(query)
    if not query.strip() or not match:
        raise _BadData(f"1:1: parse error: the sandbox serves plain series selectors only, not {query[:80]!r}")
    name, body = match[1] or "", match[2] or ""
    matchers, pos = [], 0
    while pos < len(body.strip()):
        m = _MATCHER_RE.match(body, pos)
        if not m:
            raise _BadData(f"1:1: parse error: unexpected label matcher in {query[:80]!r}")
        matchers.append((m[1], m[2], m[3].replace('\\"', '"')))
        pos = m.end()
    for label, op, value in matchers:
        if label == "__name__" and op == "=":
            name = value
    if not name:
        raise _BadData("1:1: parse error: vector selector must contain a metric name")
    return name, [(label, op, value) for label, op, value in matchers if label != "__name__"]


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        have = labels.get(label, "")
        ok = {
            "=": have == value,
            "!=": have != value,
            "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None,
        }[op]
        if not ok:
            return False
    return True


def _kind(name: str) -> str | None:
    for suffix, kind in KIND_SUFFIXES.items():
        if name.endswith(suffix) and name not in OTHER_METRICS:
            return kind
    return None


def _labels(name: str, point: Point) -> dict[str, str]:
    labels = {"__name__": name, "model": point.model, "project_id": point.project_id}
    if point.status_code:
        labels["status_code"] = point.status_code
    return labels


def _steps(start: float, end: float, step: int = STEP) -> range:
    """Step timestamps in [start, end] (start aligned down to the step, as VictoriaMetrics
    does) that have data: ended by now and after DATA_START."""
    first = int(start) - int(start) % step
    return range(max(first, int(DATA_START.timestamp()) + step), min(int(end), _now_ts()) + 1, step)


def _series(
    name: str, matchers: list[tuple[str, str, str]], start: float, end: float, step: int = STEP
) -> dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[list[Any]]]]:
    """{label tuple: (labels, [[t, value], …])} for one metric name over [start, end]."""
    kind = _kind(name)
    out: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[list[Any]]]] = {}
    if kind is None:
        return out
    # One series' labels are worked out once, not at every step (a 31-day range has 8,929).
    keys: dict[tuple[str, str, str], tuple[tuple[str, str], ...] | None] = {}
    for t in _steps(start, end, step):
        for point in _points(t):
            if point.kind == kind:
                series = (point.project_id, point.model, point.status_code)
                if series not in keys:
                    labels = _labels(name, point)
                    keys[series] = tuple(sorted(labels.items())) if _matches(labels, matchers) else None
                if (key := keys[series]) is not None:
                    out.setdefault(key, (dict(key), []))[1].append([t, point.value])
    return out


# ---------------------------------------------------------------- endpoints
def _query_range(params: dict[str, list[str]]) -> Response:
    query = _one(params, "query")
    if not query:
        raise _BadData('invalid parameter "query": 1:1: parse error: no expression found in input')
    start, end, step = _time(params, "start"), _time(params, "end"), _step(params)
    if end < start:
        raise _BadData("end timestamp must not be before start time")
    if (end - start) // step + 1 > MAX_POINTS:
        raise _BadData(
            f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    if step % STEP:
        raise _BadData(f"the sandbox serves steps that are multiples of {STEP} s only")
    name, matchers = _selector(query)
    series = _series(name, matchers, start, end, int(step))
    result = [{"metric": labels, "values": values} for _, (labels, values) in sorted(series.items())]
    return _respond(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})


def _range(params: dict[str, list[str]]) -> tuple[float, float]:
    # Like VictoriaMetrics: without start/end, only the last day is searched.
    now = float(_now_ts())
    return _time(params, "start", now - 86400), _time(params, "end", now)


def _matching_series(params: dict[str, list[str]], required: bool) -> list[dict[str, str]]:
    selectors = [*params.get("match[]", []), *params.get("match", [])]
    if required and not selectors:
        raise _BadData("no match[] parameter provided")
    start, end = _range(params)
    found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for selector in selectors or [TOKENS_IN, TOKENS_OUT, REQUESTS]:
        name, matchers = _selector(selector)
        for key, (labels, _) in _series(name, matchers, start, end).items():
            found[key] = labels
    return [found[k] for k in sorted(found)]


def _label_values(label: str, params: dict[str, list[str]]) -> Response:
    if label == "__name__" and not params.get("match[]"):
        start, end = _range(params)
        names = list(METRIC_NAMES) if len(_steps(start, end)) else []
        return _respond(200, {"status": "success", "data": names})
    values = sorted({s[label] for s in _matching_series(params, required=False) if label in s})
    return _respond(200, {"status": "success", "data": values})


def handle(request: Request) -> Response:
    denied = _authenticate(request)
    if denied is not None:
        return denied
    path = request.path.rstrip("/")
    if not path.startswith(PREFIX + "/api/v1/"):
        return _respond(404, _unknown_url(request))
    if request.method not in ("GET", "POST"):
        return _respond(405, _prom_error("bad_data", f"method {request.method} not allowed"))
    route = path[len(PREFIX) :]
    params = _params(request)
    try:
        if route == "/api/v1/query_range":
            return _query_range(params)
        if route == "/api/v1/labels":
            return _respond(
                200, {"status": "success", "data": ["__name__", "le", "model", "project_id", "status_code"]}
            )
        if route == "/api/v1/series":
            return _respond(200, {"status": "success", "data": _matching_series(params, required=True)})
        label = re.fullmatch(r"/api/v1/label/([a-zA-Z_][a-zA-Z0-9_]*)/values", route)
        if label:
            return _label_values(label[1], params)
    except _BadData as exc:
        return _respond(400, _prom_error("bad_data", str(exc)))
    return _respond(404, _unknown_url(request))


def base_url(sandbox_url: str) -> str:
    """The connector's `base_url` setting for a sandbox served at `sandbox_url`."""
    return sandbox_url.rstrip("/") + "/groq" + PREFIX
