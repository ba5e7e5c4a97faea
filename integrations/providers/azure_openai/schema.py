"""Azure shapes (Entra ID token, ARM listings, Azure Monitor metrics), validated at the boundary,
and the pure mapping of a metrics response to UsageSamples.

Every `parse_*` function takes decoded JSON and returns small typed objects or raises
ProviderResponseError naming what was wrong (never echoing the body).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.providers.base import (
    ProviderResponseError,
    UsageSample,
    align_down,
)
from integrations.providers.toolkit import Shape

HOUR = timedelta(hours=1)
# (Azure Monitor metric, our metric). ProcessedPromptTokens counts every prompt token the
# deployment processed; Azure publishes no cached-token metric for OpenAI models on standard
# deployments, so there is no cached_input_tokens here.
OPENAI_METRICS: tuple[tuple[str, str], ...] = (
    ("ProcessedPromptTokens", "input_tokens"),
    ("GeneratedTokens", "output_tokens"),
    ("AzureOpenAIRequests", "requests"),
)
# The "Models – Usage" metrics report every model of an AI Services account, other vendors'
# models (Anthropic, Meta, Mistral, …) included — and OpenAI models too, so a deployment is read
# from one family only (see metrics_samples).
# Its prompt-cache metrics (Anthropic model deployments only) are Anthropic's usage fields
# cache_read_input_tokens and cache_creation.ephemeral_5m/_1h_input_tokens, which Anthropic
# reports apart from input_tokens: each is also added to input_tokens (every prompt token).
CACHE_METRICS: tuple[tuple[str, str], ...] = (
    ("cacheReadInputTokens", "cached_input_tokens"),
    ("ephemeral5mInputTokens", "cache_write_tokens"),
    ("ephemeral1hInputTokens", "cache_write_tokens"),
)
CACHE_METRIC_NAMES = frozenset(m for m, _ in CACHE_METRICS)
MODEL_METRICS: tuple[tuple[str, str], ...] = (
    ("InputTokens", "input_tokens"),
    ("OutputTokens", "output_tokens"),
    ("ModelRequests", "requests"),
    *CACHE_METRICS,
)
METRICS: tuple[tuple[str, str], ...] = (*OPENAI_METRICS, *MODEL_METRICS)
# The request counts include failed and throttled requests: they are read split by StatusCode
# (a dimension the token metrics do not have, so they are asked for in their own request).
REQUEST_METRICS = frozenset({"AzureOpenAIRequests", "ModelRequests"})
TOKEN_METRIC_NAMES: tuple[str, ...] = tuple(m for m, _ in METRICS if m not in REQUEST_METRICS)
REQUEST_METRIC_NAMES: tuple[str, ...] = tuple(m for m, _ in METRICS if m in REQUEST_METRICS)
STATUS_DIMENSION = "statuscode"
# Provisioned (PTU) deployments bill their PTUs every hour, whatever the tokens.
PTU_SKUS = frozenset({"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"})
OPENAI_KINDS = frozenset({"openai", "aiservices"})  # lower-cased; other Cognitive Services kinds are skipped
DEPLOYMENT_DIMENSION = "modeldeploymentname"  # Azure lower-cases dimension names in responses
_RESOURCE_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<name>[^/]+)$",
    re.I,
)


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    kind: str

    @property
    def serves_openai(self) -> bool:
        return self.kind.lower() in OPENAI_KINDS


@dataclass(frozen=True)
class Deployment:
    name: str
    model: str  # "<model name>-<version>", e.g. "gpt-4o-2024-08-06"
    sku: str
    capacity: int = 0  # sku.capacity: PTUs of a provisioned deployment (priced by the hour)
    format: str = ""  # properties.model.format: "OpenAI", "Anthropic", "Meta", … ("" unknown)
    created_at: datetime | None = None  # systemData.createdAt, when given

    @property
    def provisioned(self) -> bool:
        return self.sku in PTU_SKUS and self.capacity > 0


@dataclass(frozen=True)
class Listing:
    items: tuple[Any, ...]
    next_link: str | None


@dataclass(frozen=True)
class Series:
    metric: str  # Azure's metric name as sent in name.value
    deployment: str
    points: tuple[tuple[datetime, Decimal], ...]  # only points that carry a `total`
    status: str = ""  # the StatusCode dimension, when the request was split by it


# ---------------------------------------------------------------- validation helpers
shape = Shape("Azure")


def parse_resource_id(text: str) -> tuple[str, str, str] | None:
    """(subscription, resource group, account name) of a Cognitive Services account id, else None."""
    match = _RESOURCE_ID_RE.match(text.strip())
    return (match["sub"], match["rg"], match["name"]) if match else None


def model_id(name: str, version: str) -> str:
    # "gpt-4o" + "2024-08-06" -> "gpt-4o-2024-08-06", the same id OpenAI itself uses.
    return f"{name}-{version}" if name and version else name


# ---------------------------------------------------------------- parsers
def parse_token(body: Any) -> Token:
    body = shape.obj(body, "token response")
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise shape.bad("the token response has no access_token")
    expires_in = body.get("expires_in", 3599)
    try:  # Entra's v1 endpoint sent it as a string; accept both, never a bool
        seconds = int(expires_in) if not isinstance(expires_in, bool) else -1
    except (TypeError, ValueError):
        seconds = -1
    if seconds <= 0:
        raise shape.bad("the token response's expires_in is not a positive number")
    return Token(token.strip(), seconds)


def parse_account(obj: Any, what: str = "account") -> Account:
    obj = shape.obj(obj, what)
    resource_id = shape.text(obj, "id", what)
    parts = parse_resource_id(resource_id)
    if parts is None:
        raise shape.bad(f"{what}.id is not a Cognitive Services account id")
    return Account(
        resource_id,
        shape.text(obj, "name", what),
        parts[0],
        parts[1],
        shape.text(obj, "location", what),
        shape.text(obj, "kind", what, required=False),
    )


def parse_accounts_page(body: Any) -> Listing:
    body = shape.obj(body, "account list")
    accounts = tuple(parse_account(a, where) for where, a in shape.objects(body.get("value"), "account list.value"))
    return Listing(accounts, shape.opt_str(body, "nextLink", "account list"))


def parse_deployments_page(body: Any) -> Listing:
    body = shape.obj(body, "deployment list")
    deployments = []
    for where, obj in shape.objects(body.get("value"), "deployment list.value"):
        properties = shape.opt_obj(obj, "properties", where)
        model = shape.opt_obj(properties, "model", f"{where}.properties")
        sku = shape.opt_obj(obj, "sku", where)
        system = obj["systemData"] if isinstance(obj.get("systemData"), dict) else {}
        created = system.get("createdAt")
        try:
            created_at = _timestamp(created, where) if isinstance(created, str) else None
        except ProviderResponseError:
            created_at = None  # optional, informational: a malformed one is ignored
        deployments.append(
            Deployment(
                shape.text(obj, "name", where),
                model_id(
                    shape.text(model, "name", f"{where}.properties.model", required=False),
                    shape.text(model, "version", f"{where}.properties.model", required=False),
                ),
                shape.text(sku, "name", f"{where}.sku", required=False),
                _capacity(sku.get("capacity")),
                shape.text(model, "format", f"{where}.properties.model", required=False),
                created_at,
            )
        )
    return Listing(tuple(deployments), shape.opt_str(body, "nextLink", "deployment list"))


def _capacity(value: Any) -> int:
    """sku.capacity when it is a whole number (it is optional, and only informs pricing)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _timestamp(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise shape.bad(f"{what}.timeStamp is not a string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise shape.bad(f"{what}.timeStamp is not an ISO 8601 time") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _total(point: dict[str, Any], what: str) -> Decimal | None:
    value = point.get("total")
    if value is None:  # no data in this interval: not a zero to store
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise shape.bad(f"{what}.total is not a number")
    try:
        total = Decimal(str(value))
    except InvalidOperation:
        raise shape.bad(f"{what}.total is not a number") from None
    if not total.is_finite() or total < 0:
        raise shape.bad(f"{what}.total is not a finite, non-negative number")
    # Counts arrive as floats (1234.0); keep them integral so stored quantities read as counts.
    return total.quantize(Decimal(1)) if total == total.to_integral_value() else total


def parse_metrics(body: Any) -> list[Series]:
    body = shape.obj(body, "metrics response")
    interval = body.get("interval")
    if interval is not None and str(interval).upper() != "PT1H":
        raise shape.bad(f"metrics came back at interval {interval!r}, not PT1H")
    out = []
    for where, metric in shape.objects(body.get("value"), "metrics response.value"):
        name = shape.text(shape.obj(metric.get("name"), f"{where}.name"), "value", f"{where}.name")
        error_code = metric.get("errorCode")
        if error_code not in (None, "", "Success"):
            detail = metric["errorMessage"] if isinstance(metric.get("errorMessage"), str) else ""
            raise shape.bad(f"metric {name} failed with {error_code}: {detail[:200]}")
        for swhere, series in shape.objects(metric.get("timeseries", []), f"{where}.timeseries"):
            deployment = status = ""
            for mwhere, meta in shape.objects(series.get("metadatavalues", []), f"{swhere}.metadatavalues"):
                key = shape.text(shape.obj(meta.get("name"), f"{mwhere}.name"), "value", f"{swhere}.name")
                if key.lower() == DEPLOYMENT_DIMENSION:
                    deployment = shape.text(meta, "value", mwhere, required=False)
                elif key.lower() == STATUS_DIMENSION:
                    status = shape.text(meta, "value", mwhere, required=False)
            points = []
            for pwhere, point in shape.objects(series.get("data", []), f"{swhere}.data"):
                total = _total(point, pwhere)
                if total is not None:
                    points.append((_timestamp(point.get("timeStamp"), pwhere), total))
            out.append(Series(name, deployment, tuple(points), status))
    return out


# ---------------------------------------------------------------- mapping


def request_metric(status: str) -> str:
    """Our metric for a request count with this StatusCode: successful (2xx, or not split)
    requests are `requests`; 429 is `throttled_requests`; any other code `failed_requests`."""
    code = status.strip()
    if not code or code.startswith("2"):
        return "requests"
    return "throttled_requests" if code == "429" else "failed_requests"


def _family(s: Series) -> str:
    return "openai" if any(s.metric.lower() == a.lower() for a, _ in OPENAI_METRICS) else "models"


def metrics_samples(
    series: list[Series],
    *,
    account: Account,
    models: Mapping[str, str],
    start: datetime,
    end: datetime,
    formats: Mapping[str, str] | None = None,
) -> list[UsageSample]:
    """Hourly samples of one account's metrics for buckets starting in [start, end).

    Dimensions: account = subscription id, project = resource group, resource = account name,
    region = account location, deployment, and model from the deployment list ("" for a
    deployment that no longer exists).

    Each deployment is read from one metric family: the Azure OpenAI metrics for a model of
    format "OpenAI", the "Models – Usage" metrics for any other format; a deployment no longer
    listed (format unknown) from the Azure OpenAI metrics when they have data for it, else the
    Models ones. Request counts split by StatusCode become requests / throttled_requests /
    failed_requests."""
    ours = {azure.lower(): metric for azure, metric in METRICS}
    cache = {name.lower() for name in CACHE_METRIC_NAMES}
    formats = formats or {}
    with_openai_data = {s.deployment for s in series if _family(s) == "openai" and s.points}

    def family_of(deployment: str) -> str:
        fmt = formats.get(deployment, "")
        if fmt:
            return "openai" if fmt.lower() == "openai" else "models"
        return "openai" if deployment in with_openai_data else "models"

    totals: dict[tuple[datetime, str, str], Decimal] = {}
    for s in series:
        metric = ours.get(s.metric.lower())
        if metric is None:
            continue  # a metric we did not ask for
        if _family(s) != family_of(s.deployment):
            continue  # the same traffic, counted by the other family
        if metric == "requests":
            metric = request_metric(s.status)
        # A cache read or write is a prompt token too (InputTokens leaves them out).
        targets = (metric, "input_tokens") if s.metric.lower() in cache else (metric,)
        for moment, total in s.points:
            bucket = align_down(moment)
            if start <= bucket < end:
                # Series sharing our key (e.g. the same deployment twice) add up; never overwrite.
                for target in targets:
                    key = (bucket, s.deployment, target)
                    totals[key] = totals.get(key, Decimal(0)) + total
    return [
        UsageSample(
            bucket,
            bucket + HOUR,
            metric,
            quantity,
            account=account.subscription_id,
            project=account.resource_group,
            region=account.location,
            resource=account.name,
            deployment=deployment,
            model=models.get(deployment, ""),
        )
        for (bucket, deployment, metric), quantity in sorted(totals.items(), key=lambda kv: kv[0])
    ]


def provisioned_samples(
    deployments: tuple[Deployment, ...], *, account: Account, start: datetime, end: datetime
) -> list[UsageSample]:
    """`provisioned_hours` of each provisioned (PTU) deployment listed now: its PTUs for every
    hour starting in [start, end) from its creation on (PTU-hours: 15 PTUs for an hour = 15).
    A PTU deployment bills these hours whether or not it serves a token."""
    out = []
    for d in deployments:
        if not d.provisioned:
            continue
        first = max(align_down(start), align_down(d.created_at) if d.created_at else align_down(start))
        moment = first
        while moment < end:
            out.append(
                UsageSample(
                    moment,
                    moment + HOUR,
                    "provisioned_hours",
                    Decimal(d.capacity),
                    account=account.subscription_id,
                    project=account.resource_group,
                    region=account.location,
                    resource=account.name,
                    deployment=d.name,
                    model=d.model,
                )
            )
            moment += HOUR
    return out
