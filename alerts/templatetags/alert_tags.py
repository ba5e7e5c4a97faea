"""`{% overview_budgets %}`: the workspace's budgets and their state, on the overview."""

from __future__ import annotations

from typing import Any

from django import template

from alerts import services

register = template.Library()


@register.inclusion_tag("alerts/_overview_budgets.html", takes_context=True)
def overview_budgets(context: template.Context) -> dict[str, Any]:
    workspace = context["current_workspace"]
    membership = context.get("current_membership")
    return {
        "states": services.budget_states(workspace),
        "current_workspace": workspace,
        "is_admin": bool(membership and membership.is_admin),
    }


@register.simple_tag(takes_context=True)
def unread_notifications(context: template.Context) -> int:
    """How many of the signed-in person's notifications in the current workspace are unread
    (the top navigation's badge; one COUNT on the notification_unread index)."""
    workspace, request = context.get("current_workspace"), context.get("request")
    user = getattr(request, "user", None)
    if workspace is None or user is None or not user.is_authenticated:
        return 0
    return workspace.notifications.filter(user=user, read_at__isnull=True).count()
