"""`{% overview_budgets %}` (the workspace's budgets and their state, on the overview),
`{% unread_notifications %}` (the navigation's count), and `|numbers` and `|explorer_path` (a
notification's numbers as name/value pairs, and its link to the explorer)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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


@register.filter
def numbers(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    """A notification's numbers (Notification.numbers, those of its change) as name/value
    pairs; the explorer link is shown as a link of its own."""
    return [
        ({"mad": "MAD"}.get(name, name.replace("_", " ").capitalize()), str(value))
        for name, value in snapshot.items()
        if name != "explorer" and value not in (None, "")
    ]


@register.filter
def explorer_path(snapshot: dict[str, Any]) -> str:
    """The explorer link in a notification's numbers, without DOOW_BASE_URL (it is this site)."""
    link = snapshot.get("explorer")
    if not link:
        return ""
    parts = urlsplit(str(link))
    return f"{parts.path}?{parts.query}"
