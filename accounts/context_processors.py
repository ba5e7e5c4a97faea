"""Puts the user's workspaces (for the switcher) and the current one into every template."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.permissions import SESSION_WORKSPACE_KEY


def workspaces(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(user.memberships.select_related("workspace").order_by("workspace__name"))
    current = getattr(request, "membership", None)
    if current is None:
        # Pages outside a workspace (home, errors) still show the one used last in the switcher.
        remembered = request.session.get(SESSION_WORKSPACE_KEY) if hasattr(request, "session") else None
        current = next((m for m in memberships if m.workspace.slug == remembered), None)
    return {
        "my_memberships": memberships,
        "current_workspace": current.workspace if current else None,
        "current_membership": current,
    }
