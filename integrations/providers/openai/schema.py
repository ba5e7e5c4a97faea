"""OpenAI admin API shapes, validated at the boundary, and the pure mapping to UsageSamples.

Every `parse_*` function takes decoded JSON and returns small typed objects or raises
ProviderResponseError naming what was wrong (never echoing the body, which is the provider's
and may be large). The `*_samples` functions turn one bucket into normalized samples.
"""

from __future__ import annotations

import re
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

# (OpenAI result field, our metric). `input_tokens` already includes cached and cache-write
# tokens, so it is taken as given; the other two are "of which" figures.
USAGE_METRICS: tuple[tuple[str, str], ...] = (
    ("input_tokens", "input_tokens"),
    ("input_cached_tokens", "cached_input_tokens"),
    ("input_cache_write_tokens", "cache_write_tokens"),
    ("output_tokens", "output_tokens"),
    ("num_model_requests", "requests"),
)
REQUIRED_USAGE_FIELDS = ("input_tokens", "output_tokens", "num_model_requests")
# A cost line item is "<model>, <kind>" when the part before the comma looks like a model id.
_MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.:_/\-]*$")

shape = Shape("OpenAI")


@dataclass(frozen=True)
class CompletionsResult:
    project_id: str | None
    model: str | None
    tokens: dict[str, int]  # OpenAI field name -> value, for the USAGE_METRICS fields present
    service_tier: str | None = None  # "default", "flex", "priority", … (group_by service_tier)
    batch: bool | None = None  # Batch API traffic or not (group_by batch)


@dataclass(frozen=True)
class CostResult:
    amount: Decimal
    currency: str
    line_item: str | None
    project_id: str | None
    api_key_id: str | None = None
    quantity: Decimal | None = None  # what the line item billed, in quantity_unit (recent costs)
    quantity_unit: str | None = None


@dataclass(frozen=True)
class UsageKind:
    """One of the usage endpoints besides completions (/organization/usage/<name>): the
    group_by we ask for, its quantity fields (OpenAI field -> our metric; `required` ones must
    be there), and the operation its rows carry, so each kind stays apart from the others."""

    name: str
    group_by: tuple[str, ...]
    metrics: tuple[tuple[str, str], ...]
    required: tuple[str, ...]
    operation: str
    width: timedelta = HOUR


@dataclass(frozen=True)
class KindResult:
    project_id: str | None
    model: str | None
    source: str | None  # images: image.generation | image.edit | image.variation
    quantities: dict[str, int]  # our metric -> value


# The documented result objects (organization.usage.<name>.result). Vector stores report the
# bytes stored (a level): read per day, so a day's row is that day's bytes and a sum over days
# is byte-days, the unit storage is billed in. Code interpreter sessions: `num_sessions`
# (optional in the spec; an older spec calls it `sessions`).
USAGE_KINDS: tuple[UsageKind, ...] = (
    UsageKind("embeddings", ("model", "project_id"), (("input_tokens", "input_tokens"), ("num_model_requests", "requests")),
              ("input_tokens", "num_model_requests"), "embeddings"),
    UsageKind("moderations", ("model", "project_id"), (("input_tokens", "input_tokens"), ("num_model_requests", "requests")),
              ("input_tokens", "num_model_requests"), "moderations"),
    UsageKind("images", ("model", "project_id", "source"), (("images", "images"), ("num_model_requests", "requests")),
              ("images", "num_model_requests"), "images"),
    UsageKind("audio_speeches", ("model", "project_id"), (("characters", "characters"), ("num_model_requests", "requests")),
              ("characters", "num_model_requests"), "audio_speeches"),
    UsageKind("audio_transcriptions", ("model", "project_id"), (("seconds", "audio_seconds"), ("num_model_requests", "requests")),
              ("seconds", "num_model_requests"), "audio_transcriptions"),
    UsageKind("vector_stores", ("project_id",), (("usage_bytes", "storage_byte_days"),), ("usage_bytes",), "vector_stores", DAY),
    UsageKind("code_interpreter_sessions", ("project_id",), (("num_sessions", "sessions"), ("sessions", "sessions")),
              (), "code_interpreter_sessions"),
)  # fmt: skip


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    status: str


# ---------------------------------------------------------------- validation helpers
def _span(bucket: dict[str, Any], where: str) -> tuple[datetime, datetime]:
    start, end = shape.integer(bucket, "start_time", where), shape.integer(bucket, "end_time", where)
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


# ---------------------------------------------------------------- parsers
def _completions_result(obj: dict[str, Any], where: str) -> CompletionsResult:
    tokens = {key: shape.integer(obj, key, where) for key in REQUIRED_USAGE_FIELDS}
    for key, _metric in USAGE_METRICS:
        if key not in tokens and obj.get(key) is not None:  # optional fields: absent or null is fine
            tokens[key] = shape.integer(obj, key, where)
    batch = obj.get("batch")
    if batch is not None and not isinstance(batch, bool):
        raise shape.bad(f"{where}.batch is not a boolean")
    return CompletionsResult(
        shape.opt_str(obj, "project_id", where), shape.opt_str(obj, "model", where), tokens,
        service_tier=shape.opt_str(obj, "service_tier", where), batch=batch,
    )  # fmt: skip


def _kind_result(kind: UsageKind) -> Any:
    def parse(obj: dict[str, Any], where: str) -> KindResult:
        quantities: dict[str, int] = {}
        for key, metric in kind.metrics:
            if key in kind.required or obj.get(key) is not None:
                quantities[metric] = quantities.get(metric, 0) + shape.integer(obj, key, where)
        return KindResult(
            shape.opt_str(obj, "project_id", where),
            shape.opt_str(obj, "model", where),
            shape.opt_str(obj, "source", where),
            quantities,
        )

    return parse


def parse_kind_page(kind: UsageKind) -> Any:
    parse = _kind_result(kind)

    def parse_page(body: Any) -> BucketPage[KindResult]:
        return bucket_page(shape, body, f"{kind.name} usage page", _span, parse)

    return parse_page


def _cost_result(obj: dict[str, Any], where: str) -> CostResult:
    amount = shape.obj(obj.get("amount"), f"{where}.amount")
    # The spec says number; the live API has been seen sending a string. Accept both, never bool.
    quantity = shape.number(amount.get("value"), f"{where}.amount.value")
    currency = amount.get("currency")
    if not isinstance(currency, str) or not currency.strip():
        raise shape.bad(f"{where}.amount.currency is missing")
    billed, billed_unit = shape.opt_number(obj, "quantity", where), shape.opt_str(obj, "quantity_unit", where)
    return CostResult(
        quantity, currency.strip().upper(), shape.opt_str(obj, "line_item", where), shape.opt_str(obj, "project_id", where),
        api_key_id=shape.opt_str(obj, "api_key_id", where),
        # A quantity means something only with its unit: without one it is left out.
        quantity=billed if billed_unit else None, quantity_unit=billed_unit if billed is not None else None,
    )  # fmt: skip


def parse_completions_page(body: Any) -> BucketPage[CompletionsResult]:
    return bucket_page(shape, body, "usage page", _span, _completions_result)


def parse_costs_page(body: Any) -> BucketPage[CostResult]:
    return bucket_page(shape, body, "costs page", _span, _cost_result)


def parse_project_list(body: Any) -> IdPage[Project]:
    return id_page(
        shape, body, "project list",
        lambda obj, where, project_id: Project(
            project_id, shape.opt_str(obj, "name", where) or "", shape.opt_str(obj, "status", where) or ""
        ),
    )  # fmt: skip


# ---------------------------------------------------------------- mapping


def split_line_item(line_item: str | None) -> tuple[str, str]:
    """ "gpt-4o-2024-08-06, input" -> (model, "input"); anything else -> ("", line_item)."""
    if not line_item:
        return "", ""
    head, sep, tail = line_item.partition(", ")
    if sep and tail and _MODEL_ID_RE.match(head):
        return head, tail.strip()
    return "", line_item


def completions_samples(
    bucket: Bucket[CompletionsResult], *, account: str, width: timedelta = HOUR
) -> list[UsageSample]:
    # The key is always the aligned bucket [start, start + width): the same hour read by two
    # syncs must produce the same key, however the provider clipped that bucket.
    start = align_down(bucket.start, width)
    totals: dict[tuple[str, str, str, str, str], int] = {}
    for result in bucket.results:
        tier, batch = result.service_tier or "", _flag(result.batch)
        for key, metric in USAGE_METRICS:
            if key in result.tokens:
                dims = (result.project_id or "", result.model or "", tier, batch, metric)
                # Results sharing our key (e.g. split by a dimension we do not group by) add up.
                totals[dims] = totals.get(dims, 0) + result.tokens[key]
    return _usage_samples(start, width, account, totals, ("service_tier", "batch"))


def _usage_samples(
    start: datetime, width: timedelta, account: str, totals: dict[Any, int], dims: tuple[str, ...]
) -> list[UsageSample]:
    """One sample per total keyed (project, model, *the values of `dims`, metric)."""
    return [
        UsageSample(start, start + width, key[-1], Decimal(quantity), account=account, project=key[0], model=key[1],
                    **dict(zip(dims, key[2:-1], strict=True)))
        for key, quantity in totals.items()
    ]  # fmt: skip


def _flag(value: bool | None) -> str:
    """The batch dimension: "true" / "false" as OpenAI reports it, "" when not reported."""
    return "" if value is None else ("true" if value else "false")


def kind_samples(kind: UsageKind) -> Any:
    def to_samples(bucket: Bucket[KindResult], *, account: str, width: timedelta = HOUR) -> list[UsageSample]:
        start = align_down(bucket.start, width)
        totals: dict[tuple[str, str, str, str], int] = {}
        for result in bucket.results:
            operation = result.source or kind.operation  # images: the source says which operation
            for metric, quantity in result.quantities.items():
                dims = (result.project_id or "", result.model or "", operation, metric)
                totals[dims] = totals.get(dims, 0) + quantity
        return _usage_samples(start, width, account, totals, ("operation",))

    return to_samples


def cost_samples(bucket: Bucket[CostResult], *, account: str, width: timedelta = DAY) -> list[UsageSample]:
    start = align_down(bucket.start, width)
    totals: dict[tuple[str, str, str, str, str, str], Decimal] = {}
    for result in bucket.results:
        model, operation = split_line_item(result.line_item)
        dims = (result.project_id or "", model, operation, result.api_key_id or "")
        key = (*dims, "cost", result.currency)
        totals[key] = totals.get(key, Decimal(0)) + result.amount
        if result.quantity is not None and result.quantity_unit:
            key = (*dims, "billed_quantity", result.quantity_unit.strip().lower()[:16])
            totals[key] = totals.get(key, Decimal(0)) + result.quantity
    return [
        UsageSample(
            start,
            start + width,
            metric,
            amount,
            unit=unit,
            account=account,
            project=project,
            model=model,
            operation=operation,
            api_key=api_key,
        )
        for (project, model, operation, api_key, metric, unit), amount in totals.items()
    ]
