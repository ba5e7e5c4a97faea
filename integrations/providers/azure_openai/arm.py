"""Azure Resource Manager and Azure Monitor calls: authenticated GETs through the seam, ARM's
error codes mapped to typed errors, `nextLink` paging, account/deployment discovery (once per
sync) and the metrics request with a `top` that can never truncate silently."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from integrations.providers.azure_openai.auth import bearer_token
from integrations.providers.azure_openai.schema import (
    CACHE_METRIC_NAMES,
    OPENAI_METRICS,
    REQUEST_METRIC_NAMES,
    TOKEN_METRIC_NAMES,
    Account,
    Deployment,
    Listing,
    Series,
    parse_account,
    parse_accounts_page,
    parse_deployments_page,
    parse_metrics,
)
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderError,
    ProviderResponseError,
)
from integrations.providers.toolkit import paginate

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

DEFAULT_ARM = "https://management.azure.com"
ARM_API_VERSION = "2025-09-01"
METRICS_API_VERSION = "2024-02-01"
OPENAI_METRIC_NAMES = frozenset(m for m, _ in OPENAI_METRICS)
MAX_PAGES = 1_000
_CODE_RE = re.compile(r"^[A-Za-z0-9_.]{1,80}$")

Discovered = list[tuple[Account, tuple[Deployment, ...]]]
_discovered: WeakKeyDictionary[HttpClient, dict[tuple[str, ...], Discovered]] = WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class Config:
    tenant_id: str
    client_id: str
    client_secret: str
    subscription_id: str
    resource_ids: tuple[str, ...]
    base_url: str
    login_url: str


def role_hint(config: Config) -> str:
    return (
        "Assign the Monitoring Reader role (it covers reading the accounts, deployments and metrics) to the app "
        f"at the subscription, e.g. `az role assignment create --assignee {config.client_id} "
        f'--role "Monitoring Reader" --scope /subscriptions/{config.subscription_id}`; '
        "role assignments can take a few minutes to apply."
    )


def arm_classifier(config: Config) -> Callable[[int, str, requests.Response], ProviderError | None]:
    """ARM's `{"error":{"code","message"}}` codes; None leaves 429/529/5xx to the seam."""

    def classify(status: int, message: str, response: requests.Response) -> ProviderError | None:
        try:
            error = response.json().get("error") or {}
            code = str(error.get("code") or "") if isinstance(error, dict) else ""
        except (ValueError, AttributeError):
            code = ""
        code = code if _CODE_RE.match(code) else ""  # it goes into a message: only a plain code
        if status == 401:
            hint = "Rotate the client secret, or check that the app belongs to the tenant that owns the subscription."
            if code == "InvalidAuthenticationTokenTenant":
                hint = "The subscription belongs to another tenant: set tenant_id to the subscription's tenant."
            return CredentialError(
                f"Azure Resource Manager rejected the access token ({code or 'HTTP 401'}): {message}",
                hint=hint,
                field="tenant_id" if "Tenant" in code else "",
            )
        if code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
            return ConfigurationError(
                f"Azure does not know subscription {config.subscription_id}: {message}",
                hint="Check subscription_id: `az account show --query id -o tsv`.",
                field="subscription_id",
            )
        if code in ("ResourceNotFound", "ResourceGroupNotFound", "ParentResourceNotFound") and config.resource_ids:
            return ConfigurationError(
                f"An account in resource_ids was not found: {message}",
                hint="Fix or remove it from resource_ids (empty discovers every account).",
                field="resource_ids",
            )
        if status == 403:
            return PermissionDenied(f"The app may not read this: {message}", hint=role_hint(config))
        return None

    return classify


def arm_get(
    http: HttpClient, config: Config, url: str, params: dict[str, Any] | None, parse: Callable[[Any], Any]
) -> Any:
    token = bearer_token(
        http,
        login_url=config.login_url,
        tenant_id=config.tenant_id,
        client_id=config.client_id,
        client_secret=config.client_secret,
    )
    response = http.request(
        "GET",
        url,
        params=params,
        classify=arm_classifier(config),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    return http.parse_json(response, parse, request_id_of=lambda r: r.headers.get("x-ms-request-id", "")[:200])


def arm_list(http: HttpClient, config: Config, url: str, parse: Callable[[Any], Listing]) -> list[Any]:
    def get(link: str | None) -> Listing:
        if link is None:
            return arm_get(http, config, url, {"api-version": ARM_API_VERSION}, parse)
        return arm_get(http, config, follow(config, link), None, parse)  # nextLink carries the whole query

    pages = paginate(get, lambda page: page.next_link, source="Azure Resource Manager", max_pages=MAX_PAGES,
                     repeated="Azure Resource Manager repeated a nextLink.")  # fmt: skip
    return [item for page in pages for item in page.items]


def follow(config: Config, link: str) -> str:
    """The URL to fetch for a nextLink. The bearer token must only go to the configured ARM host:
    a link there is followed verbatim, one on the public ARM host is re-based onto base_url (so
    a proxy stays in the path), anything else is refused."""
    if link.startswith(config.base_url + "/"):
        return link
    parts = urlsplit(link)
    if parts.scheme == "https" and parts.hostname == urlsplit(DEFAULT_ARM).hostname and parts.port in (None, 443):
        return config.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
    raise ProviderResponseError("Azure Resource Manager sent a nextLink to another host; it was not followed.")


def discover(http: HttpClient, config: Config) -> Discovered:
    """Accounts (kind OpenAI / AIServices) and their deployments, read once per sync (one
    HttpClient) however many chunks the engine asks for."""
    key = (config.base_url, config.subscription_id, config.client_id, *config.resource_ids)
    with _lock:
        cached = _discovered.get(http, {}).get(key)
    if cached is not None:
        return cached
    base = config.base_url
    if config.resource_ids:
        accounts = [
            arm_get(http, config, base + r, {"api-version": ARM_API_VERSION}, parse_account)
            for r in config.resource_ids
        ]
        for account in accounts:
            if not account.serves_openai:
                raise ConfigurationError(
                    f"{account.name} is a {account.kind} account, not Azure OpenAI.",
                    hint="List only accounts of kind OpenAI or AIServices.",
                    field="resource_ids",
                )
    else:
        url = f"{base}/subscriptions/{config.subscription_id}/providers/Microsoft.CognitiveServices/accounts"
        accounts = [a for a in arm_list(http, config, url, parse_accounts_page) if a.serves_openai]
    discovered = [
        (a, tuple(arm_list(http, config, f"{base}{a.id}/deployments", parse_deployments_page))) for a in accounts
    ]
    with _lock:
        _discovered.setdefault(http, {})[key] = discovered
    return discovered


def read_metrics(
    http: HttpClient,
    config: Config,
    account: Account,
    deployments: tuple[Deployment, ...],
    start: datetime,
    end: datetime,
    *,
    min_top: int,
) -> list[Series]:
    """One account's hourly metrics per deployment over [start, end) (hour-aligned): the token
    metrics per deployment, then the request counts per deployment and StatusCode (two calls:
    a metric is refused a dimension it does not have)."""
    tokens = _read_with_fallback(http, config, account, TOKEN_METRIC_NAMES, "ModelDeploymentName eq '*'",
                                 2 * len(deployments), start, end, min_top=min_top)  # fmt: skip
    # A few status codes per deployment (200, 429, 400, 500…): room for them in `top`.
    requests = _read_with_fallback(http, config, account, REQUEST_METRIC_NAMES,
                                   "ModelDeploymentName eq '*' and StatusCode eq '*'", 8 * len(deployments), start, end,
                                   min_top=min_top)  # fmt: skip
    return tokens + requests


def _read_with_fallback(
    http: HttpClient,
    config: Config,
    account: Account,
    names: tuple[str, ...],
    filter_text: str,
    expected: int,
    start: datetime,
    end: datetime,
    *,
    min_top: int,
) -> list[Series]:
    """The metrics `names`; an account that does not define the "Models – Usage" metrics (Azure
    answers 400 "Failed to find metric configuration") is read again with the Azure OpenAI ones
    alone, which every Azure OpenAI account has."""
    url = f"{config.base_url}{account.id}/providers/Microsoft.Insights/metrics"

    def read(names: tuple[str, ...]) -> list[Series]:
        # With a $filter `top` defaults to 10 and extra series vanish without a word. Ask for well
        # above the series expected (deleted deployments keep their history), and read a metric
        # that still fills `top` again with a larger one rather than trust it.
        top = max(min_top, expected)
        for _ in range(4):
            params = {
                "api-version": METRICS_API_VERSION,
                "metricnames": ",".join(names),
                "timespan": f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}",
                "interval": "PT1H",
                "aggregation": "Total",
                "$filter": filter_text,
                "top": top,
                "metricnamespace": "Microsoft.CognitiveServices/accounts",
            }
            series: list[Series] = arm_get(http, config, url, params, parse_metrics)
            if max(Counter(s.metric for s in series).values(), default=0) < top:
                return series
            top *= 4
        raise ProviderResponseError(
            f"Azure Monitor returned {top // 4} or more series for {account.name}; refusing a possibly truncated answer."
        )

    # Fewer metrics each time: without the prompt-cache ones (newer than the rest of "Models –
    # Usage"), then the Azure OpenAI ones alone; straight to the first without the metrics the
    # refusal names ("…, metric: InputTokens, Valid metrics: …").
    attempts = list(dict.fromkeys((
        names, tuple(n for n in names if n not in CACHE_METRIC_NAMES), tuple(n for n in names if n in OPENAI_METRIC_NAMES),
    )))  # fmt: skip
    attempt = attempts[0]
    while True:
        try:
            return read(attempt)
        except ProviderResponseError as error:
            later = attempts[attempts.index(attempt) + 1 :]
            if error.http_status != 400 or "metric" not in error.message.lower() or not later:
                raise
            unknown = _refused_metrics(error.message)
            attempt = next((a for a in later if not unknown & {n.lower() for n in a}), later[-1])


def _refused_metrics(message: str) -> set[str]:
    """The metric names (lower-cased) Azure says it cannot find, when its message names them."""
    found = re.search(r"metric:\s*(.*?),\s*Valid metrics:", message, re.I)
    return {n.strip().lower() for n in found[1].split(",") if n.strip()} if found else set()
