"""Every URL of the URLconf × GET/POST × who asks, against a workspace full of real objects.

Who asks: nobody (anonymous), a member of the victim workspace (read-only role), the admin of
another workspace (with the victim's slug, then with their own slug and the victim's ids), the
victim's admin with the other workspace's ids, and the victim's admin on their own pages (which
proves the sweep reaches real pages: their object pages must show the object). Every answer is
checked against what that identity may get, no outsider's answer may carry the victim's data,
and no request by someone not allowed to write may change a single row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import AbstractUser
from django.http import HttpResponse
from django.urls import URLPattern, path, reverse
from django.urls.resolvers import RoutePattern

from accounts.permissions import workspace_view
from faults import figures
from faults.urlsweep import (
    DJANGO_ADMIN,
    MEMBER_WRITES,
    PAYLOADS,
    PUBLIC,
    PUBLIC_ROUTES,
    WORKSPACE_ADMIN,
    WORKSPACE_MEMBER,
    WRITES,
    Route,
    SweepError,
    Target,
    all_routes,
    build_url,
    classify,
    payload,
    sweepable_routes,
    takes_object,
)
from faults.world import ADMIN_ONLY, OUTSIDER, VICTIM, World, body, changed_tables, fingerprint, writes_watched

pytestmark = pytest.mark.django_db

ALL_ROUTES = all_routes()
ROUTES = sweepable_routes()  # the others fail test_every_route_is_classified_and_filled, by name
WORKSPACE_KINDS = (WORKSPACE_ADMIN, WORKSPACE_MEMBER)

# Public pages: the status each method gets, for an anonymous visitor and a signed-in user.
EXPECTED_PUBLIC: dict[str, dict[str, dict[str, int]]] = {
    "accounts:login": {"anonymous": {"GET": 200, "POST": 200}, "signed_in": {"GET": 302, "POST": 302}},
    "accounts:logout": {"anonymous": {"GET": 405, "POST": 302}, "signed_in": {"GET": 405, "POST": 302}},
    "accounts:home": {"anonymous": {"GET": 302, "POST": 302}, "signed_in": {"GET": 302, "POST": 302}},
    # An empty form comes back with its errors; a forged reset link says it is invalid.
    "accounts:password_reset": {"anonymous": {"GET": 200, "POST": 200}, "signed_in": {"GET": 200, "POST": 200}},
    "accounts:password_reset_done": {"anonymous": {"GET": 200, "POST": 405}, "signed_in": {"GET": 200, "POST": 405}},
    "accounts:password_reset_confirm": {"anonymous": {"GET": 200, "POST": 200}, "signed_in": {"GET": 200, "POST": 200}},
    "accounts:password_reset_complete": {
        "anonymous": {"GET": 200, "POST": 405},
        "signed_in": {"GET": 200, "POST": 405},
    },
}


def _redirects_to(response: HttpResponse, url: str) -> bool:
    return response.status_code == 302 and response["Location"].startswith(url)


def _non_staff_outside_workspaces(route: Route, method: str, response: HttpResponse, *, signed_in: bool) -> str | None:
    """Django admin and public pages, for anyone who is not staff."""
    kind = classify(route)
    if kind == DJANGO_ADMIN:
        if route.id == "admin:login":
            return None if response.status_code == 200 else "the admin login page should answer 200"
        if route.id == "admin:logout":  # Django sends non-staff to the admin index, which asks them to log in
            return None if _redirects_to(response, reverse("admin:index")) else "must redirect to the admin index"
        if not _redirects_to(response, reverse("admin:login")):
            return "a non-staff user must be sent to the admin login page"
        return None
    expected = EXPECTED_PUBLIC[route.id]["signed_in" if signed_in else "anonymous"][method]
    return None if response.status_code == expected else f"expected {expected}"


def _status(response: HttpResponse, wanted: int, label: str) -> str | None:
    return None if response.status_code == wanted else f"expected {wanted} ({label})"


# ---------------------------------------------------------------- the sweep itself
@dataclass
class Sweep:
    identity: str
    user: AbstractUser | None
    target: Target
    routes: list[Route]
    # (route, method, htmx, response) -> why the answer is wrong, or None
    expect: Callable[[Route, str, bool, HttpResponse], str | None]
    # route, response -> the markers its body must not contain
    forbidden: Callable[[Route, HttpResponse], tuple[str, ...]]
    methods: Callable[[Route], tuple[str, ...]] = lambda route: ("GET", "POST")
    htmx: bool = True  # also GET workspace pages as htmx does


def run(world: World, sweep: Sweep) -> list[tuple[Route, str, bool, HttpResponse, str]]:
    """Send every request of the sweep; fail listing every unexpected answer. Returns what was
    answered (route, method, htmx, response, body) for further checks."""
    client = world.client(sweep.user)
    problems: list[str] = []
    answers = []
    start = fingerprint()
    for route in sweep.routes:
        try:
            url = build_url(route, sweep.target)
        except SweepError:
            continue  # test_every_route_is_classified_and_filled names it
        figures.add("identity_urls")
        variants = [(method, False) for method in sweep.methods(route)]
        if sweep.htmx and classify(route) in WORKSPACE_KINDS and "GET" in sweep.methods(route):
            variants.append(("GET", True))
        for method, htmx in variants:
            headers = {"HX-Request": "true"} if htmx else {}
            with writes_watched() as writes:
                if method == "GET":
                    response = client.get(url, headers=headers)
                else:
                    response = client.post(url, data=payload(route, sweep.target.ids_of), headers=headers)
            text = body(response)
            where = f"{sweep.identity} {method}{' (htmx)' if htmx else ''} {url} → {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{where}: server error")
            elif why := sweep.expect(route, method, htmx, response):
                problems.append(f"{where}: {why}")
            for mark in sweep.forbidden(route, response):
                if mark in text.lower():
                    problems.append(f"{where}: the answer shows {mark!r} data it must not")
            if writes and not (
                method == "POST" and route.id in MEMBER_WRITES and sweep.identity in ("member", "victim admin")
            ):
                problems.append(f"{where}: wrote to the database: {writes[0]}")
            elif method == "POST":
                figures.add("posts_unchanged")
            answers.append((route, method, htmx, response, text))
            if sweep.user is not None and "_auth_user_id" not in client.session:
                client.force_login(sweep.user)  # a logout URL signed us out: the sweep goes on signed in
    if changed := changed_tables(start, fingerprint()):
        problems.append(f"{sweep.identity}: the sweep changed {', '.join(changed)}")
    figures.add("unexpected", len(problems))
    assert not problems, f"{len(problems)} unexpected answer(s):\n" + "\n".join(problems)
    return answers


def _workspace_routes(*, objects_only: bool = False) -> list[Route]:
    return [r for r in ROUTES if classify(r) in WORKSPACE_KINDS and (takes_object(r) or not objects_only)]


# ---------------------------------------------------------------- coverage of the URLconf
def test_every_route_is_classified_and_filled(world):
    problems, kinds = [], {}
    for route in ALL_ROUTES:
        try:
            kinds.setdefault(classify(route), []).append(route.id)
            build_url(route, Target(world.victim, world.victim, world))
        except SweepError as error:
            problems.append(str(error))
    assert not problems, "\n".join(problems)
    assert len(kinds[WORKSPACE_ADMIN]) >= 25 and len(kinds[WORKSPACE_MEMBER]) >= 4
    assert len(kinds[DJANGO_ADMIN]) >= 50
    assert sorted(kinds[PUBLIC]) == sorted(PUBLIC_ROUTES) == sorted(EXPECTED_PUBLIC)
    assert set(PAYLOADS) | set(WRITES) <= {r.id for r in ALL_ROUTES}, "a payload for a route that no longer exists"


def _route_of(pattern: URLPattern, prefix: str = "w/<slug:ws>/settings/integrations/") -> Route:
    return Route("integrations", pattern.name, (RoutePattern(prefix), pattern.pattern), pattern.callback)


def test_a_route_with_a_parameter_nobody_fills_fails_the_coverage_check(world):
    """The check above is real: a new URL with an unknown parameter, or an unguarded tenant view,
    is reported by name instead of being skipped."""
    guarded = workspace_view(lambda request, **kwargs: HttpResponse(), admin=True)
    new_url = _route_of(path("<int:pk>/attachments/<int:attachment>/", guarded, name="attachment"))
    with pytest.raises(SweepError, match=r"no filler for <attachment>"):
        build_url(new_url, Target(world.victim, world.victim, world))
    unguarded = _route_of(path("<int:pk>/peek/", lambda request, **kwargs: HttpResponse(), name="peek"))
    with pytest.raises(SweepError, match="not a workspace_view"):
        classify(unguarded)
    stray = Route("accounts", "signup", (path("signup/", guarded).pattern,), guarded)
    with pytest.raises(SweepError, match="not classified"):
        classify(stray)


# ---------------------------------------------------------------- identities
def test_anonymous_is_sent_to_a_login_page_everywhere(world):
    login = reverse("accounts:login")

    def expect(route: Route, method: str, htmx: bool, response: HttpResponse) -> str | None:
        if classify(route) in WORKSPACE_KINDS:
            if htmx:
                ok = response.status_code == 204 and response.get("HX-Redirect", "").startswith(login)
                return None if ok else "htmx must be told to load the login page (204 + HX-Redirect)"
            return None if _redirects_to(response, login) else "must redirect to the login page"
        return _non_staff_outside_workspaces(route, method, response, signed_in=False)

    run(world, Sweep("anonymous", None, Target(world.victim, world.victim, world), ROUTES, expect,
                     lambda route, response: (VICTIM, OUTSIDER)))  # fmt: skip


def test_a_member_reads_member_pages_and_gets_403_on_admin_pages(world):
    def expect(route: Route, method: str, htmx: bool, response: HttpResponse) -> str | None:
        kind = classify(route)
        if kind == WORKSPACE_ADMIN:
            return _status(response, 403, "admins only")
        if kind == WORKSPACE_MEMBER:
            if method == "GET":
                ok = (200, 302, 405) if route.id in MEMBER_WRITES else (200, 302)
                return None if response.status_code in ok else "a member may read this page"
            return None if response.status_code in (200, 302, 405) else "a read-only page"
        return _non_staff_outside_workspaces(route, method, response, signed_in=True)

    def forbidden(route: Route, response: HttpResponse) -> tuple[str, ...]:
        if classify(route) == WORKSPACE_MEMBER and response.status_code == 200:
            return (OUTSIDER,)  # the member's own workspace: its data is theirs to read
        return (ADMIN_ONLY, OUTSIDER)

    run(
        world,
        Sweep("member", world.victim.member, Target(world.victim, world.victim, world), ROUTES, expect, forbidden),
    )


def test_an_admin_of_another_workspace_gets_404_for_every_victim_url(world):
    def expect(route: Route, method: str, htmx: bool, response: HttpResponse) -> str | None:
        if classify(route) in WORKSPACE_KINDS:
            return _status(response, 404, "not their workspace")
        return _non_staff_outside_workspaces(route, method, response, signed_in=True)

    run(world, Sweep("outsider", world.outsider.admin, Target(world.victim, world.victim, world), ROUTES, expect,
                     lambda route, response: (VICTIM,)))  # fmt: skip


def test_another_workspaces_admin_under_their_own_slug_gets_404_for_victim_ids(world):
    """Their own slug gets them past the workspace check: the victim's ids must still be unknown,
    and their own list pages must not list anything of the victim."""

    def expect(route: Route, method: str, htmx: bool, response: HttpResponse) -> str | None:
        if takes_object(route):
            return _status(response, 404, "another workspace's object")
        return None if response.status_code in (200, 302, 405) else "their own page"

    run(world, Sweep(
        "outsider under own slug", world.outsider.admin, Target(world.outsider, world.victim, world),
        _workspace_routes(), expect, lambda route, response: (VICTIM,),
        # Their own pages without an object: reading them is fine, writing is theirs to do.
        methods=lambda route: ("GET", "POST") if takes_object(route) else ("GET",),
    ))  # fmt: skip


def test_the_victim_admin_gets_404_for_another_workspaces_ids(world):
    def expect(route: Route, method: str, htmx: bool, response: HttpResponse) -> str | None:
        return _status(response, 404, "another workspace's object")

    run(world, Sweep("victim admin with outsider ids", world.victim.admin, Target(world.victim, world.outsider, world),
                     _workspace_routes(objects_only=True), expect, lambda route, response: (OUTSIDER,)))  # fmt: skip


def test_the_victim_admin_reaches_every_page_and_sees_the_real_objects(world):
    """The sanity check of the sweep: the same URLs, filled the same way, open for the one who
    may open them, and an object's page shows that object (so the ids were the real ones)."""

    def expect(route: Route, method: str, htmx: bool, response: HttpResponse) -> str | None:
        if classify(route) in WORKSPACE_KINDS:
            return None if response.status_code in (200, 302, 405) else "the workspace's admin may open it"
        return _non_staff_outside_workspaces(route, method, response, signed_in=True)

    answers = run(world, Sweep("victim admin", world.victim.admin, Target(world.victim, world.victim, world), ROUTES,
                               expect, lambda route, response: (OUTSIDER,), methods=lambda route: ("GET",)))  # fmt: skip
    pages = [(route, text) for route, method, htmx, response, text in answers
             if classify(route) in WORKSPACE_KINDS and response.status_code == 200 and not htmx]  # fmt: skip
    object_pages = [(route, text) for route, text in pages if takes_object(route)]
    blind = sorted({route.id for route, text in object_pages if VICTIM not in text.lower()})
    assert not blind, f"object pages that do not show the victim's object: {blind}"
    assert len({route.id for route, _ in pages}) >= 25
    assert len({route.id for route, _ in object_pages}) >= 12


@pytest.mark.parametrize("route_id", WRITES)
def test_each_sweep_payload_really_writes_for_the_victim_admin(world, route_id, django_capture_on_commit_callbacks):
    """The POSTs the sweep sends are ones that succeed for the admin: an outsider's POST that
    changed nothing was refused, not merely malformed."""
    route = next(r for r in ROUTES if r.id == route_id)
    client = world.client(world.victim.admin)
    before = fingerprint()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            build_url(route, Target(world.victim, world.victim, world)), data=payload(route, world.victim)
        )
    assert response.status_code in (200, 302), body(response)[:500]
    assert changed_tables(before, fingerprint()), f"{route_id}: the admin's POST changed nothing"
