"""OpenAI admin API shapes, validated at the boundary, and the pure mapping to UsageSamples.

Every `parse_*` function takes decoded JSON and returns small typed objects or raises
ProviderResponseError naming what was wrong (never echoing the body, which is the provider's
and may be large). The `*_samples` functions turn one bucket into normalized samples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from integrations.providers.base import (
    ProviderResponseError,
    UsageSample,
    align_down,
)

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

R = TypeVar("R")


@dataclass(frozen=True)
class CompletionsResult:
    project_id: str | None
    model: str | None
    tokens: dict[str, int]  # OpenAI field name -> value, for the USAGE_METRICS fields present


@dataclass(frozen=True)
class CostResult:
    amount: Decimal
    currency: str
    line_item: str | None
    project_id: str | None


@dataclass(frozen=True)
class Bucket(Generic[R]):
    start: datetime
    end: datetime
    results: tuple[R, ...]


@dataclass(frozen=True)
class Page(Generic[R]):
    buckets: tuple[Bucket[R], ...]
    has_more: bool
    next_page: str | None


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    status: str


@dataclass(frozen=True)
class ProjectList:
    projects: tuple[Project, ...]
    has_more: bool
    last_id: str | None


# ---------------------------------------------------------------- validation helpers
def _bad(what: str) -> ProviderResponseError:
    return ProviderResponseError(f"OpenAI returned an unexpected response: {what}.")


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(f"{what} is not a list")
    return value


def _int(obj: dict[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    # bool is an int in Python; a true/false token count is a broken response, not 1/0.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{what}.{key} is missing or not an integer")
    return value


def _opt_str(obj: dict[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(f"{what}.{key} is not a string")
    return value or None


def _page(body: Any, parse_result: Any, what: str) -> Page[Any]:
    body = _dict(body, what)
    data = _list(body.get("data"), f"{what}.data")
    has_more = body.get("has_more", False)
    if not isinstance(has_more, bool):
        raise _bad(f"{what}.has_more is not a boolean")
    next_page = body.get("next_page")
    if next_page is not None and not isinstance(next_page, str):
        raise _bad(f"{what}.next_page is not a string")
    buckets = []
    for i, raw in enumerate(data):
        where = f"{what}.data[{i}]"
        bucket = _dict(raw, where)
        start, end = _int(bucket, "start_time", where), _int(bucket, "end_time", where)
        results = _list(bucket.get("results"), f"{where}.results")
        buckets.append(
            Bucket(
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(end, UTC),
                results=tuple(
                    parse_result(_dict(r, f"{where}.results[{j}]"), f"{where}.results[{j}]")
                    for j, r in enumerate(results)
                ),
            )
        )
    return Page(tuple(buckets), has_more, next_page or None)


# ---------------------------------------------------------------- parsers
def _completions_result(obj: dict[str, Any], where: str) -> CompletionsResult:
    tokens = {key: _int(obj, key, where) for key in REQUIRED_USAGE_FIELDS}
    for key, _metric in USAGE_METRICS:
        if key not in tokens and obj.get(key) is not None:  # optional fields: absent or null is fine
            tokens[key] = _int(obj, key, where)
    return CompletionsResult(_opt_str(obj, "project_id", where), _opt_str(obj, "model", where), tokens)


def _cost_result(obj: dict[str, Any], where: str) -> CostResult:
    amount = _dict(obj.get("amount"), f"{where}.amount")
    value = amount.get("value")
    # The spec says number; the live API has been seen sending a string. Accept both, never bool.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(f"{where}.amount.value is not a number")
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        raise _bad(f"{where}.amount.value is not a number") from None
    if not quantity.is_finite():
        raise _bad(f"{where}.amount.value is not a finite number")
    currency = amount.get("currency")
    if not isinstance(currency, str) or not currency.strip():
        raise _bad(f"{where}.amount.currency is missing")
    return CostResult(
        quantity, currency.strip().upper(), _opt_str(obj, "line_item", where), _opt_str(obj, "project_id", where)
    )


def parse_completions_page(body: Any) -> Page[CompletionsResult]:
    return _page(body, _completions_result, "usage page")


def parse_costs_page(body: Any) -> Page[CostResult]:
    return _page(body, _cost_result, "costs page")


def parse_project_list(body: Any) -> ProjectList:
    body = _dict(body, "project list")
    projects = []
    for i, raw in enumerate(_list(body.get("data"), "project list.data")):
        where = f"project list.data[{i}]"
        obj = _dict(raw, where)
        project_id = _opt_str(obj, "id", where)
        if not project_id:
            raise _bad(f"{where}.id is missing")
        projects.append(Project(project_id, _opt_str(obj, "name", where) or "", _opt_str(obj, "status", where) or ""))
    has_more = body.get("has_more", False)
    if not isinstance(has_more, bool):
        raise _bad("project list.has_more is not a boolean")
    return ProjectList(tuple(projects), has_more, _opt_str(body, "last_id", "project list"))


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
    totals: dict[tuple[str, str, str], int] = {}
    for result in bucket.results:
        for key, metric in USAGE_METRICS:
            if key in result.tokens:
                dims = (result.project_id or "", result.model or "", metric)
                # Results sharing our key (e.g. split by a dimension we do not group by) add up.
                totals[dims] = totals.get(dims, 0) + result.tokens[key]
    return [
        UsageSample(start, start + width, metric, Decimal(quantity), account=account, project=project, model=model)
        for (project, model, metric), quantity in totals.items()
    ]


def cost_samples(bucket: Bucket[CostResult], *, account: str, width: timedelta = DAY) -> list[UsageSample]:
    start = align_down(bucket.start, width)
    totals: dict[tuple[str, str, str, str], Decimal] = {}
    for result in bucket.results:
        model, operation = split_line_item(result.line_item)
        dims = (result.project_id or "", model, operation, result.currency)
        totals[dims] = totals.get(dims, Decimal(0)) + result.amount
    return [
        UsageSample(
            start,
            start + width,
            "cost",
            amount,
            unit=currency,
            account=account,
            project=project,
            model=model,
            operation=operation,
        )
        for (project, model, operation, currency), amount in totals.items()
    ]
