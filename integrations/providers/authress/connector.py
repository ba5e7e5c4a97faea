"""Authress connector: verifies a service-client access key; usage arrives by CSV import.

Authress documents no endpoint that reports API call volume (not in its OpenAPI spec nor in
its SDKs), so this provider declares `fetches_usage = False`: the engine never schedules it,
"Sync now" is refused, and the integration page offers the CSV import (usage/importer.py)
instead. What the connector does do is prove the key works: it signs a short-lived EdDSA JWT
locally with the access key and reads `GET /v1/accounts/{accountId}`.
See docs/providers/authress.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from integrations.http import parse_retry_after
from integrations.providers import facts
from integrations.providers.authress.access_key import (
    CREATE_ACCESS_KEY,
    client_token,
    parse_access_key,
)
from integrations.providers.authress.schema import error_text, parse_account
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    FetchJob,
    FormField,
    Identity,
    PermissionDenied,
    Provider,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UsageSample,
)

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

HOST_HINT = (
    "Enter your account's Authress API host, https://<accountId>.api-<region>.authress.io, or its custom "
    "domain (Authress portal → API access / custom domains)."
)
ISSUER_HINT = (
    "Enter only the custom domain your Authress account uses (Authress portal → Custom domains), e.g. "
    "login.example.com or https://login.example.com; leave it empty for an account without one."
)
NO_USAGE_API = (
    "Authress has no API that reports call volume, so it is never synced. Import call counts per resource "
    "and operation as CSV (exported from the Authress portal, or assembled by you) on this page or with "
    "manage.py import_usage."
)


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError | None:
    """Authress's meaning of error statuses; None keeps the seam's mapping (429, 5xx, …)."""
    try:
        text = error_text(response.json()) or message
    except ValueError:
        text = message
    if status == 401:
        return CredentialError(
            f"Authress rejected the service client token: {text}",
            hint=f"The access key may be deleted, or belong to another account than this API host. {CREATE_ACCESS_KEY}",
        )
    if status == 403:
        return PermissionDenied(
            f"Authress refused the service client access to the account: {text}",
            hint="The key is valid, but its service client may not read the account. In the Authress portal, "
            "give the service client access to the account (or use another client's key), then test again.",
        )
    if status == 404:
        return ConfigurationError(
            f"Authress has no such account at this API host: {text}",
            hint=HOST_HINT,
            field="base_url",
        )
    # The seam's own mapping, with Authress's `title` as the message instead of the reason phrase.
    if status == 429:
        return RateLimited(
            f"Authress is throttling requests: {text}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return ProviderUnavailable(f"Authress had a server error: {text}")
    return None


class AuthressProvider(Provider):
    slug = "authress"
    name = "Authress"
    category = "ai"
    vendor = "Authress"
    docs_path = "docs/providers/authress.md"
    credential_help = (
        "Create a service client access key in the Authress management portal (Service clients → your client → "
        "access keys). It reads clientId.keyId.accountId.privateKey and is shown only once."
    )
    credential_fields = (
        FormField(
            "access_key",
            "Service client access key",
            help_text="The whole key, clientId.keyId.accountId.privateKey. It signs short-lived tokens; it is never sent.",
            secret=True,
            placeholder="sc_….….acc_….MC4CAQAwBQYDK2VwBCIEI…",
        ),
    )
    setting_fields = (
        FormField(
            "base_url",
            "Authress API host",
            help_text="Your account's API host, https://<accountId>.api-<region>.authress.io, or its custom domain.",
            required=True,
            placeholder="https://<accountId>.api-<region>.authress.io",
        ),
        FormField(
            "issuer_domain",
            "Token issuer domain",
            help_text="Only for an account on a custom domain: that domain (e.g. login.example.com). Tokens are "
            "then issued by https://<domain>/v1/clients/<clientId> instead of the account's authress.io host.",
            required=False,
            placeholder="login.example.com",
        ),
    )
    # Nothing is read on a schedule; these describe the imported daily buckets.
    reporting_delay = timedelta(0)
    restatement_window = timedelta(days=1)
    bucket = timedelta(days=1)
    chunk = timedelta(days=1)
    fetches_usage = False
    usage_source_note = NO_USAGE_API

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        parse_access_key(credential.get("access_key"))

    def identity_facts(self, details: Mapping[str, Any]) -> list[tuple[str, str]]:
        labels = {
            "service_client": "Service client",
            "api_host": "API host",
            "token_issuer": "Token issuer",
            "company": "Company",
            "created": "Account created",
        }
        return [
            (labels.get(k, facts.label(k)), facts.day(v) if k == "created" else facts.text(v))
            for k, v in details.items()
        ]

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        base = self._base_url(settings)
        key = parse_access_key(credential.get("access_key"))
        issuer_origin = self._issuer_origin(settings)
        headers = {
            "Authorization": f"Bearer {client_token(key, now=self.now(), issuer_origin=issuer_origin)}",
            "Accept": "application/links+json, application/json",
        }
        url = f"{base}/v1/accounts/{quote(key.account_id, safe='')}"
        response = http.request("GET", url, headers=headers, classify=classify_error)
        account = http.parse_json(response, parse_account)

        details: dict[str, Any] = {"service_client": key.client_id, "api_host": urlsplit(base).hostname or base}
        if issuer_origin:
            details["token_issuer"] = urlsplit(issuer_origin).hostname
        if account.company_name:
            details["company"] = account.company_name
        if account.created_time:
            details["created"] = account.created_time
        if account.account_id != key.account_id:
            details["warnings"] = [
                f"The API host answered for account {account.account_id}, but the key is for {key.account_id}."
            ]
        label = account.name or account.company_name
        summary = f"Authress account {account.account_id}" + (f" ({label})" if label else "")
        summary += f" · service client {key.client_id} · usage is imported (no usage API)"
        return Identity(account_id=account.account_id, account_name=label, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        # Never called by the engine (fetches_usage is False); a caller that tries anyway gets
        # the reason, not an empty success that would look like "no usage".
        raise ConfigurationError("Authress has no usage API to sync from.", hint=NO_USAGE_API)

    # ------------------------------------------------------------ internals
    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def _issuer_origin(self, settings: Mapping[str, str]) -> str:
        """https://<custom domain> from the issuer_domain setting, or "" (the authress.io default).
        A bare host or an https origin is accepted; anything with a path, a port or another
        scheme is refused before any call (a wrong issuer would only show as a 401)."""
        raw = (settings.get("issuer_domain") or "").strip().rstrip("/")
        if not raw:
            return ""
        parts = urlsplit(raw if "://" in raw else f"https://{raw}")
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (
            parts.scheme != "https"
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
            or port is not None
            or "." not in host
            or not all(c.isalnum() or c in ".-" for c in host)
        ):
            raise ConfigurationError(f"{raw[:80]!r} is not a domain name.", hint=ISSUER_HINT, field="issuer_domain")
        return f"https://{host}"

    def _base_url(self, settings: Mapping[str, str]) -> str:
        base = self.setting(settings, "base_url").rstrip("/")
        if not base:
            raise ConfigurationError("The Authress API host is missing.", hint=HOST_HINT, field="base_url")
        # The SDKs take the bare host; tolerate a pasted ".../v1" rather than calling ".../v1/v1/…".
        return base.removesuffix("/v1")
