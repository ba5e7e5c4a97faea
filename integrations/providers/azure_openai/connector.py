"""Azure OpenAI connector: hourly tokens and requests per deployment from Azure Monitor.

Discovers the subscription's Cognitive Services accounts of kind OpenAI / AIServices (or the
configured `resource_ids`) and their deployments through Azure Resource Manager, then reads
the platform metrics ProcessedPromptTokens, GeneratedTokens and AzureOpenAIRequests per
ModelDeploymentName. Token: see auth.py. Admin's side: docs/providers/azure_openai.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from integrations.providers.azure_openai.arm import (
    DEFAULT_ARM,
    Config,
    discover,
    read_metrics,
)
from integrations.providers.azure_openai.schema import (
    HOUR,
    metrics_samples,
    parse_resource_id,
    provisioned_samples,
)
from integrations.providers.base import (
    ConfigurationError,
    FetchJob,
    FormField,
    Identity,
    PermissionDenied,
    Provider,
    Stream,
    UsageSample,
    Window,
    align_down,
    align_up,
    in_stream,
)
from integrations.providers.toolkit import base_url_field

if TYPE_CHECKING:
    from integrations.http import HttpClient

DEFAULT_LOGIN = "https://login.microsoftonline.com"
RETENTION = timedelta(days=93)  # Azure Monitor keeps platform metrics this long
METRICS_SPAN = timedelta(days=30)  # timespan of one metrics request: Azure returns at most ~30 days of one query
MIN_TOP = 50  # well above Azure's silent default of 10 series (see arm.read_metrics)
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", re.I)
_RESOURCE_KEY_RE = re.compile(r"^[0-9a-f]{32}$", re.I)  # a Cognitive Services resource key
MONITOR_METRICS = Stream(
    "monitor_metrics",
    "Tokens and requests (successful, throttled, failed) per deployment, hourly, and the provisioned hours of PTU "
    "deployments (Azure Monitor metrics, Azure OpenAI and Models – Usage)",
)

CREATE_APP = (
    "Create an app registration with a client secret and give it Monitoring Reader on the subscription: "
    "see docs/providers/azure_openai.md."
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AzureOpenAIProvider(Provider):
    slug = "azure_openai"
    keys_version = 2  # issue 13: requests split by StatusCode, Models – Usage and Claude cache metrics
    name = "Azure OpenAI"
    category = "cloud"
    vendor = "Microsoft Azure"
    docs_path = "docs/providers/azure_openai.md"
    credential_help = (
        "Register an app in Microsoft Entra ID (App registrations → New registration), add a client secret "
        "(Certificates & secrets) and assign it the Monitoring Reader role on the subscription. Paste the "
        "Directory (tenant) ID, the Application (client) ID and the secret's Value."
    )
    credential_fields = (
        FormField(
            "tenant_id",
            "Directory (tenant) ID",
            help_text="A GUID, or a verified domain such as contoso.onmicrosoft.com.",
            placeholder="00000000-0000-0000-0000-000000000000",
        ),
        FormField(
            "client_id",
            "Application (client) ID",
            help_text="The app registration's Application (client) ID.",
            placeholder="00000000-0000-0000-0000-000000000000",
        ),
        FormField(
            "client_secret",
            "Client secret value",
            secret=True,
            help_text="The secret's Value (shown once when created), not its Secret ID.",
        ),
    )
    setting_fields = (
        FormField(
            "subscription_id", "Subscription ID", help_text="The subscription holding the Azure OpenAI accounts."
        ),
        FormField(
            "resource_ids",
            "Only these accounts",
            required=False,
            help_text="Optional comma-separated account resource ids; empty discovers every OpenAI/AIServices account.",
            placeholder="/subscriptions/…/resourceGroups/…/providers/Microsoft.CognitiveServices/accounts/…",
        ),
        base_url_field(DEFAULT_ARM, "Resource Manager URL"),
        FormField(
            "login_url",
            "Sign-in URL",
            required=False,
            default=DEFAULT_LOGIN,
            help_text=f"Leave empty for {DEFAULT_LOGIN}. Change only for a proxy or the sandbox.",
        ),
    )
    url_settings = ("base_url", "login_url")
    # Platform metrics usually land within about 3 minutes; 15 keeps the newest hour out.
    reporting_delay = timedelta(minutes=15)
    restatement_window = timedelta(days=1)  # late-ingested points fill closed hours: re-read a day
    bucket = HOUR
    chunk = timedelta(days=1)
    # Answered per account discovered (or listed in resource_ids), every deployment of it (the
    # metrics filter is ModelDeploymentName eq '*'); an account no longer discovered keeps its rows.
    streams = (MONITOR_METRICS,)
    min_top: ClassVar[int] = MIN_TOP

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        tenant, client, secret = (
            str(credential.get(k) or "").strip() for k in ("tenant_id", "client_id", "client_secret")
        )
        if tenant.lower() in ("common", "organizations", "consumers"):
            raise ConfigurationError(
                f"App-only sign-in needs the tenant's own ID, not {tenant!r}.",
                hint="Copy the Directory (tenant) ID from the app registration's Overview page.",
                field="tenant_id",
            )
        if not _GUID_RE.match(tenant) and not _DOMAIN_RE.match(tenant):
            raise ConfigurationError(
                "tenant_id is neither a Directory (tenant) ID nor a domain.",
                hint="Copy the Directory (tenant) ID from the app registration's Overview page.",
                field="tenant_id",
            )
        if not _GUID_RE.match(client):
            raise ConfigurationError(
                "client_id must be the Application (client) ID, a GUID.",
                hint="Copy it from the app registration's Overview page.",
                field="client_id",
            )
        if not secret or any(c.isspace() for c in secret):
            raise ConfigurationError(
                "Paste the client secret's Value (no spaces or line breaks).", field="client_secret"
            )
        if _GUID_RE.match(secret):
            raise ConfigurationError(
                "This is a client secret's Secret ID (a GUID), not its Value.",
                hint="The Value is shown once, when the secret is created: create a new secret "
                "and copy the Value column.",
                field="client_secret",
            )
        if _RESOURCE_KEY_RE.match(secret):
            raise PermissionDenied(
                "This looks like an Azure OpenAI resource key (Keys and Endpoint). It calls models "
                "but cannot read Azure Monitor metrics.",
                hint=CREATE_APP,
                field="client_secret",
            )

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        config = self._config(credential, settings)
        discovered = discover(http, config)
        if discovered:  # reading the accounts is not reading metrics: probe one hour of them now
            account, deployments = discovered[0]
            hour = align_down(_utcnow()) - HOUR
            read_metrics(http, config, account, deployments, hour, hour + HOUR, min_top=self.min_top)
        accounts = [
            {
                "name": a.name,
                "resource_group": a.resource_group,
                "location": a.location,
                "kind": a.kind,
                "deployments": [{"name": d.name, "model": d.model, "sku": d.sku, "capacity": d.capacity} for d in deps],
            }
            for a, deps in discovered
        ]
        details: dict[str, Any] = {"subscription_id": config.subscription_id, "accounts": accounts}
        if not discovered:
            details["warnings"] = [
                "No Azure OpenAI accounts (kind OpenAI or AIServices) are visible to this app in "
                "the subscription: check the role assignment's scope."
            ]
        count = sum(len(a["deployments"]) for a in accounts)
        summary = (
            f"Subscription {config.subscription_id} · {len(accounts)} Azure OpenAI account"
            f"{'s' if len(accounts) != 1 else ''} · {count} deployment{'s' if count != 1 else ''}"
        )
        return Identity(account_id=config.subscription_id, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        config = self._config(job.credential, job.settings)
        # Whole hours only, and never before retention: a longer backfill reads what exists.
        floor = align_down(_utcnow()) - RETENTION + HOUR
        start, end = max(align_down(job.window.start), floor), align_up(job.window.end)
        if start >= end:
            return
        discovered = discover(job.http, config)
        while start < end:
            stop = min(start + METRICS_SPAN, end)
            samples: list[UsageSample] = []
            for account, deployments in discovered:
                series = read_metrics(job.http, config, account, deployments, start, stop, min_top=self.min_top)
                models = {d.name: d.model for d in deployments}
                formats = {d.name: d.format for d in deployments}
                kept = Window(start, min(stop, job.window.end))
                samples += in_stream(
                    metrics_samples(
                        series, account=account, models=models, start=kept.start, end=kept.end, formats=formats
                    ),
                    MONITOR_METRICS.name,
                )
                # PTU deployments: their provisioned hours (only hours already begun: `stop`
                # is at most the last whole hour the engine asked for).
                samples += in_stream(
                    provisioned_samples(deployments, account=account, start=kept.start, end=kept.end),
                    MONITOR_METRICS.name,
                )
                self.answer(job.answered, MONITOR_METRICS.name, kept, account=[account.subscription_id],
                            project=[account.resource_group], resource=[account.name])  # fmt: skip
            samples.sort(key=lambda s: s.bucket_start)  # accounts interleave: keep time order
            yield from samples
            start = stop

    # ------------------------------------------------------------ internals
    def _config(self, credential: Mapping[str, str], settings: Mapping[str, str]) -> Config:
        self.check_credential(credential)
        sub = self.setting(settings, "subscription_id")
        if not _GUID_RE.match(sub):
            raise ConfigurationError(
                "subscription_id must be a subscription ID (a GUID).",
                hint="`az account show --query id -o tsv` prints it.",
                field="subscription_id",
            )
        resource_ids = tuple(r.strip() for r in self.setting(settings, "resource_ids").split(",") if r.strip())
        for resource_id in resource_ids:
            parts = parse_resource_id(resource_id)
            if parts is None or parts[0].lower() != sub.lower():
                raise ConfigurationError(
                    f"{resource_id!r} is not an account id in subscription {sub}.",
                    hint="Use /subscriptions/<subscription_id>/resourceGroups/<group>/providers/"
                    "Microsoft.CognitiveServices/accounts/<name>, comma-separated.",
                    field="resource_ids",
                )
        tenant_id, client_id, client_secret = (
            str(credential.get(k) or "").strip() for k in ("tenant_id", "client_id", "client_secret")
        )
        return Config(
            tenant_id,
            client_id,
            client_secret,
            sub,
            resource_ids,
            self.setting(settings, "base_url").rstrip("/"),
            self.setting(settings, "login_url").rstrip("/"),
        )
