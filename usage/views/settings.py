"""Company Settings → Applications, Licenses, Attribution rules, Unattributed usage.

Admin-only, function-based, tenant-scoped: every object is looked up through
`request.workspace` (`request.workspace.applications.get(pk=…)`), so another workspace's id is
a 404. htmx requests get the named partial of the page; the same URL renders the whole page.
"""

from __future__ import annotations

from typing import Any, Literal

from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse

from accounts.permissions import WorkspaceRequest, workspace_view
from doow.jobs import job_progress
from usage import services
from usage.forms import (
    CATEGORY_SUGGESTIONS,
    ApplicationForm,
    AttributionRuleForm,
    LicenseForm,
    TeamForm,
)
from usage.models import AttributionRule, License
from usage.rollups import daily_for
from usage.rule_preview import rule_preview
from usage.summaries import GROUP_FIELDS, attributed_rows, attribution_summary, provider_name, unattributed_groups

GROUPS_SHOWN = 200
RULES, UNATTRIBUTED = "usage/settings/rules.html", "usage/settings/unattributed.html"


# ---------------------------------------------------------------- helpers
def _url(request: WorkspaceRequest, name: str, **kwargs: Any) -> str:
    return reverse(f"usage_settings:{name}", kwargs={"ws": request.workspace.slug, **kwargs})


def _licenses_url(request: WorkspaceRequest) -> str:
    return reverse("usage:licenses", kwargs={"ws": request.workspace.slug})


def _post_only() -> HttpResponse:
    return HttpResponseNotAllowed(["POST"])


def _page(request: WorkspaceRequest, template: str, section: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, template, {"settings_section": section, **context})


def _progress_context(request: WorkspaceRequest) -> dict[str, Any]:
    job = services.reattribution_latest(workspace=request.workspace)
    active, stalled = job_progress(job)
    return {"job": job, "job_active": active, "job_stalled": stalled}


def _reattributing(response: HttpResponse) -> HttpResponse:
    # The progress panel listens for this and starts polling.
    response["HX-Trigger"] = "reattribution-started"
    return response


def _confirm_delete(request: WorkspaceRequest, section: str, context: dict[str, Any]) -> HttpResponse:
    return _page(request, "usage/settings/confirm_delete.html", section, context)


# ---------------------------------------------------------------- applications
@workspace_view(admin=True)
def application_list(request: WorkspaceRequest) -> HttpResponse:
    applications = (
        request.workspace.applications.select_related("team")
        .prefetch_related("licenses")
        .annotate(rule_count=Count("rules"))
    )
    teams = request.workspace.teams.annotate(application_count=Count("applications"))
    return _page(
        request,
        "usage/settings/applications.html",
        "applications",
        {
            "applications": applications,
            "usage": attribution_summary(request.workspace, "application_id"),
            "teams": teams,
            "team_form": TeamForm(workspace=request.workspace),
        },
    )


def _application_form(request: WorkspaceRequest, instance: Any = None) -> HttpResponse:
    form = ApplicationForm(request.POST or None, instance=instance, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        application = form.save()
        messages.success(request, f"Saved {application.name}.")
        return redirect(_url(request, "applications"))
    context = {"form": form, "application": instance, "category_suggestions": CATEGORY_SUGGESTIONS}
    if instance is not None:
        context["rules"] = [
            _describe(rule) for rule in instance.rules.select_related("license").order_by("priority", "pk")
        ]
        context["licenses"] = instance.licenses.all()
    return _page(request, "usage/settings/application_form.html", "applications", context)


@workspace_view(admin=True)
def application_create(request: WorkspaceRequest) -> HttpResponse:
    return _application_form(request)


@workspace_view(admin=True)
def application_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    return _application_form(request, get_object_or_404(request.workspace.applications, pk=pk))


@workspace_view(admin=True)
def application_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    application = get_object_or_404(request.workspace.applications, pk=pk)
    if request.method == "POST":
        services.application_delete(application=application)
        messages.success(
            request, f"Deleted {application.name}. Its usage is being re-attributed by the remaining rules."
        )
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
            "rows": attributed_rows(request.workspace, application=application),
            "action": _url(request, "application_delete", pk=pk),
            "cancel": _url(request, "applications"),
            "back": "Applications",
            "button": "Delete application",
        },
    )


# ---------------------------------------------------------------- teams
# Teams are managed on the Applications page (they exist to own applications' spend).
def _team_form(request: WorkspaceRequest, instance: Any = None) -> HttpResponse:
    form = TeamForm(request.POST or None, instance=instance, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        team = form.save()
        messages.success(request, f"Saved team {team.name}.")
        return redirect(_url(request, "applications") + "#teams")
    applications = instance.applications.all() if instance is not None else []
    return _page(
        request,
        "usage/settings/team_form.html",
        "applications",
        {"form": form, "team": instance, "team_applications": applications},
    )


@workspace_view(admin=True)
def team_create(request: WorkspaceRequest) -> HttpResponse:
    return _team_form(request)


@workspace_view(admin=True)
def team_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    return _team_form(request, get_object_or_404(request.workspace.teams, pk=pk))


@workspace_view(admin=True)
def team_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    team = get_object_or_404(request.workspace.teams, pk=pk)
    if request.method == "POST":
        name = team.name
        team.delete()  # its applications keep their usage and have no team (SET_NULL)
        messages.success(request, f"Deleted team {name}. Its applications' spend now shows under “No team”.")
        return redirect(_url(request, "applications") + "#teams")
    owned = list(team.applications.values_list("name", flat=True))
    return _confirm_delete(
        request,
        "applications",
        {
            "title": f"Delete team {team.name}?",
            "kept": [
                f"{len(owned)} application{pluralize(len(owned))} ({', '.join(owned)}) keep{'' if len(owned) != 1 else 's'} their usage and no longer belong to a team"
            ]
            if owned
            else [],
            "rows": attributed_rows(request.workspace, application__team=team),
            "rows_note": "Its spend shows under “No team” from then on.",
            "action": _url(request, "team_delete", pk=pk),
            "cancel": _url(request, "applications"),
            "back": "Applications",
            "button": "Delete team",
        },
    )


# ---------------------------------------------------------------- licenses
@workspace_view(admin=True)
def license_list(request: WorkspaceRequest) -> HttpResponse:
    # The one Licenses page is Usage → Licenses (members read it, admins edit there).
    return redirect("usage:licenses", ws=request.workspace.slug)


def _license_form(request: WorkspaceRequest, instance: License | None = None) -> HttpResponse:
    initial = {}
    if instance is None and request.GET.get("application", "").isdigit():
        initial["application"] = int(request.GET["application"])
    form = LicenseForm(request.POST or None, instance=instance, initial=initial, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved the license {saved}.")
        return redirect(_licenses_url(request))
    return _page(request, "usage/settings/license_form.html", "licenses", {"form": form, "license": instance})


@workspace_view(admin=True)
def license_create(request: WorkspaceRequest) -> HttpResponse:
    return _license_form(request)


@workspace_view(admin=True)
def license_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    return _license_form(request, get_object_or_404(request.workspace.licenses.select_related("application"), pk=pk))


@workspace_view(admin=True)
def license_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    license_ = get_object_or_404(request.workspace.licenses.select_related("application"), pk=pk)
    if request.method == "POST":
        services.license_delete(license=license_)
        messages.success(request, f"Deleted the license {license_}.")
        return redirect(_licenses_url(request))
    rules = license_.rules.count()
    return _confirm_delete(
        request,
        "licenses",
        {
            "title": f"Delete the license {license_}?",
            "kept": [
                f"{rules} rule{pluralize(rules)} keep{'s' if rules == 1 else ''} attributing to {license_.application.name}, without a license"
            ]
            if rules
            else [],
            "rows": attributed_rows(request.workspace, license=license_),
            "rows_note": f"They stay attributed to {license_.application.name}, without a license.",
            "action": _url(request, "license_delete", pk=pk),
            "cancel": _licenses_url(request),
            "back": "Licenses",
            "button": "Delete license",
        },
    )


# ---------------------------------------------------------------- rules
def _describe(rule: AttributionRule) -> AttributionRule:
    """Adds what the templates show: the provider's name and the non-empty patterns."""
    rule.provider_name = provider_name(rule.provider)  # type: ignore[attr-defined]
    patterns = [(f, getattr(rule, f)) for f in (*AttributionRule.MATCH_FIELDS, "label") if getattr(rule, f)]
    rule.patterns = patterns  # type: ignore[attr-defined]
    return rule


def _rules_context(request: WorkspaceRequest) -> dict[str, Any]:
    rules = request.workspace.attribution_rules.select_related("application", "license").order_by("priority", "pk")
    counts = dict(
        request.workspace.usage_records.filter(rule__isnull=False)
        .values_list("rule_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    described = [_describe(rule) for rule in rules]
    for rule in described:
        rule.rows = counts.get(rule.pk, 0)  # type: ignore[attr-defined]
    return {"rules": described, "move_buttons": (("up", "↑"), ("down", "↓"))}


@workspace_view(admin=True)
def rule_list(request: WorkspaceRequest) -> HttpResponse:
    if request.htmx:
        return render(request, f"{RULES}#rules", _rules_context(request))
    return _page(request, RULES, "rules", {**_rules_context(request), **_progress_context(request)})


PREVIEW_FIELDS = ("provider", *AttributionRule.MATCH_FIELDS, "priority")


def _rule_form(request: WorkspaceRequest, instance: AttributionRule | None = None) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    from_unattributed = source.get("from") == "unattributed"
    previewing = request.method == "GET" and bool(request.GET.get("preview"))
    initial: dict[str, Any] = {}
    if instance is None or previewing:
        # Prefilled from an unattributed group, or from the form itself (Preview without JavaScript).
        names = (
            (*PREVIEW_FIELDS, "application", "new_application", "license")
            if previewing
            else ("provider", *AttributionRule.MATCH_FIELDS, "label")
        )
        initial = {
            name: request.GET[name]
            for name in names
            if request.GET.get(name) is not None and (previewing or request.GET[name])
        }
    form = AttributionRuleForm(request.POST or None, instance=instance, initial=initial, workspace=request.workspace)
    # What the rule matches now (the page's htmx refreshes it as the fields change).
    if request.method == "POST":
        data: Any = request.POST
    else:
        data = initial if previewing or instance is None else {name: getattr(instance, name) for name in PREVIEW_FIELDS}
    if request.method == "POST" and form.is_valid():
        rule = services.attribution_rule_save(rule=form.save(), new_application_name=form.new_application_name)
        messages.success(
            request,
            f"Rule saved: matching {provider_name(rule.provider)} usage goes to {rule.application.name}"
            f"{' · ' + rule.license.plan_name if rule.license else ''}. Stored usage is re-attributed in the background.",
        )
        return redirect(_url(request, "unattributed" if from_unattributed else "rules"))
    return _page(
        request,
        "usage/settings/rule_form.html",
        "unattributed" if from_unattributed else "rules",
        {
            "form": form,
            "rule": instance,
            "from_unattributed": from_unattributed,
            "preview": rule_preview(workspace=request.workspace, data=data, rule_pk=instance.pk if instance else None),
        },
    )


@workspace_view(admin=True)
def rule_preview_view(request: WorkspaceRequest) -> HttpResponse:
    """The rule form's preview for htmx: rows and spend the patterns would take, from the rollups.
    `rule` names the rule being edited (it is replaced, not counted as an earlier rule). A plain
    request goes to the form with the preview shown."""
    rule = None
    if request.GET.get("rule"):
        try:
            rule = get_object_or_404(request.workspace.attribution_rules, pk=int(request.GET["rule"]))
        except ValueError:
            raise Http404("No such rule.") from None
    if not request.htmx:
        query = request.GET.copy()
        query.pop("rule", None)
        query["preview"] = "1"
        target = _url(request, "rule_edit", pk=rule.pk) if rule else _url(request, "rule_add")
        return redirect(f"{target}?{query.urlencode()}")
    preview = rule_preview(workspace=request.workspace, data=request.GET, rule_pk=rule.pk if rule else None)
    return render(request, "usage/settings/_rule_preview.html", {"preview": preview})


@workspace_view(admin=True)
def rule_create(request: WorkspaceRequest) -> HttpResponse:
    return _rule_form(request)


@workspace_view(admin=True)
def rule_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    return _rule_form(request, get_object_or_404(request.workspace.attribution_rules, pk=pk))


@workspace_view(admin=True)
def rule_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
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
            "subject": f"{provider_name(rule.provider)} · {rule}",
            "rows": rule.usage_records.count(),
            "action": _url(request, "rule_delete", pk=pk),
            "cancel": _url(request, "rules"),
            "back": "Attribution rules",
            "button": "Delete rule",
        },
    )


@workspace_view(admin=True)
def rule_move(request: WorkspaceRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(request.workspace.attribution_rules, pk=pk)
    if request.method != "POST":
        return _post_only()
    direction: Literal["up", "down"] = "up" if request.POST.get("direction") == "up" else "down"
    services.attribution_rule_move(rule=rule, direction=direction)
    if request.htmx:
        return _reattributing(render(request, f"{RULES}#rules", _rules_context(request)))
    return redirect(_url(request, "rules"))


@workspace_view(admin=True)
def reattribution_status(request: WorkspaceRequest) -> HttpResponse:
    """The progress panel, polled every second while a job is queued or running."""
    if not request.htmx:
        return redirect(_url(request, "rules"))
    context = _progress_context(request)
    response = render(request, "usage/settings/_reattribution.html", context)
    if request.GET.get("watching") and not context["job_active"]:
        # The job this panel was following just finished: refresh what shows attribution.
        response["HX-Trigger"] = "attribution-changed"
    return response


def _groups_context(request: WorkspaceRequest) -> dict[str, Any]:
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
def unattributed(request: WorkspaceRequest) -> HttpResponse:
    if request.htmx:
        return render(request, f"{UNATTRIBUTED}#groups", _groups_context(request))
    return _page(request, UNATTRIBUTED, "unattributed", {**_groups_context(request), **_progress_context(request)})
