"""Who may see a workspace's pages.

Every workspace page is reached as /w/<ws>/…; `workspace_view` resolves the workspace
through the user's own memberships, so a slug the user does not belong to is simply not
found (404) — nobody can even learn that it exists. Admin-only pages answer members with 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import resolve_url
from django.utils import timezone
from django_htmx.middleware import HtmxDetails

from accounts.models import Membership, Workspace

# The session remembers the workspace last used, for the home page and the switcher.
SESSION_WORKSPACE_KEY = "doow_workspace"

View = Callable[..., HttpResponseBase]


class WorkspaceRequest(HttpRequest):
    """The request a `workspace_view` hands its view, for type checkers (requests are plain
    HttpRequests at run time): django-htmx's middleware sets `htmx`, the decorator the rest."""

    htmx: HtmxDetails
    user: User  # signed in: workspace_view sends anyone else to the login page
    workspace: Workspace
    membership: Membership


def membership_for(request: HttpRequest, slug: str) -> Membership | None:
    """The current user's membership of the workspace `slug`, or None."""
    if not request.user.is_authenticated:
        return None
    return request.user.memberships.select_related("workspace").filter(workspace__slug=slug).first()


def remember_workspace(request: HttpRequest, slug: str) -> None:
    if request.session.get(SESSION_WORKSPACE_KEY) != slug:
        request.session[SESSION_WORKSPACE_KEY] = slug


def _login_redirect(request: HttpRequest) -> HttpResponse:
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    if htmx:
        # A fragment request must not swap the login page into a table cell: send the whole
        # browser to the login page instead.
        response = HttpResponse(status=204)
        next_path = htmx.current_url_abs_path or ""
        response["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?next={quote(next_path)}"
        return response
    return redirect_to_login(request.get_full_path())


def workspace_view(view: View | None = None, *, admin: bool = False) -> Any:
    """Decorate a view whose URL has a `ws` kwarg.

    Sets `request.workspace` and `request.membership` and calls the view without `ws`, with the
    workspace's time zone active: pages show instants in it (Django's `date` filter, the
    `utc`/`moment` helpers), and stored values stay UTC. Anonymous → login; not a member → 404;
    a member on an admin page → 403.
    """

    def decorator(func: View) -> View:
        @wraps(func)
        def wrapped(request: HttpRequest, *args: Any, ws: str, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return _login_redirect(request)
            membership = membership_for(request, ws)
            if membership is None:
                raise Http404("No such workspace.")
            if admin and not membership.is_admin:
                raise PermissionDenied("Only workspace admins can open Company Settings.")
            request.workspace = membership.workspace  # type: ignore[attr-defined]  # what makes it a WorkspaceRequest
            request.membership = membership  # type: ignore[attr-defined]
            remember_workspace(request, ws)
            with timezone.override(membership.workspace.zone):
                return func(request, *args, **kwargs)

        wrapped.workspace_admin_required = admin  # type: ignore[attr-defined]
        return wrapped

    if view is not None:
        return decorator(view)
    return decorator
