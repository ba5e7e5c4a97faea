"""Fireworks AI connector: daily billing usage per model and deployment, and dedicated-deployment
throughput integrated from the metrics endpoint.

Two sources that never cover the same traffic, so nothing is counted twice:
- `GET /v1/accounts/{id}/billingUsage` (authoritative, daily): serverless prompt and completion
  tokens per model (`SERVERLESS`), accelerator seconds per dedicated deployment
  (`DEDICATED_DEPLOYMENT`). Dedicated deployments are billed by GPU time, not by token.
- `GET /v1/accounts/{id}/metrics` (Prometheus text, dedicated deployments only, 6 requests a
  minute): prompt, cached-prompt and request rates, integrated between successive syncs into
  hourly *estimates* (provenance "derived"). Only the chunk reaching the present scrapes.
See docs/providers/fireworks.md for the admin's side of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    FetchJob,
    FormField,
    Identity,
    NetworkError,
    PermissionDenied,
    Provider,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    Stream,
    UsageSample,
    Window,
    align_down,
    align_up,
    in_stream,
)
from integrations.providers.fireworks.metrics import (
    Scrape,
    advance,
    metric_samples,
    parse_metrics,
    with_note,
)
from integrations.providers.fireworks.schema import (
    DAY,
    HOUR,
    BillingUsage,
    dedicated_samples,
    parse_billing_usage,
    serverless_samples,
    training_samples,
)
from integrations.providers.toolkit import base_url_field, bearer_headers, pasted_key

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

API_KEYS_URL = "https://app.fireworks.ai/settings/users/api-keys"
CREATE_KEY = (
    f"Create an API key at {API_KEYS_URL} (or for a service account with `firectl api-key create "
    "--service-account …`) in the account named in the account_id setting, and rotate it here."
)
ACCOUNT_HINT = (
    "Set account_id to the <account-id> of accounts/<account-id>/… in your deployment and model names, "
    "and use an API key created in that account."
)
_ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
# Keys of other services pasted by mistake: (prefix, what it is). Fireworks' own keys are shown
# as fw_… in its docs; that prefix is not documented as a rule, so other shapes are let through.
_FOREIGN_KEYS: tuple[tuple[str, str], ...] = (
    ("sk-ant-", "an Anthropic key"),
    ("sk-or-", "an OpenRouter key"),
    ("sk-", "an OpenAI key"),
    ("gsk_", "a Groq key"),
    ("r8_", "a Replicate token"),
    ("eyJ", "a sign-in token (JWT), e.g. from firectl's auth.ini"),
)
BILLING_SPAN = timedelta(days=31)  # billingUsage refuses an endTime more than 31 days after startTime
SERVERLESS = Stream("billing_serverless", "Serverless prompt and completion tokens per model, daily (billingUsage)")
DEDICATED = Stream("billing_dedicated", "Accelerator seconds per dedicated deployment, daily (billingUsage)")
TRAINING = Stream("billing_training", "Fine-tuning tokens (and GPU seconds) per base model, daily (billingUsage)")
# Integrated between two scrapes: no window is ever read twice, so it is never answered.
METRICS = Stream("metrics", "Dedicated-deployment throughput estimates, hourly (metrics scrape)", answers=False)
# (usageType, groupBy, the stream it answers): the dimensions valid for each usage type.
USAGE_QUERIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # Serverless per API key too (the documented api_key_id / api_key_name dimensions).
    ("SERVERLESS", ("model_name", "api_key_id", "api_key_name"), SERVERLESS.name),
    ("DEDICATED_DEPLOYMENT", ("deployment_name", "accelerator_type"), DEDICATED.name),
    ("TRAINING", (), TRAINING.name),
)


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError | None:
    """Fireworks-specific meaning of error statuses; None keeps the seam's default mapping
    (429 → RateLimited, 5xx → ProviderUnavailable, other 4xx → ProviderResponseError)."""
    if status == 401:
        return CredentialError(f"Fireworks rejected the API key: {message}", hint=CREATE_KEY)
    if status == 403:
        return PermissionDenied(f"Fireworks refused access to this account: {message}", hint=ACCOUNT_HINT)
    if status == 404:
        return ConfigurationError(
            f"Fireworks does not know this account or path: {message}",
            hint=ACCOUNT_HINT + " Leave the base URL empty unless you use a proxy.",
            field="account_id",
        )
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FireworksProvider(Provider):
    slug = "fireworks"
    keys_version = 2  # issue 13: serverless usage grouped by API key
    name = "Fireworks AI"
    category = "ai"
    vendor = "Fireworks AI"
    docs_path = "docs/providers/fireworks.md"
    credential_help = (
        f"Create an API key at {API_KEYS_URL}, ideally for a service account with the inference-user role "
        "(the least privileged role; Fireworks has no read-only role, so any key can also run inference). "
        "Enter the account id (accounts/<account-id>) the key belongs to below."
    )
    credential_fields = (
        FormField(
            "api_key",
            "API key",
            help_text="A Fireworks API key of the account below (fw_…). No read-only role exists: "
            "prefer a service account with the inference-user role.",
            secret=True,
            placeholder="fw_…",
        ),
    )
    setting_fields = (
        FormField(
            "account_id",
            "Account ID",
            help_text="The <account-id> in accounts/<account-id>/… (e.g. in your deployment names).",
            placeholder="my-company",
        ),
        base_url_field("https://api.fireworks.ai"),
    )
    # Billing rows lag traffic by minutes; metrics refresh every 30 s.
    reporting_delay = timedelta(minutes=15)
    # Daily billing rows are revised while the day fills and shortly after it closes.
    restatement_window = timedelta(days=2)
    bucket = HOUR  # metric estimates are hourly; billing rows are daily
    chunk = DAY
    # Each billing query answers its usage type for the days it covers (this account); the
    # metrics scrape never re-reads a window, so its estimates are never answered for.
    streams = (SERVERLESS, DEDICATED, TRAINING, METRICS)
    # Beyond this gap between two scrapes, a mean of two 1-minute rates is no estimate at all.
    metrics_max_gap: ClassVar[timedelta] = timedelta(hours=6)

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self.clock = clock  # tests replace it to scrape at known instants

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        key = pasted_key(credential, "api_key", missing="Enter the Fireworks API key.", hint=CREATE_KEY)
        if key.startswith("fw_"):
            return
        for prefix, what in _FOREIGN_KEYS:
            if key.startswith(prefix):
                raise ConfigurationError(f"This looks like {what}, not a Fireworks API key.", hint=CREATE_KEY)

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        account, base, headers = self._account_id(settings), self.base_url(settings), self._headers(credential)
        today = align_down(self.clock(), DAY)
        week = Window(today - 6 * DAY, today + DAY)
        models: set[str] = set()
        deployments: set[str] = set()
        for usage_type, group_by, _stream in USAGE_QUERIES:
            usage = self._billing(http, base, headers, account, week, usage_type, group_by)
            models.update(r.model for r in usage.serverless if r.model)
            deployments.update(r.deployment_id for r in usage.dedicated if r.deployment_id)
        summary = (
            f"Fireworks account {account} · last 7 days: {len(models)} serverless model{'s' if len(models) != 1 else ''}, "
            f"{len(deployments)} dedicated deployment{'s' if len(deployments) != 1 else ''}"
        )
        details = {"serverless_models": sorted(models), "deployments": sorted(deployments)}
        return Identity(account_id=account, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        account, base, headers = (
            self._account_id(job.settings),
            self.base_url(job.settings),
            self._headers(job.credential),
        )
        samples: list[UsageSample] = []
        # Whole UTC days, at most 31 per request; each piece keeps only the days it owns, so a
        # day is never yielded twice and an unaligned window start still keys on midnight.
        day, end = align_down(job.window.start, DAY), align_up(job.window.end, DAY)
        while day < end:
            piece = Window(day, min(day + BILLING_SPAN, end))
            kept = Window(piece.start, min(piece.end, job.window.end))
            for usage_type, group_by, stream in USAGE_QUERIES:
                usage = self._billing(job.http, base, headers, account, piece, usage_type, group_by)
                for sample in (
                    in_stream(serverless_samples(usage.serverless, account=account), SERVERLESS.name)
                    + in_stream(dedicated_samples(usage.dedicated, account=account), DEDICATED.name)
                    + in_stream(training_samples(usage.training, account=account), TRAINING.name)
                ):
                    if kept.start <= sample.bucket_start < kept.end:
                        samples.append(sample)
                self.answer(job.answered, stream, kept, account=[account])
            day = piece.end
        now = self.clock().replace(microsecond=0)
        # Scrape only for the chunk that reaches the present (the engine's last one): a scrape
        # measures *now*, so a backfill chunk of a past day must never integrate it.
        if job.state is not None and job.window.end > now - self.reporting_delay - self.bucket:
            samples.extend(in_stream(self._scrape(job.http, base, headers, account, job.state, now), METRICS.name))
        yield from sorted(samples, key=lambda s: s.bucket_start)

    # ------------------------------------------------------------ internals
    def _billing(
        self,
        http: HttpClient,
        base: str,
        headers: dict[str, str],
        account: str,
        piece: Window,
        usage_type: str,
        group_by: tuple[str, ...],
    ) -> BillingUsage:
        """The answer for `piece` (whole UTC days). A row without startTime/endTime belongs to the
        requested day; when the piece covers several days such a row cannot be placed, so the
        piece is read again one day at a time."""
        url = f"{base}/v1/accounts/{account}/billingUsage"

        def read(span: Window) -> BillingUsage:
            params: dict[str, Any] = {
                "startTime": _rfc3339(span.start),
                "endTime": _rfc3339(span.end),
                "usageType": usage_type,
                "groupBy": list(group_by),
                "timezone": "UTC",  # daily rows on UTC midnights, like every other bucket we store
            }
            # One UTC day asked for (with timezone=UTC): a row without its own times is that day's.
            one_day = span.start if span.end - span.start == DAY and align_down(span.start, DAY) == span.start else None
            response = http.request("GET", url, headers=headers, params=params, classify=classify_error)
            return http.parse_json(response, lambda body: parse_billing_usage(body, day=one_day), request_id_of=_rid)

        usage = read(piece)
        if not usage.undated:
            return usage
        days: list[BillingUsage] = []
        day = piece.start
        while day < piece.end:
            days.append(read(Window(day, day + DAY)))
            day += DAY
        return BillingUsage(
            tuple(r for u in days for r in u.serverless),
            tuple(r for u in days for r in u.dedicated),
            tuple(r for u in days for r in u.training),
        )

    def _scrape(
        self, http: HttpClient, base: str, headers: dict[str, str], account: str, state: dict[str, Any], now: datetime
    ) -> list[UsageSample]:
        url = f"{base}/v1/accounts/{account}/metrics"
        try:
            response = http.request("GET", url, headers={**headers, "Accept": "text/plain"}, classify=classify_error)
        except (RateLimited, ProviderUnavailable, NetworkError, ConfigurationError) as error:
            # Best effort: the billing rows of this chunk are authoritative and must not be lost
            # because the 6-a-minute metrics budget is spent (e.g. by the customer's own Prometheus).
            # The baseline stays; the next scrape integrates over the longer interval.
            note = f"Metrics not scraped at {now:%Y-%m-%d %H:%M:%S}Z: {error}"
            state["metrics"] = with_note(state.get("metrics"), note[:300])
            return []
        try:
            rates = parse_metrics(response.content.decode("utf-8"))
        except UnicodeDecodeError:
            raise _tagged(
                ProviderResponseError("Fireworks returned metrics that are not UTF-8 text."), response
            ) from None
        except ProviderResponseError as error:
            raise _tagged(error, response) from None
        # A new dict, never an in-place change: the engine compares it with the stored state.
        state["metrics"], hours = advance(state.get("metrics"), Scrape(now, rates), max_gap=self.metrics_max_gap)
        return metric_samples(hours, account=account)

    def _headers(self, credential: Mapping[str, str]) -> dict[str, str]:
        return bearer_headers(credential, "api_key", missing="The Fireworks API key is missing.", hint=CREATE_KEY)

    def _account_id(self, settings: Mapping[str, str]) -> str:
        # Accept the resource name as Fireworks prints it ("accounts/acme") as well as the bare id.
        account = self.setting(settings, "account_id").removeprefix("accounts/").strip("/")
        if not account:
            raise ConfigurationError("Enter the Fireworks account id.", hint=ACCOUNT_HINT, field="account_id")
        if not _ACCOUNT_ID_RE.match(account):
            raise ConfigurationError(
                f"{account[:60]!r} is not a Fireworks account id.", hint=ACCOUNT_HINT, field="account_id"
            )
        return account


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tagged(error: ProviderResponseError, response: requests.Response) -> ProviderResponseError:
    """A shape error carries the status and request id of the response it came from."""
    error.http_status = error.http_status or response.status_code
    error.request_id = error.request_id or _rid(response)
    return error


def _rid(response: requests.Response) -> str:
    return response.headers.get("x-request-id", "")[:200]
