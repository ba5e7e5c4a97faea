"""Anthropic connector: token usage per model and workspace (cache reads and writes included),
and costs, from the organization Admin API.

Reads `/v1/organizations/usage_report/messages` (hourly, grouped by model, workspace, service
tier, context window and inference geo) and
`/v1/organizations/cost_report` (daily, grouped by workspace and description) with an Admin
key, or, for each window they can answer completely, the Usage and Cost Analytics API (beta)
that Anthropic now prefers, into the same rows (analytics.py). See docs/providers/anthropic.md
for the admin's side of it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from integrations.http import parse_retry_after
from integrations.providers import facts
from integrations.providers.anthropic.analytics import COST_REPORT, USAGE_REPORT, AnalyticsReader
from integrations.providers.anthropic.schema import (
    DAY,
    DEFAULT_WORKSPACE,
    HOUR,
    Workspace,
    cost_samples,
    parse_cost_page,
    parse_organization,
    parse_usage_page,
    parse_workspace_list,
    project_of,
    rfc3339,
    usage_samples,
)
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
    Stream,
    UsageSample,
    align_down,
)
from integrations.providers.toolkit import BucketReports, IdPage, base_url_field, paginate, pasted_key

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

ADMIN_KEYS_URL = "https://console.anthropic.com/settings/admin-keys"
CREATE_ADMIN_KEY = f"Create an Admin key at {ADMIN_KEYS_URL} (organization admins only) and rotate it here."
API_VERSION = "2023-06-01"
ORGANIZATION_HEADER = "anthropic-organization-id"
_ADMIN_KEY_RE = re.compile(r"^sk-ant-admin\d+-")
MAX_PAGES = 5_000  # a cursor loop the provider never ends is a bug, not a long history
USAGE = Stream("usage_report", "Token usage per model and workspace, hourly (usage_report/messages)")
# Service tier, context window and inference geo are grouped by so standard, batch, priority,
# long-context and US-only traffic stay apart (issue 13); `speed` is kept when a row carries it.
USAGE_GROUPS = ["model", "workspace_id", "service_tier", "context_window", "inference_geo"]
COSTS = Stream("cost_report", "Costs per workspace and description, daily (cost_report)")
# Runtime messages say "sk-ant-admin…", never "sk-ant-admin01-…": the seam's redaction takes
# any "sk-" followed by 12 key-like characters for a secret and would blank the advice out.


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError | None:
    """Anthropic-specific meaning of error statuses; None leaves the seam's default mapping.
    `message` (the body's error.message) is already redacted."""
    if status == 401:
        return CredentialError(
            f"Anthropic rejected the Admin key: {message}",
            hint=f"The key may be revoked or mistyped; regular API keys (sk-ant-api03-…) are refused too. {CREATE_ADMIN_KEY}",
        )
    if status == 403:
        return PermissionDenied(
            f"Anthropic refused access: {message}",
            hint=(
                "The key is valid but may not read this organization's usage. The Admin API needs an Admin key "
                f"(sk-ant-admin…) of an organization, not an individual account. {CREATE_ADMIN_KEY}"
            ),
        )
    if status == 429:
        return RateLimited(
            f"Anthropic is throttling the Admin API: {message}",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            hint="Anthropic supports polling the usage report about once a minute. The next sync waits and retries.",
        )
    if status == 529:  # overloaded_error: Anthropic's capacity, not this key's rate
        return ProviderUnavailable(f"Anthropic is overloaded: {message}")
    return None


# Anthropic snaps starting_at down itself, but the reports are asked for whole buckets anyway.
REPORTS = BucketReports(
    "Anthropic", ORGANIZATION_HEADER, "request-id",
    lambda start, end: {"starting_at": rfc3339(start), "ending_at": rfc3339(end)}, classify_error, MAX_PAGES,
)  # fmt: skip


class AnthropicProvider(Provider):
    slug = "anthropic"
    keys_version = 2  # issue 13: service tier, context window, inference geo and speed kept apart
    name = "Anthropic"
    category = "ai"
    vendor = "Anthropic"
    docs_path = "docs/providers/anthropic.md"
    credential_help = (
        f"Create an Admin API key (it starts with sk-ant-admin01-) at {ADMIN_KEYS_URL}. "
        "Only organization admins can create one. Regular API keys (sk-ant-api03-…) cannot read usage."
    )
    credential_fields = (
        FormField(
            "api_key",
            "Admin API key",
            help_text="An organization Admin key, sk-ant-admin01-…; Admin keys have no scopes to choose.",
            secret=True,
            placeholder="sk-ant-admin01-…",
        ),
    )
    setting_fields = (base_url_field("https://api.anthropic.com"),)
    # "Usage and cost data typically appears within 5 minutes of API request completion."
    reporting_delay = timedelta(minutes=5)
    # "…though delays may occasionally be longer", and today's cost bucket fills all day: re-read a day.
    restatement_window = timedelta(days=1)
    bucket = HOUR
    chunk = timedelta(days=1)
    # Each is answered for the buckets read, every workspace, per organization the answer came
    # from: a cost withdrawn or a model with no more usage leaves no row behind.
    streams = (USAGE, COSTS)

    # Page sizes: the documented maxima (1h usage: 168 buckets = a week; costs: 31 days).
    usage_page_size: ClassVar[int] = 168
    costs_page_size: ClassVar[int] = 31
    workspaces_page_size: ClassVar[int] = 100

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        key = pasted_key(credential, "api_key", missing="Enter the Anthropic Admin API key.", hint=CREATE_ADMIN_KEY)
        if _ADMIN_KEY_RE.match(key):
            return
        wanted = "Reading usage needs an organization Admin key (sk-ant-admin…)."
        if key.startswith("sk-ant-api"):
            raise PermissionDenied(f"This is a regular API key (sk-ant-api03-…). {wanted}", hint=CREATE_ADMIN_KEY)
        if key.startswith("sk-ant-oat"):
            raise PermissionDenied(
                f"This is a Claude OAuth token (sk-ant-oat…), not an API key. {wanted}", hint=CREATE_ADMIN_KEY
            )
        if key.startswith("sk-ant-"):
            raise PermissionDenied(f"This Anthropic key is not an Admin key. {wanted}", hint=CREATE_ADMIN_KEY)
        if key.startswith(("sk-admin-", "sk-proj-", "sk-svcacct-")):
            raise ConfigurationError(
                "This looks like an OpenAI key. Add it under the OpenAI integration.", hint=CREATE_ADMIN_KEY
            )
        raise ConfigurationError(
            "This does not look like an Anthropic key; Admin keys start with sk-ant-admin.", hint=CREATE_ADMIN_KEY
        )

    def identity_facts(self, details: Mapping[str, Any]) -> list[tuple[str, str]]:
        workspaces = [w for w in details.get("workspaces") or [] if isinstance(w, dict)]
        names = {str(w.get("id")): str(w.get("name") or w.get("id")) for w in workspaces}
        active = [names[str(w.get("id"))] for w in workspaces if not w.get("archived")]
        archived = [names[str(w.get("id"))] for w in workspaces if w.get("archived")]
        seen = [names.get(str(i), str(i)) for i in details.get("workspaces_with_usage_last_7_days") or []]
        shown = [(f"Workspaces ({len(active)})", facts.listing(active))]
        if archived:
            shown.append((f"Archived workspaces ({len(archived)})", facts.listing(archived)))
        shown.append(("With usage in the last 7 days", facts.listing(seen)))
        rest = {
            k: v
            for k, v in details.items()
            if k not in ("organization", "workspaces", "workspaces_with_usage_last_7_days")
        }
        return shown + facts.generic(rest)

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        base, headers = self.base_url(settings), self._headers(credential)
        org = http.parse_json(REPORTS.get(http, f"{base}/v1/organizations/me", headers, {}), parse_organization)
        workspaces: list[Workspace] = []

        def workspace_page(after: str | None) -> IdPage[Workspace]:
            params: dict[str, Any] = {"limit": self.workspaces_page_size, "include_archived": "true"}
            if after:
                params["after_id"] = after
            return http.parse_json(
                REPORTS.get(http, f"{base}/v1/organizations/workspaces", headers, params), parse_workspace_list
            )

        for page in paginate(
            workspace_page, IdPage.cursor, source="Anthropic",
            max_pages=MAX_PAGES, repeated="Anthropic's workspace list said has_more without a usable last_id.",
        ):  # fmt: skip
            workspaces.extend(page.items)
        # Listing workspaces is not reading usage: probe the usage report itself so "Test
        # connection" fails now rather than at the first sync, and show where usage was seen.
        since = align_down(datetime.now(UTC), DAY) - 7 * DAY
        probe = {"starting_at": rfc3339(since), "bucket_width": "1d", "group_by[]": ["workspace_id"], "limit": 8}
        usage = http.parse_json(
            REPORTS.get(http, f"{base}/v1/organizations/usage_report/messages", headers, probe), parse_usage_page
        )
        seen = sorted({project_of(r.workspace_id) for b in usage.buckets for r in b.results})

        details: dict[str, Any] = {
            "organization": {"id": org.id, "name": org.name},
            "workspaces": [{"id": DEFAULT_WORKSPACE, "name": "Default workspace", "archived": False}]
            + [{"id": w.id, "name": w.name, "archived": w.archived} for w in workspaces],
            "workspaces_with_usage_last_7_days": seen,
        }
        count = f"{len(workspaces)} workspace{'s' if len(workspaces) != 1 else ''} + the default workspace"
        summary = f"Organization {org.name or org.id} · {count} · {len(seen)} with usage in the last 7 days"
        return Identity(account_id=org.id, account_name=org.name, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        base, headers = self.base_url(job.settings), self._headers(job.credential)
        # The analytics reports first, each window wholly or not at all; the legacy ones serve
        # what they cannot (analytics.py says when, and records which path served each window).
        analytics = AnalyticsReader(http=job.http, base=base, headers=headers, state=job.state,
                                    get=lambda url, h, params: REPORTS.get(job.http, url, h, params),
                                    request_id=REPORTS.request_id)  # fmt: skip
        read_usage = analytics.read(USAGE_REPORT, USAGE.name, job.window, job.answered)
        read_costs = analytics.read(COST_REPORT, COSTS.name, job.window, job.answered)
        usage = iter(read_usage) if read_usage is not None else REPORTS.samples(
            job.http, f"{base}/v1/organizations/usage_report/messages", headers, job.window, HOUR,
            {"bucket_width": "1h", "group_by[]": USAGE_GROUPS, "limit": self.usage_page_size},
            parse_usage_page, usage_samples, USAGE.name, job.answered,
        )  # fmt: skip
        costs = iter(read_costs) if read_costs is not None else REPORTS.samples(
            job.http, f"{base}/v1/organizations/cost_report", headers, job.window, DAY,
            {"bucket_width": "1d", "group_by[]": ["workspace_id", "description"], "limit": self.costs_page_size},
            parse_cost_page, cost_samples, COSTS.name, job.answered,
        )  # fmt: skip
        # Both streams are in bucket order; merging keeps the whole output in time order.
        yield from heapq.merge(usage, costs, key=lambda s: s.bucket_start)

    # ------------------------------------------------------------ internals
    def _headers(self, credential: Mapping[str, str]) -> dict[str, str]:
        # A wrong key type never reaches the network, at Test connection or at any later sync.
        self.check_credential(credential)
        key = (credential.get("api_key") or "").strip()
        return {"x-api-key": key, "anthropic-version": API_VERSION, "Accept": "application/json"}
