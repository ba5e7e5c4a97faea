"""A fake of Replicate's HTTP API: `GET /v1/account` and `GET /v1/predictions`.

Data is deterministic: every (hour, model) gets its predictions from a SHA-256 of those values,
some hours are idle, and a prediction exists once its `created_at` has passed on the sandbox's
clock. Its status depends on that clock too: `starting` until it starts, `processing` until it
completes, then `succeeded` / `failed` / `canceled` with `metrics.predict_time` — so the same
listing read twice, before and after a prediction finishes, shows it converge. Tests import
`truth_usage` / `truth_predictions` for the true totals and may move the clock with
`set_clock` / `clock(...)` (in-process only; the demo process runs on the real clock).

Every day has two fixed predictions: one created at exactly 00:00:00.000000 UTC (a chunk
boundary, which must land in exactly one chunk) and a nightly batch job created at 23:50 that
runs 35–45 minutes, so it is still `processing` just after midnight. `delete_predictions`
changes the listing from then on (`clear_changes` undoes it).

Shapes follow the documented API: 100 predictions per page, newest first, `created_after`
inclusive and `created_before` exclusive, `next` / `previous` as full URLs on the host the
request came to, `{"detail": …}` errors (problem+json with `title` / `status` for 401 and 5xx).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlencode

from sandbox.core import Changes, Request, Response, digest, json_response

# ---------------------------------------------------------------- the fake account
PREFIX = "/replicate"  # where sandbox.app mounts this module
API_TOKEN = "r8_SandboxDoow0123456789abcdefghijSECRET"
REVOKED_TOKEN = "r8_SandboxRevoked00000000000000000SECRET"  # well-formed, answered with 401
FORBIDDEN_TOKEN = "r8_SandboxForbidden000000000000000SECRET"  # reads /account, 403 on predictions
ACCOUNT = {
    "type": "organization",
    "username": "doow-sandbox",
    "name": "Doow Sandbox Inc.",
    "github_url": "https://github.com/doow-sandbox",
    "avatar_url": None,
}
DATA_START = datetime(2024, 1, 1, tzinfo=UTC)  # the account has no predictions before this
PAGE_SIZE = 100
HOUR, DAY = 3600, 86400
US = 1_000_000


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    per_hour: int  # at most this many random predictions per hour
    run_ms: tuple[int, int]  # typical predict_time range
    deployment: str | None = None  # some predictions of this model run through it


MODELS: tuple[Model, ...] = (
    Model("black-forest-labs/flux-schnell", "hidden", 12, (400, 3_500)),
    Model("meta/meta-llama-3-8b-instruct", "hidden", 8, (300, 20_000)),
    Model("stability-ai/sdxl", "7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc", 5, (3_000, 40_000)),
    Model(
        "doow-sandbox/invoice-ocr",
        "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        6,
        (1_000, 90_000),
        deployment="doow-sandbox/invoice-ocr-prod",
    ),
)
RUNNING = ("starting", "processing")
# Official language models billed per token: their finished predictions report token counts.
PER_TOKEN_MODELS = frozenset({"meta/meta-llama-3-8b-instruct"})


@dataclass(frozen=True)
class Prediction:
    """One prediction's whole life; what the API shows of it depends on the time asked."""

    id: str
    model: Model
    deployment: str | None
    source: str
    created_us: int  # unix microseconds
    started_us: int | None  # None: canceled before it started
    completed_us: int
    outcome: str  # succeeded | failed | canceled
    predict_us: int | None

    @property
    def created_at(self) -> datetime:
        return _dt(self.created_us)

    def status_at(self, now_us: int) -> str:
        if self.started_us is not None and now_us < self.started_us:
            return "starting"
        if now_us < self.completed_us:
            return "starting" if self.started_us is None else "processing"
        return self.outcome

    def token_counts_at(self, now_us: int) -> tuple[int, int] | None:
        """(input_token_count, output_token_count) once a per-token model's prediction that ran
        has finished; None otherwise (other models report no counts)."""
        if self.model.name not in PER_TOKEN_MODELS or self.predict_time_at(now_us) is None:
            return None
        d = digest("tokens", self.id)
        return 5 + _n(d, 0, 2) % 4000, (0 if self.outcome == "failed" else 1 + _n(d, 2, 4) % 1500)

    def predict_time_at(self, now_us: int) -> Decimal | None:
        """Seconds, exactly as the JSON shows them; only once the prediction has finished."""
        if self.predict_us is None or self.status_at(now_us) in RUNNING:
            return None
        return Decimal(self.predict_us) / US


class UsageRow(NamedTuple):
    """What one hour holds for one model and deployment, as seen at a given moment."""

    hour_start: datetime
    model: str
    deployment: str  # "" when not run through a deployment
    requests: int  # every prediction created in the hour, running ones included
    compute_seconds: Decimal  # Σ predict_time of the finished ones
    running: int
    input_tokens: int | None = None  # Σ metrics.input_token_count (official per-token models)
    output_tokens: int | None = None


# ---------------------------------------------------------------- clock
_clock: datetime | None = None


def set_clock(now: datetime | None) -> None:
    """Pin the sandbox's idea of "now" (None: the real clock again)."""
    global _clock
    _clock = now


@contextmanager
def clock(now: datetime) -> Iterator[None]:
    previous = _clock
    set_clock(now)
    try:
        yield
    finally:
        set_clock(previous)


def _now_us() -> int:
    return _us(_clock or datetime.now(UTC))


def _us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * DAY + delta.seconds) * US + delta.microseconds


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _iso(us: int) -> str:
    return _dt(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- the data
def _n(d: bytes, lo: int, hi: int) -> int:
    return int.from_bytes(d[lo:hi], "big")


def _prediction(
    hour_ts: int,
    model: Model,
    tag: object,
    *,
    offset_us: int | None = None,
    run_us: int | None = None,
    outcome: str | None = None,
) -> Prediction:
    d = digest("prediction", hour_ts, model.name, tag)
    if offset_us is None:
        # Some first predictions of an hour sit exactly on the hour: a bucket boundary.
        offset_us = 0 if tag == 0 and d[4] < 40 else _n(d, 0, 4) % (HOUR * US)
    created = hour_ts * US + offset_us
    queue = 50_000 + _n(d, 5, 7) * 45  # up to ~3 s waiting for a worker
    if outcome is None:
        roll = d[7] % 100
        outcome = "succeeded" if roll < 86 else "failed" if roll < 94 else "canceled"
    if run_us is None:
        lo, hi = model.run_ms
        run_us = (lo + _n(d, 8, 12) % (hi - lo)) * 1000 + _n(d, 20, 22)
        if d[12] % 24 == 0:  # a slow one: 5 to 45 minutes
            run_us = (300 + _n(d, 13, 15) % 2400) * US + _n(d, 22, 24)
        if outcome == "failed":
            run_us = run_us * (1 + d[16] % 100) // 100
    deployment = model.deployment if model.deployment and d[17] % 3 else None
    source = "web" if deployment is None and d[15] % 10 == 0 else "api"
    pid = base64.b32encode(d[24:32] + digest("id", hour_ts, model.name, tag)[:9]).decode().lower()[:26]
    if outcome == "canceled" and d[18] % 3 == 0:  # canceled while still queued: never ran
        return Prediction(pid, model, deployment, source, created, None, created + queue, outcome, None)
    started = created + queue
    upload = 10_000 + d[14] * 1000
    return Prediction(pid, model, deployment, source, created, started, started + run_us + upload, outcome, run_us)


@lru_cache(maxsize=100_000)
def _hour(hour_ts: int) -> tuple[Prediction, ...]:
    """Every prediction created in the hour starting at `hour_ts`, newest first."""
    if hour_ts < _us(DATA_START) // US:
        return ()
    out: list[Prediction] = []
    if hour_ts % DAY == 0:  # created at exactly UTC midnight: the engine's chunk boundary
        out.append(_prediction(hour_ts, MODELS[0], "midnight", offset_us=0, outcome="succeeded"))
    if hour_ts % DAY == 23 * HOUR:  # the nightly batch: 23:50, runs 35-45 minutes
        d = digest("nightly", hour_ts)
        run = (35 * 60 + _n(d, 0, 2) % 600) * US + _n(d, 2, 4)
        out.append(_prediction(hour_ts, MODELS[3], "nightly", offset_us=50 * 60 * US, run_us=run, outcome="succeeded"))
    if digest("idle", hour_ts)[0] >= 51:  # ~20 % of hours have no other predictions
        for model in MODELS:
            for i in range(digest("count", hour_ts, model.name)[0] % (model.per_hour + 1)):
                out.append(_prediction(hour_ts, model, i))
    return tuple(sorted(out, key=lambda p: (p.created_us, p.id), reverse=True))


_changes: Changes[Prediction] = Changes()


def delete_predictions(model: str) -> None:
    """From now on no prediction of `model` ("owner/name") is listed, as if each was deleted."""
    _changes.add(lambda p: None if p.model.name == model else p)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {"delete_predictions": delete_predictions}


clear_changes = _changes.clear


# ---------------------------------------------------------------- trainings
TRAINING_SLOT = 6 * HOUR  # at most one fine-tuning job starts in each 6-hour slot
TRAINING_BASES = ("meta/meta-llama-3-8b", "stability-ai/sdxl")


@dataclass(frozen=True)
class Training:
    id: str
    model: str  # the base model trained ("owner/name")
    version: str
    created_us: int
    completed_us: int
    predict_us: int

    def status_at(self, now_us: int) -> str:
        return "succeeded" if now_us >= self.completed_us else "processing"


@lru_cache(maxsize=100_000)
def _training_slot(slot_ts: int) -> Training | None:
    if slot_ts < _us(DATA_START) // US:
        return None
    d = digest("training", slot_ts)
    if d[0] >= 64:  # ~25 % of slots start a job
        return None
    model = TRAINING_BASES[d[1] % len(TRAINING_BASES)]
    created = slot_ts * US + _n(d, 2, 6) % (TRAINING_SLOT * US)
    run = (600 + _n(d, 6, 8) % 5400) * US + _n(d, 8, 10)  # 10 to 100 minutes
    tid = base64.b32encode(d[12:28]).decode().lower()[:26]
    return Training(tid, model, d[28:32].hex() * 16, created, created + 20 * US + run, run)


def truth_trainings(start: datetime, end: datetime, *, now: datetime | None = None) -> list[Training]:
    """Trainings created in [start, end) that exist at `now` (default: the sandbox clock), newest first."""
    lo, hi, _ = _visible(start, end, now)
    slot = (hi - 1) // US // TRAINING_SLOT * TRAINING_SLOT
    out = []
    while (slot + TRAINING_SLOT) * US > lo:
        t = _training_slot(slot)
        if t is not None and lo <= t.created_us < hi:
            out.append(t)
        slot -= TRAINING_SLOT
    return out


def truth_training_usage(start: datetime, end: datetime, *, now: datetime | None = None) -> list[UsageRow]:
    """Per (hour of created_at, base model) as seen at `now`: requests count the trainings,
    compute_seconds sums predict_time of the finished ones (deployment always "")."""
    now_us = _us(now) if now else _now_us()
    rows: dict[tuple[int, str], list[Any]] = {}
    for t in truth_trainings(start, end, now=now):
        row = rows.setdefault((t.created_us // US // HOUR * HOUR, t.model), [0, Decimal(0), 0])
        row[0] += 1
        done = t.status_at(now_us) == "succeeded"
        row[1] += Decimal(t.predict_us) / US if done else 0
        row[2] += not done
    return [UsageRow(_dt(h * US), m, "", *row) for (h, m), row in sorted(rows.items())]


def _trainings(request: Request) -> Response:
    """GET /v1/trainings: every training, newest first, 100 a page (no date filter documented)."""
    now_us = _now_us()
    top = now_us + 1
    if request.arg("cursor"):
        try:
            (top, _), _ = _decode_cursor(request.arg("cursor") or "")
        except LookupError:
            return _respond(404, {"detail": "Invalid cursor"})
    items: list[Training] = []
    slot = (top - 1) // US // TRAINING_SLOT * TRAINING_SLOT
    while slot * US >= _us(DATA_START) - TRAINING_SLOT * US and len(items) <= PAGE_SIZE:
        t = _training_slot(slot)
        if t is not None and t.created_us < top:
            items.append(t)
        slot -= TRAINING_SLOT
    page = items[:PAGE_SIZE]
    base = _own_url(request)
    nxt = (
        f"{base}?{urlencode([('cursor', _cursor((page[-1].created_us, page[-1].id), False))])}"
        if len(items) > PAGE_SIZE
        else None
    )

    def one(t: Training) -> dict[str, Any]:
        status = t.status_at(now_us)
        done = status == "succeeded"
        return {
            "id": t.id, "model": t.model, "version": t.version, "source": "api", "status": status,
            "input": {"input_images": "https://replicate.delivery/sandbox/data.zip"},
            "output": {"version": f"doow-sandbox/tuned:{t.id}", "weights": None} if done else None,
            "error": None, "logs": "",
            "created_at": _iso(t.created_us), "started_at": _iso(t.created_us + 20 * US),
            "completed_at": _iso(t.completed_us) if done else None,
            "metrics": {"predict_time": t.predict_us / US} if done else {},
            "urls": {"get": f"{base}/{t.id}", "cancel": f"{base}/{t.id}/cancel"},
        }  # fmt: skip

    return _respond(200, {"next": nxt, "previous": None, "results": [one(t) for t in page]})


def _listed(hour_ts: int) -> list[Prediction]:
    """The hour's predictions still listed, newest first."""
    return _changes.apply(_hour(hour_ts))


def _hours_desc(start_us: int, end_us: int) -> Iterator[int]:
    """Hour starts whose hour overlaps [start_us, end_us), newest first."""
    hour = (end_us - 1) // US // HOUR * HOUR
    while hour * US + HOUR * US > start_us:
        yield hour
        hour -= HOUR


def _visible(start: datetime, end: datetime, now: datetime | None) -> tuple[int, int, int]:
    now_us = _us(now) if now else _now_us()
    lo = max(_us(start), _us(DATA_START))
    return lo, min(_us(end), now_us + 1), now_us  # created_at <= now


def truth_predictions(start: datetime, end: datetime, *, now: datetime | None = None) -> list[Prediction]:
    """Predictions created in [start, end) that exist at `now` (default: the sandbox clock)."""
    lo, hi, _ = _visible(start, end, now)
    return [p for h in _hours_desc(lo, hi) for p in _listed(h) if lo <= p.created_us < hi]


def truth_usage(start: datetime, end: datetime, *, now: datetime | None = None) -> list[UsageRow]:
    """Per (hour, model, deployment) as seen at `now`: requests count every prediction,
    compute_seconds sums predict_time of the finished ones."""
    _, _, now_us = _visible(start, end, now)
    rows: dict[tuple[int, str, str], list[Any]] = {}
    for p in truth_predictions(start, end, now=now):
        key = (p.created_us // US // HOUR * HOUR, p.model.name, p.deployment or "")
        row = rows.setdefault(key, [0, Decimal(0), 0, None, None])
        row[0] += 1
        row[1] += p.predict_time_at(now_us) or 0
        row[2] += p.status_at(now_us) in RUNNING
        if (counts := p.token_counts_at(now_us)) is not None:
            row[3], row[4] = (row[3] or 0) + counts[0], (row[4] or 0) + counts[1]
    return [UsageRow(_dt(h * US), m, dep, *row) for (h, m, dep), row in sorted(rows.items())]


# ---------------------------------------------------------------- errors and headers
def _problem(status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title, "status": status}
    if detail:
        body["detail"] = detail
    return body


def error_body(status: int) -> dict[str, Any]:
    """The error JSON Replicate sends for `status`; used for injected faults."""
    if status == 401:
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    if status == 403:
        return {"detail": "You do not have permission to perform this action."}
    if status == 404:
        return {"detail": "Not found."}
    if status == 429:
        return {"detail": "Request was throttled. Expected available in 1 second."}
    if status >= 500:
        return _problem(status, "Service Unavailable" if status == 503 else "Internal Server Error")
    return {"detail": f"Invalid request (HTTP {status})."}


def common_headers() -> dict[str, str]:
    # Replicate sits behind Cloudflare; its ray id is the per-request id support asks for.
    return {"cf-ray": f"{uuid.uuid4().hex[:16]}-SJC"}


def _respond(status: int, payload: Any, content_type: str = "application/json") -> Response:
    return json_response(status, payload, {**common_headers(), "Content-Type": content_type})


# ---------------------------------------------------------------- dispatch
def handle(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "token") or token not in (API_TOKEN, FORBIDDEN_TOKEN):
        return _respond(401, error_body(401), "application/problem+json")
    path = request.path.rstrip("/")
    if path not in ("/v1/account", "/v1/predictions", "/v1/trainings"):
        return _respond(404, error_body(404))
    if request.method != "GET":
        return _respond(405, {"detail": f'Method "{request.method}" not allowed.'})
    if path == "/v1/account":
        return _respond(200, ACCOUNT)
    if token == FORBIDDEN_TOKEN:
        return _respond(403, error_body(403))
    if path == "/v1/trainings":
        return _trainings(request)
    return _predictions(request)


class _Bad(Exception):
    pass


def _when(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _Bad(f"{name}: Enter a valid date/time.") from None
    return _us(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _cursor(position: tuple[int, str], reverse: bool) -> str:
    return base64.urlsafe_b64encode(f"p={position[0]}&i={position[1]}&r={int(reverse)}".encode()).decode()


def _decode_cursor(token: str) -> tuple[tuple[int, str], bool]:
    try:
        fields = dict(part.split("=", 1) for part in base64.urlsafe_b64decode(token.encode()).decode().split("&"))
        return (int(fields["p"]), fields["i"]), fields["r"] == "1"
    except (ValueError, KeyError, binascii.Error, UnicodeDecodeError):
        raise LookupError from None


def _predictions(request: Request) -> Response:
    try:
        after, before = _when(request, "created_after"), _when(request, "created_before")
    except _Bad as exc:
        return _respond(400, _problem(400, "Invalid query parameter", str(exc)), "application/problem+json")
    cursor, reverse = None, False
    if request.arg("cursor"):
        try:
            cursor, reverse = _decode_cursor(request.arg("cursor") or "")
        except LookupError:
            return _respond(404, {"detail": "Invalid cursor"})
    now_us = _now_us()
    lo, hi = max(after or 0, _us(DATA_START)), min(before if before is not None else now_us + 1, now_us + 1)

    def matches(p: Prediction) -> bool:
        return lo <= p.created_us < hi

    if not reverse:  # newest first, strictly older than the cursor
        items = _collect(lo, hi, matches, cursor, older=True)
        page, more = items[:PAGE_SIZE], len(items) > PAGE_SIZE
        older_exists, newer_exists = more, cursor is not None
    else:  # the `previous` link: the page just newer than the cursor
        items = _collect(lo, hi, matches, cursor, older=False)
        page, more = list(reversed(items[:PAGE_SIZE])), len(items) > PAGE_SIZE
        older_exists, newer_exists = True, more
    base = _own_url(request)
    kept = [(k, v) for k, values in request.query.items() if k != "cursor" for v in values]

    def link(p: Prediction, rev: bool) -> str:
        return f"{base}?{urlencode([*kept, ('cursor', _cursor((p.created_us, p.id), rev))])}"

    return _respond(
        200,
        {
            "next": link(page[-1], False) if page and older_exists else None,
            "previous": link(page[0], True) if page and newer_exists else None,
            "results": [_json(p, now_us, request) for p in page],
        },
    )


def _collect(lo: int, hi: int, matches: Any, cursor: tuple[int, str] | None, *, older: bool) -> list[Prediction]:
    """Up to PAGE_SIZE + 1 matching predictions beyond the cursor, nearest first (lazy by hour)."""
    out: list[Prediction] = []
    if older:
        top = min(hi, cursor[0] + 1) if cursor else hi
        for h in _hours_desc(lo, top):
            out += [p for p in _listed(h) if matches(p) and (cursor is None or (p.created_us, p.id) < cursor)]
            if len(out) > PAGE_SIZE:
                break
        return out
    assert cursor is not None
    hour = cursor[0] // US // HOUR * HOUR
    while hour * US < hi and len(out) <= PAGE_SIZE:
        out += [p for p in reversed(_listed(hour)) if matches(p) and (p.created_us, p.id) > cursor]
        hour += HOUR
    return out


def _own_url(request: Request) -> str:
    # `next` is a full URL on the host the client used (e.g. 127.0.0.1:port), like the real API.
    host = request.headers.get("host") or "127.0.0.1"
    scheme = request.headers.get("x-forwarded-proto") or "http"
    return f"{scheme}://{host}{PREFIX}{request.path.rstrip('/')}"


def _json(p: Prediction, now_us: int, request: Request) -> dict[str, Any]:
    status = p.status_at(now_us)
    finished = status not in RUNNING
    removed = finished and now_us >= p.completed_us + HOUR * US  # inputs/outputs vanish after an hour
    metrics: dict[str, Any] = {}
    predict_time = p.predict_time_at(now_us)
    if predict_time is not None:
        metrics["predict_time"] = float(predict_time)
        if p.model.name.startswith("stability-ai/"):  # other keys exist; which ones is unconfirmed
            metrics["total_time"] = round((p.completed_us - p.created_us) / US, 6)
        if (counts := p.token_counts_at(now_us)) is not None:
            metrics["input_token_count"], metrics["output_token_count"] = counts
    url = _own_url(request).rsplit("/", 1)[0] + f"/predictions/{p.id}"
    return {
        "id": p.id,
        "model": p.model.name,
        "version": p.model.version,
        **({"deployment": p.deployment} if p.deployment else {}),
        "source": p.source,
        "status": status,
        "input": {} if removed else {"prompt": f"sandbox input {p.id[:6]}"},
        "output": None if removed or status != "succeeded" else f"https://replicate.delivery/sandbox/{p.id}.png",
        "error": "CUDA out of memory" if status == "failed" else None,
        "logs": "",
        "data_removed": removed,
        "created_at": _iso(p.created_us),
        "started_at": _iso(p.started_us) if p.started_us is not None and now_us >= p.started_us else None,
        "completed_at": _iso(p.completed_us) if finished else None,
        "metrics": metrics,
        "urls": {"get": url, "cancel": f"{url}/cancel", "web": f"https://replicate.com/p/{p.id}"},
    }
