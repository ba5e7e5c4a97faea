"""Sign-in, the home redirect and Company Settings → General (function-based views); the
workspace landing page is the spend overview (usage/views/overview.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.forms import WorkspaceGeneralForm
from accounts.permissions import SESSION_WORKSPACE_KEY, WorkspaceRequest, workspace_view
from doow.jobs import job_progress


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the workspace they used last (or their first one)."""
    assert request.user.is_authenticated  # login_required
    memberships = list(request.user.memberships.select_related("workspace").order_by("workspace__name"))
    if not memberships:
        return render(request, "accounts/no_workspace.html")
    remembered = request.session.get(SESSION_WORKSPACE_KEY)
    membership = next((m for m in memberships if m.workspace.slug == remembered), memberships[0])
    return redirect("accounts:workspace", ws=membership.workspace.slug)


def _rebuild_context(request: WorkspaceRequest) -> dict:
    from usage.rollup_jobs import rollup_rebuild_latest

    job = rollup_rebuild_latest(workspace=request.workspace)
    active, stalled = job_progress(job)
    return {"rebuild": job, "rebuild_active": active, "rebuild_stalled": stalled}


@workspace_view(admin=True)
def settings_general(request: WorkspaceRequest) -> HttpResponse:
    """Company Settings → General: the company name and time zone. A new zone moves every local
    day, so the daily rollups are rebuilt in the background (progress shown here)."""
    from usage.rollup_jobs import rollup_rebuild_request

    workspace = request.workspace
    before = workspace.time_zone
    form = WorkspaceGeneralForm(request.POST or None, instance=workspace)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            workspace = form.save()
            if workspace.time_zone != before:
                rollup_rebuild_request(workspace=workspace)
        if workspace.time_zone != before:
            messages.success(request, f"Saved. Daily totals are being recomputed in {workspace.time_zone}.")
        else:
            messages.success(request, "Saved.")
        return redirect("accounts:settings_general", ws=workspace.slug)
    return render(
        request,
        "accounts/settings_general.html",
        {"settings_section": "general", "form": form, **_rebuild_context(request)},
    )


@workspace_view(admin=True)
def settings_general_rebuild(request: WorkspaceRequest) -> HttpResponse:
    """The rollup rebuild's progress panel (polled by htmx while a rebuild is queued or running)."""
    return render(request, "accounts/_rollup_rebuild.html", _rebuild_context(request))
