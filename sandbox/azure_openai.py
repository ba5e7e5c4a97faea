"""A fake of Azure OpenAI as the connector sees it: Entra ID's token endpoint, Azure Resource
Manager's Cognitive Services listings, and the Azure Monitor metrics API.

Routes below the `/azure_openai` prefix: `/login/{tenant}/oauth2/v2.0/token` (so `login_url`
= sandbox url + "/azure_openai/login") and `/arm/…` (so `base_url` = sandbox url +
"/azure_openai/arm"). ARM calls need a bearer token this module issued (stateless: signed).

Data is deterministic: every (hour, account, deployment) gets its quantities from a SHA-256,
some hours and deployments are idle, and only fully elapsed hours carry data. `truth_usage`
is what the metrics handler serves from, so tests and responses cannot disagree.

Documented quirks reproduced: accounts (and deployments) come in pages linked by `nextLink`;
dimension names come back lower-cased (`modeldeploymentname`); a data point without `total`
means no data; with a `$filter`, `top` defaults to 10 and extra time series vanish silently;
metrics older than the 93-day retention are refused (so a connector must clamp).
AzureOpenAIRequests and ModelRequests count failed and throttled requests too, split by the
`StatusCode` dimension when asked (`$filter=... and StatusCode eq '*'`); the "Models – Usage"
metrics (InputTokens, OutputTokens, ModelRequests) are served for every deployment, OpenAI
models included (and its prompt-cache metrics cacheReadInputTokens, ephemeral5mInputTokens and
ephemeral1hInputTokens for Anthropic models only, apart from InputTokens), while the Azure
OpenAI ones (ProcessedPromptTokens, GeneratedTokens, AzureOpenAIRequests) only for OpenAI
models — so a connector reading both must not add them up.
A dimension a metric does not have is refused (StatusCode on a token metric).
`delete_deployment` and `remove_account` change the subscription from then on
(`clear_changes` undoes them).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

from sandbox.core import Changes, Request, Response, digest, epoch, from_epoch, json_response

PREFIX = "/azure_openai"
TENANT_ID = "5b9a1c2e-7d4f-4e3a-9c1b-0a2b3c4d5e6f"
TENANT_DOMAIN = "doowsandbox.onmicrosoft.com"  # a verified domain works as the tenant too
CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"  # app registration with Monitoring Reader
CLIENT_SECRET = "sbx8Q~SandboxClientSecret0123456789abcdSECRET"
EXPIRED_CLIENT_SECRET = "sbx8Q~SandboxExpiredSecret000000000000SECRET"  # → AADSTS7000222
NO_ROLE_CLIENT_ID = "7a6b5c4d-3e2f-4109-8a7b-6c5d4e3f2a1b"  # valid app, no role → 403
NO_ROLE_CLIENT_SECRET = "sbx8Q~SandboxNoRoleSecret0000000000000SECRET"
SUBSCRIPTION_ID = "9c8b7a65-4321-4fed-8cba-0123456789ab"
ARM_SCOPE = "https://management.azure.com/.default"
TOKEN_LIFETIME = 3599
RETENTION = timedelta(days=93)
ACCOUNTS_PAGE_SIZE = 2
DEPLOYMENTS_PAGE_SIZE = 10
DEFAULT_TOP = 10
DATA_START = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = 3600
_SIGNING_KEY = b"doow-sandbox-azure-signing-key"
_CLIENTS = {CLIENT_ID: CLIENT_SECRET, NO_ROLE_CLIENT_ID: NO_ROLE_CLIENT_SECRET}
METRICS = ("ProcessedPromptTokens", "GeneratedTokens", "AzureOpenAIRequests")
# The prompt-cache metrics of "Models – Usage", Anthropic model deployments only (their Messages
# API's cache_read_input_tokens and cache_creation.ephemeral_5m/_1h_input_tokens, reported apart
# from InputTokens as Anthropic's usage reports them).
CACHE_METRICS = ("cacheReadInputTokens", "ephemeral5mInputTokens", "ephemeral1hInputTokens")
MODEL_METRICS = ("InputTokens", "OutputTokens", "ModelRequests", *CACHE_METRICS)  # "Models – Usage"
ALL_METRICS = (*METRICS, *MODEL_METRICS)
REQUEST_METRICS = frozenset({"AzureOpenAIRequests", "ModelRequests"})  # the ones with StatusCode


@dataclass(frozen=True)
class Deployment:
    name: str
    model: str
    version: str
    sku: str
    capacity: int = 100
    format: str = "OpenAI"  # properties.model.format: "OpenAI", "Anthropic", "Meta", …
    created: str = "2024-01-01T00:00:00Z"  # systemData.createdAt

    @property
    def model_id(self) -> str:  # what the connector should call the model
        return f"{self.model}-{self.version}" if self.version else self.model


@dataclass(frozen=True)
class Account:
    name: str
    resource_group: str
    location: str
    kind: str
    deployments: tuple[Deployment, ...] = ()
    deleted: tuple[str, ...] = ()  # deployments gone from the list that still have metrics

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{self.name}"
        )

    @property
    def serves_openai(self) -> bool:
        return self.kind in ("OpenAI", "AIServices")


D = Deployment
ACCOUNTS: tuple[Account, ...] = (
    Account(
        "doow-sbx-eastus",
        "rg-ai-prod",
        "eastus",
        "OpenAI",
        (
            D("gpt-4o-prod", "gpt-4o", "2024-08-06", "GlobalStandard", 450),
            D("gpt-4o-mini-chat", "gpt-4o-mini", "2024-07-18", "Standard", 200),
            D("o3-mini-reasoning", "o3-mini", "2025-01-31", "GlobalStandard"),
            D("embeddings-large", "text-embedding-3-large", "1", "Standard", 350),
            D("gpt-41-agents", "gpt-4.1", "2025-04-14", "DataZoneStandard", 50),
            D("gpt-41-mini", "gpt-4.1-mini", "2025-04-14", "GlobalStandard", 150),
            D("gpt-41-nano", "gpt-4.1-nano", "2025-04-14", "GlobalStandard", 150),
            D("o4-mini", "o4-mini", "2025-04-16", "GlobalStandard"),
            D("gpt-4o-batch", "gpt-4o", "2024-11-20", "GlobalBatch"),
            D("ada-embeddings", "text-embedding-ada-002", "2", "Standard", 120),
            D("gpt-4o-ptu", "gpt-4o", "2024-08-06", "ProvisionedManaged", 15),
            D("gpt-5-mini", "gpt-5-mini", "2025-08-07", "GlobalStandard"),
        ),
        deleted=("gpt-35-legacy",),
    ),
    Account("doow-sbx-speech", "rg-ai-prod", "eastus", "SpeechServices"),
    Account(
        "doow-sbx-sweden",
        "rg-ai-research",
        "swedencentral",
        "AIServices",
        (
            D("gpt-4o", "gpt-4o", "2024-11-20", "GlobalStandard"),
            D("o3", "o3", "2025-04-16", "GlobalStandard", 50),
            D("embeddings", "text-embedding-3-small", "1", "Standard"),
            # A non-OpenAI model: only the "Models – Usage" metrics report it.
            D("claude-sonnet", "claude-sonnet-4-5", "20250929", "GlobalStandard", 0, "Anthropic"),
            D("llama-maas", "Llama-3.3-70B-Instruct", "4", "GlobalStandard", 0, "Meta"),
        ),
    ),
    Account(
        "doow-sbx-westeurope",
        "rg-ai-prod",
        "westeurope",
        "OpenAI",
        (
            D("chat", "gpt-4o-mini", "2024-07-18", "Standard"),
            D("reasoning", "o3-mini", "2025-01-31", "DataZoneStandard"),
        ),
    ),
    Account("doow-sbx-language", "rg-shared", "westeurope", "TextAnalytics"),
)


_changes: Changes[Account] = Changes()


def delete_deployment(account: str, deployment: str) -> None:
    """From now on the deployment is gone from the account's list; its metrics stay (as Azure
    keeps them), so their model is no longer known."""

    def edit(a: Account) -> Account:
        kept = tuple(d for d in a.deployments if d.name != deployment)
        if a.name != account or len(kept) == len(a.deployments):
            return a
        return replace(a, deployments=kept, deleted=(*a.deleted, deployment))

    _changes.add(edit)


def remove_account(account: str) -> None:
    """From now on the account is gone from the subscription (deleted, or moved out of the
    app's reach): not listed, not found, no metrics."""
    _changes.add(lambda a: None if a.name == account else a)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {"delete_deployment": delete_deployment, "remove_account": remove_account}


clear_changes = _changes.clear


def accounts() -> tuple[Account, ...]:
    """The subscription's accounts as they are now."""
    return tuple(_changes.apply(ACCOUNTS))


class UsageRow(NamedTuple):
    """The true usage of one deployment of one account in one hour."""

    hour_start: datetime
    account: str
    resource_group: str
    location: str
    deployment: str
    model: str  # "" for a deployment no longer listed
    prompt_tokens: int
    generated_tokens: int
    requests: int  # successful ones (StatusCode 2xx)
    throttled: int = 0  # StatusCode 429
    failed: int = 0  # other 4xx / 5xx
    openai: bool = True  # an OpenAI model: the Azure OpenAI metrics report it too
    provisioned: int = 0  # PTUs of a provisioned deployment listed now (billed every hour, idle or not)
    # Anthropic models only: prompt-cache reads and 5-minute / 1-hour writes, apart from prompt_tokens.
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    anthropic: bool = False

    @property
    def cache_write(self) -> int:
        """Cache writes, 5-minute and 1-hour TTL alike."""
        return self.cache_write_5m + self.cache_write_1h

    @property
    def input_tokens(self) -> int:
        """Every prompt token: the uncached ones (InputTokens) and the cache reads and writes."""
        return sum((self.prompt_tokens, self.cache_read, self.cache_write))

    @property
    def all_requests(self) -> int:
        """What AzureOpenAIRequests / ModelRequests count without a StatusCode split."""
        return self.requests + self.throttled + self.failed


def _iso(ts: int) -> str:
    return from_epoch(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


PTU_SKUS = frozenset({"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"})


@lru_cache(maxsize=100_000)
def _hour_rows(hour_ts: int, accounts: tuple[Account, ...]) -> tuple[UsageRow, ...]:
    if hour_ts < epoch(DATA_START):
        return ()
    traffic = _traffic_rows(hour_ts, accounts) if digest("idle", hour_ts)[0] >= 51 else ()  # ~20 % idle hours
    # Provisioned deployments: their PTUs every hour, with or without traffic.
    ptu = {
        (a.name, d.name): d.capacity
        for a in accounts
        if a.serves_openai
        for d in a.deployments
        if d.sku in PTU_SKUS
        and d.capacity
        and epoch(datetime.fromisoformat(d.created.replace("Z", "+00:00"))) <= hour_ts
    }
    rows = [r._replace(provisioned=ptu.pop((r.account, r.deployment), 0)) for r in traffic]
    for a in accounts:
        for d in a.deployments:
            if (a.name, d.name) in ptu:
                where = (a.name, a.resource_group, a.location)
                rows.append(
                    UsageRow(
                        from_epoch(hour_ts), *where, d.name, d.model_id, 0, 0, 0, provisioned=ptu[(a.name, d.name)]
                    )
                )
    return tuple(rows)


def _traffic_rows(hour_ts: int, accounts: tuple[Account, ...]) -> tuple[UsageRow, ...]:
    rows = []
    for account in accounts:
        if not account.serves_openai:
            continue
        models = {d.name: d.model_id for d in account.deployments} | {name: "" for name in account.deleted}
        formats = {d.name: d.format for d in account.deployments}
        for name, model in models.items():
            d = digest(hour_ts, account.name, name)
            if d[0] < 90:  # ~35 % of deployments idle in a busy hour
                continue
            requests = 1 + d[1] % 60
            prompt = requests * (200 + int.from_bytes(d[2:4], "big") % 2500)
            generated = 0 if "embedding" in model else requests * (20 + int.from_bytes(d[4:6], "big") % 900)
            throttled = d[6] % 7 if d[6] % 3 == 0 else 0
            failed = 1 if d[7] % 5 == 0 else 0
            where = (account.name, account.resource_group, account.location)
            openai = formats.get(name, "OpenAI") == "OpenAI"
            row = UsageRow(
                from_epoch(hour_ts), *where, name, model, prompt, generated, requests, throttled, failed, openai
            )
            if formats.get(name) == "Anthropic":
                row = row._replace(
                    anthropic=True,
                    cache_read=requests * (int.from_bytes(d[8:10], "big") % 4000) if d[10] % 3 else 0,
                    cache_write_5m=requests * d[11] * 4 if d[12] % 4 == 0 else 0,
                    cache_write_1h=requests * d[13] * 6 if d[14] % 5 == 0 else 0,
                )
            rows.append(row)
    return tuple(rows)


def truth_usage(start: datetime, end: datetime, *, now: datetime | None = None) -> list[UsageRow]:
    """Hourly rows for hours starting in [start, end) that have fully elapsed before `now`."""
    now_ts = epoch(now or datetime.now(UTC))
    first = -(-epoch(start) // HOUR) * HOUR
    now_accounts = accounts()
    return [r for h in range(first, min(epoch(end), now_ts - HOUR + 1), HOUR) for r in _hour_rows(h, now_accounts)]


# ---------------------------------------------------------------- tokens (signed, stateless)
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def issue_token(client_id: str, *, lifetime: int = TOKEN_LIFETIME, now: float | None = None) -> str:
    claims = {
        "aud": "https://management.azure.com/",
        "tid": TENANT_ID,
        "appid": client_id,
        "exp": int((now or time.time()) + lifetime),
    }
    head = _b64(b'{"typ":"JWT","alg":"HS256"}') + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(hmac.new(_SIGNING_KEY, head.encode(), "sha256").digest())


def _token_claims(token: str) -> dict[str, Any] | None:
    head, _, signature = token.rpartition(".")
    expected = _b64(hmac.new(_SIGNING_KEY, head.encode(), "sha256").digest())
    if not head or not hmac.compare_digest(signature, expected):
        return None
    payload = head.partition(".")[2]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ---------------------------------------------------------------- errors
def _aad_error(status: int, error: str, code: int, text: str) -> Response:
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return json_response(status, body, common_headers())


def _arm_error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}}, common_headers())


def error_body(status: int) -> dict[str, Any]:
    """ARM's error JSON for `status`; used for injected faults."""
    code, message = {
        401: ("InvalidAuthenticationToken", "The access token is invalid."),
        403: (
            "AuthorizationFailed",
            f"The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have "
            "authorization to perform action 'Microsoft.Insights/metrics/read' over scope "
            f"'/subscriptions/{SUBSCRIPTION_ID}' or the scope is invalid.",
        ),
        404: ("ResourceNotFound", "The Resource was not found."),
        429: ("TooManyRequests", "The request is throttled. Please try again after some time."),
        529: ("ServerBusy", "The server is busy. Please retry the request after some time."),
    }.get(status, ("InternalServerError" if status >= 500 else "BadRequest", f"HTTP {status}."))
    return {"error": {"code": code, "message": message}}


def common_headers() -> dict[str, str]:
    return {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}


# ---------------------------------------------------------------- dispatch
_ACCOUNT = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<name>[^/]+)"
)
ROUTES = (
    (re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.CognitiveServices/accounts$", re.I), "accounts"),
    (re.compile(f"^{_ACCOUNT}$", re.I), "account"),
    (re.compile(f"^{_ACCOUNT}/deployments$", re.I), "deployments"),
    (re.compile(f"^{_ACCOUNT}/providers/Microsoft\\.Insights/metrics$", re.I), "metrics"),
)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def handle(request: Request) -> Response:
    token_path = re.match(r"^/login/(?P<tenant>[^/]+)/oauth2/v2\.0/token$", request.path)
    if token_path:
        return _token(request, token_path["tenant"])
    if not request.path.startswith("/arm/"):
        return _arm_error(404, "NotFound", f"No route {request.path}.")
    path = request.path[len("/arm") :].rstrip("/")
    for pattern, kind in ROUTES:
        match = pattern.match(path)
        if match:
            return _arm(request, kind, match)
    return _arm_error(404, "InvalidResourceType", f"The resource path '{path}' is not served by the sandbox.")


def _token(request: Request, tenant: str) -> Response:
    if request.method != "POST":
        return _aad_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
    form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
    if tenant not in (TENANT_ID, TENANT_DOMAIN):
        return _aad_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you "
            "have the correct tenant ID and are signing into the correct cloud.",
        )
    if form.get("grant_type") != "client_credentials":
        return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    if form.get("scope") != ARM_SCOPE:
        return _aad_error(
            400,
            "invalid_scope",
            70011,
            f"The provided value '{form.get('scope')}' for the input parameter 'scope' is not valid.",
        )
    client_id = form.get("client_id", "")
    if client_id not in _CLIENTS:
        return _aad_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not "
            f"found in the directory '{tenant}'. You may have sent your authentication request to "
            "the wrong tenant.",
        )
    if client_id == CLIENT_ID and form.get("client_secret") == EXPIRED_CLIENT_SECRET:
        return _aad_error(
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{client_id}' "
            "are expired. Visit the Azure portal to create new keys for your app.",
        )
    if form.get("client_secret") != _CLIENTS[client_id]:
        return _aad_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being "
            "sent in the request is the client secret value, not the client secret ID, for a secret "
            f"added to app '{client_id}'.",
        )
    body = {
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME,
        "ext_expires_in": TOKEN_LIFETIME,
        "access_token": issue_token(client_id),
    }
    return json_response(200, body, common_headers())


def _arm(request: Request, kind: str, match: re.Match[str]) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
    claims = _token_claims(token.strip())
    if claims is None:
        return _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
    if claims["exp"] < time.time():
        return _arm_error(
            401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time."
        )
    sub = match["sub"]
    if not _GUID.match(sub):
        return _arm_error(
            400, "InvalidSubscriptionId", f"The provided subscription identifier '{sub}' is malformed or invalid."
        )
    if sub.lower() != SUBSCRIPTION_ID:
        return _arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
    if request.method != "GET":
        return _arm_error(405, "MethodNotAllowed", f"{request.method} is not allowed.")
    if claims["appid"] == NO_ROLE_CLIENT_ID:
        action = {
            "metrics": "Microsoft.Insights/metrics/read",
            "deployments": "Microsoft.CognitiveServices/accounts/deployments/read",
        }.get(kind, "Microsoft.CognitiveServices/accounts/read")
        return _arm_error(
            403,
            "AuthorizationFailed",
            f"The client '{NO_ROLE_CLIENT_ID}' with object id "
            f"'{NO_ROLE_CLIENT_ID}' does not have authorization to perform action '{action}' over "
            f"scope '/subscriptions/{sub}' or the scope is invalid. If access was recently granted, "
            "please refresh your credentials.",
        )
    versions = (
        ("2018-01-01", "2023-10-01", "2024-02-01") if kind == "metrics" else ("2024-10-01", "2025-06-01", "2025-09-01")
    )
    version = request.arg("api-version")
    if not version:
        return _arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in versions:
        return _arm_error(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{', '.join(versions)}'.",
        )
    if kind == "accounts":
        return _paged(request, [_account_json(a) for a in accounts()], ACCOUNTS_PAGE_SIZE)
    account = next((a for a in accounts() if a.id.lower() == _path_id(match).lower()), None)
    if account is None:
        return _arm_error(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.CognitiveServices/accounts/{match['name']}' "
            f"under resource group '{match['rg']}' was not found.",
        )
    if kind == "account":
        return json_response(200, _account_json(account), common_headers())
    if kind == "deployments":
        return _paged(request, [_deployment_json(account, d) for d in account.deployments], DEPLOYMENTS_PAGE_SIZE)
    try:
        return _metrics(request, account)
    except ValueError as exc:
        return _arm_error(400, "BadRequest", str(exc))


def _path_id(match: re.Match[str]) -> str:
    rg, name = match["rg"], match["name"]
    return f"/subscriptions/{match['sub']}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}"


def _paged(request: Request, items: list[dict[str, Any]], size: int) -> Response:
    skip = int(base64.urlsafe_b64decode(request.arg("$skiptoken") or "MA==").decode() or 0)
    body: dict[str, Any] = {"value": items[skip : skip + size]}
    if skip + size < len(items):
        query = {
            "api-version": request.arg("api-version"),
            "$skiptoken": base64.urlsafe_b64encode(str(skip + size).encode()).decode(),
        }
        host = request.headers.get("host", "127.0.0.1")
        body["nextLink"] = f"http://{host}{PREFIX}{request.path}?{urlencode(query)}"
    return json_response(200, body, {**common_headers(), "x-ms-ratelimit-remaining-subscription-reads": "249"})


def _account_json(a: Account) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "type": "Microsoft.CognitiveServices/accounts",
        "location": a.location,
        "kind": a.kind,
        "sku": {"name": "S0"},
        "tags": {},
        "properties": {
            "endpoint": f"https://{a.name}.openai.azure.com/",
            "provisioningState": "Succeeded",
            "customSubDomainName": a.name,
        },
    }


def _deployment_json(a: Account, d: Deployment) -> dict[str, Any]:
    return {
        "id": f"{a.id}/deployments/{d.name}",
        "name": d.name,
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "sku": {"name": d.sku, "capacity": d.capacity},
        "systemData": {"createdAt": d.created},
        "properties": {
            "model": {"format": d.format, "name": d.model, "version": d.version},
            "provisioningState": "Succeeded",
            "versionUpgradeOption": "OnceNewDefaultVersionAvailable",
        },
    }


# ---------------------------------------------------------------- metrics
def _parse_time(text: str) -> int:
    return epoch(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def _metrics(request: Request, account: Account) -> Response:
    names = [n.strip() for n in (request.arg("metricnames") or "").split(",") if n.strip()]
    known = {m.lower(): m for m in ALL_METRICS}
    unknown = [n for n in names if n.lower() not in known]
    if not names or unknown:
        raise ValueError(
            f"Failed to find metric configuration for provider: Microsoft.CognitiveServices, resource "
            f"Type: accounts, metric: {','.join(unknown) or '(none)'}, Valid metrics: {','.join(ALL_METRICS)}"
        )
    if (request.arg("interval") or "PT1H").upper() != "PT1H":
        raise ValueError("The sandbox serves interval PT1H only.")
    if "total" not in [a.strip().lower() for a in (request.arg("aggregation") or "Average").split(",")]:
        raise ValueError("The sandbox serves the Total aggregation only; ask for aggregation=Total.")
    try:
        start_text, end_text = (request.arg("timespan") or "").split("/")
        start, end = _parse_time(start_text), _parse_time(end_text)
    except ValueError:
        raise ValueError("Invalid timespan; expected 'start/end' in ISO 8601.") from None
    if end <= start:
        raise ValueError("The timespan end must be after its start.")
    if start < time.time() - RETENTION.total_seconds():
        raise ValueError("The requested timespan starts before the 93-day metrics retention.")
    filter_text = request.arg("$filter")
    wanted: str | None = None  # None: no filter (one aggregate series); "*": every deployment
    by_status = False
    if filter_text:
        f = re.match(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*(?:and\s+(\w+)\s+eq\s+'\*'\s*)?$", filter_text)
        if not f or f[1].lower() != "modeldeploymentname" or (f[3] and f[3].lower() != "statuscode"):
            raise ValueError(
                f"The sandbox supports only \"ModelDeploymentName eq '…'\" filters (and StatusCode eq '*'), "
                f"not {filter_text!r}."
            )
        wanted, by_status = f[2], bool(f[3])
        if by_status and any(known[n.lower()] not in REQUEST_METRICS for n in names):
            raise ValueError("Metric does not support requested dimension combination: modeldeploymentname,statuscode")
    top = int(request.arg("top") or DEFAULT_TOP)
    hours = range(start - start % HOUR, end, HOUR)
    # (hour, deployment) -> row; without a filter every deployment folds into one series ("").
    cells: dict[tuple[int, str], list[UsageRow]] = {}
    for r in truth_usage(from_epoch(hours.start), from_epoch(end)):
        if r.account == account.name and (wanted in (None, "*") or r.deployment == wanted):
            cells.setdefault((epoch(r.hour_start), r.deployment if wanted is not None else ""), []).append(r)
    deployments = sorted({d for _, d in cells}) if wanted is not None else [""]
    value = []
    for name in names:
        metric = known[name.lower()]
        statuses = STATUSES if by_status else ("",)
        series = [
            (deployment, _series(cells, hours, deployment, metric, labelled=wanted is not None, status=status))
            for deployment in deployments
            for status in statuses
            # The Azure OpenAI metrics have no series for a deployment of another vendor's model,
            # the cache metrics none for a deployment of a model other than Anthropic's.
            if (metric in MODEL_METRICS and metric not in CACHE_METRICS)
            or any(
                (r.anthropic if metric in CACHE_METRICS else r.openai)
                for (_, d), rows in cells.items()
                if d == deployment
                for r in rows
            )
        ]
        series = [(d, s) for d, s in series if s["data"] is not None]
        # Azure keeps the `top` series by the aggregate, descending, and says nothing about the rest.
        series.sort(key=lambda s: (-sum(p.get("total", 0) for p in s[1]["data"]), s[0]))
        value.append(
            {
                "id": f"{account.id}/providers/Microsoft.Insights/metrics/{metric}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": metric, "localizedValue": metric},
                "unit": "Count",
                "errorCode": "Success",
                "timeseries": [s for _, s in series[: top if wanted is not None else None]],
            }
        )
    body = {
        "cost": len(hours) * len(names),
        "timespan": f"{_iso(start)}/{_iso(end)}",
        "interval": "PT1H",
        "value": value,
        "namespace": "Microsoft.CognitiveServices/accounts",
        "resourceregion": account.location,
    }
    return json_response(200, body, common_headers())


_FIELDS = {
    "ProcessedPromptTokens": "prompt_tokens",
    "GeneratedTokens": "generated_tokens",
    "AzureOpenAIRequests": "all_requests",
    "InputTokens": "prompt_tokens",
    "OutputTokens": "generated_tokens",
    "ModelRequests": "all_requests",
    "cacheReadInputTokens": "cache_read",
    "ephemeral5mInputTokens": "cache_write_5m",
    "ephemeral1hInputTokens": "cache_write_1h",
}
STATUSES = ("200", "429", "500")
_STATUS_FIELDS = {"200": "requests", "429": "throttled", "500": "failed"}


def _series(
    cells: dict[tuple[int, str], list[UsageRow]],
    hours: range,
    deployment: str,
    metric: str,
    *,
    labelled: bool,
    status: str = "",
) -> dict[str, Any]:
    data = []
    field = _STATUS_FIELDS[status] if status else _FIELDS[metric]
    for h in hours:
        # The Azure OpenAI metrics say nothing of non-OpenAI models.
        matching = [r for r in cells.get((h, deployment), []) if r.openai or metric in MODEL_METRICS]
        quantity = sum(getattr(r, field) for r in matching)
        point: dict[str, Any] = {"timeStamp": _iso(h)}
        # No data usually means no `total` at all; now and then Azure sends an explicit 0.0.
        if quantity or (not status and digest("zero", h, deployment, metric)[0] < 20):
            point["total"] = float(quantity)
        data.append(point)
    if status and not any("total" in p for p in data):
        return {"metadatavalues": [], "data": None}  # no series for a status code never seen
    meta = [{"name": {"value": "modeldeploymentname", "localizedValue": "modeldeploymentname"}, "value": deployment}]
    if status:
        meta.append({"name": {"value": "statuscode", "localizedValue": "statuscode"}, "value": status})
    return {"metadatavalues": meta if labelled else [], "data": data}
