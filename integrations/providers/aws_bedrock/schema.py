"""CloudWatch shapes for Amazon Bedrock, validated at the boundary, and the pure mapping to samples.

boto3 hands back parsed dicts (timestamps as datetimes); recorded fixtures hold the same dicts
as JSON (timestamps as ISO 8601 strings). The `parse_*` functions accept both and raise
ProviderResponseError naming what was wrong; `usage_samples` turns datapoints into samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.providers.base import (
    ConfigurationError,
    UsageSample,
    align_down,
)
from integrations.providers.toolkit import Shape

NAMESPACE = "AWS/Bedrock"
DIMENSION = "ModelId"
HOUR = timedelta(hours=1)
PERIOD_SECONDS = 3600
INVOCATIONS = "Invocations"
INPUT = "InputTokenCount"
OUTPUT = "OutputTokenCount"
CACHE_READ = "CacheReadInputTokenCount"
CACHE_WRITE = "CacheWriteInputTokenCount"
CLOUDWATCH_METRICS: tuple[str, ...] = (INVOCATIONS, INPUT, OUTPUT, CACHE_READ, CACHE_WRITE)
# Geography prefixes of system-defined (cross-region) inference profiles: "us.anthropic.…".
# The bedrock-mantle endpoint (OpenAI Responses / Chat Completions and Anthropic Messages APIs)
# publishes to its own namespace at Account, Project, Model and Project+Model levels. Only the
# Model level is read (one series per model: adding the Project levels would count it twice).
# Its dimension's name is not spelled out in the reference we read: a series keyed by one
# dimension named like a model id is taken, and queried back under that same name.
MANTLE_NAMESPACE = "AWS/BedrockMantle"
MANTLE_DIMENSIONS: tuple[str, ...] = ("ModelId", "Model")
MANTLE_INFERENCES = "Inferences"
MANTLE_INPUT = "TotalInputTokens"
MANTLE_OUTPUT = "TotalOutputTokens"
MANTLE_METRICS: tuple[str, ...] = (MANTLE_INFERENCES, MANTLE_INPUT, MANTLE_OUTPUT)
MANTLE_ENDPOINT = "bedrock-mantle"  # the `endpoint` dimension of its rows (runtime rows keep "")
GEO_PREFIXES = frozenset({"us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"})
_REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_ID_RE = re.compile(r"^[a-z][a-zA-Z0-9_]*$")  # GetMetricData's rule for a query Id


@dataclass(frozen=True)
class Query:
    """One GetMetricData query: one CloudWatch metric of one raw ModelId (in `namespace`,
    keyed by the dimension `dimension`)."""

    id: str
    model_id: str
    metric: str
    namespace: str = NAMESPACE
    dimension: str = DIMENSION

    def payload(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Label": f"{self.metric} {self.model_id}",
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": self.dimension, "Value": self.model_id}],
                },
                "Period": PERIOD_SECONDS,
                "Stat": "Sum",
            },
            "ReturnData": True,
        }


@dataclass(frozen=True)
class Series:
    id: str
    status: str
    points: tuple[tuple[datetime, Decimal], ...]


@dataclass(frozen=True)
class MetricDataPage:
    series: tuple[Series, ...]
    next_token: str | None


# ---------------------------------------------------------------- settings and ids
def parse_regions(text: str) -> list[str]:
    regions = list(dict.fromkeys(r.strip().lower() for r in (text or "").split(",") if r.strip()))
    if not regions:
        raise ConfigurationError(
            "Enter at least one AWS region.",
            hint="List the regions where you call Bedrock, separated by commas, e.g. us-east-1, eu-central-1.",
            field="regions",
        )
    for region in regions:
        if not _REGION_RE.match(region):
            raise ConfigurationError(
                f"{region!r} is not an AWS region code.",
                hint="Use region codes such as us-east-1 or eu-central-1, separated by commas.",
                field="regions",
            )
    return regions


def normalize_model_id(raw: str) -> str:
    """The foundation-model id behind a CloudWatch ModelId.

    "us.anthropic.claude-…" (a system inference profile) and ARNs of foundation models or
    system inference profiles become "anthropic.claude-…". Other ARNs (application inference
    profiles, provisioned or custom models) name no model without extra Bedrock calls: their
    resource part ("application-inference-profile/abc123") is kept as the model.
    """
    model = raw.strip()
    if model.startswith("arn:"):
        resource = model.split(":", 5)[5] if model.count(":") >= 5 else model
        kind, _, name = resource.partition("/")
        if kind not in ("foundation-model", "inference-profile") or not name:
            return resource
        model = name
    head, sep, rest = model.partition(".")
    if sep and head in GEO_PREFIXES and "." in rest:
        return rest
    return model


def build_queries(
    model_ids: Iterable[str],
    metrics: Sequence[str] = CLOUDWATCH_METRICS,
    *,
    namespace: str = NAMESPACE,
    dimension: str = DIMENSION,
    prefix: str = "m",
) -> list[Query]:
    queries = [
        Query(f"{prefix}{i}_{j}", model_id, metric, namespace, dimension)
        for i, model_id in enumerate(model_ids)
        for j, metric in enumerate(metrics)
    ]
    assert all(_ID_RE.match(q.id) for q in queries)
    return queries


def batches(queries: Sequence[Query], size: int) -> Iterator[list[Query]]:
    for i in range(0, len(queries), size):
        yield list(queries[i : i + size])


# ---------------------------------------------------------------- validation helpers
shape = Shape("CloudWatch")


def _items(body: dict[str, Any], key: str, what: str) -> list[Any]:
    """The response's list. AWS always sends a request id; a reply with neither the list nor a
    request id is not AWS talking (a proxy's HTML page parses to an empty response)."""
    if key not in body:
        if not (body.get("ResponseMetadata") or {}).get("RequestId"):
            raise shape.bad(f"{what} has no {key} and no AWS request id (not an AWS response?)")
        return []
    return shape.array(body[key], f"{what}.{key}")


def _timestamp(value: Any, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)  # Python 3.11 reads "Z" too
        except ValueError:
            raise shape.bad(f"{what} is not a timestamp") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise shape.bad(f"{what} is not an aware timestamp")
    return value.astimezone(UTC)


def _quantity(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise shape.bad(f"{what} is not a finite number")
    # Sums of token counts are whole numbers carried as doubles: store 1234, not 1234.0.
    return Decimal(int(value)) if float(value).is_integer() else Decimal(repr(float(value)))


# ---------------------------------------------------------------- parsers
def parse_list_metrics_page(body: Any, dimensions: Sequence[str] = (DIMENSION,)) -> tuple[list[str], str | None]:
    """ModelIds of one ListMetrics page (see parse_list_metrics_keys)."""
    keys, token = parse_list_metrics_keys(body, dimensions)
    return [value for _, value in keys], token


def parse_list_metrics_keys(
    body: Any, dimensions: Sequence[str] = (DIMENSION,)
) -> tuple[list[tuple[str, str]], str | None]:
    """(dimension name, model id) of one ListMetrics page. Only metrics whose sole dimension is
    ModelId (or one of `dimensions`) count: the "across all models" series (no dimension) and,
    in bedrock-mantle, the project levels would double every total."""
    body = shape.obj(body, "list_metrics")
    keys = []
    for where, metric in shape.objects(_items(body, "Metrics", "list_metrics"), "list_metrics.Metrics"):
        found = shape.array(metric.get("Dimensions", []), f"{where}.Dimensions")
        if len(found) != 1:
            continue
        dimension = shape.obj(found[0], f"{where}.Dimensions[0]")
        name, value = dimension.get("Name"), dimension.get("Value")
        if isinstance(name, str) and name in dimensions and isinstance(value, str) and value.strip():
            keys.append((name, value))
    return keys, shape.opt_str(body, "NextToken", "list_metrics")


def parse_metric_data_page(body: Any) -> MetricDataPage:
    body = shape.obj(body, "get_metric_data")
    series = []
    for where, result in shape.objects(_items(body, "MetricDataResults", "get_metric_data"), "MetricDataResults"):
        query_id, status = result.get("Id"), result.get("StatusCode", "Complete")
        if not isinstance(query_id, str) or not isinstance(status, str):
            raise shape.bad(f"{where}.Id or StatusCode is missing")
        stamps = shape.array(result.get("Timestamps", []), f"{where}.Timestamps")
        values = shape.array(result.get("Values", []), f"{where}.Values")
        if len(stamps) != len(values):
            raise shape.bad(f"{where} has {len(stamps)} timestamps but {len(values)} values")
        points = tuple(
            (_timestamp(t, f"{where}.Timestamps[{j}]"), _quantity(v, f"{where}.Values[{j}]"))
            for j, (t, v) in enumerate(zip(stamps, values, strict=True))
        )
        series.append(Series(query_id, status, points))
    return MetricDataPage(tuple(series), shape.opt_str(body, "NextToken", "get_metric_data"))


# ---------------------------------------------------------------- mapping
Datapoints = Mapping[tuple[datetime, str, str], Decimal]  # (hour, raw ModelId, CloudWatch metric) -> Sum


def is_application_profile(model_id: str) -> bool:
    """An application inference profile's ARN (…:application-inference-profile/<id>)."""
    return model_id.startswith("arn:") and ":application-inference-profile/" in model_id


def parse_inference_profile(body: Any) -> str:
    """The one foundation model behind a GetInferenceProfile answer ("" when it names none or
    several): `models[].modelArn` are foundation-model ARNs, one per Region it may route to."""
    body = shape.obj(body, "get_inference_profile")
    found = set()
    for _where, model in shape.objects(body.get("models", []), "get_inference_profile.models"):
        arn = model.get("modelArn")
        if isinstance(arn, str) and arn.strip():
            found.add(normalize_model_id(arn))
    return found.pop() if len(found) == 1 else ""


def usage_samples(
    points: Datapoints, *, account: str, region: str, resolved: Mapping[str, str] | None = None
) -> list[UsageSample]:
    """Samples of one region's datapoints, in time order.

    requests = Invocations; input_tokens = InputTokenCount + CacheRead + CacheWrite (Bedrock
    counts cache tokens apart from InputTokenCount, as its Converse usage does, and our
    input_tokens includes them); cached_input_tokens = CacheRead; cache_write_tokens =
    CacheWrite. Hours CloudWatch omitted (no datapoint) produce no sample.
    """
    hours: dict[tuple[datetime, str], dict[str, Decimal]] = {}
    for (moment, model_id, metric), value in points.items():
        values = hours.setdefault((align_down(moment), model_id), {})
        values[metric] = values.get(metric, Decimal(0)) + value
    samples: list[UsageSample] = []
    for (hour, model_id), values in sorted(hours.items()):
        # An application inference profile is named by its foundation model when Bedrock told
        # us which (resolved); the raw ARN stays the deployment either way.
        model = (resolved or {}).get(model_id) or normalize_model_id(model_id)
        # The raw id keeps "us.anthropic.x" and "anthropic.x" apart: same model, two series,
        # and one natural key for both would make the store keep only one of them.
        deployment = model_id if model_id != model else ""
        metrics: dict[str, Decimal] = {}
        if INVOCATIONS in values:
            metrics["requests"] = values[INVOCATIONS]
        if any(m in values for m in (INPUT, CACHE_READ, CACHE_WRITE)):
            metrics["input_tokens"] = sum(
                (values.get(m, Decimal(0)) for m in (INPUT, CACHE_READ, CACHE_WRITE)), Decimal(0)
            )
        if CACHE_READ in values:
            metrics["cached_input_tokens"] = values[CACHE_READ]
        if CACHE_WRITE in values:
            metrics["cache_write_tokens"] = values[CACHE_WRITE]
        if OUTPUT in values:
            metrics["output_tokens"] = values[OUTPUT]
        samples.extend(
            UsageSample(
                hour, hour + HOUR, metric, quantity, account=account, region=region, model=model, deployment=deployment
            )
            for metric, quantity in metrics.items()
        )
    return samples


def mantle_samples(points: Datapoints, *, account: str, region: str) -> list[UsageSample]:
    """Samples of one region's bedrock-mantle datapoints (Model level), in time order, with
    endpoint "bedrock-mantle" so they never share a key with the runtime's rows of the same
    model: requests = Inferences (completed ones; InferenceClientErrors is not read),
    input_tokens = TotalInputTokens, output_tokens = TotalOutputTokens (both "billable" tokens;
    bedrock-mantle publishes no cache-token split)."""
    names = {MANTLE_INFERENCES: "requests", MANTLE_INPUT: "input_tokens", MANTLE_OUTPUT: "output_tokens"}
    hours: dict[tuple[datetime, str], dict[str, Decimal]] = {}
    for (moment, model_id, metric), value in points.items():
        if metric not in names:
            continue
        values = hours.setdefault((align_down(moment), model_id), {})
        values[names[metric]] = values.get(names[metric], Decimal(0)) + value
    samples: list[UsageSample] = []
    for (hour, model_id), values in sorted(hours.items()):
        model = normalize_model_id(model_id)
        deployment = model_id if model_id != model else ""
        samples.extend(
            UsageSample(
                hour,
                hour + HOUR,
                metric,
                values[metric],
                account=account,
                region=region,
                model=model,
                deployment=deployment,
                endpoint=MANTLE_ENDPOINT,
            )
            for metric in ("requests", "input_tokens", "output_tokens")
            if metric in values
        )
    return samples
