"""Replicate connector: predictions and compute time per model, from the predictions list.

Reads `GET /predictions?created_after=…&created_before=…` (100 per page, newest first, `next`
a full URL followed verbatim) and counts, per hour of `created_at`, model and deployment, the
predictions made and the `predict_time` of the finished ones. `GET /account` names the account.
See docs/providers/replicate.md for the admin's side of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from integrations.http import parse_retry_after
from integrations.http import redact as redact_patterns
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
    align_down,
    align_up,
    in_stream,
)
from integrations.providers.replicate.schema import (
    HOUR,
    Prediction,
    PredictionPage,
    iso,
    parse_account,
    parse_prediction_page,
    usage_samples,
)
from integrations.providers.toolkit import base_url_field, bearer_headers, paginate

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

TOKENS_URL = "https://replicate.com/account/api-tokens"
CREATE_TOKEN = (
    f"Create an API token at {TOKENS_URL} while signed in as (or switched to) the account or "
    "organization whose predictions you want, and rotate it here."
)
NOT_SCOPED = (
    "Replicate API tokens are not scoped: this token can also run models and spend on the account. "
    "Doow only reads with it."
)
TOKEN_LENGTH = 40
PREDICTIONS = Stream("predictions", "Predictions and compute seconds per model and deployment, hourly (/predictions)")
TRAININGS = Stream("trainings", "Trainings and their compute seconds per base model, hourly (/trainings)")
_TOKEN_RE = re.compile(r"^r8_[A-Za-z0-9_\-]+$")
# Keys of other providers pasted into the wrong form, and what they are.
_FOREIGN_PREFIXES = (
    ("sk-ant-", "an Anthropic key"),
    ("sk-or-", "an OpenRouter key"),
    ("sk-", "an OpenAI key"),
    ("gsk_", "a Groq key"),
    ("fw_", "a Fireworks key"),
    ("hf_", "a Hugging Face token"),
    ("AKIA", "an AWS access key id"),
)
_THROTTLE_WAIT_RE = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
MAX_PAGES = 50_000  # 5 million predictions in one window: beyond that the cursor is looping


def request_id(response: requests.Response) -> str:
    # No documented request id header; the Cloudflare ray id is what Replicate support can trace.
    for name in ("x-request-id", "cf-ray"):
        if response.headers.get(name):
            return response.headers[name][:200]
    return ""


def _problem_text(message: str, response: requests.Response, redact: Callable[[str], str]) -> str:
    """Replicate errors carry `detail` (the seam's `message`, already redacted) and problem+json
    ones a `title` too; the title comes from the raw body, so it is redacted here before use
    (an exception's args keep what it was built with)."""
    try:
        body = response.json()
    except ValueError:
        return message
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not title.strip():
        return message
    title = redact(title.strip())[:200]
    if title.lower() in message.lower():
        return message
    if message.lower() in title.lower() or message == (response.reason or ""):
        return title  # no detail: the seam fell back to the HTTP reason phrase
    return f"{title}: {message}"


def _retry_after(response: requests.Response, text: str) -> float | None:
    seconds = parse_retry_after(response.headers.get("Retry-After"))
    if seconds is None and (match := _THROTTLE_WAIT_RE.search(text)):
        seconds = float(match.group(1))  # the throttle message says how long when the header does not
    return seconds


def classify_error(
    status: int, message: str, response: requests.Response, redact: Callable[[str], str] | None = None
) -> ProviderError | None:
    """Replicate's meaning of each error status. `message` is already redacted; `redact` (the
    HTTP client's, which knows the token) cleans anything else taken from the body."""
    text = _problem_text(message, response, redact or redact_patterns)
    rid = request_id(response)
    if status == 401:
        return CredentialError(f"Replicate rejected the API token: {text}", hint=CREATE_TOKEN, request_id=rid)
    if status == 403:
        return PermissionDenied(
            f"Replicate refused access: {text}",
            hint="The token is valid but may not list these predictions. Create the token under the account or "
            f"organization that runs them ({TOKENS_URL}).",
            request_id=rid,
        )
    if status == 429:
        return RateLimited(
            f"Replicate is throttling requests: {text}", retry_after=_retry_after(response, text), request_id=rid
        )
    if status >= 500:
        return ProviderUnavailable(f"Replicate had a server error: {text}", request_id=rid)
    if status == 404 and "cursor" not in text.lower():
        return ConfigurationError(
            f"Replicate answered 404 Not Found: {text}",
            hint="Check the integration's API base URL (normally https://api.replicate.com/v1).",
            request_id=rid,
        )
    return ProviderResponseError(f"Replicate refused the request: {text}", request_id=rid)


class ReplicateProvider(Provider):
    slug = "replicate"
    name = "Replicate"
    category = "ai"
    vendor = "Replicate"
    docs_path = "docs/providers/replicate.md"
    credential_help = (
        f"Create an API token (it starts with r8_) at {TOKENS_URL}, under the account or organization "
        f"whose predictions you want to track. {NOT_SCOPED}"
    )
    credential_fields = (
        FormField(
            "api_token",
            "API token",
            help_text=f"r8_… (40 characters). {NOT_SCOPED}",
            secret=True,
            placeholder="r8_…",
        ),
    )
    setting_fields = (base_url_field("https://api.replicate.com/v1"),)
    # Predictions are listed the moment they are created; 15 minutes lets most of those in the
    # newest hour read finish, so its first compute figure is close to final.
    reporting_delay = timedelta(minutes=15)
    # The rest finish later: re-reading a day turns "running" into predict_time (the bucket's
    # row is replaced, requests stay the same).
    restatement_window = timedelta(days=1)
    bucket = HOUR
    chunk = timedelta(days=1)
    # Answered for the hours listed to the end (this account, every model): a model whose
    # predictions are no longer listed keeps no row in those hours.
    streams = (PREDICTIONS, TRAININGS)

    max_pages: ClassVar[int] = MAX_PAGES

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        token = (credential.get("api_token") or "").strip()
        if not token:
            raise ConfigurationError("Enter the Replicate API token.", hint=CREATE_TOKEN)
        if token.lower().startswith(("bearer ", "token ")):
            raise ConfigurationError("Paste the token alone, without the 'Bearer ' or 'Token ' in front of it.")
        if any(c.isspace() for c in token):
            raise ConfigurationError("The API token contains spaces or line breaks; paste it again.")
        if token.startswith("r8_"):
            if len(token) != TOKEN_LENGTH:
                raise ConfigurationError(
                    f"Replicate API tokens are {TOKEN_LENGTH} characters long; this one has {len(token)}. "
                    "It was probably cut off while copying.",
                    hint=CREATE_TOKEN,
                )
            if not _TOKEN_RE.match(token):
                raise ConfigurationError(
                    "The API token contains characters a Replicate token never has; paste it again."
                )
            return
        for prefix, what in _FOREIGN_PREFIXES:
            if token.startswith(prefix):
                raise ConfigurationError(
                    f"This looks like {what}, not a Replicate API token (r8_…).", hint=CREATE_TOKEN
                )
        raise ConfigurationError(
            "This does not look like a Replicate API token; they start with r8_.", hint=CREATE_TOKEN
        )

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        base, headers = self.base_url(settings), self._headers(credential)
        account = self._get(http, f"{base}/account", headers, parse_account)
        # /account works for any valid token; list one hour of predictions too, so a token (or a
        # proxy) that cannot read them fails here rather than at the first sync.
        since = align_down(datetime.now(UTC)) - HOUR
        self._get(http, f"{base}/predictions", headers, parse_prediction_page, params={"created_after": iso(since)})
        kind = account.type or "account"
        label = f" ({account.name})" if account.name and account.name != account.username else ""
        return Identity(
            account_id=account.username,
            account_name=account.name or account.username,
            summary=f"Replicate {kind} {account.username}{label}",
            details={"account_type": kind, "token_access": NOT_SCOPED},
        )

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        base, headers = self.base_url(job.settings), self._headers(job.credential)
        # Whole hours: a bucket is only ever built from all of its predictions. created_after is
        # inclusive and created_before exclusive, so adjacent windows never share a prediction.
        start, end = align_down(job.window.start), align_up(job.window.end)
        account = self._get(job.http, f"{base}/account", headers, parse_account).username
        # usage_samples walks every page first (a page cut short raises before the answer).
        samples = usage_samples(self._predictions(job.http, base, headers, start, end), account=account)
        trainings = usage_samples(
            self._trainings(job.http, base, headers, start, end), account=account, operation="training"
        )
        self.answer(job.answered, PREDICTIONS.name, Window(start, job.window.end), account=[account])
        self.answer(job.answered, TRAININGS.name, Window(start, job.window.end), account=[account])
        yield from sorted(
            in_stream(samples, PREDICTIONS.name) + in_stream(trainings, TRAININGS.name), key=lambda s: s.bucket_start
        )

    # ------------------------------------------------------------ internals
    def _predictions(
        self, http: HttpClient, base: str, headers: dict[str, str], start: datetime, end: datetime
    ) -> Iterator[Prediction]:
        params = {"created_after": iso(start), "created_before": iso(end)}
        return self._listing(http, base, headers, "/predictions", params, start, end)

    def _trainings(
        self, http: HttpClient, base: str, headers: dict[str, str], start: datetime, end: datetime
    ) -> Iterator[Prediction]:
        """Trainings created in [start, end). /trainings takes no date filter: it lists every
        training newest first, so the walk stops at the first page reaching before `start`."""
        return self._listing(http, base, headers, "/trainings", None, start, end)

    def _listing(
        self,
        http: HttpClient,
        base: str,
        headers: dict[str, str],
        path: str,
        params: dict[str, str] | None,
        start: datetime,
        end: datetime,
    ) -> Iterator[Prediction]:
        """The items of a listing created in [start, end), read newest first."""

        def get(next_url: str | None) -> PredictionPage:
            if next_url is None:
                return self._get(http, f"{base}{path}", headers, parse_prediction_page, params=params)
            return self._get(
                http, next_url, headers, parse_prediction_page
            )  # verbatim: the cursor and filters are in it

        def next_of(page: PredictionPage) -> str | None:
            # Newest first: once a page reaches before the window, the rest is older still (this
            # also ends the walk if a proxy ever dropped the created_after filter).
            if not page.next or any(p.created_at < start for p in page.results):
                return None
            self._check_host(page.next, base)
            return page.next

        previous_ids: set[str] = set()
        for page in paginate(
            get, next_of, source="Replicate", max_pages=self.max_pages,
            repeated="Replicate returned the same next page twice; stopped to avoid a loop.",
        ):  # fmt: skip
            # A cursor page may repeat the boundary item of the page before it: count it once.
            for item in page.results:
                if start <= item.created_at < end and item.id not in previous_ids:
                    yield item
            previous_ids = {p.id for p in page.results}

    @staticmethod
    def _check_host(next_url: str, base: str) -> None:
        # The token goes with every request: never send it to a host other than the configured one.
        got, want = urlsplit(next_url), urlsplit(base)
        if (got.scheme, got.netloc.lower()) != (want.scheme, want.netloc.lower()):
            raise ProviderResponseError(
                f"Replicate's next page points to another host ({got.hostname or 'none'}); it was not followed.",
                hint="If a proxy is configured as the base URL, it must rewrite the `next` links to itself.",
            )

    def _get(
        self,
        http: HttpClient,
        url: str,
        headers: dict[str, str],
        parse: Callable[[Any], Any],
        params: dict[str, str] | None = None,
    ) -> Any:
        classify = functools.partial(classify_error, redact=http.redact)
        response = http.request("GET", url, headers=headers, params=params, classify=classify)
        return http.parse_json(response, parse, request_id_of=request_id)

    def _headers(self, credential: Mapping[str, str]) -> dict[str, str]:
        return bearer_headers(credential, "api_token", missing="The Replicate API token is missing.", hint=CREATE_TOKEN)
