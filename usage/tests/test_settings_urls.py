"""Who can reach what: every URL of the `usage_settings` namespace, taken from the URLconf itself.

Company Settings pages are for workspace admins: members get 403, outsiders 404, anonymous
users the login page, and another workspace's object under my slug is not found.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import URLPattern, reverse

from doow.testing import url_patterns
from usage.models import Application, AttributionRule, License, PriceOverride, Team

PATTERNS = url_patterns("usage.urls_settings")
PK_PATTERNS = [p for p in PATTERNS if "pk" in p.pattern.converters]


def _inventory(workspace, name: str = "Chatbot") -> dict[str, int]:
    team = Team.objects.create(workspace=workspace, name=f"{name} team")
    app = Application.objects.create(workspace=workspace, name=name, team=team)
    lic = License.objects.create(
        workspace=workspace, application=app, plan_name=f"{name} plan", start_date=date(2026, 1, 1)
    )
    rule = AttributionRule.objects.create(
        workspace=workspace, provider="openai", model=f"{name}-model", application=app, license=lic
    )
    override = PriceOverride.objects.create(workspace=workspace, kind="discount", provider="openai", discount_percent=10,
                                            effective_from=date(2026, 1, 1))  # fmt: skip
    return {"application": app.pk, "license": lic.pk, "rule": rule.pk, "pricing": override.pk, "team": team.pk}


def _url(pattern: URLPattern, *, ws: str, pks: dict[str, int]) -> str:
    names = set(pattern.pattern.converters)
    assert names <= {"pk"}, f"test_settings_urls does not know how to fill {names} of {pattern.name}: teach it"
    assert pattern.name, f"every Company Settings URL needs a name: {pattern.pattern}"
    kwargs = {"ws": ws}
    if "pk" in names:
        kind = pattern.name.split("_")[0]
        assert kind in pks, f"which object does {pattern.name} take? teach test_settings_urls"
        kwargs["pk"] = pks[kind]
    return reverse(f"usage_settings:{pattern.name}", kwargs=kwargs)


def _ids(patterns: list[URLPattern]) -> list[str]:
    return [p.name or str(p.pattern) for p in patterns]


def test_the_namespace_has_urls_to_check():
    assert {"applications", "licenses", "rules", "rule_add", "rule_move", "reattribution", "unattributed"} <= {
        p.name for p in PATTERNS
    }


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_outsider_gets_404(outsider_client, workspace, pattern, method):
    url = _url(pattern, ws=workspace.slug, pks=_inventory(workspace))
    assert getattr(outsider_client, method)(url).status_code == 404


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_member_gets_403(member_client, workspace, pattern, method):
    url = _url(pattern, ws=workspace.slug, pks=_inventory(workspace))
    assert getattr(member_client, method)(url).status_code == 403


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_is_sent_to_login(client, workspace, pattern, method):
    response = getattr(client, method)(_url(pattern, ws=workspace.slug, pks=_inventory(workspace)))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_admin_is_let_in(admin_client, workspace, pattern, method):
    response = getattr(admin_client, method)(_url(pattern, ws=workspace.slug, pks=_inventory(workspace)))
    assert response.status_code in (200, 302, 405), response.content[:500]


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
def test_admin_gets_fragments_over_htmx(admin_client, workspace, pattern):
    response = admin_client.get(_url(pattern, ws=workspace.slug, pks=_inventory(workspace)), HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 302, 405)


@pytest.mark.parametrize("pattern", PK_PATTERNS, ids=_ids(PK_PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_workspaces_object_is_not_found_under_my_slug(
    admin_client, workspace, other_workspace, pattern, method
):
    _inventory(workspace)
    theirs = _inventory(other_workspace, name="Globex")
    response = getattr(admin_client, method)(_url(pattern, ws=workspace.slug, pks=theirs))
    assert response.status_code == 404
    assert b"Globex" not in response.content
    assert Application.objects.filter(pk=theirs["application"]).exists()
    assert AttributionRule.objects.filter(pk=theirs["rule"]).exists()
    assert License.objects.filter(pk=theirs["license"]).exists()
