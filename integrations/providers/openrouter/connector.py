"""OpenRouter connector: daily usage per model and routing endpoint, from the activity API.

Reads `GET /activity` with a management key: without `date` it serves the last 30 completed
UTC days in one request (a window of 3 days or more: a backfill), with `date=YYYY-MM-DD` one
day (the regular sync's two days, and every day of a window read within minutes of UTC midnight). `/key` and `/credits` describe
the key in verify. Days outside the 30-day horizon are skipped without a request.
See docs/providers/openrouter.md for the admin's side of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from integrations.http import parse_retry_after
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    FetchJob,
    FormField,
    Identity,
    PermissionDenied,
    Provider,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    Stream,
    UsageSample,
    Window,
    in_stream,
)
from integrations.providers.openrouter.schema import (
    DAY,
    activity_samples,
    day_start,
    parse_activity,
    parse_credits,
    parse_key,
)
from integrations.providers.toolkit import base_url_field, bearer_headers, pasted_key

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

MANAGEMENT_KEYS_URL = "https://openrouter.ai/settings/management-keys"
CREATE_MANAGEMENT_KEY = (
    f"Create a management key under Settings → Management API Keys ({MANAGEMENT_KEYS_URL}) and rotate it here."
)
NOT_MANAGEMENT = "This is an OpenRouter inference API key; reading activity needs a management key."
HISTORY_DAYS = 30  # /activity serves the last 30 completed UTC days, never today
# Clocks differ by seconds: this close to UTC midnight the horizon may differ from ours, so
# the whole-horizon request (no `date`) is not trusted to have served every day we expect.
MIDNIGHT_MARGIN = timedelta(minutes=10)
# A window of this many days or more (a backfill, a catch-up after an outage) is read with one
# request without `date`; a shorter one (the regular re-read of two days) a day at a time.
WHOLE_HORIZON_FROM_DAYS = 3
KEY_PREFIX = "sk-or-"
ACTIVITY = Stream("activity", "Tokens, requests and cost per model and endpoint, daily (/activity)")
# Keys of other providers people paste by mistake: (prefix, what it is).
FOREIGN_KEYS = (("sk-ant-", "an Anthropic key"), ("sk-proj-", "an OpenAI project key"),
                ("sk-admin-", "an OpenAI Admin key"), ("gsk_", "a Groq key"), ("r8_", "a Replicate token"))  # fmt: skip


def _request_id(response: requests.Response) -> str:
    # OpenRouter documents no request-id header; Cloudflare's cf-ray identifies the request.
    return (response.headers.get("x-request-id") or response.headers.get("cf-ray") or "")[:200]


def _rate_limit_reset(response: requests.Response) -> float | None:
    """Seconds until X-RateLimit-Reset (header, or the error's metadata.headers), if given.

    Unconfirmed unit: OpenRouter has been seen sending epoch milliseconds; epoch seconds and
    a plain delay are accepted too."""
    raw: Any = response.headers.get("X-RateLimit-Reset")
    if raw is None:
        try:
            raw = response.json()["error"]["metadata"]["headers"]["X-RateLimit-Reset"]
        except (ValueError, KeyError, TypeError):
            return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    now = datetime.now(UTC).timestamp()
    if value > 1e12:
        value = value / 1000 - now
    elif value > 1e9:
        value -= now
    return max(0.0, value)


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError:
    """OpenRouter's meaning of every error status (`message` is already redacted)."""
    kwargs: dict[str, Any] = {"http_status": status, "request_id": _request_id(response)}
    if status == 401:
        return CredentialError(f"OpenRouter rejected the key: {message}", hint=CREATE_MANAGEMENT_KEY, **kwargs)
    if status == 403 and "management key" in message.lower():
        return PermissionDenied(NOT_MANAGEMENT, hint=CREATE_MANAGEMENT_KEY, **kwargs)
    if status == 403:
        return PermissionDenied(
            f"OpenRouter refused access: {message}",
            hint="The key is valid but may not read this account's activity. Check that it is a management key "
            "of the account (or organization) whose usage you want.",
            **kwargs,
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = _rate_limit_reset(response)
        return RateLimited(f"OpenRouter is rate limiting requests: {message}", retry_after=retry_after, **kwargs)
    if status >= 500:
        return ProviderUnavailable(f"OpenRouter had a server error: {message}", **kwargs)
    if status == 404:
        return ConfigurationError(
            f"Not found: {message}", hint="Check the base URL: it should end in /api/v1.", **kwargs
        )
    return ProviderResponseError(f"OpenRouter refused the request: {message}", **kwargs)


class _OutsideHistory(ProviderResponseError):
    """A day at the edge of the 30-day horizon that OpenRouter's clock no longer (or not yet) serves."""


class OpenRouterProvider(Provider):
    slug = "openrouter"
    name = "OpenRouter"
    category = "ai"
    vendor = "OpenRouter"
    docs_path = "docs/providers/openrouter.md"
    credential_help = (
        f"Create a management key (Settings → Management API Keys, {MANAGEMENT_KEYS_URL}). "
        "Inference API keys cannot read activity. Both kinds start with sk-or-v1-."
    )
    credential_fields = (
        FormField(
            "api_key",
            "Management key",
            help_text="An OpenRouter management key (formerly provisioning key), sk-or-v1-…; not an inference key.",
            secret=True,
            placeholder="sk-or-v1-…",
        ),
    )
    setting_fields = (base_url_field("https://openrouter.ai/api/v1"),)
    # A day appears only once it has ended (UTC); the hour keeps a sync just after midnight
    # from asking for a day OpenRouter's clock may not have closed yet.
    reporting_delay = timedelta(hours=1)
    # Re-read the last two completed days on every sync: late rows replace, never add.
    restatement_window = timedelta(days=2)
    bucket = DAY
    chunk = DAY  # stored a day per transaction; one fetch (the whole horizon) is one request
    # A day is answered (every model and endpoint) when /activity served it; a day outside the
    # 30-day horizon is not read, so what was stored for it stays.
    streams = (ACTIVITY,)

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        key = pasted_key(
            credential, "api_key", missing="Enter the OpenRouter management key.", hint=CREATE_MANAGEMENT_KEY,
            what="The key",
        )  # fmt: skip
        for prefix, what in FOREIGN_KEYS:
            if key.startswith(prefix):
                raise ConfigurationError(f"This is {what}, not an OpenRouter key.", hint=CREATE_MANAGEMENT_KEY)
        if not key.startswith(KEY_PREFIX):
            raise ConfigurationError(
                "This does not look like an OpenRouter key; they start with sk-or-v1-.", hint=CREATE_MANAGEMENT_KEY
            )
        # Management and inference keys share the prefix: verify asks /key which kind it is.

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        base, headers = self.base_url(settings), self._headers(credential)
        key = http.parse_json(self._get(http, f"{base}/key", headers), parse_key, request_id_of=_request_id)
        if key.is_management_key is False:
            raise PermissionDenied(NOT_MANAGEMENT, hint=CREATE_MANAGEMENT_KEY)
        # /key answers any key; the activity probe proves this one may read usage.
        first, last = self._history()
        rows = http.parse_json(
            self._get(http, f"{base}/activity", headers, {"date": last.isoformat()}),
            parse_activity,
            request_id_of=_request_id,
        )
        details: dict[str, Any] = {
            "label": key.label,
            "is_management_key": key.is_management_key,
            "history": {"first_day": first.isoformat(), "last_day": last.isoformat()},
            "yesterday": {"endpoints": len(rows), "requests": sum(r.requests for r in rows)},
        }
        for name in ("limit", "limit_remaining", "usage", "usage_daily", "usage_monthly"):
            if (value := getattr(key, name)) is not None:
                details[name] = str(value)
        if key.limit_reset:
            details["limit_reset"] = key.limit_reset
        summary = f"Management key “{key.label}”" if key.label else "OpenRouter management key"
        summary += f" · {len(rows)} endpoint{'s' if len(rows) != 1 else ''} used on {last.isoformat()}"
        try:
            credits = http.parse_json(
                self._get(http, f"{base}/credits", headers), parse_credits, request_id_of=_request_id
            )
        except (PermissionDenied, ConfigurationError, ProviderResponseError) as error:
            details["warnings"] = [f"Credits could not be read: {error.message}"]
        else:
            details["credits"] = {"total_credits": str(credits.total_credits), "total_usage": str(credits.total_usage)}
            summary += f" · ${credits.total_usage:,.2f} of ${credits.total_credits:,.2f} credits used"
        return Identity(account_id=key.creator_user_id, account_name=key.label, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        base, headers = self.base_url(job.settings), self._headers(job.credential)
        first, last = self._history()
        day = job.window.start.astimezone(UTC).date()
        # Whole UTC days touched by the window, so keys never depend on an unaligned start;
        # outside the horizon the API has nothing: no request.
        days: list[date] = []
        while day_start(day) < job.window.end:
            if first <= day <= last:
                days.append(day)
            day += timedelta(days=1)
        if len(days) >= WHOLE_HORIZON_FROM_DAYS and self._clear_of_midnight():
            # One request without `date` serves the whole horizon: a backfill costs one call,
            # not thirty. Near midnight OpenRouter's clock may already (or still) serve another
            # set of 30 days than ours, so there each day is asked for by name instead; so is
            # the regular sync's re-read of two days (two small answers, not a month's).
            rows = job.http.parse_json(
                self._get(job.http, f"{base}/activity", headers), parse_activity, request_id_of=_request_id
            )
            self.answer(
                job.answered, ACTIVITY.name, Window(day_start(days[0]), min(day_start(days[-1]) + DAY, job.window.end))
            )
            yield from in_stream(activity_samples(rows, days=set(days)), ACTIVITY.name)
            return
        for day in days:
            samples = self._day(job.http, base, headers, day, edge=day in (first, last))
            if samples is not None:
                self.answer(
                    job.answered, ACTIVITY.name, Window(day_start(day), min(day_start(day) + DAY, job.window.end))
                )
                yield from in_stream(samples, ACTIVITY.name)

    # ------------------------------------------------------------ internals
    def _day(
        self, http: HttpClient, base: str, headers: dict[str, str], day: date, *, edge: bool
    ) -> list[UsageSample] | None:
        """The day's samples, or None when the day just left (or entered) the horizon."""

        def classify(status: int, message: str, response: requests.Response) -> ProviderError:
            if status == 400 and edge:  # clocks differ by seconds: the day just left (or entered) the horizon
                return _OutsideHistory(message)
            return classify_error(status, message, response)

        try:
            response = http.request("GET", f"{base}/activity", headers=headers, params={"date": day.isoformat()},
                                    classify=classify)  # fmt: skip
        except _OutsideHistory:
            return None  # not served: not an answer
        # Only the asked-for day: should the filter be ignored, other days are not stored twice.
        return activity_samples(http.parse_json(response, parse_activity, request_id_of=_request_id), days={day})

    def _get(self, http: HttpClient, url: str, headers: dict[str, str], params: Any = None) -> requests.Response:
        return http.request("GET", url, headers=headers, params=params, classify=classify_error)

    def _clear_of_midnight(self) -> bool:
        now = self.clock().astimezone(UTC)
        since = now - datetime(now.year, now.month, now.day, tzinfo=UTC)
        return MIDNIGHT_MARGIN <= since <= DAY - MIDNIGHT_MARGIN

    def _history(self) -> tuple[date, date]:
        today = self.clock().astimezone(UTC).date()
        return today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1)

    def _headers(self, credential: Mapping[str, str]) -> dict[str, str]:
        return bearer_headers(
            credential, "api_key", missing="The OpenRouter management key is missing.", hint=CREATE_MANAGEMENT_KEY
        )
