"""Company Settings → Integrations: function-based views, admin-only, tenant-scoped.

Every integration is looked up through `request.workspace.integrations`, never by bare id,
so one workspace can never reach another's rows. htmx requests get the named partial of the
page (`"integrations/detail.html#usage"`); the same URL without htmx renders the whole page,
so every hx-get also works as a plain link.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings as django_settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q, Sum
from django.forms import ChoiceField
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.permissions import WorkspaceRequest, workspace_view
from doow.jobs import QUEUED_PATIENCE
from integrations.forms import (
    CredentialRotateForm,
    DisconnectForm,
    IntegrationAddForm,
    IntegrationEditForm,
)
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.base import Provider, ProviderError
from integrations.providers.registry import (
    CATEGORIES,
    get_provider,
    providers_by_category,
)
from integrations.services import (
    RESOLUTIONS,
    DuplicateAccount,
    SyncNotAllowed,
    integration_account_peers,
    integration_count_again,
    integration_create,
    integration_disconnect,
    integration_duplicate_groups,
    integration_pause,
    integration_request_sync,
    integration_resolve_duplicate,
    integration_resume,
    integration_rotate_credential,
    integration_setup_instructions,
    integration_update,
    integration_verify,
)
from usage import queries
from usage.dimensions import ROW_VIEW_DIMENSIONS
from usage.forms import UsageFilterForm, UsageImportForm
from usage.import_jobs import (
    UsageImportBusy,
    usage_import_latest,
    usage_import_request,
    usage_import_stalled,
)
from usage.importer import (
    AUTHRESS_EXAMPLE,
    DOOW_EXAMPLE,
    FORMAT_LABELS,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    date_range,
)
from usage.models import UsageImport
from usage.rollups import day_start, zone_of
from usage.summaries import integration_usage_summary, summary_order

DETAIL = "integrations/detail.html"
USAGE_PAGE_SIZE = 50
LIST_PAGE_SIZE = 50
USAGE_DIMENSIONS = ROW_VIEW_DIMENSIONS
RUNS_SHOWN = 20
EVENTS_ON_DETAIL = 10
EVENTS_PAGE_SIZE = 50
# Events the sections of the detail page listen for (hx-trigger="… from:body").
EVERYTHING_CHANGED = "integration-changed, usage-changed, runs-changed, events-changed"


# ---------------------------------------------------------------- helpers
def _integration(request: WorkspaceRequest, pk: int) -> Integration:
    return get_object_or_404(request.workspace.integrations.all(), pk=pk)


def _provider(slug: str) -> Provider:
    try:
        return get_provider(slug)
    except LookupError:
        raise Http404("No such provider.") from None


def _detail_url(integration: Integration) -> str:
    return reverse("integrations:detail", kwargs={"ws": integration.workspace.slug, "pk": integration.pk})


def _post_only() -> HttpResponse:
    # Checked after the tenant lookup, so another workspace's id is a 404 whatever the method.
    return HttpResponseNotAllowed(["POST"])


def _hx_trigger(response: HttpResponse, events: str) -> HttpResponse:
    response["HX-Trigger"] = events
    return response


def _base_context(integration: Integration) -> dict[str, Any]:
    provider = integration.provider_obj
    return {"integration": integration, "provider": provider, "category_label": CATEGORIES.get(provider.category, "")}


def _summary_context(integration: Integration) -> dict[str, Any]:
    identity = integration.identity or {}
    details = identity.get("details") or {}
    projects = details.get("projects") if isinstance(details.get("projects"), list) else []
    # Warnings (a project filter naming projects the account lacks, say) are alerts, not facts.
    warnings: list[Any] = (
        details["warnings"] if isinstance(details, dict) and isinstance(details.get("warnings"), list) else []
    )
    if warnings:
        details = {key: value for key, value in details.items() if key != "warnings"}
    facts = integration.provider_obj.identity_facts(details) if isinstance(details, dict) else []
    last_problem = None
    if integration.status in (Integration.Status.ERROR, Integration.Status.PAUSED):
        # The model keeps the last error's message; its "what to do" lives on the event.
        last_problem = integration.events.exclude(level=IntegrationEvent.Level.INFO).first()
    return {
        "health": integration.health,
        **_account_context(integration),
        "identity": identity,
        "identity_projects": projects,
        "identity_facts": facts,
        "identity_warnings": [str(warning) for warning in warnings],
        "last_run": integration.sync_runs.first(),
        "last_problem": last_problem,
        # A provider without a usage API has no watermark: say how far imported usage reaches.
        "usage_stored_through": None if integration.provider_obj.fetches_usage else _stored_through(integration),
    }


def _account_context(integration: Integration) -> dict[str, Any]:
    """Who else reads this integration's provider account, and whether each is counted."""
    peers = integration_account_peers(integration=integration)
    if not peers:
        return {"account_peers": [], "account_counted": True}
    uncounted = integration.workspace.integrations.uncounted_ids()
    counted = [peer for peer in peers if peer.pk not in uncounted]
    whole = [peer for peer in counted if peer.account_share == Integration.AccountShare.WHOLE]
    return {
        "account_peers": [(peer, peer.pk not in uncounted) for peer in peers],
        # For an uncounted one: the integration whose reading of the account is counted instead.
        "account_counted_by": whole or counted,
        "account_counted": integration.pk not in uncounted,
        "account_split_peer": any(peer.account_share == Integration.AccountShare.SPLIT for peer in peers),
    }


def _stored_through(integration: Integration) -> datetime | None:
    """The end of the latest stored bucket: the rollups name the last day holding usage, and
    only the base rows from the day before it on are read (buckets are at most a day long)."""
    last = integration.usage_daily.aggregate(m=Max("day"))["m"]
    if last is None:
        return None
    since = day_start(last - timedelta(days=1), zone_of(integration.workspace))
    return integration.usage_records.filter(bucket_start__gte=since).aggregate(m=Max("bucket_end"))["m"]


def _project_names(integration: Integration) -> dict[str, str]:
    """project id → name, from what the last Test connection saw (for labels only)."""
    projects = ((integration.identity or {}).get("details") or {}).get("projects") or []
    names: dict[str, str] = {}
    for project in projects if isinstance(projects, list) else []:
        if isinstance(project, dict) and project.get("id"):
            names[str(project["id"])] = str(project.get("name") or "")
    return names


def _usage_context(request: WorkspaceRequest, integration: Integration) -> dict[str, Any]:
    """Totals, filter choices and the non-empty columns come from the integration's daily
    rollups; only the page of rows reads the base table, located through the rollups' per-day
    counts (usage.queries.DaySeekPaginator: no COUNT(*) nor deep OFFSET over millions of rows).
    Dates are local days of the workspace's time zone."""
    # The filter choices: models from the narrow rollup, projects and metrics from the project
    # rollup (each several times smaller than UsageDaily).
    everything = queries.UsageFilters()
    choices = {
        **queries.dimension_values(
            integration.workspace, ("model",), days=queries.integration_daily(integration, everything, reads=("model",))
        ),
        **queries.dimension_values(
            integration.workspace,
            ("project", "metric"),
            days=queries.integration_daily(integration, everything, reads=("project",)),
        ),
    }
    form = UsageFilterForm(request.GET, choices=choices)
    names = _project_names(integration)
    cast(ChoiceField, form.fields["project"]).choices = [("", "All")] + [
        (p, f"{names[p]} ({p})" if names.get(p) else p) for p in choices["project"]
    ]
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    zone = zone_of(integration.workspace)
    filters = queries.UsageFilters(
        date_from=data.get("date_from"),
        date_to=data.get("date_to"),
        integration=str(integration.pk),
        **{name: data.get(name) or "" for name in ("model", "project", "metric")},
    )
    records = queries.filtered(integration.workspace, filters)
    # The integration's own rollups (queries.daily leaves out an account another integration
    # already counts; its own page still shows what it read), each aggregate from the smallest
    # level that holds its columns.
    view = "rows" if request.GET.get("view") == "rows" else "summary"
    days = queries.integration_daily(integration, filters, reads=None if view == "rows" else ())
    totals: list[Any]  # rows of dicts; the stubs' TypedDict knows no filled_* keys
    if view == "rows":
        # One aggregate: the totals per (metric, unit), and which dimensions hold a value somewhere
        # in the filtered rows — those the provider never fills (e.g. region for OpenAI) only make
        # the table wide, so the others are named instead of shown.
        filled_counts = {f"filled_{d}": Count("pk", filter=~Q(**{d: ""})) for d in USAGE_DIMENSIONS}
        totals = list(
            days.values("metric", "unit")
            .annotate(total=Sum("quantity"), rows=Sum("rows"), **filled_counts)
            .order_by("metric", "unit")
        )
        columns = [d for d in USAGE_DIMENSIONS if any(t[f"filled_{d}"] for t in totals)] or list(USAGE_DIMENSIONS)
    else:  # the summary shows no row table: no columns to choose
        totals = list(
            days.values("metric", "unit").annotate(total=Sum("quantity"), rows=Sum("rows")).order_by("metric", "unit")
        )
        totals.sort(key=lambda t: summary_order(t["metric"], t["unit"]))  # the money first, as in the tables
        columns = list(USAGE_DIMENSIONS)
    paginator = queries.DaySeekPaginator(
        records.order_by("-bucket_start", "metric", "pk"),
        USAGE_PAGE_SIZE,
        days=days,
        zone=zone,
        count=sum(t["rows"] for t in totals),
    )
    page = paginator.get_page(request.GET.get("page")) if view == "rows" else None
    filtering = any(data.get(name) for name in ("date_from", "date_to", "model", "project", "metric"))
    usage_count = sum(t["rows"] or 0 for t in totals)
    usage_any = bool(usage_count) or queries.integration_daily(integration, everything).exists()
    return {
        "usage_form": form,
        "usage_view": view,
        "usage_page": page,
        "usage_count": usage_count,
        "usage_zone_name": integration.workspace.time_zone or "UTC",
        **(
            integration_usage_summary(
                lambda dimension: queries.integration_daily(integration, filters, reads=(dimension,)), totals, names
            )
            if view == "summary" and totals
            else {}
        ),
        "usage_totals": totals,
        "usage_any": usage_any,
        # Nothing stored although a sync succeeded: the page says what that sync read, not "first sync".
        "usage_last_success": None
        if usage_any
        else integration.sync_runs.filter(status=SyncRun.Status.SUCCESS).first(),
        "usage_filtering": filtering,
        # The download carries the dates as applied: a refused one (shown as a field error) is left out.
        "usage_date_from": data.get("date_from"),
        "usage_date_to": data.get("date_to"),
        "project_names": names,
        "usage_columns": columns,
        "usage_hidden_columns": [d for d in USAGE_DIMENSIONS if d not in columns],
    }


def _runs_context(integration: Integration) -> dict[str, Any]:
    return {"runs": integration.sync_runs.all()[:RUNS_SHOWN]}


def _event_filters(request: WorkspaceRequest | None) -> dict[str, str]:
    """The level and category asked for, when they are real choices (anything else is ignored)."""
    query = request.GET if request is not None else {}
    level = query.get("level", "")
    category = query.get("category", "")
    return {
        "level": level if level in IntegrationEvent.Level.values else "",
        "category": category if category in IntegrationEvent.Category.values else "",
    }


def _events_context(
    integration: Integration, request: WorkspaceRequest | None = None, *, page_size: int | None = None
) -> dict[str, Any]:
    """The event log, newest first, filtered by level and category: the latest EVENTS_ON_DETAIL
    on the detail page, pages of EVENTS_PAGE_SIZE on the event log's own page."""
    filters = _event_filters(request)
    events = integration.events.all()
    if filters["level"]:
        events = events.filter(level=filters["level"])
    if filters["category"]:
        events = events.filter(category=filters["category"])
    context: dict[str, Any] = {
        "event_filters": filters,
        "event_filtering": any(filters.values()),
        "event_levels": IntegrationEvent.Level.choices,
        "event_categories": IntegrationEvent.Category.choices,
        "events_query": urlencode([(k, v) for k, v in filters.items() if v]),
    }
    if page_size:
        page = Paginator(events, page_size).get_page(request.GET.get("page") if request is not None else None)
        return {**context, "events": page.object_list, "events_page": page}
    shown = list(events[: EVENTS_ON_DETAIL + 1])
    return {**context, "events": shown[:EVENTS_ON_DETAIL], "events_more": len(shown) > EVENTS_ON_DETAIL}


def _sync_context(
    integration: Integration, *, after: int | None = None, requested: float | None = None
) -> dict[str, Any]:
    """What the Sync panel shows.

    `after` is the id of the newest finished run when Sync now was pressed: a run newer than it
    is the one we follow. Without `after` (a plain page view) only a run in progress is shown.
    """
    runs = integration.sync_runs.all()
    if after is None:
        run = runs.filter(status=SyncRun.Status.RUNNING).first()
    else:
        run = runs.filter(pk__gt=after).order_by("-pk").first()
    queued = after is not None and run is None
    stalled = queued and requested is not None and time.time() - requested > QUEUED_PATIENCE.total_seconds()
    running = run is not None and run.status == SyncRun.Status.RUNNING
    return {
        "sync_run": run,
        "sync_after": after if after is not None else (run.pk - 1 if run else None),
        "sync_requested": int(requested or time.time()),
        "sync_queued": queued and not stalled,
        "sync_stalled": stalled,
        "sync_polling": running or (queued and not stalled),
        "sync_finished": run is not None and not running,
    }


def _import_context(
    integration: Integration, form: UsageImportForm | None = None, job: UsageImport | None = None
) -> dict[str, Any]:
    """The import section: the latest import job (its progress or outcome) and the upload form,
    which stays hidden while a job is in progress."""
    job = job or usage_import_latest(integration=integration)
    stalled = job is not None and usage_import_stalled(job)
    waiting = (
        job is not None
        and job.status == UsageImport.Status.QUEUED
        and not stalled
        and timezone.now() - job.created_at > QUEUED_PATIENCE
    )
    return {
        "import_form": form or UsageImportForm(),
        "import_job": job,
        "import_date_range": (
            date_range(job.first_start, job.last_end)
            if job is not None and job.status == UsageImport.Status.DONE and job.first_start and job.last_end
            else ""
        ),
        "import_format_label": FORMAT_LABELS.get(job.format, "") if job is not None else "",
        "import_active": job is not None and job.is_active and not stalled,
        "import_stalled": stalled,
        "import_waiting": waiting,
        "import_doow_example": DOOW_EXAMPLE,
        "import_authress_example": AUTHRESS_EXAMPLE,
        "import_max_mb": MAX_IMPORT_BYTES // (1024 * 1024),
        "import_max_rows": MAX_IMPORT_ROWS,
    }


def _detail_context(request: WorkspaceRequest, integration: Integration, *, given: str = "") -> dict[str, Any]:
    """Every section's context, except the `given` one (its caller already built it: the usage
    section's queries are not worth running twice)."""
    sections = {
        "summary": lambda: _summary_context(integration),
        "usage": lambda: _usage_context(request, integration),
        "runs": lambda: _runs_context(integration),
        "events": lambda: _events_context(integration, request),
        "sync": lambda: _sync_context(integration),
        "import": lambda: _import_context(integration),
    }
    context = _base_context(integration)
    for name, build in sections.items():
        if name != given:
            context.update(build())
    context["setup_instructions"] = (
        integration_setup_instructions(provider=integration.provider_obj, integration=integration)
        if integration.status != Integration.Status.DISCONNECTED
        else []
    )
    return context


def _section(
    request: WorkspaceRequest, integration: Integration, partial: str, context: dict[str, Any]
) -> HttpResponse:
    """The named partial for htmx, the whole detail page otherwise."""
    if request.htmx:
        return render(request, f"{DETAIL}#{partial}", {**_base_context(integration), **context})
    return render(request, DETAIL, {**_detail_context(request, integration, given=partial), **context})


# ---------------------------------------------------------------- list / add
@workspace_view(admin=True)
def integration_list(request: WorkspaceRequest) -> HttpResponse:
    """One page of LIST_PAGE_SIZE integrations, by name: a workspace with thousands of them
    renders the same few rows (one COUNT and one page query, nothing per integration)."""
    page = Paginator(request.workspace.integrations.order_by("name", "pk"), LIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "integrations/list.html",
        {
            "integrations": page.object_list,
            "integrations_page": page,
            "categories": providers_by_category(),
            # One account, counted once: who is left out of totals, and the groups to fix.
            "uncounted_ids": request.workspace.integrations.uncounted_ids(),
            "duplicate_groups": integration_duplicate_groups(workspace=request.workspace),
        },
    )


@workspace_view(admin=True)
def integration_add(request: WorkspaceRequest, provider: str) -> HttpResponse:
    provider_obj = _provider(provider)
    form = IntegrationAddForm(request.POST or None, provider=provider_obj)
    if request.method == "POST" and form.is_valid():
        try:
            integration = integration_create(
                workspace=request.workspace,
                provider_slug=provider_obj.slug,
                credential=form.credential_values(),
                settings=form.setting_values(),
                name=form.cleaned_data["name"],
                created_by=request.user,
                verify=True,
                allow_duplicate=form.cleaned_data["split_account"],
            )
        except DuplicateAccount as error:
            form.duplicate_of = [(i.name, _detail_url(i)) for i in error.existing]
            form.add_provider_error(error)
        except ProviderError as error:
            form.add_provider_error(error)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if provider_obj.fetches_usage:
                done = (
                    f"Connected {integration.name}. The first sync starts within a minute and reads "
                    f"the last {integration.backfill_days} days."
                )
            else:
                done = f"Connected {integration.name}. {provider_obj.name} has no usage API: import its usage as CSV below."
            messages.success(request, done)
            return redirect(_detail_url(integration))
    steps = integration_setup_instructions(provider=provider_obj, workspace=request.workspace)
    return render(
        request, "integrations/add.html", {"provider": provider_obj, "form": form, "setup_instructions": steps}
    )


@workspace_view(admin=True)
def provider_docs(request: WorkspaceRequest, provider: str) -> HttpResponse:
    """The provider's setup page from docs/, so the add form can link to it offline."""
    provider_obj = _provider(provider)
    text = ""
    if provider_obj.docs_path:
        docs_root = (Path(django_settings.BASE_DIR) / "docs").resolve()
        path = (Path(django_settings.BASE_DIR) / provider_obj.docs_path).resolve()
        if path.is_relative_to(docs_root) and path.is_file():
            text = path.read_text(encoding="utf-8")
    return render(request, "integrations/docs.html", {"provider": provider_obj, "docs_text": text})


# ---------------------------------------------------------------- detail and its sections
@workspace_view(admin=True)
def integration_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    return render(request, DETAIL, _detail_context(request, integration))


@workspace_view(admin=True)
def integration_summary(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    return _section(request, integration, "summary", _summary_context(integration))


@workspace_view(admin=True)
def integration_usage(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    response = _section(request, integration, "usage", _usage_context(request, integration))
    if request.htmx and request.htmx.trigger != "usage":
        # A filter or page change (not a refresh after a sync): keep the address bar shareable.
        query = urlencode([(k, v) for k, v in request.GET.items() if v])
        response["HX-Push-Url"] = _detail_url(integration) + (f"?{query}" if query else "")
    return response


@workspace_view(admin=True)
def integration_runs(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    return _section(request, integration, "runs", _runs_context(integration))


@workspace_view(admin=True)
def integration_events(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """The event log: for htmx, the detail page's card (latest events, filtered); as a page of its
    own, every event, EVENTS_PAGE_SIZE a page, filterable by level and category."""
    integration = _integration(request, pk)
    if request.htmx and request.htmx.target == "events":
        return _section(request, integration, "events", _events_context(integration, request))
    context = {**_base_context(integration), **_events_context(integration, request, page_size=EVENTS_PAGE_SIZE)}
    return render(request, "integrations/events.html", context)


def _int_param(request: WorkspaceRequest, name: str) -> int | None:
    try:
        return int(request.GET[name])
    except (KeyError, ValueError):
        return None


@workspace_view(admin=True)
def integration_sync_status(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """Polled every 2 s while a sync is queued or running; says when it is done."""
    integration = _integration(request, pk)
    requested = _int_param(request, "requested")
    context = _sync_context(integration, after=_int_param(request, "after"), requested=requested)
    response = _section(request, integration, "sync", context)
    if request.htmx and context["sync_finished"]:
        _hx_trigger(response, EVERYTHING_CHANGED)
    return response


# ---------------------------------------------------------------- actions (POST)
@workspace_view(admin=True)
def integration_sync_now(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    after = integration.sync_runs.exclude(status=SyncRun.Status.RUNNING).aggregate(m=Max("pk"))["m"] or 0
    sync_error = ""
    try:
        integration_request_sync(integration=integration)
    except SyncNotAllowed as error:
        sync_error = f"{error} Resume it (or rotate its credential) before syncing."
    if not request.htmx:
        if sync_error:
            messages.error(request, sync_error)
        else:
            messages.success(request, "Sync queued. This page shows the result once it has run.")
        return redirect(_detail_url(integration))
    if sync_error:
        context = {**_sync_context(integration), "sync_error": sync_error}
    else:
        context = _sync_context(integration, after=after, requested=time.time())
    response = render(request, f"{DETAIL}#sync", {**_base_context(integration), **context})
    if context.get("sync_finished"):
        # An eager or very fast worker finished before we answered: refresh the page now.
        _hx_trigger(response, EVERYTHING_CHANGED)
    return response


@workspace_view(admin=True)
def integration_test(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """Test connection: who/what the stored key can see now, or why it cannot."""
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    error: ProviderError | None = None
    try:
        integration_verify(integration=integration)
    except ProviderError as exc:
        error = exc
    if not request.htmx:
        if error:
            messages.error(request, f"Connection test failed: {error.message} {error.hint}".strip())
        else:
            messages.success(request, "Connection test passed.")
        return redirect(_detail_url(integration))
    context = {**_base_context(integration), **_summary_context(integration), "test_error": error, "tested": True}
    response = render(request, f"{DETAIL}#test_result", context)
    return _hx_trigger(response, "integration-changed, events-changed")


def _status_action(
    request: WorkspaceRequest, integration: Integration, done: str, *, flash: bool = True
) -> HttpResponse:
    if not request.htmx:
        messages.success(request, done)
        return redirect(_detail_url(integration))
    # The summary's own status alert already says "Paused…": no second banner saying the same.
    context = {**_base_context(integration), **_summary_context(integration), "flash": done if flash else ""}
    return _hx_trigger(render(request, f"{DETAIL}#summary", context), "events-changed")


@workspace_view(admin=True)
def integration_pause_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    if integration.status not in (Integration.Status.ACTIVE, Integration.Status.ERROR):
        return _status_action(
            request, integration, f"{integration.name} is {integration.get_status_display().lower()}; nothing to pause."
        )
    integration_pause(integration=integration)
    return _status_action(request, integration, "Paused. Scheduled syncs are stopped until you resume.", flash=False)


@workspace_view(admin=True)
def integration_resume_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    if integration.status != Integration.Status.PAUSED:
        return _status_action(
            request,
            integration,
            f"{integration.name} is {integration.get_status_display().lower()}; nothing to resume.",
        )
    integration_resume(integration=integration)
    return _status_action(request, integration, "Resumed. The next sync starts within a minute.")


@workspace_view(admin=True)
def integration_resolve_duplicate_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """One click on the list: pause or disconnect an integration that reads an account another
    one already counts (its usage stops counting), or say it reads another part (split)."""
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    resolution = request.POST.get("resolution", "")
    if resolution not in RESOLUTIONS:
        messages.error(request, "Nothing changed: choose pause, disconnect or split.")
    else:
        messages.success(request, integration_resolve_duplicate(integration=integration, resolution=resolution))
    if request.POST.get("next") == "detail":
        return redirect(_detail_url(integration))
    return redirect("integrations:list", ws=request.workspace.slug)


@workspace_view(admin=True)
def integration_count_again_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    integration_count_again(integration=integration)
    messages.success(request, f"{integration.name} is counted again.")
    return redirect(_detail_url(integration))


@workspace_view(admin=True)
def integration_import_usage(request: WorkspaceRequest, pk: int) -> HttpResponse:
    """Upload a usage CSV: kept in the database and imported by a worker (usage/import_jobs.py);
    the section then shows the job's progress and, when it ends, the rows stored or the
    line-numbered problems (all rows or none)."""
    integration = _integration(request, pk)
    if request.method != "POST":
        return _post_only()
    form = UsageImportForm(request.POST, request.FILES)
    job: UsageImport | None = None
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = usage_import_request(
                integration=integration,
                stream=upload,
                size=upload.size,
                fmt=form.cleaned_data["format"],
                source=upload.name or "",
                user=request.user,
            )
        except UsageImportBusy as busy:
            form.add_error(None, str(busy))
        else:
            form = UsageImportForm()  # a fresh form: the file field cannot keep its value anyway
            if not request.htmx:
                if job.status == UsageImport.Status.FAILED:
                    messages.error(request, "Nothing was imported: the file was refused. The reasons are listed below.")
                else:
                    messages.success(
                        request, f"{job.source or 'The file'} is queued for import; its progress shows below."
                    )
                return redirect(_detail_url(integration) + "#usage-import")
    response = _section(request, integration, "import", _import_context(integration, form, job))
    if request.htmx and job is not None and not job.is_active:
        # Refused at once (or an eager worker already finished): the event log has news.
        _hx_trigger(response, EVERYTHING_CHANGED if job.status == UsageImport.Status.DONE else "events-changed")
    return response


@workspace_view(admin=True)
def integration_import_status(request: WorkspaceRequest, pk: int, job: int) -> HttpResponse:
    """Polled every second while an import is queued or in progress; says when it ended."""
    integration = _integration(request, pk)
    found = get_object_or_404(integration.usage_imports.defer("data"), pk=job)
    response = _section(request, integration, "import", _import_context(integration, job=found))
    if request.htmx and request.GET.get("watching") and not found.is_active:
        # The import this section was following just ended: refresh what it changed.
        _hx_trigger(response, EVERYTHING_CHANGED if found.status == UsageImport.Status.DONE else "events-changed")
    return response


# ---------------------------------------------------------------- forms on their own pages
@workspace_view(admin=True)
def integration_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    provider = integration.provider_obj
    initial = {
        "name": integration.name,
        "sync_interval": int(integration.sync_interval.total_seconds() // 60),
        "backfill_days": integration.backfill_days,
        **{f"setting_{k}": v for k, v in (integration.settings or {}).items()},
    }
    form = IntegrationEditForm(
        request.POST or None, provider=provider, interval=integration.sync_interval, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        try:
            integration_update(
                integration=integration,
                name=form.cleaned_data["name"],
                settings=form.setting_values(),
                sync_interval=form.interval(),
                backfill_days=form.cleaned_data["backfill_days"],
            )
        except ProviderError as error:
            form.add_provider_error(error)
        else:
            messages.success(request, "Settings saved.")
            return redirect(_detail_url(integration))
    return render(request, "integrations/edit.html", {**_base_context(integration), "form": form})


@workspace_view(admin=True)
def integration_rotate(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    form = CredentialRotateForm(request.POST or None, provider=integration.provider_obj)
    if request.method == "POST" and form.is_valid():
        try:
            integration_rotate_credential(integration=integration, credential=form.credential_values(), verify=True)
        except ProviderError as error:
            form.add_provider_error(error)
        else:
            messages.success(
                request,
                f"Credential replaced and verified. The new key ends in {integration.credential_hint or '(hidden)'}.",
            )
            return redirect(_detail_url(integration))
    return render(request, "integrations/rotate.html", {**_base_context(integration), "form": form})


@workspace_view(admin=True)
def integration_disconnect_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    already = integration.status == Integration.Status.DISCONNECTED
    data: Mapping[str, Any] | None = request.POST or None
    if already and data is not None:
        data = {"data_choice": DisconnectForm.DELETE}  # nothing left to disconnect: only deleting makes sense
    form = DisconnectForm(data)
    if request.method == "POST" and form.is_valid():
        name = integration.name
        integration_disconnect(integration=integration, keep_data=form.keep_data)
        if form.keep_data:
            messages.success(request, f"{name} is disconnected. Its key was deleted; its usage was kept.")
            return redirect(_detail_url(integration))
        messages.success(request, f"{name} and all its usage data were deleted.")
        return redirect("integrations:list", ws=request.workspace.slug)
    usage_count = integration.usage_daily.aggregate(n=Sum("rows"))["n"] or 0
    return render(
        request,
        "integrations/disconnect.html",
        {**_base_context(integration), "form": form, "already": already, "usage_count": usage_count},
    )
