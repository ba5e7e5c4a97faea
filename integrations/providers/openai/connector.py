"""OpenAI connector: token usage per model and project, and costs, from the admin API.

Reads `/organization/usage/completions` (hourly, grouped by model, project, service tier and
batch), the other usage endpoints (embeddings, moderations, images, audio speeches, audio
transcriptions, code interpreter sessions hourly; vector stores daily) and
`/organization/costs` (daily, grouped by line item, project and API key) with an Admin key.
Completions and costs must be readable; a key whose permissions leave one of the other usage
types out gets those skipped (noted for the sync's events, see `SKIPPED_STATE`), not a failed sync.
See docs/providers/openai.md for the admin's side of it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping
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
    ScopeError,
    Stream,
    UsageSample,
    align_down,
    note_skipped,
)
from integrations.providers.openai.schema import (
    DAY,
    HOUR,
    USAGE_KINDS,
    Project,
    UsageKind,
    completions_samples,
    cost_samples,
    kind_samples,
    parse_completions_page,
    parse_costs_page,
    parse_kind_page,
    parse_project_list,
)
from integrations.providers.toolkit import BucketReports, IdPage, base_url_field, bearer_headers, paginate, pasted_key

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

ADMIN_KEYS_URL = "https://platform.openai.com/settings/organization/admin-keys"
CREATE_ADMIN_KEY = f"Create an Admin key at {ADMIN_KEYS_URL} (organization owners only) and rotate it here."
ORGANIZATION_HEADER = "openai-organization"
_PROJECT_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
MAX_PAGES = 5_000  # a cursor loop the provider never ends is a bug, not a long history
USAGE = Stream("usage_completions", "Token usage per model and project, hourly (/organization/usage/completions)")
COSTS = Stream("costs", "Costs per line item, project and API key, daily (/organization/costs)")
# One stream per other usage endpoint (its rows are removed only by its own complete re-read).
KIND_STREAMS: dict[str, Stream] = {
    kind.name: Stream(
        f"usage_{kind.name}", f"{kind.name.replace('_', ' ').capitalize()} usage (/organization/usage/{kind.name})"
    )
    for kind in USAGE_KINDS
}


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError | None:
    """OpenAI-specific meaning of error statuses; None leaves the seam's default mapping
    (429 → RateLimited, 5xx → ProviderUnavailable, …). `message` is already redacted."""
    if status == 401:
        return CredentialError(f"OpenAI rejected the Admin key: {message}", hint=CREATE_ADMIN_KEY)
    if status == 403 and "missing scopes" in message.lower():
        return ScopeError(
            "The key lacks the api.usage.read scope; it is probably a project key (sk-proj-…), not an Admin key.",
            hint=CREATE_ADMIN_KEY,
        )
    if status == 403:
        return PermissionDenied(
            f"OpenAI refused access: {message}",
            hint="The key is valid but may not read this organization's usage. Check the key's organization and the owner role.",
        )
    return None


# The API starts its first bucket at the exact start_time: the reports are asked for whole buckets.
REPORTS = BucketReports(
    "OpenAI", ORGANIZATION_HEADER, "x-request-id",
    lambda start, end: {"start_time": int(start.timestamp()), "end_time": int(end.timestamp())}, classify_error,
    MAX_PAGES,
)  # fmt: skip


class OpenAIProvider(Provider):
    slug = "openai"
    keys_version = 2  # issue 13: completions by service tier and batch, costs by API key
    name = "OpenAI"
    category = "ai"
    vendor = "OpenAI"
    docs_path = "docs/providers/openai.md"
    credential_help = (
        f"Create an Admin API key (it starts with sk-admin-) at {ADMIN_KEYS_URL}. "
        "Only organization owners can create one. Project keys (sk-proj-…) cannot read usage."
    )
    credential_fields = (
        FormField(
            "api_key",
            "Admin API key",
            help_text="An organization Admin key, sk-admin-…; it needs the api.usage.read scope.",
            secret=True,
            placeholder="sk-admin-…",
        ),
    )
    setting_fields = (
        base_url_field("https://api.openai.com/v1"),
        FormField(
            "project_ids",
            "Only these projects",
            help_text="Optional comma-separated project ids (proj_…); empty reads every project.",
            required=False,
            placeholder="proj_abc, proj_def",
        ),
    )
    # Admin usage buckets keep growing for minutes after they close; 15 minutes keeps the
    # newest, still-filling hour out of the "done" part of the window.
    reporting_delay = timedelta(minutes=15)
    # Buckets are revised after they close (and costs only settle per day): re-read a day.
    restatement_window = timedelta(days=1)
    bucket = HOUR
    chunk = timedelta(days=1)
    # Each is answered for the buckets read, all projects (or the project_ids filter), per
    # organization the answer came from: a line item re-labelled or a model with no more usage
    # leaves no row behind.
    streams = (USAGE, COSTS, *KIND_STREAMS.values())

    # Page sizes: the documented maxima (1h usage: 168 buckets = a week; costs: 180 days).
    usage_page_size: ClassVar[int] = 168
    kind_page_sizes: ClassVar[dict[str, int]] = {"1h": 168, "1d": 31}
    costs_page_size: ClassVar[int] = 180
    projects_page_size: ClassVar[int] = 100

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        key = pasted_key(credential, "api_key", missing="Enter the OpenAI Admin API key.", hint=CREATE_ADMIN_KEY)
        if key.startswith("sk-admin-"):
            return
        if key.startswith("sk-proj-"):
            raise ScopeError(
                "This is a project API key (sk-proj-…). Reading usage needs an organization Admin key (sk-admin-…).",
                hint=CREATE_ADMIN_KEY,
            )
        if key.startswith("sk-svcacct-"):
            raise PermissionDenied(
                "This is a service-account key (sk-svcacct-…). Reading usage needs an organization Admin key (sk-admin-…).",
                hint=CREATE_ADMIN_KEY,
            )
        if key.startswith("sk-"):
            raise PermissionDenied(
                "This looks like a user or legacy API key. Reading usage needs an organization Admin key (sk-admin-…).",
                hint=CREATE_ADMIN_KEY,
            )
        raise ConfigurationError(
            "This does not look like an OpenAI key; Admin keys start with sk-admin-.", hint=CREATE_ADMIN_KEY
        )

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        base, headers = self.base_url(settings), self._headers(credential)
        configured = self._project_ids(settings)  # a malformed filter fails before any call
        organization = ""
        projects: list[Project] = []

        def project_page(after: str | None) -> tuple[requests.Response, IdPage[Project]]:
            params: dict[str, Any] = {"limit": self.projects_page_size, "include_archived": "true"}
            if after:
                params["after"] = after
            response = REPORTS.get(http, f"{base}/organization/projects", headers, params)
            return response, http.parse_json(response, parse_project_list)

        for response, page in paginate(
            project_page, lambda rp: rp[1].cursor(), source="OpenAI",
            max_pages=MAX_PAGES, repeated="OpenAI's project list said has_more without a usable last_id.",
        ):  # fmt: skip
            organization = organization or response.headers.get(ORGANIZATION_HEADER, "")
            projects.extend(page.items)
        # Listing projects needs a different scope than usage: probe the usage API itself so
        # "Test connection" fails now, with the scope error, rather than at the first sync.
        probe_start = align_down(datetime.now(UTC), HOUR) - HOUR
        probe = {"start_time": int(probe_start.timestamp()), "bucket_width": "1h", "limit": 1}
        response = REPORTS.get(http, f"{base}/organization/usage/completions", headers, probe)
        http.parse_json(response, parse_completions_page)

        details: dict[str, Any] = {"projects": [{"id": p.id, "name": p.name, "status": p.status} for p in projects]}
        missing = sorted(set(configured) - {p.id for p in projects})
        if missing:
            details["warnings"] = [f"Project ids not found in this organization: {', '.join(missing)}."]
        count = f"{len(projects)} project{'s' if len(projects) != 1 else ''}"
        summary = f"Organization {organization} · {count}" if organization else f"OpenAI organization · {count}"
        return Identity(account_id=organization, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        base, headers = self.base_url(job.settings), self._headers(job.credential)
        filters: dict[str, Any] = {}
        scope: dict[str, list[str]] = {}
        if project_ids := self._project_ids(job.settings):
            filters["project_ids"] = scope["project"] = project_ids  # the filter is all that is answered
        completions_groups = ["model", "project_id", "service_tier", "batch"]
        usage = REPORTS.samples(
            job.http, f"{base}/organization/usage/completions", headers, job.window, HOUR,
            {"bucket_width": "1h", "group_by": completions_groups, "limit": self.usage_page_size, **filters},
            parse_completions_page, completions_samples, USAGE.name, job.answered, **scope,
        )  # fmt: skip
        costs = REPORTS.samples(
            job.http, f"{base}/organization/costs", headers, job.window, DAY,
            {"bucket_width": "1d", "group_by": ["line_item", "project_id", "api_key_id"], "limit": self.costs_page_size,
             **filters},
            parse_costs_page, cost_samples, COSTS.name, job.answered, **scope,
        )  # fmt: skip
        skipped: dict[str, str] = {}
        kinds = []
        for kind in USAGE_KINDS:
            width_name = "1d" if kind.width == DAY else "1h"
            params = {"bucket_width": width_name, "group_by": list(kind.group_by),
                      "limit": self.kind_page_sizes[width_name], **filters}  # fmt: skip
            samples = REPORTS.samples(
                job.http, f"{base}/organization/usage/{kind.name}", headers, job.window, kind.width, params,
                parse_kind_page(kind), kind_samples(kind), KIND_STREAMS[kind.name].name, job.answered, **scope,
            )  # fmt: skip
            kinds.append(_unless_refused(samples, kind, skipped))
        # Every stream is in bucket order; merging keeps the whole output in time order.
        yield from heapq.merge(usage, costs, *kinds, key=lambda s: s.bucket_start)
        if job.state is not None:
            note_skipped(job.state, skipped)

    # ------------------------------------------------------------ internals
    def _headers(self, credential: Mapping[str, str]) -> dict[str, str]:
        return bearer_headers(
            credential, "api_key", missing="The OpenAI Admin API key is missing.", hint=CREATE_ADMIN_KEY
        )

    def _project_ids(self, settings: Mapping[str, str]) -> list[str]:
        ids = [p.strip() for p in (settings.get("project_ids") or "").split(",") if p.strip()]
        for project_id in ids:
            if not _PROJECT_ID_RE.match(project_id):
                raise ConfigurationError(
                    f"{project_id!r} is not an OpenAI project id.",
                    hint="List project ids (proj_…) separated by commas, or leave the field empty for all projects.",
                )
        return ids


def _unless_refused(samples: Iterator[UsageSample], kind: UsageKind, skipped: dict[str, str]) -> Iterator[UsageSample]:
    """The samples of one other usage type; none, noted in `skipped`, when the key may not read it."""
    try:
        yield from samples
    except (ScopeError, PermissionDenied) as error:
        # A key restricted to some usage types: this one is skipped (its stored rows stay,
        # nothing is declared answered) and the sync goes on; the engine reports it once.
        what = kind.name.replace("_", " ").capitalize()
        reason = "a scope is missing" if isinstance(error, ScopeError) else "access was refused"
        skipped[KIND_STREAMS[kind.name].name] = (
            f"{what} usage was not read: OpenAI answered that {reason} for this key ({error.http_status or 403})."
        )
