"""Company Settings → Applications, Licenses, Attribution rules, Unattributed usage.

Admin-only, function-based, tenant-scoped: every object is looked up through
`request.workspace` (`request.workspace.applications.get(pk=…)`), so another workspace's id is
a 404. htmx requests get the named partial of the page; the same URL renders the whole page.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db import connections, transaction
from django.db.models import Count, Max, Min, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone

from accounts.permissions import workspace_view
from integrations.providers.registry import PROVIDERS
from usage import services
from usage.attribution import escape_pattern
from usage.forms import (
    CATEGORY_SUGGESTIONS,
    ApplicationForm,
    AttributionRuleForm,
    LicenseForm,
)
from usage.models import AttributionRule, License, ReattributionJob
from usage.queries import local_today
from usage.rollups import daily_for

# What "Unattributed usage" groups by: the dimensions that identify who used it. Region and
# api_key stay out (a rule made from a group matches any of them), so groups stay few.
GROUP_FIELDS = ("account", "project", "model", "deployment", "endpoint", "resource", "operation")
GROUPS_SHOWN = 200
# Say so when a queued job has waited this long: no worker is running.
QUEUED_PATIENCE = timedelta(minutes=2)
RULES, UNATTRIBUTED = "usage/settings/rules.html", "usage/settings/unattributed.html"


# ---------------------------------------------------------------- helpers
def _url(request: HttpRequest, name: str, **kwargs: Any) -> str:
    return reverse(f"inventory:{name}", kwargs={"ws": request.workspace.slug, **kwargs})


def _post_only() -> HttpResponse:
    return HttpResponseNotAllowed(["POST"])


def _provider_name(slug: str) -> str:
    provider = PROVIDERS.get(slug)
    return provider.name if provider else slug


def _page(request: HttpRequest, template: str, section: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, template, {"settings_section": section, **context})


def _usage_summary(workspace: Any, key: str) -> dict[int, dict[str, Any]]:
    """rows, latest local day with usage and reported cost per application or license id, from
    the daily rollups (one query)."""
    summary: dict[int, dict[str, Any]] = {}
    rows = (
        daily_for(workspace, (key, "metric", "unit", "day"))
        .filter(**{f"{key}__isnull": False})
        .values(key, "metric", "unit")
        .annotate(rows=Sum("rows"), last=Max("day"), total=Sum("quantity"))
        .order_by(key, "metric", "unit")
    )
    for row in rows:
        entry = summary.setdefault(row[key], {"rows": 0, "last": row["last"], "cost": []})
        entry["rows"] += row["rows"]
        entry["last"] = max(entry["last"], row["last"])
        if row["metric"] == "cost":
            entry["cost"].append((row["total"], row["unit"]))
    return summary


def _rows_of(workspace: Any, **attribution: Any) -> int:
    """Usage rows attributed to something (from the rollups' counts)."""
    return daily_for(workspace, attribution).filter(**attribution).aggregate(n=Sum("rows"))["n"] or 0


def _progress_context(request: HttpRequest) -> dict[str, Any]:
    job = services.reattribution_latest(workspace=request.workspace)
    active = job is not None and job.status in (ReattributionJob.Status.QUEUED, ReattributionJob.Status.RUNNING)
    stalled = active and job.status == ReattributionJob.Status.QUEUED and timezone.now() - job.created_at > QUEUED_PATIENCE
    return {"job": job, "job_active": active, "job_stalled": stalled}


def _reattributing(response: HttpResponse) -> HttpResponse:
    # The progress panel listens for this and starts polling.
    response["HX-Trigger"] = "reattribution-started"
    return response


def _confirm_delete(request: HttpRequest, section: str, context: dict[str, Any]) -> HttpResponse:
    return _page(request, "usage/settings/confirm_delete.html", section, context)


# ---------------------------------------------------------------- applications
@workspace_view(admin=True)
def application_list(request: HttpRequest) -> HttpResponse:
    applications = request.workspace.applications.prefetch_related("licenses").annotate(rule_count=Count("rules"))
    return _page(
        request,
        "usage/settings/applications.html",
        "applications",
        {"applications": applications, "usage": _usage_summary(request.workspace, "application_id")},
    )


def _application_form(request: HttpRequest, instance: Any = None) -> HttpResponse:
    form = ApplicationForm(request.POST or None, instance=instance, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        application = form.save()
        messages.success(request, f"Saved {application.name}.")
        return redirect(_url(request, "applications"))
    context = {"form": form, "application": instance, "category_suggestions": CATEGORY_SUGGESTIONS}
    if instance is not None:
        context["rules"] = [_describe(rule) for rule in instance.rules.select_related("license").order_by("priority", "pk")]
        context["licenses"] = instance.licenses.all()
    return _page(request, "usage/settings/application_form.html", "applications", context)


@workspace_view(admin=True)
def application_create(request: HttpRequest) -> HttpResponse:
    return _application_form(request)


@workspace_view(admin=True)
def application_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _application_form(request, get_object_or_404(request.workspace.applications, pk=pk))


@workspace_view(admin=True)
def application_delete(request: HttpRequest, pk: int) -> HttpResponse:
    application = get_object_or_404(request.workspace.applications, pk=pk)
    if request.method == "POST":
        services.application_delete(application=application)
        messages.success(request, f"Deleted {application.name}. Its usage is being re-attributed by the remaining rules.")
        return redirect(_url(request, "applications"))
    licenses, rules = application.licenses.count(), application.rules.count()
    consequences = []
    if licenses:
        consequences.append(f"{licenses} license{pluralize(licenses)} of it")
    if rules:
        consequences.append(f"{rules} attribution rule{pluralize(rules)} pointing at it")
    return _confirm_delete(
        request,
        "applications",
        {
            "title": f"Delete {application.name}?",
            "deleted": consequences,
            "rows": _rows_of(request.workspace, application=application),
            "action": _url(request, "application_delete", pk=pk),
            "cancel": _url(request, "applications"),
            "back": "Applications",
            "button": "Delete application",
        },
    )


# ---------------------------------------------------------------- licenses
@workspace_view(admin=True)
def license_list(request: HttpRequest) -> HttpResponse:
    licenses = request.workspace.licenses.select_related("application")
    return _page(
        request,
        "usage/settings/licenses.html",
        "licenses",
        {
            "licenses": licenses,
            "usage": _usage_summary(request.workspace, "license_id"),
            "today": local_today(request.workspace),
            "has_applications": request.workspace.applications.exists(),
        },
    )


def _license_form(request: HttpRequest, instance: License | None = None) -> HttpResponse:
    initial = {}
    if instance is None and request.GET.get("application", "").isdigit():
        initial["application"] = int(request.GET["application"])
    form = LicenseForm(request.POST or None, instance=instance, initial=initial, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved the license {saved}.")
        return redirect(_url(request, "licenses"))
    return _page(request, "usage/settings/license_form.html", "licenses", {"form": form, "license": instance})


@workspace_view(admin=True)
def license_create(request: HttpRequest) -> HttpResponse:
    return _license_form(request)


@workspace_view(admin=True)
def license_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _license_form(request, get_object_or_404(request.workspace.licenses.select_related("application"), pk=pk))


@workspace_view(admin=True)
def license_delete(request: HttpRequest, pk: int) -> HttpResponse:
    license_ = get_object_or_404(request.workspace.licenses.select_related("application"), pk=pk)
    if request.method == "POST":
        services.license_delete(license=license_)
        messages.success(request, f"Deleted the license {license_}.")
        return redirect(_url(request, "licenses"))
    rules = license_.rules.count()
    return _confirm_delete(
        request,
        "licenses",
        {
            "title": f"Delete the license {license_}?",
            "kept": [f"{rules} rule{pluralize(rules)} keep{'s' if rules == 1 else ''} attributing to {license_.application.name}, without a license"] if rules else [],
            "rows": _rows_of(request.workspace, license=license_),
            "rows_note": f"They stay attributed to {license_.application.name}, without a license.",
            "action": _url(request, "license_delete", pk=pk),
            "cancel": _url(request, "licenses"),
            "back": "Licenses",
            "button": "Delete license",
        },
    )


# ---------------------------------------------------------------- rules
def _describe(rule: AttributionRule) -> AttributionRule:
    """Adds what the templates show: the provider's name and the non-empty patterns."""
    rule.provider_name = _provider_name(rule.provider)
    rule.patterns = [(f, getattr(rule, f)) for f in AttributionRule.MATCH_FIELDS if getattr(rule, f)]
    return rule


def _rules_context(request: HttpRequest) -> dict[str, Any]:
    rules = request.workspace.attribution_rules.select_related("application", "license").order_by("priority", "pk")
    counts = dict(request.workspace.usage_records.filter(rule__isnull=False).values_list("rule_id").annotate(n=Count("pk")).order_by())
    described = [_describe(rule) for rule in rules]
    for rule in described:
        rule.rows = counts.get(rule.pk, 0)
    return {"rules": described, "move_buttons": (("up", "↑"), ("down", "↓"))}


@workspace_view(admin=True)
def rule_list(request: HttpRequest) -> HttpResponse:
    if request.htmx:
        return render(request, f"{RULES}#rules", _rules_context(request))
    return _page(request, RULES, "rules", {**_rules_context(request), **_progress_context(request)})


def _rule_form(request: HttpRequest, instance: AttributionRule | None = None) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    from_unattributed = source.get("from") == "unattributed"
    initial: dict[str, Any] = {}
    if instance is None:
        initial = {name: request.GET[name] for name in ("provider", *AttributionRule.MATCH_FIELDS) if request.GET.get(name)}
    form = AttributionRuleForm(request.POST or None, instance=instance, initial=initial, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        rule = services.attribution_rule_save(rule=form.save(), new_application_name=form.new_application_name)
        messages.success(
            request,
            f"Rule saved: matching {_provider_name(rule.provider)} usage goes to {rule.application.name}"
            f"{' · ' + rule.license.plan_name if rule.license else ''}. Stored usage is re-attributed in the background.",
        )
        return redirect(_url(request, "unattributed" if from_unattributed else "rules"))
    return _page(
        request,
        "usage/settings/rule_form.html",
        "unattributed" if from_unattributed else "rules",
        {"form": form, "rule": instance, "from_unattributed": from_unattributed},
    )


@workspace_view(admin=True)
def rule_create(request: HttpRequest) -> HttpResponse:
    return _rule_form(request)


@workspace_view(admin=True)
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _rule_form(request, get_object_or_404(request.workspace.attribution_rules, pk=pk))


@workspace_view(admin=True)
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(request.workspace.attribution_rules.select_related("application"), pk=pk)
    if request.method == "POST":
        services.attribution_rule_delete(rule=rule)
        messages.success(request, "Rule deleted. Its usage is being re-attributed by the remaining rules.")
        return redirect(_url(request, "rules"))
    return _confirm_delete(
        request,
        "rules",
        {
            "title": "Delete this rule?",
            "subject": f"{_provider_name(rule.provider)} · {rule}",
            "rows": rule.usage_records.count(),
            "action": _url(request, "rule_delete", pk=pk),
            "cancel": _url(request, "rules"),
            "back": "Attribution rules",
            "button": "Delete rule",
        },
    )


@workspace_view(admin=True)
def rule_move(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(request.workspace.attribution_rules, pk=pk)
    if request.method != "POST":
        return _post_only()
    direction = "up" if request.POST.get("direction") == "up" else "down"
    services.attribution_rule_move(rule=rule, direction=direction)
    if request.htmx:
        return _reattributing(render(request, f"{RULES}#rules", _rules_context(request)))
    return redirect(_url(request, "rules"))


@workspace_view(admin=True)
def reattribution_status(request: HttpRequest) -> HttpResponse:
    """The progress panel, polled every second while a job is queued or running."""
    if not request.htmx:
        return redirect(_url(request, "rules"))
    context = _progress_context(request)
    response = render(request, "usage/settings/_reattribution.html", context)
    if request.GET.get("watching") and not context["job_active"]:
        # The job this panel was following just finished: refresh what shows attribution.
        response["HX-Trigger"] = "attribution-changed"
    return response


# ---------------------------------------------------------------- unattributed usage
@dataclass
class UnattributedGroup:
    provider: str
    values: dict[str, str]
    rows: int = 0
    first: date | None = None  # first and last local day holding such usage
    last: date | None = None
    totals: list[tuple[str, Any, str]] = field(default_factory=list)  # (metric, total, unit)

    @property
    def provider_name(self) -> str:
        return _provider_name(self.provider)

    def rule_query(self) -> str:
        """The rule form's query string: these exact values (wildcards escaped) and the provider."""
        values = {name: escape_pattern(value) for name, value in self.values.items() if value}
        return urlencode({"provider": self.provider, **values, "from": "unattributed"})


def unattributed_groups(workspace: Any) -> list[UnattributedGroup]:
    """Usage no rule matched, grouped by provider and GROUP_FIELDS, largest first (one query
    over the daily rollups; first and last are local days of the workspace's time zone)."""
    rows = (
        daily_for(workspace)
        .filter(application__isnull=True)
        .values("provider", *GROUP_FIELDS, "metric", "unit")
        .annotate(n=Sum("rows"), first=Min("day"), last=Max("day"), total=Sum("quantity"))
        .order_by()
    )
    groups: dict[tuple[str, ...], UnattributedGroup] = {}
    for row in _hashed(rows):
        key = (row["provider"], *(row[f] for f in GROUP_FIELDS))
        group = groups.get(key)
        if group is None:
            group = groups[key] = UnattributedGroup(row["provider"], {f: row[f] for f in GROUP_FIELDS})
        group.rows += row["n"]
        group.first = min(filter(None, (group.first, row["first"])))
        group.last = max(filter(None, (group.last, row["last"])))
        group.totals.append((row["metric"], row["total"], row["unit"]))
    for group in groups.values():
        group.totals.sort()
    return sorted(groups.values(), key=lambda g: (-g.rows, g.provider, *g.values.values()))


def _hashed(rows: Any) -> list[dict[str, Any]]:
    """The rows of a GROUP BY over many text columns. PostgreSQL guesses far more groups than
    there are (the columns are correlated) and, with the default 4 MB of work_mem, sorts on disk
    instead of hashing — four times slower at ten million usage rows. The few groups fit in
    memory: allow it for this one query (SET LOCAL ends with the transaction)."""
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return list(rows)
    with transaction.atomic(using=rows.db):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '32MB'")
        return list(rows)


def _groups_context(request: HttpRequest) -> dict[str, Any]:
    groups = unattributed_groups(request.workspace)
    shown = groups[:GROUPS_SHOWN]
    columns = [f for f in GROUP_FIELDS if any(g.values[f] for g in shown)]
    return {
        "groups": shown,
        "groups_total": len(groups),
        "groups_hidden": len(groups) - len(shown),
        "unattributed_rows": sum(g.rows for g in groups),
        "group_columns": columns,
        "any_usage": bool(groups) or daily_for(request.workspace, ()).exists(),
    }


@workspace_view(admin=True)
def unattributed(request: HttpRequest) -> HttpResponse:
    if request.htmx:
        return render(request, f"{UNATTRIBUTED}#groups", _groups_context(request))
    return _page(request, UNATTRIBUTED, "unattributed", {**_groups_context(request), **_progress_context(request)})
