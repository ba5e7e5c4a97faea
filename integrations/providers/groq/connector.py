"""Groq connector: token and request estimates per model and project, from the Enterprise
Prometheus metrics API (VictoriaMetrics, MetricsQL).

Groq has no usage or billing API; its Enterprise tier exposes per-second rates over 5 minutes
(`…:tokens_in:rate5m`, `…:tokens_out:rate5m`, `…:requests:rate5m`). Each fetch discovers the
metric names (Groq renamed them once), reads the rates with `query_range` at a 5-minute step,
one day per query, and turns rate × 300 s into hourly, `derived` samples.
See docs/providers/groq.md for the admin's side of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

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
    ScopeError,
    Stream,
    UsageSample,
    Window,
    align_down,
    align_up,
    in_stream,
)
from integrations.providers.groq.schema import (
    HOUR,
    METRIC_ROLES,
    MODEL_LABEL,
    PROJECT_LABEL,
    STEP,
    hourly_samples,
    parse_label_values,
    parse_matrix,
    parse_series_list,
    resolve_metric_names,
)
from integrations.providers.toolkit import base_url_field, bearer_headers

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

DEFAULT_BASE_URL = "https://api.groq.com/v1/metrics/prometheus"
KEYS_URL = "https://console.groq.com/keys"
ENTERPRISE_URL = "https://groq.com/enterprise-access/"
CREATE_KEY = f"Create an API key (gsk_…) at {KEYS_URL} in your Groq Enterprise organization and rotate it here."
ENTERPRISE_ONLY = (
    "Groq answered 404 (not found) for its metrics API. Groq's usage metrics are available on the "
    "Enterprise tier only, so this key's organization is most likely not on Enterprise."
)
ENTERPRISE_HINT = (
    f"Ask Groq to enable the Enterprise tier ({ENTERPRISE_URL}), or use a key created in your Enterprise "
    f"organization ({KEYS_URL}). If you are on Enterprise already, leave the base URL empty "
    f"(it defaults to {DEFAULT_BASE_URL})."
)
VERIFY_LOOKBACK = timedelta(days=7)
RATES = Stream("rates", "Token and request estimates per model and project, hourly, from 5-minute rates")
_TRANSIENT_ERROR_TYPES = {"timeout", "canceled", "unavailable"}


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError | None:
    """Groq-specific meaning of error statuses; None leaves the seam's default mapping
    (429 → RateLimited, 5xx → ProviderUnavailable). `message` is already redacted."""
    if status == 401:
        return CredentialError(f"Groq rejected the API key: {message}", hint=CREATE_KEY)
    if status == 403:
        return PermissionDenied(
            f"Groq refused access to the metrics API: {message}",
            hint="The key is valid but its organization may not read metrics. Check the organization's "
            f"status and tier in the Groq console, or create a key in the Enterprise organization ({KEYS_URL}).",
        )
    if status == 404:
        return ScopeError(ENTERPRISE_ONLY, hint=ENTERPRISE_HINT)
    error_type = _prometheus_error_type(response)
    if error_type in _TRANSIENT_ERROR_TYPES:
        return ProviderUnavailable(f"Groq's metrics API could not answer ({error_type}): {message}")
    if status in (400, 422) or error_type:
        return ProviderResponseError(
            f"Groq's metrics API refused the query ({error_type or status}): {message}",
            hint="Nothing was stored from it; the next sync retries. If it repeats, Groq has changed its "
            "metrics API: report it with the request id.",
        )
    return None


def _prometheus_error_type(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error_type = body.get("errorType") if isinstance(body, dict) else None
    return error_type[:40] if isinstance(error_type, str) else ""


class GroqProvider(Provider):
    slug = "groq"
    name = "Groq"
    category = "ai"
    vendor = "Groq"
    docs_path = "docs/providers/groq.md"
    credential_help = (
        f"Create an API key (it starts with gsk_) at {KEYS_URL}, in an organization on Groq's Enterprise "
        "tier: Groq's usage metrics API is Enterprise-only, and keys of other tiers are answered 404."
    )
    credential_fields = (
        FormField(
            "api_key",
            "API key",
            help_text="A Groq API key, gsk_…, of an organization on the Enterprise tier.",
            secret=True,
            placeholder="gsk_…",
        ),
    )
    setting_fields = (base_url_field(DEFAULT_BASE_URL, "Metrics API URL"),)
    # A point at t needs the recording rule evaluated after t; 15 minutes keeps the newest,
    # still-filling hour out of the "done" part of the window.
    reporting_delay = timedelta(minutes=15)
    # Late rule evaluations fill in recent points: re-read a day (cheap: one query per metric).
    restatement_window = timedelta(days=1)
    bucket = HOUR
    chunk = timedelta(days=1)
    # Answered per day queried, for the metrics whose names Groq lists (all of them when it
    # lists none: nothing was recorded). An hour whose rates now sum to nothing loses its row.
    streams = (RATES,)

    # One query covers at most 31 days (the engine's fetch span, so a 30-day backfill is one
    # query per metric): 8,929 points per series at a 5-minute step, under Prometheus's 11,000
    # and VictoriaMetrics's 30,000 points per series.
    max_query_span: ClassVar[timedelta] = timedelta(days=31)

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        key = (credential.get("api_key") or "").strip()
        if not key:
            raise ConfigurationError("Enter the Groq API key.", hint=CREATE_KEY)
        if key.lower().startswith("bearer "):
            raise ConfigurationError("Paste the key alone, without 'Bearer ' in front of it.", hint=CREATE_KEY)
        if any(c.isspace() for c in key):
            raise ConfigurationError("The API key contains spaces or line breaks; paste it again.")
        if key.startswith("gsk_"):
            return
        if key.startswith("xai-"):
            raise ConfigurationError(
                "This is an xAI (Grok) key, not a Groq key. Groq keys start with gsk_.", hint=CREATE_KEY
            )
        if key.startswith("sk-"):
            raise ConfigurationError(
                "This looks like an OpenAI or other provider's key (sk-…). Groq keys start with gsk_.", hint=CREATE_KEY
            )
        raise ConfigurationError("This does not look like a Groq API key; Groq keys start with gsk_.", hint=CREATE_KEY)

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        base, headers = self.base_url(settings), self._headers(credential)
        end = align_down(datetime.now(UTC), timedelta(seconds=STEP))
        start = end - VERIFY_LOOKBACK
        names = self._metric_names(http, base, headers, start, end)  # also proves Enterprise access
        if not names:
            warning = "Groq lists no metrics for the last 7 days; usage is stored once the organization makes requests."
            return Identity(
                account_id="",
                summary="Groq Enterprise metrics · no usage recorded in the last 7 days",
                details={"metric_names": [], "warnings": [warning]},
            )
        resolved = resolve_metric_names(names)
        if resolved.missing:
            expected = [documented for metric, documented, _ in METRIC_ROLES if metric in resolved.missing]
            shown = sorted(n for n in names if "token" in n or "request" in n) or sorted(names)
            raise ConfigurationError(
                f"Groq's metrics API does not list {', '.join(expected)}. Metric names found: "
                f"{', '.join(shown[:12])}{' …' if len(shown) > 12 else ''}.",
                hint="Groq has renamed its metrics before. Until the connector knows the new names, usage "
                "read from them would be missing: report the names above to your operator.",
            )
        params = {"match[]": resolved.found["input_tokens"], **_range(start, end)}
        series = self._get(http, f"{base}/api/v1/series", headers, params, parse_series_list)
        projects = sorted({s[PROJECT_LABEL] for s in series if s.get(PROJECT_LABEL)})
        models = sorted({s[MODEL_LABEL] for s in series if s.get(MODEL_LABEL)})
        labels = sorted({k for s in series for k in s} - {"__name__"})
        details: dict[str, Any] = {
            "metrics": dict(resolved.found),
            "metric_names": sorted(names)[:100],
            "projects": projects,
            "models": models,
            "labels": labels,
        }
        absent = [label for label in (PROJECT_LABEL, MODEL_LABEL) if series and label not in labels]
        if absent:
            details["warnings"] = [
                f"Groq's series carry no {' or '.join(absent)} label (labels: {', '.join(labels)}); "
                + "usage will be stored without that breakdown."
            ]
        summary = (
            f"Groq Enterprise metrics · {_count(projects, 'project')} · {_count(models, 'model')} in the last 7 days"
        )
        return Identity(account_id="", summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        # Whole hours only: an unaligned window is read as the hours it touches, so a bucket's
        # key never depends on where a window started. `state` is not used (see the docs page).
        start, end = align_down(job.window.start, HOUR), align_up(job.window.end, HOUR)
        base, headers = self.base_url(job.settings), self._headers(job.credential)
        # Rediscovered on every fetch (one cheap call): a rename is noticed at the next chunk
        # instead of reading an old name as "no usage" until a cache expires.
        names = self._metric_names(job.http, base, headers, start, end)
        if not names:
            # Nothing was recorded in these hours: zero usage, of every metric.
            self.answer(job.answered, RATES.name, Window(start, job.window.end))
            return
        resolved = resolve_metric_names(names)
        if not resolved.found:
            raise ConfigurationError(
                f"Groq's metrics API lists none of the metrics this app reads "
                f"({', '.join(documented for _, documented, _ in METRIC_ROLES)}).",
                hint="Groq has renamed its metrics. Nothing was stored; report this to your operator so the "
                "connector can learn the new names, and run Test connection to see the names Groq lists.",
            )
        span_start = start
        while span_start < end:
            span_end = min(span_start + self.max_query_span, end)
            results = {
                metric: self._query_range(job.http, base, headers, name, span_start, span_end)
                for metric, name in resolved.found.items()
            }
            # Every listed metric's series for these hours are in; a metric Groq does not list
            # (renamed) was not read, so its rows are not answered for.
            self.answer(
                job.answered, RATES.name, Window(span_start, min(span_end, job.window.end)), metric=list(results)
            )
            yield from in_stream(hourly_samples(results, span_start, span_end), RATES.name)
            span_start = span_end

    # ------------------------------------------------------------ internals
    def _metric_names(
        self, http: HttpClient, base: str, headers: dict[str, str], start: datetime, end: datetime
    ) -> list[str]:
        # start/end matter: VictoriaMetrics lists only the last day's names without them.
        return self._get(http, f"{base}/api/v1/label/__name__/values", headers, _range(start, end), parse_label_values)

    def _query_range(
        self, http: HttpClient, base: str, headers: dict[str, str], name: str, start: datetime, end: datetime
    ) -> list[Any]:
        # Points at start+300 … end: each is the 5 minutes ending at it, so the hours [start, end)
        # are covered exactly, with no point shared with the next span.
        params = {"query": name, "start": int(start.timestamp()) + STEP, "end": int(end.timestamp()), "step": STEP}
        return self._get(http, f"{base}/api/v1/query_range", headers, params, parse_matrix)

    def _get(
        self, http: HttpClient, url: str, headers: dict[str, str], params: dict[str, Any], parse: Callable[[Any], Any]
    ) -> Any:
        return http.parse_json(http.request("GET", url, headers=headers, params=params, classify=classify_error), parse)

    def _headers(self, credential: Mapping[str, str]) -> dict[str, str]:
        return bearer_headers(credential, "api_key", missing="The Groq API key is missing.", hint=CREATE_KEY)


def _range(start: datetime, end: datetime) -> dict[str, int]:
    return {"start": int(start.timestamp()), "end": int(end.timestamp())}


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''}"
