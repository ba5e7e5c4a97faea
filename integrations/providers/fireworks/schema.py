"""Fireworks `billingUsage` shapes, validated at the boundary, and the pure mapping to UsageSamples.

The API is a gRPC gateway: int64 counts arrive as JSON strings, and proto3 JSON leaves out
fields holding their default value, so an absent count means 0 and an absent list means empty.
`parse_billing_usage` raises ProviderResponseError naming the bad field (never echoing the
body); `serverless_samples` / `dedicated_samples` turn the rows into normalized samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.providers.base import (
    UsageSample,
    align_down,
)
from integrations.providers.toolkit import Shape

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class ServerlessRow:
    start: datetime
    end: datetime
    model: str
    prompt_tokens: int  # all prompt tokens, cached ones included
    completion_tokens: int
    cached_prompt_tokens: int | None  # only when the row carries the (undocumented here) field
    api_key: str = ""  # group.api_key_id (groupBy=api_key_id); "" when not grouped by it


@dataclass(frozen=True)
class DedicatedRow:
    start: datetime
    end: datetime
    deployment_id: str
    base_model: str
    accelerator_type: str
    placement: str
    accelerator_seconds: Decimal


@dataclass(frozen=True)
class TrainingRow:
    start: datetime
    end: datetime
    model: str  # the base model trained on
    training_tokens: int
    accelerator_type: str
    accelerator_seconds: Decimal


@dataclass(frozen=True)
class BillingUsage:
    serverless: tuple[ServerlessRow, ...]
    dedicated: tuple[DedicatedRow, ...]
    training: tuple[TrainingRow, ...] = ()
    # A row came without startTime/endTime and the request covered more than one day: its day
    # is unknown (the caller re-reads the range one day at a time).
    undated: bool = False


class _Undated(Exception):
    """A row without startTime/endTime in an answer to a request of more than one day."""


# ---------------------------------------------------------------- validation helpers
shape = Shape("Fireworks")


def _rows(body: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    value = body.get(key)
    return shape.objects([] if value is None else value, key)  # proto3 JSON omits an empty repeated field


def _str(obj: dict[str, Any], key: str, what: str) -> str:
    return shape.text(obj, key, what, required=False, strip=True)


def _count(obj: dict[str, Any], key: str, what: str) -> int:
    """An int64 count: a JSON string of digits (gRPC gateway), an integer, or absent (= 0)."""
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    # bool is an int in Python; true/false as a token count is a broken response, not 1/0.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise shape.bad(f"{what}.{key} is not a non-negative integer")


def _seconds(obj: dict[str, Any], key: str, what: str) -> Decimal:
    return shape.opt_number(obj, key, what, non_negative=True) or Decimal(0)


def _span(obj: dict[str, Any], what: str, day: datetime | None) -> tuple[datetime, datetime]:
    """The row's own span; a row without startTime/endTime is the requested day's (`day`, a UTC
    midnight, when the request covered exactly one UTC day; else it cannot be placed)."""
    if obj.get("startTime") is None and obj.get("endTime") is None:
        if day is None:
            raise _Undated
        return day, day + DAY
    start, end = shape.time(obj, "startTime", what), shape.time(obj, "endTime", what)
    # We ask for timezone=UTC daily rows; a row spanning more than its UTC day cannot be keyed.
    if end < start or end > align_down(start, DAY) + DAY:
        raise shape.bad(f"{what} is not a row of one UTC day ({start:%Y-%m-%dT%H:%M}Z to {end:%Y-%m-%dT%H:%M}Z)")
    return start, end


# ---------------------------------------------------------------- parsers
def _serverless_row(obj: dict[str, Any], what: str, day: datetime | None) -> ServerlessRow:
    start, end = _span(obj, what, day)
    group = shape.opt_obj(obj, "group", what)
    model = _str(obj, "modelName", what) or _str(group, "model_name", f"{what}.group")
    cached = _count(obj, "cachedPromptTokens", what) if obj.get("cachedPromptTokens") is not None else None
    # The docs: read API-key values from the group map (the top-level apiKeyId is deprecated).
    api_key = _str(group, "api_key_id", f"{what}.group") or _str(obj, "apiKeyId", what)
    return ServerlessRow(
        start, end, model, _count(obj, "promptTokens", what), _count(obj, "completionTokens", what), cached, api_key
    )


def _dedicated_row(obj: dict[str, Any], what: str, day: datetime | None) -> DedicatedRow:
    start, end = _span(obj, what, day)
    group = shape.opt_obj(obj, "group", what)
    deployment = _str(obj, "deploymentId", what)
    if not deployment:  # the grouped resource name is accounts/<account>/deployments/<id>
        deployment = _str(group, "deployment_name", f"{what}.group").rsplit("/", 1)[-1]
    return DedicatedRow(
        start,
        end,
        deployment,
        _str(obj, "baseModel", what),
        _str(obj, "acceleratorType", what) or _str(group, "accelerator_type", f"{what}.group"),
        _str(obj, "placement", what),
        _seconds(obj, "acceleratorSeconds", what),
    )


def _training_row(obj: dict[str, Any], what: str, day: datetime | None) -> TrainingRow:
    start, end = _span(obj, what, day)
    group = shape.opt_obj(obj, "group", what)
    model = _str(obj, "baseModel", what) or _str(obj, "modelName", what) or _str(group, "model_name", f"{what}.group")
    return TrainingRow(
        start,
        end,
        model,
        _count(obj, "trainingTokens", what),
        _str(obj, "acceleratorType", what),
        _seconds(obj, "acceleratorSeconds", what),
    )


def parse_billing_usage(body: Any, *, day: datetime | None = None) -> BillingUsage:
    """The rows of one billingUsage answer. `day` is the UTC midnight of the request when it
    covered exactly one UTC day (timezone=UTC): a row without startTime/endTime belongs to it.
    Without `day`, such a row makes the answer `undated` (its rows are then not returned)."""
    body = shape.obj(body, "billing usage")
    kinds = (("serverlessCosts", _serverless_row), ("dedicatedCosts", _dedicated_row), ("trainingCosts", _training_row))
    parsed: list[tuple[Any, ...]] = []
    try:
        for key, parse in kinds:
            parsed.append(tuple(parse(obj, where, day) for where, obj in _rows(body, key)))
    except _Undated:
        return BillingUsage((), (), (), undated=True)
    serverless, dedicated, training = parsed
    return BillingUsage(serverless, dedicated, training)


# ---------------------------------------------------------------- mapping


def serverless_samples(rows: tuple[ServerlessRow, ...], *, account: str) -> list[UsageSample]:
    # Rows sharing our key (e.g. split by a usage type we do not key on) add up.
    totals: dict[tuple[datetime, str, str, str], int] = {}
    for row in rows:
        day = align_down(row.start, DAY)
        counts = [("input_tokens", row.prompt_tokens), ("output_tokens", row.completion_tokens)]
        if row.cached_prompt_tokens is not None:
            counts.append(("cached_input_tokens", row.cached_prompt_tokens))
        for metric, count in counts:
            key = (day, row.model, row.api_key, metric)
            totals[key] = totals.get(key, 0) + count
    return [
        UsageSample(day, day + DAY, metric, Decimal(count), account=account, model=model, api_key=api_key)
        for (day, model, api_key, metric), count in totals.items()
    ]


def dedicated_samples(rows: tuple[DedicatedRow, ...], *, account: str) -> list[UsageSample]:
    totals: dict[tuple[datetime, str, str, str, str], Decimal] = {}
    for row in rows:
        key = (align_down(row.start, DAY), row.deployment_id, row.base_model, row.accelerator_type, row.placement)
        totals[key] = totals.get(key, Decimal(0)) + row.accelerator_seconds
    return [
        UsageSample(
            day,
            day + DAY,
            "compute_seconds",
            seconds,
            account=account,
            deployment=deployment,
            model=model,
            resource=accelerator,
            region=placement,
        )
        for (day, deployment, model, accelerator, placement), seconds in totals.items()
    ]


def training_samples(rows: tuple[TrainingRow, ...], *, account: str) -> list[UsageSample]:
    """Fine-tuning per UTC day and base model: `training_tokens` (tokens trained on, epochs
    included) and, for jobs billed by GPU time, `compute_seconds` with operation "training"
    (never on a deployment, so never mixed with the dedicated rows)."""
    tokens: dict[tuple[datetime, str], int] = {}
    seconds: dict[tuple[datetime, str, str], Decimal] = {}
    for row in rows:
        day = align_down(row.start, DAY)
        tokens[(day, row.model)] = tokens.get((day, row.model), 0) + row.training_tokens
        if row.accelerator_seconds:
            key = (day, row.model, row.accelerator_type)
            seconds[key] = seconds.get(key, Decimal(0)) + row.accelerator_seconds
    samples = [
        UsageSample(day, day + DAY, "training_tokens", Decimal(count), account=account, model=model)
        for (day, model), count in tokens.items()
    ]
    samples += [
        UsageSample(
            day, day + DAY, "compute_seconds", q, account=account, model=model, resource=accel, operation="training"
        )
        for (day, model, accel), q in seconds.items()
    ]
    return samples
