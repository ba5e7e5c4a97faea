"""OpenRouter management API shapes, validated at the boundary, and the pure mapping to samples.

Every `parse_*` function takes decoded JSON and returns small typed objects or raises
ProviderResponseError naming what was wrong (never echoing the body). `activity_samples`
turns `/activity` rows into daily UsageSamples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.providers.base import UsageSample
from integrations.providers.toolkit import Shape

DAY = timedelta(days=1)
MAX_DIMENSION_LENGTH = 200  # the usage store's column width
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ActivityItem:
    day: date
    model: str  # model_permaslug when given (the dated version), else the model slug
    endpoint_id: str
    provider_name: str
    usage: Decimal  # USD of OpenRouter credits
    requests: int
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens are already part of this
    reasoning_tokens: int | None = None  # informational only: never added to output tokens
    byok_usage_inference: Decimal | None = None  # USD billed by the customer's own provider key


@dataclass(frozen=True)
class KeyInfo:
    label: str
    is_management_key: bool | None  # None: the API did not say
    limit: Decimal | None
    limit_remaining: Decimal | None
    limit_reset: str
    usage: Decimal | None
    usage_daily: Decimal | None
    usage_monthly: Decimal | None
    creator_user_id: str


@dataclass(frozen=True)
class Credits:
    total_credits: Decimal
    total_usage: Decimal


# ---------------------------------------------------------------- validation helpers
shape = Shape("OpenRouter")


def _data(body: Any, what: str) -> Any:
    if not isinstance(body, dict) or "data" not in body:
        raise shape.bad(f"{what} has no data")
    return body["data"]


def _number(obj: dict[str, Any], key: str, where: str) -> Decimal:
    number = shape.opt_number(obj, key, where)
    if number is None:
        raise shape.bad(f"{where}.{key} is missing")
    return number


def _opt_count(obj: dict[str, Any], key: str, where: str) -> int | None:
    number = shape.opt_number(obj, key, where)
    if number is not None and (number != number.to_integral_value() or number < 0):
        raise shape.bad(f"{where}.{key} is not a whole, non-negative count")
    return None if number is None else int(number)


def _count(obj: dict[str, Any], key: str, where: str) -> int:
    count = _opt_count(obj, key, where)
    if count is None:
        raise shape.bad(f"{where}.{key} is missing")
    return count


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = shape.text(obj, key, where, required=False)
    if len(value) > MAX_DIMENSION_LENGTH:
        raise shape.bad(f"{where}.{key} is longer than {MAX_DIMENSION_LENGTH} characters")
    return value.strip()


def _day(obj: dict[str, Any], where: str) -> date:
    value = obj.get("date")
    # Documented as YYYY-MM-DD; a full timestamp starting with the day is read as that day.
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise shape.bad(f"{where}.date is missing or not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise shape.bad(f"{where}.date is not a valid date") from None


# ---------------------------------------------------------------- parsers
def parse_activity(body: Any) -> tuple[ActivityItem, ...]:
    items = []
    for where, raw in shape.objects(_data(body, "activity"), "activity.data"):
        model = _text(raw, "model_permaslug", where) or _text(raw, "model", where)
        items.append(
            ActivityItem(
                day=_day(raw, where),
                model=model,
                endpoint_id=_text(raw, "endpoint_id", where),
                provider_name=_text(raw, "provider_name", where),
                usage=_number(raw, "usage", where),
                requests=_count(raw, "requests", where),
                prompt_tokens=_count(raw, "prompt_tokens", where),
                completion_tokens=_count(raw, "completion_tokens", where),
                reasoning_tokens=_opt_count(raw, "reasoning_tokens", where),
                byok_usage_inference=shape.opt_number(raw, "byok_usage_inference", where),
            )
        )
    return tuple(items)


def parse_key(body: Any) -> KeyInfo:
    data = shape.obj(_data(body, "key"), "key.data")
    flag = data.get("is_management_key")
    if flag is None:  # older responses only carry the former name, "provisioning key"
        flag = data.get("is_provisioning_key")
    if flag is not None and not isinstance(flag, bool):
        raise shape.bad("key.data.is_management_key is not a boolean")
    return KeyInfo(
        label=_text(data, "label", "key.data"),
        is_management_key=flag,
        limit=shape.opt_number(data, "limit", "key.data"),
        limit_remaining=shape.opt_number(data, "limit_remaining", "key.data"),
        limit_reset=_text(data, "limit_reset", "key.data"),
        usage=shape.opt_number(data, "usage", "key.data"),
        usage_daily=shape.opt_number(data, "usage_daily", "key.data"),
        usage_monthly=shape.opt_number(data, "usage_monthly", "key.data"),
        creator_user_id=_text(data, "creator_user_id", "key.data"),
    )


def parse_credits(body: Any) -> Credits:
    data = shape.obj(_data(body, "credits"), "credits.data")
    return Credits(_number(data, "total_credits", "credits.data"), _number(data, "total_usage", "credits.data"))


# ---------------------------------------------------------------- mapping
def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def activity_samples(items: Iterable[ActivityItem], *, days: set[date] | None = None) -> list[UsageSample]:
    """Daily samples per (model, endpoint, provider), in day order; only `days` when given.

    Rows sharing that key (e.g. split by a dimension we do not read) add up. Reasoning tokens
    are already inside `completion_tokens`, so output_tokens is completion_tokens as given.
    `byok_usage_inference` (what the customer's own provider key was billed, by that provider,
    for traffic routed here) is kept as its own metric, `byok_cost`, never in `cost`: it is not
    OpenRouter's charge, and may already be counted by that provider's own integration. A key
    with no BYOK spend gets no byok_cost row.
    """
    totals: dict[tuple[date, str, str, str], list[Decimal]] = {}
    for item in items:
        if days is not None and item.day not in days:
            continue
        key = (item.day, item.model, item.endpoint_id, item.provider_name)
        figures: tuple[Decimal | int, ...] = (item.prompt_tokens, item.completion_tokens, item.requests, item.usage,
                   item.byok_usage_inference or Decimal(0))  # fmt: skip
        sums = totals.setdefault(key, [Decimal(0)] * 5)
        for i, value in enumerate(figures):
            sums[i] += value
    samples = []
    for (day, model, endpoint, provider), sums in sorted(totals.items()):
        start = day_start(day)
        dims = {"model": model, "endpoint": endpoint, "deployment": provider}
        for metric, quantity in zip(
            ("input_tokens", "output_tokens", "requests", "cost", "byok_cost"), sums, strict=True
        ):
            if metric == "byok_cost" and not quantity:
                continue
            unit = "USD" if metric in ("cost", "byok_cost") else ""
            samples.append(UsageSample(start, start + DAY, metric, quantity, unit=unit, **dims))
    return samples
