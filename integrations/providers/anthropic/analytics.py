"""Which path serves a window: Anthropic's Usage and Cost Analytics API (beta) where it can answer
the window completely, else the legacy usage and cost reports.

Anthropic marks `/v1/organizations/usage_report/messages` and `/v1/organizations/cost_report`
"legacy" in favour of `GET /v1/organizations/analytics/usage` and `GET
/v1/organizations/analytics/cost` (header `anthropic-beta: analytics-usage-cost-2026-08-24`).
For each stream of a fetch the analytics report is read first, grouped by the same dimensions
as the legacy report, and its rows are regrouped into the legacy buckets and mapped by the
same functions: a window read by either path gets the same keys, and either path's answer
(same stream, same window, same organization) replaces what the other stored, so switching
never counts a window twice.

The legacy report serves the window instead, and nothing read from the analytics report is
kept, when:
- the analytics report answers 403 or 404 (the organization or key cannot read the beta):
  remembered in the state, asked again after ANALYTICS_RECHECK; or 400 (it does not take the
  request: that window only);
- the window starts before ANALYTICS_EARLIEST or not well inside the last ANALYTICS_RETENTION
  (ranges the analytics reports refuse): no analytics request is made;
- the answer is incomplete or unreadable: a time bucket holds ANALYTICS_GROUP_CAP rows (each
  bucket reports at most its largest groups, with no remainder row, so the rest may be
  missing), an answer has no organization id, or a page is not the documented shape.
A 401, a 429, a 5xx or a timeout is the same failure on either path and ends the fetch as usual.

Which path served each stream's windows is kept in the integration's state (READ_PATHS), with
the reason for every fallback, for an admin to see (docs/providers/anthropic.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from integrations.providers.anthropic.analytics_schema import (
    AnalyticsPage,
    buckets,
    parse_analytics_cost_page,
    parse_analytics_usage_page,
)
from integrations.providers.anthropic.schema import DAY, HOUR, cost_samples, rfc3339, usage_samples
from integrations.providers.base import Answered, UsageSample, Window, align_down, align_up, in_stream
from integrations.providers.errors import ProviderError, ProviderResponseError
from integrations.providers.toolkit import paginate

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

ANALYTICS_BETA = "analytics-usage-cost-2026-08-24"
# "Must be within the last 365 days and no earlier than 2026-01-01T00:00:00Z", and a range
# "may span at most 31 days" (Anthropic's SDK reference of the analytics reports).
ANALYTICS_EARLIEST = datetime(2026, 1, 1, tzinfo=UTC)
ANALYTICS_RETENTION = timedelta(days=365)
RETENTION_MARGIN = timedelta(days=1)  # never ask near the horizon: it moves while pages are read
ANALYTICS_MAX_RANGE = timedelta(days=31)
# "Each bucket reports at most its top 100 groups; a group beyond that cap has no row in that
# bucket (there is no remainder row)": a bucket holding this many rows may be missing some.
ANALYTICS_GROUP_CAP = 100
ANALYTICS_RECHECK = timedelta(days=1)  # how long a refusal is believed before asking again
FALLBACK_STATUSES = frozenset({400, 403, 404})
REMEMBERED_STATUSES = frozenset({403, 404})
MAX_PAGES = 5_000
# The integration's state: the last refusal, and the recent windows of each stream by path.
REFUSAL = "analytics_refused"
READ_PATHS = "read_paths"
PATHS_KEPT = 20
ORGANIZATION_HEADER = "anthropic-organization-id"

Getter = Callable[[str, dict[str, str], dict[str, Any]], "requests.Response"]


@dataclass(frozen=True)
class Report:
    """One analytics report and how its rows become the legacy stream's samples: read in time
    buckets of `read_width` (`read_width_name` on the wire), stored in the legacy stream's
    buckets of `width`."""

    path: str
    width: timedelta
    read_width: timedelta
    read_width_name: str
    group_by: tuple[str, ...]
    parse: Callable[[Any], AnalyticsPage[Any]]
    to_samples: Callable[..., list[UsageSample]]


# Grouped so that the rows are keyed as the legacy reports' are: usage by the legacy usage
# report's group_by[]; costs by what the legacy cost rows carry (their description aside).
# Costs are read hourly and added up into the legacy report's days: a day of an organization
# easily holds more than 100 (workspace, model, kind, tier) groups, an hour far fewer.
USAGE_REPORT = Report(
    "/v1/organizations/analytics/usage", HOUR, HOUR, "1h",
    ("model", "workspace_id", "service_tier", "context_window", "inference_geo"),
    parse_analytics_usage_page, usage_samples,
)  # fmt: skip
COST_REPORT = Report(
    "/v1/organizations/analytics/cost", DAY, HOUR, "1h",
    ("workspace_id", "model", "cost_type", "token_type", "service_tier", "context_window", "inference_geo"),
    parse_analytics_cost_page, cost_samples,
)  # fmt: skip


class _Fallback(Exception):
    """This window goes to the legacy report, for `reason`."""

    def __init__(self, reason: str, *, refused: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused  # the HTTP status, when the analytics report refused the request


class AnalyticsReader:
    """Reads the analytics reports for one fetch. `state` is the integration's memory (a dict
    of its own when the caller keeps none, so one refusal still spares the fetch's next report)."""

    def __init__(self, *, http: HttpClient, base: str, headers: dict[str, str], get: Getter,
                 request_id: Callable[[requests.Response], str], state: dict[str, Any] | None) -> None:  # fmt: skip
        self.http, self.base, self.get, self.request_id = http, base, get, request_id
        self.headers = {**headers, "anthropic-beta": ANALYTICS_BETA}
        self.state = state if state is not None else {}

    def read(
        self, report: Report, stream: str, window: Window, answered: list[Answered] | None
    ) -> list[UsageSample] | None:
        """The samples of `stream` in `window` from the analytics report, answered as the legacy
        read would be; None when the legacy report must serve the window (the reason recorded)."""
        now = datetime.now(UTC)
        start, end = align_down(window.start, report.width), align_up(window.end, report.width)
        try:
            self._check_range(start, now)
            # Hours not yet over are not asked for (the legacy report answers them empty).
            rows, accounts = self._rows(report, start, max(start, min(end, align_up(now, report.read_width))))
        except _Fallback as fallback:
            if fallback.refused is not None:
                self.state[REFUSAL] = {"at": rfc3339(now), "status": fallback.refused, "reason": fallback.reason[:300]}
            self._note(stream, start, window.end, "legacy", fallback.reason)
            return None
        self.state.pop(REFUSAL, None)
        samples: list[UsageSample] = []
        for account, found in sorted(rows.items()):
            for bucket in buckets(found, report.width):
                if start <= align_down(bucket.start, report.width) < window.end:
                    samples += in_stream(report.to_samples(bucket, account=account, width=report.width), stream)
        samples.sort(key=lambda s: s.bucket_start)
        if answered is not None:
            answered.append(Answered(stream, Window(start, window.end), {"account": set(accounts)}))
        self._note(stream, start, window.end, "analytics", "")
        return samples

    # ------------------------------------------------------------ internals
    def _check_range(self, start: datetime, now: datetime) -> None:
        refusal = self.state.get(REFUSAL)
        if isinstance(refusal, dict):
            try:
                at = datetime.fromisoformat(str(refusal.get("at")))
            except ValueError:
                at = None
            if at is not None and now < at + ANALYTICS_RECHECK:
                raise _Fallback(f"the analytics report refused the last request (HTTP {refusal.get('status')}) "
                                f"at {refusal.get('at')}: {refusal.get('reason')}")  # fmt: skip
        if start < ANALYTICS_EARLIEST:
            raise _Fallback("the window starts before 2026-01-01, the analytics reports' earliest date")
        if start < now - ANALYTICS_RETENTION + RETENTION_MARGIN:
            raise _Fallback("the window starts more than 364 days ago, beyond the analytics reports' 365 days")

    def _rows(
        self, report: Report, start: datetime, end: datetime
    ) -> tuple[dict[str, list[tuple[datetime, datetime, Any]]], set[str]]:
        rows: dict[str, list[tuple[datetime, datetime, Any]]] = {}
        accounts: set[str] = set()
        per_bucket: Counter[tuple[str, datetime]] = Counter()
        since = start
        while since < end:
            until = min(end, since + ANALYTICS_MAX_RANGE)
            params: dict[str, Any] = {"starting_at": rfc3339(since), "ending_at": rfc3339(until),
                                      "time_bucket_width": report.read_width_name, "group_by[]": list(report.group_by)}  # fmt: skip
            for response, page in self._pages(report, params):
                account = response.headers.get(ORGANIZATION_HEADER, "")
                if not account:
                    raise _Fallback("the analytics report answered without an organization id")
                accounts.add(account)
                for row in page.rows:
                    rows.setdefault(account, []).append(row)
                    per_bucket[(account, align_down(row[0], report.read_width))] += 1
            since = until
        crowded = sorted(moment for (_account, moment), count in per_bucket.items() if count >= ANALYTICS_GROUP_CAP)
        if crowded:
            raise _Fallback(f"the analytics report's bucket of {rfc3339(crowded[0])} holds {ANALYTICS_GROUP_CAP} "
                            "groups, its cap, and has no remainder row: it may be incomplete")  # fmt: skip
        return rows, accounts

    def _pages(self, report: Report, params: dict[str, Any]) -> list[tuple[requests.Response, AnalyticsPage[Any]]]:
        url = f"{self.base}{report.path}"

        def page(cursor: str | None) -> tuple[requests.Response, AnalyticsPage[Any]]:
            response = self.get(url, self.headers, {**params, "page": cursor} if cursor else params)
            return response, self.http.parse_json(response, report.parse, request_id_of=self.request_id)

        try:
            return list(paginate(
                page, lambda p: p[1].cursor(), source="Anthropic", max_pages=MAX_PAGES,
                repeated="Anthropic's analytics report said has_more but gave no new next_page cursor.",
                request_id=lambda p: self.request_id(p[0]),
            ))  # fmt: skip
        except ProviderError as error:
            if isinstance(error, ProviderResponseError) and error.http_status not in FALLBACK_STATUSES:
                # An answer not in the documented shape: this window only.
                raise _Fallback(f"the analytics report's answer could not be read: {error.message}") from None
            if error.http_status in FALLBACK_STATUSES:
                # 403/404: this organization or key cannot read it (believed for a while); 400:
                # this request was not taken (the next window may be).
                refused = error.http_status if error.http_status in REMEMBERED_STATUSES else None
                raise _Fallback(f"HTTP {error.http_status}: {error.message}", refused=refused) from None
            raise

    def _note(self, stream: str, start: datetime, end: datetime, path: str, reason: str) -> None:
        """Record that `path` served `stream` for [start, end): extends the last entry when it
        continues it for the same path and reason, and keeps the latest PATHS_KEPT."""
        notes = self.state.setdefault(READ_PATHS, {})
        if not isinstance(notes, dict):
            notes = self.state[READ_PATHS] = {}
        entries = [e for e in notes.get(stream) or [] if isinstance(e, dict)]
        entry = {"start": rfc3339(start), "end": rfc3339(end), "path": path, "reason": reason[:300]}
        last = entries[-1] if entries else None
        if (
            last is not None
            and (last.get("path"), last.get("reason")) == (path, entry["reason"])
            and str(last.get("start")) <= entry["start"] <= str(last.get("end"))
        ):
            last["end"] = max(str(last.get("end")), entry["end"])
        else:
            entries.append(entry)
        notes[stream] = entries[-PATHS_KEPT:]
