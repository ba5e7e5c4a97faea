"""Sign-in, sign-out, the home redirect and the workspace switcher, through HTTP."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Workspace
from accounts.permissions import SESSION_WORKSPACE_KEY
from conftest import PASSWORD


def test_login_page_renders_in_the_layout(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Sign in" in body
    assert "css/doow.css" in body and "js/htmx.min.js" in body


def test_login_lands_an_admin_on_the_spend_overview(client, admin_user, workspace):
    response = client.post(reverse("accounts:login"), {"username": "ada", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:workspace", kwargs={"ws": workspace.slug})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Spend overview" in body
    assert reverse("integrations:list", kwargs={"ws": workspace.slug}) in body  # admins: Company Settings


def test_wrong_password_says_so_and_keeps_you_out(client, admin_user):
    response = client.post(reverse("accounts:login"), {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_post_only_and_signs_out(admin_client):
    assert admin_client.get(reverse("accounts:logout")).status_code == 405
    response = admin_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert admin_client.get(reverse("accounts:home")).status_code == 302
    assert "_auth_user_id" not in admin_client.session


def test_home_needs_login(client):
    response = client.get(reverse("accounts:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_user_without_workspace_gets_a_friendly_page(django_user_model):
    user = django_user_model.objects.create_user(username="newbie", password=PASSWORD)
    client = Client()
    client.force_login(user)
    response = client.get(reverse("accounts:home"))
    assert response.status_code == 200
    assert "not in a workspace yet" in response.content.decode()


def test_member_lands_on_the_overview_without_settings(member_client, admin_user, workspace):
    response = member_client.get(reverse("accounts:home"), follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Spend overview" in body and "an admin of Acme Corp can connect one" in body
    assert reverse("integrations:list", kwargs={"ws": workspace.slug}) not in body


def test_workspace_page_of_a_stranger_is_404(outsider_client, workspace):
    assert outsider_client.get(reverse("accounts:workspace", kwargs={"ws": workspace.slug})).status_code == 404


def test_switcher_lists_my_workspaces_and_remembers_the_choice(admin_client, admin_user, workspace):
    second = Workspace.objects.create(name="Zeta Labs", slug="zeta")
    Membership.objects.create(user=admin_user, workspace=second, role=Membership.Role.ADMIN)
    Workspace.objects.create(name="Not Mine", slug="notmine")

    page = admin_client.get(reverse("integrations:list", kwargs={"ws": workspace.slug})).content.decode()
    assert reverse("accounts:workspace", kwargs={"ws": "acme"}) in page
    assert reverse("accounts:workspace", kwargs={"ws": "zeta"}) in page
    assert "Zeta Labs" in page and "Not Mine" not in page

    response = admin_client.get(reverse("accounts:workspace", kwargs={"ws": "zeta"}))
    assert response.status_code == 200 and "Zeta Labs" in response.content.decode()
    assert admin_client.session[SESSION_WORKSPACE_KEY] == "zeta"
    # Home now goes to the workspace used last, not the first one alphabetically.
    assert admin_client.get(reverse("accounts:home"))["Location"] == reverse(
        "accounts:workspace", kwargs={"ws": "zeta"}
    )


def test_a_remembered_workspace_i_left_is_not_used(admin_client, admin_user, workspace):
    session = admin_client.session
    session[SESSION_WORKSPACE_KEY] = "globex"  # a workspace the user is not (or no longer) in
    session.save()
    assert admin_client.get(reverse("accounts:home"))["Location"] == reverse(
        "accounts:workspace", kwargs={"ws": "acme"}
    )


def test_htmx_request_without_session_redirects_the_whole_page(client, workspace):
    url = reverse("integrations:list", kwargs={"ws": workspace.slug})
    response = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{url}")
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith(reverse("accounts:login") + "?next=")
