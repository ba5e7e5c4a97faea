"""The one outbound HTTP seam every connector uses.

It sets timeouts and a User-Agent, vets URLs (https, no private or metadata addresses unless
DOOW_ALLOW_PRIVATE_ENDPOINTS), follows redirects itself so each hop is vetted, connects only
to the address it vetted (no second DNS lookup, see integrations.egress), retries 429
(honouring a bounded Retry-After), 5xx, timeouts and answers cut short with back-off, maps
failures to the typed errors of integrations.providers.base, and redacts secrets from every message.
Connectors never import `requests` themselves; tests serve a sandbox behind this seam.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from http.client import IncompleteRead
from typing import Any, TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from urllib3.exceptions import ProtocolError

from integrations import egress
from integrations.providers.errors import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
)

logger = logging.getLogger(__name__)

USER_AGENT = "doow-usage-sync/1.0 (+https://github.com/doow)"
MAX_REDIRECTS = 5
# The longest a provider can make us wait: the sync engine's back-off ceiling too (MAX_BACKOFF).
RETRY_AFTER_CEILING = timedelta(hours=6)
_DELTA_SECONDS_RE = re.compile(r"\d+(?:\.\d+)?")
# The connection dropped after the answer had started: the body is cut short or unreadable.
# Like a reset connection, trying again is the cure.
_BODY_DROPPED = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    ProtocolError,
    IncompleteRead,
)
REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-ms-request-id",
    "apim-request-id",
    "x-goog-request-id",
)
# Token-looking strings are redacted even when we were not told the secret, also when a
# provider echoes them percent-encoded (%2B, %2F) or JSON-escaped (\u002b, \/).
# (A JSON escape may carry several backslashes: JSON inside a JSON string.)
_ENCODED_UNIT = r"%[0-9A-Fa-f]{2}|\\+u[0-9A-Fa-f]{4}|\\+/"
_TOKEN_RE = re.compile(rf"\b(?:sk|rk|r8|gsk|key)[-_](?:[A-Za-z0-9_\-+/=]|{_ENCODED_UNIT}){{20,}}")
_BEARER_RE = re.compile(rf"(?i)(bearer(?:\s+|%20|\+))(?:[A-Za-z0-9._\-~+/=]|{_ENCODED_UNIT})+")
# Characters that percent-encoding and JSON leave as they are (RFC 3986 unreserved).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# JSON's two-character escapes: the character → the letter after the backslash.
_JSON_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}

T = TypeVar("T")
ErrorClassifier = Callable[[int, str, requests.Response], "ProviderError | None"]


def _setting_allow_private() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "DOOW_ALLOW_PRIVATE_ENDPOINTS", False))


def _check_url(url: str, *, allow_private: bool) -> SplitResult:
    """The checks a URL passes without a DNS lookup: http(s), no embedded credentials, https
    unless private endpoints are allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            f"{url!r} is not an http(s) URL.", hint="Enter a full URL such as https://api.example.com/v1."
        )
    if parts.username or parts.password:
        raise ConfigurationError(
            "URLs with embedded credentials are not accepted.", hint="Remove user:password@ from the URL."
        )
    if not allow_private and parts.scheme != "https":
        raise ConfigurationError(
            "Provider URLs must use https.",
            hint="Use an https:// URL (http and local addresses are only allowed with DOOW_ALLOW_PRIVATE_ENDPOINTS=true).",
        )
    return parts


def check_endpoint(url: str, *, allow_private: bool | None = None) -> None:
    """Raise ConfigurationError unless `url` is an acceptable provider endpoint.

    Without DOOW_ALLOW_PRIVATE_ENDPOINTS: https only, and every address the host resolves to
    must be public (see integrations.egress for what that means). This is the check made when
    a URL is saved, and before a URL is handed to a library that connects by itself; the
    connections of the seam (and of boto3 for a custom endpoint) resolve once more when they
    connect, vet that answer and connect to exactly one of its addresses, so a name that
    changes its answer in between (DNS rebinding) gains nothing.
    """
    if allow_private is None:
        allow_private = _setting_allow_private()
    parts = _check_url(url, allow_private=allow_private)
    if allow_private:
        return
    host = parts.hostname or ""
    try:
        addresses = egress.resolve(host, parts.port or 443)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError(f"Could not resolve {host}.", hint="Check the host name and this server's DNS.") from exc
    egress.vet(host, addresses)


def _hex_pattern(value: int, width: int) -> str:
    """`value` in hex of `width` digits, either case."""
    return "".join(f"[{d.upper()}{d.lower()}]" if d.isalpha() else d for d in f"{value:0{width}x}")


def _char_pattern(char: str) -> str:
    """`char` as itself or in any form a provider may echo it: percent-encoded (also twice, and
    `+` for a space, as forms encode it) or JSON-escaped (`\\uXXXX`, `\\/`, `\\n`…, with as many
    backslashes as JSON nested in JSON strings gives them)."""
    forms = [re.escape(char)]
    forms.append("".join("%(?:25)?" + _hex_pattern(byte, 2) for byte in char.encode("utf-8")))
    if char == " ":
        forms.append(r"\+")
    if ord(char) <= 0xFFFF:
        forms.append(r"\\+u" + _hex_pattern(ord(char), 4))
    if char in _JSON_SHORT_ESCAPES:
        forms.append(r"\\+" + re.escape(_JSON_SHORT_ESCAPES[char]))
    return "(?:" + "|".join(forms) + ")"


@functools.lru_cache(maxsize=256)
def _secret_pattern(secret: str) -> re.Pattern[str] | None:
    """Matches `secret` however it was encoded; None when encoding cannot change it."""
    if all(char in _UNRESERVED for char in secret):
        return None
    return re.compile("".join(re.escape(char) if char in _UNRESERVED else _char_pattern(char) for char in secret))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
            pattern = _secret_pattern(secret)
            if pattern is not None:
                text = pattern.sub("[redacted]", text)
    text = _BEARER_RE.sub(r"\1[redacted]", text)
    return _TOKEN_RE.sub("[redacted]", text)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header, or None when it gives no usable answer.

    delta-seconds are capped at RETRY_AFTER_CEILING (a provider asking for days is asking for
    the longest we ever wait); a value that is not a plain non-negative number or an HTTP-date,
    or that is not finite (`1e400`, `nan`), counts as absent, and so does an HTTP-date beyond
    the ceiling (a server clock that far off says nothing useful). A date in the past means now.
    """
    if value is None:
        return None
    text = value.strip()
    ceiling = RETRY_AFTER_CEILING.total_seconds()
    if _DELTA_SECONDS_RE.fullmatch(text):
        seconds = float(text)
        return min(seconds, ceiling) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not math.isfinite(seconds) or seconds > ceiling:
        return None
    return max(0.0, seconds)


def error_message(response: requests.Response) -> str:
    """The provider's own error text, from the common JSON shapes, else the status reason."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"
    candidates: list[Any] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            candidates += [err.get("message"), err.get("code")]
        # OAuth2 errors ({"error": "invalid_client", "error_description": …}) explain in the description.
        candidates += [body.get("error_description"), err, body.get("message"), body.get("detail")]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            candidates.append(errors[0].get("message"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()[:500]
    return response.reason or f"HTTP {response.status_code}"


def request_id(response: requests.Response) -> str:
    for name in REQUEST_ID_HEADERS:
        if response.headers.get(name):
            return response.headers[name][:200]
    return ""


class HttpClient:
    """A small requests wrapper; one instance per sync or verify, counting provider calls."""

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        allow_private: bool | None = None,
        timeout: float | None = None,
        max_attempts: int = 4,
        max_retry_after: float | None = None,
        backoff: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        from django.conf import settings

        self.secrets = [s for s in secrets if s]
        self.allow_private = _setting_allow_private() if allow_private is None else allow_private
        self.timeout = timeout if timeout is not None else settings.DOOW_HTTP_TIMEOUT_SECONDS
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after if max_retry_after is not None else settings.DOOW_MAX_RETRY_AFTER_SECONDS
        self.backoff = backoff if backoff is not None else settings.DOOW_HTTP_BACKOFF_SECONDS
        self.sleep = sleep
        self.session = session or requests.Session()
        # Every connection resolves once, is vetted and goes to the vetted address (egress.py).
        egress.mount(self.session, allow_private=self.allow_private)
        self.session.headers["User-Agent"] = USER_AGENT
        self._calls = 0
        # Called after every counted call (the sync engine renews its lease from here while a
        # long fetch runs); may raise to stop the fetch.
        self.on_call: Callable[[], None] | None = None

    @property
    def calls(self) -> int:
        return self._calls

    @calls.setter
    def calls(self, value: int) -> None:
        self._calls = value
        if self.on_call is not None:
            self.on_call()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    # ------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        json_body: Any = None,
        data: Any = None,
        classify: ErrorClassifier | None = None,
    ) -> requests.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, url, headers=headers, params=params, json_body=json_body, data=data)
            except requests.Timeout:
                if attempt < self.max_attempts:
                    self._backoff(attempt)
                    continue
                raise NetworkError(f"Timed out talking to {urlsplit(url).hostname}.") from None
            except requests.ConnectionError:
                if attempt < self.max_attempts:
                    self._backoff(attempt)
                    continue
                raise NetworkError(f"Could not connect to {urlsplit(url).hostname}.") from None
            except _BODY_DROPPED:
                if attempt < self.max_attempts:
                    self._backoff(attempt)
                    continue
                raise NetworkError(
                    f"The connection to {urlsplit(url).hostname} dropped before the whole answer arrived."
                ) from None
            status = response.status_code
            if status < 400:
                return response
            if status == 429 or status == 529:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if attempt < self.max_attempts and retry_after is not None and retry_after <= self.max_retry_after:
                    logger.info("rate limited by %s, retrying in %.1fs", urlsplit(url).hostname, retry_after)
                    self.sleep(retry_after)
                    continue
                if attempt < self.max_attempts and retry_after is None and status == 529:
                    self._backoff(attempt)
                    continue
            elif status >= 500 and attempt < self.max_attempts:
                self._backoff(attempt)
                continue
            raise self._error(response, classify)

    def parse_json(
        self,
        response: requests.Response,
        parse: Callable[[Any], T],
        *,
        request_id_of: Callable[[requests.Response], str] | None = None,
    ) -> T:
        """Decode the body and validate it with the connector's `parse`; a shape error (or any
        provider error) it raises is tagged with this response's HTTP status and request id."""
        try:
            return parse(self.decode_json(response))
        except ProviderError as error:
            error.http_status = error.http_status or response.status_code
            error.request_id = error.request_id or (request_id_of or request_id)(response)
            raise

    def decode_json(self, response: requests.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise ProviderResponseError(
                f"{urlsplit(response.url).hostname} returned a body that is not JSON.",
                http_status=response.status_code,
                request_id=request_id(response),
            ) from None

    # ------------------------------------------------------------ internals
    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        for _hop in range(MAX_REDIRECTS + 1):
            # No DNS here: the connection resolves, vets and pins the address itself (egress.py).
            _check_url(url, allow_private=self.allow_private)
            self.calls += 1
            response = self.session.request(
                method,
                url,
                headers=dict(kwargs["headers"] or {}),
                params=kwargs["params"],
                json=kwargs["json_body"],
                data=kwargs["data"],
                timeout=self.timeout,
                allow_redirects=False,
            )
            if not response.is_redirect:
                return response
            # Each hop is vetted again; query parameters travel in the Location itself.
            url = urljoin(response.url, response.headers["Location"])
            kwargs = {**kwargs, "params": None}
            if response.status_code in (301, 302, 303):
                method, kwargs = "GET", {**kwargs, "json_body": None, "data": None}
        raise ProviderResponseError(f"Too many redirects from {urlsplit(url).hostname}.")

    def _backoff(self, attempt: int) -> None:
        self.sleep(min(30.0, self.backoff * (2 ** (attempt - 1))))

    def _error(self, response: requests.Response, classify: ErrorClassifier | None) -> ProviderError:
        status = response.status_code
        message = self.redact(error_message(response))
        rid = request_id(response)
        if classify is not None:
            error = classify(status, message, response)
            if error is not None:
                error.http_status = error.http_status or status
                error.request_id = error.request_id or rid
                error.message = self.redact(error.message)
                error.hint = self.redact(error.hint)
                error.args = (error.message,)  # repr() shows args: keep them redacted too
                return error
        kwargs: dict[str, Any] = {"http_status": status, "request_id": rid}
        if status == 401:
            return CredentialError(f"The provider rejected the credential: {message}", **kwargs)
        if status == 403:
            return PermissionDenied(f"Access denied: {message}", **kwargs)
        if status in (429, 529):
            return RateLimited(
                f"Rate limited: {message}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                **kwargs,
            )
        if status >= 500:
            return ProviderUnavailable(f"The provider had a server error: {message}", **kwargs)
        if status == 404:
            return ConfigurationError(
                f"Not found: {message}",
                hint="Check the integration's base URL and account settings.",
                **kwargs,
            )
        return ProviderResponseError(f"The provider refused the request: {message}", **kwargs)
