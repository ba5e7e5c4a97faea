"""Groq metrics API (Prometheus / VictoriaMetrics) shapes, validated at the boundary, metric-name
discovery, and the pure mapping from 5-minute rates to hourly UsageSamples.

Every `parse_*` function takes decoded JSON and returns small typed objects or raises
ProviderResponseError naming what was wrong (never echoing the body).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from integrations.providers.base import (
    ConfigurationError,
    ProviderResponseError,
    ProviderUnavailable,
    UsageSample,
)
from integrations.providers.toolkit import Shape

HOUR = timedelta(hours=1)
STEP = 300  # seconds: the rate5m recording rules are read once per 5-minute window
# (our metric, Groq's documented name, the part after the recording rule's label prefix).
METRIC_ROLES: tuple[tuple[str, str, str], ...] = (
    ("input_tokens", "model_project_id:tokens_in:rate5m", "tokens_in:rate5m"),
    ("output_tokens", "model_project_id:tokens_out:rate5m", "tokens_out:rate5m"),
    ("requests", "model_project_id_status_code:requests:rate5m", "requests:rate5m"),
)
MODEL_LABEL = "model"
PROJECT_LABEL = "project_id"
# Recording rules are named level:metric:operations; only the level (label prefix) may differ.
_RULE_PREFIX_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NON_FINITE = {"nan", "+inf", "-inf", "inf"}
shape = Shape("Groq's metrics API")


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[tuple[int, Decimal], ...]  # (unix seconds, per-second rate), finite and >= 0


@dataclass(frozen=True)
class MetricNames:
    found: Mapping[str, str]  # our metric -> the Groq metric name to query
    missing: tuple[str, ...]  # our metrics whose Groq metric is not listed


# ---------------------------------------------------------------- validation helpers
def _data(body: Any, what: str) -> Any:
    """The `data` of a Prometheus envelope; an error envelope or a partial answer raises."""
    status = shape.obj(body, what).get("status")
    if status == "error":
        error_type, error = body.get("errorType"), body.get("error")
        raise ProviderResponseError(
            f"Groq's metrics API reported an error ({str(error_type)[:40]}): {str(error)[:300]}"
        )
    if status != "success":
        raise shape.bad(f"{what}.status is {str(status)[:40]!r}, not 'success'")
    # VictoriaMetrics flags an answer missing some storage nodes: storing it would undercount.
    if body.get("isPartial") is True:
        raise ProviderUnavailable("Groq's metrics API returned a partial answer (some storage was unavailable).")
    if "data" not in body:
        raise shape.bad(f"{what}.data is missing")
    return body["data"]


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise shape.bad(f"{what} is not a list of strings")
    return value


def _labels(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise shape.bad(f"{what} is not an object of string labels")
    return value


def _timestamp(value: Any, what: str) -> int:
    # Prometheus sends unix seconds as a JSON number, with a fraction when not whole.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise shape.bad(f"{what} timestamp is not a number")
    return round(value)


def _rate(value: Any, what: str) -> Decimal | None:
    """A sample value: a string in Prometheus ("12.5", "1e-05", "NaN", "+Inf"). None = no usage."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise shape.bad(f"{what} value is not a number")
    text = str(value).strip()
    if text.lower() in _NON_FINITE:
        return None  # a broken rule evaluation, not usage
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise shape.bad(f"{what} value {text[:20]!r} is not a number") from None
    # A rate of a counter is never negative; a negative one is an artefact, not usage.
    return rate if rate.is_finite() and rate >= 0 else None


# ---------------------------------------------------------------- parsers
def parse_label_values(body: Any) -> list[str]:
    return _str_list(_data(body, "label values"), "label values.data")


def parse_series_list(body: Any) -> list[dict[str, str]]:
    data = shape.array(_data(body, "series list"), "series list.data")
    return [_labels(s, f"series list.data[{i}]") for i, s in enumerate(data)]


def parse_matrix(body: Any) -> list[Series]:
    data = shape.obj(_data(body, "query_range"), "query_range.data")
    if data.get("resultType") != "matrix":
        raise shape.bad(f"query_range.data.resultType is {str(data.get('resultType'))[:20]!r}, not 'matrix'")
    series = []
    for where, raw in shape.objects(data.get("result"), "query_range.data.result"):
        points = []
        for j, pair in enumerate(shape.array(raw.get("values"), f"{where}.values")):
            if not isinstance(pair, list) or len(pair) != 2:
                raise shape.bad(f"{where}.values[{j}] is not a [timestamp, value] pair")
            rate = _rate(pair[1], f"{where}.values[{j}]")
            if rate is not None:
                points.append((_timestamp(pair[0], f"{where}.values[{j}]"), rate))
        series.append(Series(_labels(raw.get("metric"), f"{where}.metric"), tuple(points)))
    return series


# ---------------------------------------------------------------- discovery
def resolve_metric_names(names: Iterable[str]) -> MetricNames:
    """Pick the Groq metric to read for each of our metrics from the listed names.

    The documented name wins. Groq renamed its metrics once already, so a name with another
    label prefix (`<labels>:tokens_in:rate5m`) is accepted when it is the only one; several
    such names are ambiguous (they are different aggregations of the same usage, and reading
    two would double count), which is a configuration error.
    """
    listed = set(names)
    found: dict[str, str] = {}
    missing: list[str] = []
    for metric, documented, rule in METRIC_ROLES:
        if documented in listed:
            found[metric] = documented
            continue
        candidates = sorted(n for n in listed if n.endswith(":" + rule) and _RULE_PREFIX_RE.match(n[: -len(rule) - 1]))
        if len(candidates) > 1:
            raise ConfigurationError(
                f"Groq's metrics API lists several candidates for {metric} and not {documented}: "
                f"{', '.join(candidates[:5])}.",
                hint="Groq has renamed its metrics; this app cannot tell which one to read without double "
                "counting. Report the names above to your operator so the connector can be updated.",
            )
        if candidates:
            found[metric] = candidates[0]
        else:
            missing.append(metric)
    return MetricNames(found, tuple(missing))


# ---------------------------------------------------------------- mapping


def step_hour(ts: int, step: int = STEP) -> int:
    """The hour a point belongs to. A rate5m point at t is the rate over (t - step, t], so it
    belongs to the hour holding the start of that interval: points at 10:05 … 11:00 are 10:00."""
    return (ts - step) // 3600 * 3600


def hourly_samples(
    series_by_metric: Mapping[str, Sequence[Series]], start: datetime, end: datetime, *, step: int = STEP
) -> list[UsageSample]:
    """Hourly samples for the hours in [start, end): Σ rate × step per (hour, metric, project,
    model), summed over every other label (status_code), rounded half-up once per hour."""
    first, stop = int(start.timestamp()), int(end.timestamp())
    totals: dict[tuple[int, int, str, str], Decimal] = {}
    order = [metric for metric, _, _ in METRIC_ROLES]
    for metric, series_list in series_by_metric.items():
        for series in series_list:
            project, model = series.labels.get(PROJECT_LABEL, ""), series.labels.get(MODEL_LABEL, "")
            seen: set[int] = set()
            for ts, rate in series.points:
                hour = step_hour(ts, step)
                if ts in seen or not first <= hour < stop:
                    continue  # a repeated point, or one outside the hours asked for
                seen.add(ts)
                key = (hour, order.index(metric), project, model)
                totals[key] = totals.get(key, Decimal(0)) + rate * step
    samples = []
    for (hour, index, project, model), total in sorted(totals.items()):
        quantity = total.quantize(Decimal(1), ROUND_HALF_UP)
        if quantity:  # an hour that rounds to nothing is not stored (as an hour without usage)
            bucket_start = datetime.fromtimestamp(hour, UTC)
            sample = UsageSample(
                bucket_start,
                bucket_start + HOUR,
                order[index],
                quantity,
                project=project,
                model=model,
                provenance="derived",
            )
            samples.append(sample)
    return samples
