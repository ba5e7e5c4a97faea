"""Replicate API shapes, validated at the boundary, and the pure mapping to UsageSamples.

`parse_*` take decoded JSON and return small typed objects, or raise ProviderResponseError
naming what was wrong (never echoing the body: prediction inputs are the customer's data).
`usage_samples` turns the predictions of a window into hourly samples per model and
deployment: `requests` counts every prediction (running, failed and canceled ones too: each
was a request made), `compute_seconds` sums `metrics.predict_time` of the finished ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.providers.base import (
    UsageSample,
    align_down,
)
from integrations.providers.toolkit import Shape

HOUR = timedelta(hours=1)
# Replicate re-lists these until they finish; any other status is treated as final, so a status
# added later (with a predict_time) is counted rather than waited for forever.
RUNNING_STATUSES = frozenset({"starting", "processing"})


@dataclass(frozen=True)
class Prediction:
    id: str
    created_at: datetime
    status: str
    model: str  # "owner/name"; the version id when an old prediction has no model field
    deployment: str  # "owner/name" of the deployment, "" when run directly
    predict_time: Decimal | None  # seconds; None while running or when never started
    # Official models billed per token report their counts in `metrics`; None when absent.
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def finished(self) -> bool:
        return self.status not in RUNNING_STATUSES


@dataclass(frozen=True)
class PredictionPage:
    results: tuple[Prediction, ...]
    next: str | None


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    type: str  # "user" or "organization"


# ---------------------------------------------------------------- validation helpers
shape = Shape("Replicate")


def _str(obj: dict[str, Any], key: str, what: str, *, required: bool = False) -> str:
    return shape.text(obj, key, what, required=required, strip=True)


def parse_time(value: Any, what: str) -> datetime:
    """ISO 8601 as Replicate writes it ("2023-09-08T16:19:34.907244Z"); naive means UTC."""
    if not isinstance(value, str):
        raise shape.bad(f"{what} is missing or not a date-time")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise shape.bad(f"{what} is not an ISO 8601 date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _seconds(metrics: dict[str, Any], what: str) -> Decimal | None:
    # A number in every example; a numeric string is accepted too, a bool never.
    return shape.opt_number(metrics, "predict_time", what, non_negative=True)


# metrics key -> our metric: the counts official models billed per token report.
TOKEN_COUNTS = (("input_token_count", "input_tokens"), ("output_token_count", "output_tokens"))


def _token_count(metrics: dict[str, Any], key: str, what: str) -> int | None:
    value = metrics.get(key)
    if value is None:
        return None
    # A whole number; 12.0 is accepted as 12, a bool or a fraction never.
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise shape.bad(f"{what}.{key} is not a whole, non-negative number")
    return int(value)


# ---------------------------------------------------------------- parsers
def _prediction(obj: dict[str, Any], where: str) -> Prediction:
    status = _str(obj, "status", where, required=True)
    model = _str(obj, "model", where)
    if not model:  # predictions from before the field existed: keep them apart by version
        version = _str(obj, "version", where)
        model = "" if version == "hidden" else version
    metrics = obj.get("metrics")
    if metrics is not None:
        metrics = shape.obj(metrics, f"{where}.metrics")
    return Prediction(
        id=_str(obj, "id", where, required=True),
        created_at=parse_time(obj.get("created_at"), f"{where}.created_at"),
        status=status,
        model=model,
        deployment=_str(obj, "deployment", where),
        predict_time=_seconds(metrics or {}, f"{where}.metrics"),
        input_tokens=_token_count(metrics or {}, "input_token_count", f"{where}.metrics"),
        output_tokens=_token_count(metrics or {}, "output_token_count", f"{where}.metrics"),
    )


def parse_prediction_page(body: Any) -> PredictionPage:
    body = shape.obj(body, "prediction list")
    results = shape.objects(body.get("results"), "prediction list.results")
    next_url = shape.opt_str(body, "next", "prediction list")
    predictions = tuple(_prediction(obj, where) for where, obj in results)
    return PredictionPage(predictions, (next_url or "").strip() or None)


def parse_account(body: Any) -> Account:
    body = shape.obj(body, "account")
    return Account(
        username=_str(body, "username", "account", required=True),
        name=_str(body, "name", "account"),
        type=_str(body, "type", "account"),
    )


# ---------------------------------------------------------------- mapping


def iso(moment: datetime) -> str:
    """The form sent as created_after / created_before: UTC with a Z, microseconds if any."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def usage_samples(predictions: Iterable[Prediction], *, account: str, operation: str = "") -> list[UsageSample]:
    """Hourly `requests` and `compute_seconds` per (hour of created_at, model, deployment),
    in time order. compute_seconds is emitted even while it is 0 (all still running), so the
    bucket's row exists from the first read and is simply replaced once they finish.
    `input_tokens` / `output_tokens` sum the counts the predictions report in `metrics`
    (official models billed per token), only for keys where at least one reported them."""
    totals: dict[tuple[datetime, str, str], list[Any]] = {}
    for p in predictions:
        key = (align_down(p.created_at), p.model, p.deployment)
        row = totals.setdefault(key, [0, Decimal(0), None, None])
        row[0] += 1
        if p.finished and p.predict_time is not None:
            row[1] += p.predict_time
        for i, count in ((2, p.input_tokens), (3, p.output_tokens)):
            if count is not None:
                row[i] = (row[i] or 0) + count
    samples: list[UsageSample] = []
    for (start, model, deployment), (count, seconds, tokens_in, tokens_out) in sorted(totals.items()):
        dims = {"account": account, "model": model, "deployment": deployment, "operation": operation}
        samples.append(UsageSample(start, start + HOUR, "requests", Decimal(count), **dims))
        samples.append(UsageSample(start, start + HOUR, "compute_seconds", seconds, **dims))
        for metric, tokens in (("input_tokens", tokens_in), ("output_tokens", tokens_out)):
            if tokens is not None:
                samples.append(UsageSample(start, start + HOUR, metric, Decimal(tokens), **dims))
    return samples
