"""Microsoft Entra ID client-credentials tokens for Azure Resource Manager, through the seam.

Why not msal (installed, 1.39): its authority parser (`msal.authority.canonicalize`) refuses
any non-https authority, for `authority=` and `oidc_authority=` alike, even with instance
discovery and authority validation off. The sandbox and tests serve `login_url` over http on
127.0.0.1, so msal could only run in production and the tested path would not be the shipped
one. msal would also add an OIDC discovery GET before every first token and report its
failures as ValueErrors carrying the response text. The grant itself is one form POST
(RFC 6749 §4.4), so it goes through integrations.http.HttpClient like every other call: URL
vetting, timeouts, retries and redaction apply to the login host too.

Tokens are cached per HttpClient (one client = one sync or one verify) for their lifetime,
less a safety margin, and registered with the client as secrets so no message can echo one.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from integrations.providers.azure_openai.schema import parse_token
from integrations.providers.base import (
    CredentialError,
    PermissionDenied,
    ProviderError,
    ProviderResponseError,
)

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

ARM_SCOPE = "https://management.azure.com/.default"
APP_REGISTRATIONS = "https://portal.azure.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"
SECRET_HINT = (
    "In Microsoft Entra ID → App registrations → your app → Certificates & secrets, create a new client "
    "secret and paste its Value (not its Secret ID) into client_secret, then rotate."
)
CLIENT_HINT = (
    "client_id must be the app registration's Application (client) ID, and tenant_id the Directory (tenant) "
    f"ID shown on the same Overview page ({APP_REGISTRATIONS})."
)
TENANT_HINT = (
    "tenant_id must be the Directory (tenant) ID (a GUID) or a verified domain of the tenant that owns the "
    "app registration and the subscription: `az account show --query tenantId -o tsv`."
)
EXPIRY_MARGIN = 300.0  # seconds: never start a request with a token about to expire

_cache: WeakKeyDictionary[HttpClient, dict[tuple[str, ...], tuple[str, float]]] = WeakKeyDictionary()
_lock = threading.Lock()


def _aad_error(response: requests.Response) -> tuple[int | None, str]:
    """(first AADSTS code, error_description up to its "Trace ID" tail) from an Entra error body."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    codes = body.get("error_codes")
    code = codes[0] if isinstance(codes, list) and codes and isinstance(codes[0], int) else None
    description = body.get("error_description")
    text = description if isinstance(description, str) else ""
    text = text.split("\r\n")[0].split(" Trace ID:")[0].strip()
    return code, text[:400]


def classify_token_error(
    status: int, message: str, response: requests.Response, *, redact: Callable[[str], str] = str
) -> ProviderError | None:
    """Entra ID's token errors; None leaves 429 / 5xx to the seam. `message` comes redacted from
    the seam; the error_description read here is redacted with `redact` (the seam only redacts
    `.message` afterwards, not the exception's args that repr() shows)."""
    if status in (404, 429) or status >= 500:  # 404: a wrong login_url, which the seam reports as such
        return None
    code, text = _aad_error(response)
    said = redact(text) if text else message
    if code == 7000215:
        return CredentialError(
            f"Microsoft Entra ID rejected the client secret: {said}", hint=SECRET_HINT, field="client_secret"
        )
    if code == 7000222:
        return CredentialError(f"The client secret has expired: {said}", hint=SECRET_HINT, field="client_secret")
    if code in (700016, 700038):
        return CredentialError(
            f"Microsoft Entra ID does not know this client_id in this tenant: {said}",
            hint=CLIENT_HINT,
            field="client_id",
        )
    if code in (90002, 900023):
        return CredentialError(
            f"Microsoft Entra ID does not know this tenant: {said}", hint=TENANT_HINT, field="tenant_id"
        )
    if status == 403:  # e.g. a Conditional Access policy for workload identities blocks the app
        return PermissionDenied(
            f"Microsoft Entra ID refused to issue a token: {said}",
            hint="Ask your Entra ID administrator whether a policy blocks this app registration.",
        )
    return CredentialError(f"Microsoft Entra ID refused the token request: {said}", hint=SECRET_HINT)


def bearer_token(
    http: HttpClient,
    *,
    login_url: str,
    tenant_id: str,
    client_id: str,
    client_secret: str,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """An ARM access token for this app, from the client's cache while it is still fresh."""
    # The secret's digest, not the secret, keys the cache: a rotated secret gets a new token.
    key = (login_url, tenant_id, client_id, hashlib.sha256(client_secret.encode()).hexdigest())
    with _lock:
        cached = _cache.get(http, {}).get(key)
    if cached and clock() < cached[1]:
        return cached[0]
    response = http.request(
        "POST",
        f"{login_url}/{tenant_id}/oauth2/v2.0/token",
        headers={"Accept": "application/json"},
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": ARM_SCOPE,
        },
        classify=partial(classify_token_error, redact=http.redact),
    )
    try:
        token = parse_token(http.decode_json(response))
    except ProviderResponseError as error:
        error.http_status = error.http_status or response.status_code
        error.request_id = error.request_id or response.headers.get("x-ms-request-id", "")[:200]
        raise
    http.secrets.append(token.access_token)  # redact it from anything the seam reports
    fresh_until = clock() + token.expires_in - min(EXPIRY_MARGIN, token.expires_in / 2)
    with _lock:
        _cache.setdefault(http, {})[key] = (token.access_token, fresh_until)
    return token.access_token
