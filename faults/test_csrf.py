"""CSRF on every POST: with the checks Django's test client normally skips turned on, every URL
of the URLconf refuses a POST that lacks a valid token (403) and writes nothing.

Each forged POST carries the payload that succeeds for the victim admin (faults.urlsweep), sent
by the identity that could otherwise make it: the victim admin on workspace pages, staff on
Django admin, anyone on the public pages. The control test sends the very same request with a
matching token and no foreign Origin and sees it go through, so the 403s are CSRF refusals,
not something else.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.http import HttpResponse
from django.urls import reverse

from faults import figures
from faults.urlsweep import (
    DJANGO_ADMIN,
    PUBLIC,
    Route,
    SweepError,
    Target,
    build_url,
    classify,
    payload,
    sweepable_routes,
)
from faults.world import PASSWORD, SweepClient, World, body, changed_tables, fingerprint, writes_watched
from integrations.models import Integration

pytestmark = pytest.mark.django_db

ROUTES = sweepable_routes()
COOKIE = "csrftoken"
# A well-formed secret (32 characters of Django's alphabet) that the test sets as the cookie.
PLANTED = "A" * 32
OTHER = "B" * 32
EVIL_ORIGIN = "https://evil.example"

# name -> (cookie to plant or None, form token or None, extra headers)
FORGERIES: dict[str, tuple[str | None, str | None, dict[str, str]]] = {
    "no token": (None, None, {}),
    "token not matching the cookie": (PLANTED, OTHER, {}),
    "header token not matching the cookie": (PLANTED, None, {"X-CSRFToken": OTHER}),
    "matching token from a foreign origin": (PLANTED, PLANTED, {"Origin": EVIL_ORIGIN}),
}


def _post(client: SweepClient, url: str, data: dict[str, object], *, cookie: str | None, token: str | None,
          headers: dict[str, str]) -> HttpResponse:  # fmt: skip
    client.cookies.pop(COOKIE, None)
    if cookie is not None:
        client.cookies[COOKIE] = cookie
    if token is not None:
        data = {**data, "csrfmiddlewaretoken": token}
    return client.post(url, data=data, headers=headers)


def _forge_everywhere(
    world: World, client: SweepClient, routes: list[Route], signed_in_as: AbstractUser | None = None
) -> list[str]:
    problems = []
    start = fingerprint()
    for route in routes:
        try:
            url = build_url(route, Target(world.victim, world.victim, world))
        except SweepError:
            continue  # test_every_route_is_classified_and_filled names it
        for name, (cookie, token, headers) in FORGERIES.items():
            with writes_watched() as writes:
                response = _post(client, url, payload(route, world.victim), cookie=cookie, token=token, headers=headers)
            where = f"POST {url} with {name} → {response.status_code}"
            if response.status_code != 403 or "CSRF verification failed" not in body(response):
                problems.append(f"{where}: not refused for CSRF")
            elif writes:
                problems.append(f"{where}: refused, yet wrote {writes[0]}")
            else:
                figures.add("csrf_refused")
            if signed_in_as is not None and client.session.get("_auth_user_id") != str(signed_in_as.pk):
                problems.append(f"{where}: the forged POST changed who is signed in")
                client.force_login(signed_in_as)
    if changed := changed_tables(start, fingerprint()):
        problems.append(f"forged POSTs changed {', '.join(changed)}")
    figures.add("unexpected", len(problems))
    return problems


def _routes(keep: Callable[[Route], bool]) -> list[Route]:
    return [route for route in ROUTES if keep(route)]


def test_every_workspace_post_is_refused_without_a_valid_token(world):
    client = world.client(world.victim.admin, enforce_csrf_checks=True)
    routes = _routes(lambda route: classify(route) not in (DJANGO_ADMIN, PUBLIC))
    assert len(routes) >= 30
    problems = _forge_everywhere(world, client, routes, signed_in_as=world.victim.admin)
    assert not problems, "\n".join(problems)


def test_every_django_admin_post_is_refused_without_a_valid_token(world):
    client = world.client(world.staff, enforce_csrf_checks=True)
    routes = _routes(lambda route: classify(route) == DJANGO_ADMIN)
    problems = _forge_everywhere(world, client, routes, signed_in_as=world.staff)
    assert not problems, "\n".join(problems)


def test_public_posts_are_refused_without_a_valid_token(world):
    """Signing in with the right password but no token does not sign anyone in (login CSRF),
    and a forged logout does not sign anyone out."""
    anonymous = world.client(None, enforce_csrf_checks=True)
    login = reverse("accounts:login")
    routes = _routes(lambda route: classify(route) == PUBLIC)
    problems = _forge_everywhere(world, anonymous, routes)
    for name, (cookie, token, headers) in FORGERIES.items():
        credentials = {"username": world.victim.admin.username, "password": PASSWORD}
        response = _post(anonymous, login, credentials, cookie=cookie, token=token, headers=headers)
        if response.status_code != 403 or "_auth_user_id" in anonymous.session:
            problems.append(f"login with the right password and {name} → {response.status_code}: not refused")
        else:
            figures.add("csrf_refused")
    signed_in = world.client(world.victim.admin, enforce_csrf_checks=True)
    problems += _forge_everywhere(world, signed_in, routes, signed_in_as=world.victim.admin)
    assert not problems, "\n".join(problems)


def test_the_same_posts_with_a_valid_token_go_through(world):
    """The control: a planted cookie with its matching token and no foreign Origin is what a real
    form sends, and it works, so the refusals above are CSRF's doing."""
    client = world.client(world.victim.admin, enforce_csrf_checks=True)
    pause = reverse("integrations:pause", kwargs={"ws": "victim", "pk": world.victim.ids["integration"]})
    response = _post(client, pause, {}, cookie=PLANTED, token=PLANTED, headers={})
    assert response.status_code == 302
    assert Integration.objects.get(pk=world.victim.ids["integration"]).status == Integration.Status.PAUSED

    client.cookies.pop(COOKIE, None)
    page = client.get(reverse("integrations:edit", kwargs={"ws": "victim", "pk": world.victim.ids["integration"]}))
    issued = page.cookies[COOKIE].value  # the form page issues a fresh token, as a browser gets it
    resume = reverse("integrations:resume", kwargs={"ws": "victim", "pk": world.victim.ids["integration"]})
    assert client.post(resume, {"csrfmiddlewaretoken": issued}).status_code == 302
    assert Integration.objects.get(pk=world.victim.ids["integration"]).status == Integration.Status.ACTIVE

    anonymous = world.client(None, enforce_csrf_checks=True)
    login = reverse("accounts:login")
    credentials = {"username": world.victim.admin.username, "password": PASSWORD}
    assert _post(anonymous, login, credentials, cookie=PLANTED, token=PLANTED, headers={}).status_code == 302
    assert anonymous.session["_auth_user_id"] == str(world.victim.admin.pk)
