"""The service-account key file, checked offline, and access tokens through google-auth.

google-auth signs the JWT assertion and makes the grant (RFC 7523) at the key file's
`token_uri`. That URL comes from customer-provided JSON, so before any refresh it is vetted
like every provider URL (`check_endpoint`: https and public unless
DOOW_ALLOW_PRIVATE_ENDPOINTS), and the transport handed to google-auth vets it again,
connects only to the address it vetted (integrations.egress) and refuses redirects. google-auth's own retry loop sleeps real time on 429/5xx; the transport
stops it by raising, and this module retries through the HttpClient's sleep and back-off
instead, so a throttled token endpoint behaves like every other call (and tests stay fast).
Tokens are cached per HttpClient (one sync or one verify) and registered as secrets there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from integrations import egress
from integrations.http import USER_AGENT, check_endpoint, parse_retry_after
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    ScopeError,
)

if TYPE_CHECKING:
    from integrations.http import HttpClient

FIELD = "service_account_json"
READ_ONLY_SCOPE = "https://www.googleapis.com/auth/cloud-platform.read-only"
SERVICE_ACCOUNTS_PAGE = "https://console.cloud.google.com/iam-admin/serviceaccounts"
KEY_HINT = (
    f"In the Google Cloud console open IAM & Admin → Service accounts ({SERVICE_ACCOUNTS_PAGE}) → the "
    "account → Keys → Add key → Create new key → JSON, and paste the whole downloaded file (or pass "
    "--credential service_account_json=@key.json)."
)
REQUIRED = ("client_email", "private_key", "token_uri")
_RETRYABLE_OAUTH_ERRORS = (b"internal_failure", b"server_error", b"temporarily_unavailable")


@dataclass(frozen=True)
class ServiceAccount:
    info: dict[str, Any]

    @property
    def email(self) -> str:
        return str(self.info["client_email"])

    @property
    def token_uri(self) -> str:
        return str(self.info["token_uri"])

    @property
    def fingerprint(self) -> str:  # a cache key that changes when the key is rotated
        return hashlib.sha256(json.dumps(self.info, sort_keys=True).encode()).hexdigest()


def _bad(message: str, hint: str = KEY_HINT) -> ConfigurationError:
    return ConfigurationError(message, hint=hint, field=FIELD)


def parse_service_account(text: str) -> ServiceAccount:
    """The key file's JSON, or ConfigurationError saying which file to create instead."""
    text = (text or "").strip()
    if not text:
        raise _bad("Paste the service account's JSON key file.")
    if text.startswith("AIza"):
        raise _bad("This is an API key, not a service account key file. API keys cannot read billing data.")
    if "BEGIN PRIVATE KEY" in text and not text.startswith("{"):
        raise _bad("This is only the private key. Paste the whole JSON key file it came from.")
    try:
        info = json.loads(text)
    except ValueError:
        raise _bad("The service account key is not valid JSON; paste the downloaded file unchanged.") from None
    if not isinstance(info, dict):
        raise _bad("The service account key is not a JSON object; paste the downloaded key file unchanged.")
    if "installed" in info or "web" in info:
        raise _bad("This is an OAuth client ID file, not a service account key. A service account key is needed.")
    kind = info.get("type")
    if kind == "authorized_user":
        raise _bad("These are a user's credentials (gcloud auth application-default login), not a service account key.")
    if kind == "external_account":
        raise _bad(
            "This is a workload identity federation configuration, which is not supported; use a service account key."
        )
    if kind != "service_account":
        raise _bad(f"The key file's type is {str(kind)[:40]!r}, not 'service_account'.")
    missing = [name for name in REQUIRED if not isinstance(info.get(name), str) or not info[name].strip()]
    if missing:
        raise _bad(f"The service account key file lacks {', '.join(missing)}; paste the downloaded file unchanged.")
    if "@" not in info["client_email"]:
        raise _bad("The key file's client_email is not a service account e-mail address.")
    if urlsplit(info["token_uri"]).scheme not in ("https", "http"):
        raise _bad("The key file's token_uri is not a URL; Google's is https://oauth2.googleapis.com/token.")
    try:  # parses the private key offline; the message of a failure is not shown (it may quote it)
        service_account.Credentials.from_service_account_info(info, scopes=[READ_ONLY_SCOPE])
    except (ValueError, TypeError):
        raise _bad("The private_key in the key file could not be read; download a new JSON key.") from None
    return ServiceAccount(info)


def secret_parts(text: str) -> list[str]:
    """Everything of a key file worth redacting: the JSON itself, the PEM key and each of its
    lines (as it would appear in a message), and the key id."""
    parts = [text] if text else []
    try:
        info = json.loads(text)
    except (TypeError, ValueError):
        return parts
    if isinstance(info, dict) and isinstance(info.get("private_key"), str):
        key = info["private_key"]
        parts += [key, key.replace("\n", "\\n")]
        parts += [line for line in key.splitlines() if len(line) >= 16 and "PRIVATE KEY" not in line]
        if isinstance(info.get("private_key_id"), str):
            parts.append(info["private_key_id"])
    return parts


# ---------------------------------------------------------------- tokens
class _Busy(Exception):
    """A token-endpoint answer worth retrying (429 / 5xx), raised out of google-auth's loop."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(status)
        self.status, self.retry_after = status, retry_after


class _VettedTransport(google.auth.transport.requests.Request):
    """google-auth's requests transport, with our URL vetting, timeout, User-Agent, call count,
    no redirects, and no hidden sleeping retries."""

    def __init__(self, http: HttpClient) -> None:
        # A pinned session: the connection goes to the address that was vetted (egress.py).
        super().__init__(session=egress.pinned_session(allow_private=http.allow_private))
        self.http = http
        self.status: int | None = None

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        check_endpoint(url, allow_private=self.http.allow_private)
        self.http.calls += 1
        headers = {**(headers or {}), "User-Agent": USER_AGENT}
        kwargs["allow_redirects"] = False
        response = super().__call__(url, method=method, body=body, headers=headers, timeout=self.http.timeout, **kwargs)
        self.status = response.status
        if 300 <= response.status < 400:
            raise ConfigurationError(
                f"The key file's token endpoint ({urlsplit(url).hostname}) answered with a redirect, which is not followed.",
                hint="Paste the key file unchanged: Google's token_uri is https://oauth2.googleapis.com/token.",
                http_status=response.status, field=FIELD,
            )  # fmt: skip
        data = response.data if isinstance(response.data, bytes) else b""
        if (
            response.status == 429
            or response.status >= 500
            or (response.status == 400 and any(e in data for e in _RETRYABLE_OAUTH_ERRORS))
        ):
            raise _Busy(response.status, parse_retry_after(response.headers.get("Retry-After")))
        return response


_cache: WeakKeyDictionary[HttpClient, dict[str, service_account.Credentials]] = WeakKeyDictionary()
_lock = threading.Lock()


def access_token(http: HttpClient, account: ServiceAccount) -> str:
    """A read-only access token for the service account, from this client's cache while valid."""
    with _lock:
        credentials = _cache.get(http, {}).get(account.fingerprint)
    if credentials is None or not credentials.valid:
        check_endpoint(account.token_uri, allow_private=http.allow_private)
        credentials = service_account.Credentials.from_service_account_info(account.info, scopes=[READ_ONLY_SCOPE])
        _refresh(http, credentials, account)
        with _lock:
            _cache.setdefault(http, {})[account.fingerprint] = credentials
    token = str(credentials.token)
    if token not in http.secrets:
        http.secrets.append(token)  # no message the seam builds can show it
    return token


def _refresh(http: HttpClient, credentials: service_account.Credentials, account: ServiceAccount) -> None:
    host = urlsplit(account.token_uri).hostname
    transport = _VettedTransport(http)
    try:
        for attempt in range(1, http.max_attempts + 1):
            last = attempt == http.max_attempts
            try:
                credentials.refresh(transport)
                if not credentials.token:
                    raise ProviderResponseError(f"{host} returned no access token.", http_status=transport.status)
                return
            except _Busy as busy:
                if busy.status == 429:
                    if not last and busy.retry_after is not None and busy.retry_after <= http.max_retry_after:
                        http.sleep(busy.retry_after)
                        continue
                    raise RateLimited(f"Google's token endpoint is throttling requests (HTTP {busy.status}).",
                                      retry_after=busy.retry_after, http_status=busy.status) from None  # fmt: skip
                if not last:
                    http.sleep(min(30.0, http.backoff * 2 ** (attempt - 1)))
                    continue
                raise ProviderUnavailable(f"Google's token endpoint had a server error (HTTP {busy.status}).",
                                          http_status=busy.status) from None  # fmt: skip
            except google.auth.exceptions.TransportError:
                if not last:
                    http.sleep(min(30.0, http.backoff * 2 ** (attempt - 1)))
                    continue
                raise NetworkError(
                    f"Could not reach the token endpoint {host} (timeout or connection error)."
                ) from None
            except google.auth.exceptions.RefreshError as error:
                raise _refresh_error(error, transport.status, http) from None
            except (TypeError, KeyError, ValueError):  # a 200 whose body is not a token response
                raise ProviderResponseError(f"{host} answered the token request with a body that is not a token "
                                            "response.", http_status=transport.status) from None  # fmt: skip
    finally:
        transport.session.close()


def _refresh_error(error: google.auth.exceptions.RefreshError, status: int | None, http: HttpClient) -> ProviderError:
    """Google's OAuth error (`{"error": "invalid_grant", "error_description": …}`) as a typed error.
    Google never echoes the key; the text is redacted anyway."""
    data = error.args[1] if len(error.args) > 1 else None
    code, said = "", ""
    if isinstance(data, dict):
        error_field = data.get("error")
        if isinstance(error_field, dict):  # a Google API-style body from a proxy or a fault
            said = str(error_field.get("message") or "")
        else:
            code = error_field if isinstance(error_field, str) else ""
            said = data["error_description"] if isinstance(data.get("error_description"), str) else ""
    said = http.redact((said or code or "no reason given")[:300])
    kwargs: dict[str, Any] = {"http_status": status, "field": FIELD}
    if status == 200:
        return ProviderResponseError("Google's token endpoint answered without an access token.", http_status=200)
    if code == "invalid_grant" and "signature" in said.lower():
        return CredentialError(f"Google rejected the key's signature ({said}): the key was deleted or disabled, or "
                               "belongs to another service account.", hint=KEY_HINT, **kwargs)  # fmt: skip
    if code == "invalid_grant" and "not found" in said.lower():
        return CredentialError(f"Google does not know this service account ({said}): it was deleted or disabled.",
                               hint="Create a service account (or re-enable it), give it the roles in the docs, "
                               "and add a JSON key: " + KEY_HINT, **kwargs)  # fmt: skip
    if code == "invalid_grant" and ("iat" in said or "timeframe" in said):
        return ConfigurationError(f"Google refused the token request because this server's clock is off ({said}).",
                                  hint="Synchronise the clock of the server running the sync (NTP).", http_status=status)  # fmt: skip
    if code == "invalid_scope":
        return ScopeError(f"Google refused the read-only scope for this account ({said}).",
                          hint="Use a regular service account key from a Google Cloud project.", **kwargs)  # fmt: skip
    if status is not None and status not in (400, 401, 403):
        return ProviderResponseError(f"Google's token endpoint refused the request: {said}", http_status=status)
    return CredentialError(f"Google refused the service account key: {said}", hint=KEY_HINT, **kwargs)
