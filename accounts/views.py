"""Sign-in, the home redirect and the workspace landing page (function-based views)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.permissions import SESSION_WORKSPACE_KEY, workspace_view


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the workspace they used last (or their first one)."""
    memberships = list(request.user.memberships.select_related("workspace").order_by("workspace__name"))
    if not memberships:
        return render(request, "accounts/no_workspace.html")
    remembered = request.session.get(SESSION_WORKSPACE_KEY)
    membership = next((m for m in memberships if m.workspace.slug == remembered), memberships[0])
    return redirect("accounts:workspace", ws=membership.workspace.slug)


@workspace_view
def workspace_home(request: HttpRequest) -> HttpResponse:
    """A workspace's landing page: admins go on to Company Settings; members are told who can."""
    if request.membership.is_admin:
        return redirect("integrations:list", ws=request.workspace.slug)
    admins = (
        request.workspace.memberships.filter(role="admin").select_related("user").order_by("user__username")
    )
    return render(request, "accounts/member_home.html", {"admins": admins})
