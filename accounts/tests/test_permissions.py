"""workspace_view resolves the workspace through the user's memberships only."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from accounts.permissions import workspace_view


@workspace_view(admin=True)
def admin_page(request):
    return HttpResponse(f"{request.workspace.slug}:{request.membership.role}")


@workspace_view
def member_page(request):
    return HttpResponse(request.workspace.slug)


def _request(user):
    request = RequestFactory().get("/x/")
    request.user = user
    request.session = {}
    request.htmx = False
    return request


def test_admin_gets_the_workspace_and_membership(admin_user, workspace):
    assert admin_page(_request(admin_user), ws="acme").content == b"acme:admin"


def test_member_on_admin_page_is_forbidden(member_user):
    with pytest.raises(PermissionDenied):
        admin_page(_request(member_user), ws="acme")


def test_member_page_lets_members_in(member_user):
    assert member_page(_request(member_user), ws="acme").content == b"acme"


def test_non_member_is_not_found_even_if_admin_elsewhere(outsider_user, workspace):
    with pytest.raises(Http404):
        admin_page(_request(outsider_user), ws="acme")
    with pytest.raises(Http404):
        member_page(_request(outsider_user), ws="does-not-exist")


def test_superuser_is_not_a_member_by_magic(django_user_model, workspace):
    root = django_user_model.objects.create_superuser(username="root", password="x", email="r@example.com")
    with pytest.raises(Http404):
        admin_page(_request(root), ws="acme")


def test_visiting_remembers_the_workspace(admin_user):
    request = _request(admin_user)
    admin_page(request, ws="acme")
    assert request.session["doow_workspace"] == "acme"
