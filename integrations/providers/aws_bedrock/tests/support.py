"""Test support: deterministic Bedrock datapoints put into moto's CloudWatch, their true totals,
and the recorded fixtures (fakes.py has what moto cannot fake)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from integrations.providers.aws_bedrock.schema import (
    CACHE_READ,
    CACHE_WRITE,
    CLOUDWATCH_METRICS,
    INPUT,
    INVOCATIONS,
    OUTPUT,
    build_queries,
    normalize_model_id,
    parse_metric_data_page,
    usage_samples,
)
from integrations.providers.base import UsageSample
from integrations.providers.testing import days_ago as days_ago  # the tests of this provider import it from here
from integrations.providers.testing import fixture_loader

FIXTURES = Path(__file__).parent / "fixtures"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
CUSTOMER_ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/DoowUsageRead"
EXTERNAL_ID = "doow-0123456789abcdef0123456789abcdef01234567"
# moto accepts any key pair and files it under its default account.
KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ACCOUNT = "123456789012"
REGIONS = ("us-east-1", "eu-central-1")
MODELS: dict[str, tuple[str, ...]] = {
    "us-east-1": (
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",  # same model through a profile: its own rows
        f"arn:aws:bedrock:us-east-1:{CUSTOMER_ACCOUNT}:inference-profile/us.meta.llama3-3-70b-instruct-v1:0",
    ),
    "eu-central-1": ("eu.amazon.nova-pro-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"),
}
OUR_METRICS = {"requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens"}


def _n(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def truth_value(region: str, model_id: str, metric: str, hour: datetime) -> int | None:
    """The hourly Sum moto holds, or None for a period CloudWatch omits (no datapoint)."""
    if _n(region, model_id, hour) % 5 == 0:
        return None  # an idle hour: no datapoint for any metric of this model
    if metric in (CACHE_READ, CACHE_WRITE) and ("anthropic" not in model_id or _n(model_id, hour, metric) % 3 == 0):
        return None  # only some models cache, not every hour
    invocations = 1 + _n(region, model_id, hour, "i") % 40
    per_call = {INVOCATIONS: 1, INPUT: 900, OUTPUT: 250, CACHE_READ: 1500, CACHE_WRITE: 300}[metric]
    return invocations if metric == INVOCATIONS else invocations * per_call + _n(region, model_id, hour, metric) % 97


def hours(start: datetime, end: datetime) -> Iterable[datetime]:
    moment = start
    while moment < end:
        yield moment
        moment += HOUR


def seed_cloudwatch(
    client_for: Any, start: datetime, end: datetime, models: dict[str, tuple[str, ...]] = MODELS
) -> None:
    """put_metric_data of every truth value, split over two datapoints inside its hour (so the
    hourly Sum is really summed), plus the "across all models" series the connector must skip."""
    for region, model_ids in models.items():
        data: list[dict[str, Any]] = []
        for hour in hours(start, end):
            total_invocations = 0
            for model_id in model_ids:
                for metric in CLOUDWATCH_METRICS:
                    value = truth_value(region, model_id, metric, hour)
                    if value is None:
                        continue
                    total_invocations += value if metric == INVOCATIONS else 0
                    first = value // 3
                    dims = [{"Name": "ModelId", "Value": model_id}]
                    data.append(
                        {
                            "MetricName": metric,
                            "Dimensions": dims,
                            "Timestamp": hour + timedelta(minutes=7),
                            "Value": first,
                        }
                    )
                    data.append(
                        {
                            "MetricName": metric,
                            "Dimensions": dims,
                            "Timestamp": hour + timedelta(minutes=41),
                            "Value": value - first,
                        }
                    )
            data.append(
                {"MetricName": INVOCATIONS, "Timestamp": hour + timedelta(minutes=1), "Value": total_invocations}
            )
        client = client_for(region)
        for i in range(0, len(data), 1000):
            client.put_metric_data(Namespace="AWS/Bedrock", MetricData=data[i : i + 1000])


def forget_datapoints(region: str, model_id: str, start: datetime | None = None, end: datetime | None = None) -> int:
    """Drop the model's datapoints from moto's CloudWatch in the customer's account: all of them
    (ListMetrics no longer lists it, as after two weeks unused), or those in [start, end) (it
    stays listed but reports nothing there). Returns how many were dropped."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[CUSTOMER_ACCOUNT][region]

    def doomed(datum: Any) -> bool:
        moment = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=UTC)
        in_range = start is None or (start <= moment and (end is None or moment < end))
        return in_range and any(d.name == "ModelId" and d.value == model_id for d in datum.dimensions)

    kept = [datum for datum in backend.metric_data if not doomed(datum)]
    dropped = len(backend.metric_data) - len(kept)
    backend.metric_data = kept
    return dropped


def hide_from_list_metrics(monkeypatch: Any, *model_ids: str) -> None:
    """ListMetrics stops listing these model ids (as CloudWatch does two weeks after a model's
    last datapoint) while GetMetricData still returns their older datapoints."""
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.list_metrics

    def list_metrics(self: Any, *args: Any, **kwargs: Any) -> Any:
        token, metrics = original(self, *args, **kwargs)
        return token, [m for m in metrics if not any(d.value in model_ids for d in m.dimensions)]

    monkeypatch.setattr(CloudWatchBackend, "list_metrics", list_metrics)


def customer_client(region: str = "us-east-1") -> Any:
    """A CloudWatch client inside the customer's account (moto files data per account); call it
    inside mock_aws with Doow's own test credentials in the environment."""
    creds = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=ROLE_ARN, RoleSessionName="test-seed")
    return boto3.client(
        "cloudwatch",
        region_name=region,
        aws_access_key_id=creds["Credentials"]["AccessKeyId"],
        aws_secret_access_key=creds["Credentials"]["SecretAccessKey"],
        aws_session_token=creds["Credentials"]["SessionToken"],
    )


def true_totals(start: datetime, end: datetime, *dims: str, models: dict[str, tuple[str, ...]] = MODELS) -> Counter:
    """Totals per (metric, *dims) in our vocabulary; dims among region, model, deployment, hour, day."""
    totals: Counter = Counter()
    for region, model_ids in models.items():
        for model_id in model_ids:
            for hour in hours(start, end):
                raw = {m: truth_value(region, model_id, m, hour) for m in CLOUDWATCH_METRICS}
                present = {m: Decimal(v) for m, v in raw.items() if v is not None}
                ours: dict[str, Decimal] = {}
                if INVOCATIONS in present:
                    ours["requests"] = present[INVOCATIONS]
                if present.keys() & {INPUT, CACHE_READ, CACHE_WRITE}:
                    ours["input_tokens"] = sum(
                        (present.get(m, Decimal(0)) for m in (INPUT, CACHE_READ, CACHE_WRITE)), Decimal(0)
                    )
                if CACHE_READ in present:
                    ours["cached_input_tokens"] = present[CACHE_READ]
                if CACHE_WRITE in present:
                    ours["cache_write_tokens"] = present[CACHE_WRITE]
                if OUTPUT in present:
                    ours["output_tokens"] = present[OUTPUT]
                model = normalize_model_id(model_id)
                values = {
                    "region": region,
                    "model": model,
                    "deployment": model_id if model_id != model else "",
                    "bucket_start": hour,
                    "day": hour.date(),
                }
                for metric, quantity in ours.items():
                    totals[(metric, *(values[d] for d in dims))] += quantity
    return totals


load = fixture_loader(FIXTURES)


# ---------------------------------------------------------------- recorded fixtures
FIXTURE_MODELS = ("anthropic.claude-3-5-haiku-20241022-v1:0", "us.anthropic.claude-sonnet-4-20250514-v1:0")
HAIKU, SONNET = "anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0"


def _sample(hour: str, metric: str, quantity: int, model: str, deployment: str = "") -> UsageSample:
    start = datetime.fromisoformat(hour).replace(tzinfo=UTC)
    return UsageSample(start, start + HOUR, metric, Decimal(quantity), account=CUSTOMER_ACCOUNT,
                       region="us-east-1", model=model, deployment=deployment)  # fmt: skip


# 10:00: input = 1200 InputTokenCount + 2000 cache read + 500 cache write. 11:00: no cache
# datapoints (omitted periods), so no cache samples and input = InputTokenCount alone. The
# profile id keeps its raw id as the deployment.
EXPECTED_METRIC_DATA = [
    _sample("2026-11-01T10:00", "requests", 4, HAIKU),
    _sample("2026-11-01T10:00", "input_tokens", 3700, HAIKU),
    _sample("2026-11-01T10:00", "cached_input_tokens", 2000, HAIKU),
    _sample("2026-11-01T10:00", "cache_write_tokens", 500, HAIKU),
    _sample("2026-11-01T10:00", "output_tokens", 350, HAIKU),
    _sample("2026-11-01T11:00", "requests", 2, HAIKU),
    _sample("2026-11-01T11:00", "input_tokens", 300, HAIKU),
    _sample("2026-11-01T11:00", "output_tokens", 90, HAIKU),
    _sample("2026-11-01T11:00", "requests", 1, SONNET, "us.anthropic.claude-sonnet-4-20250514-v1:0"),
    _sample("2026-11-01T11:00", "input_tokens", 42, SONNET, "us.anthropic.claude-sonnet-4-20250514-v1:0"),
    _sample("2026-11-01T11:00", "output_tokens", 7, SONNET, "us.anthropic.claude-sonnet-4-20250514-v1:0"),
]


def parsed_metric_data() -> list[UsageSample]:
    """The fixture through the connector's pure path: parse, map query ids, make samples."""
    queries = {q.id: q for q in build_queries(FIXTURE_MODELS)}
    page = parse_metric_data_page(load("metric_data_page.json"))
    points = {(t, queries[s.id].model_id, queries[s.id].metric): v for s in page.series for t, v in s.points}
    return usage_samples(points, account=CUSTOMER_ACCOUNT, region="us-east-1")


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [("metric_data_page.json", parsed_metric_data(), EXPECTED_METRIC_DATA)]
