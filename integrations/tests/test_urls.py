"""Who can reach what: every URL of the integrations namespace, taken from the URLconf itself.

A new URL added to integrations/urls.py is covered here without touching this file; a URL
with a kwarg this test does not know fails loudly so that it gets covered on purpose.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, reverse

from doow.testing import url_patterns
from integrations.models import Integration
from integrations.providers.registry import PROVIDERS
from usage.models import UsageImport

PATTERNS = url_patterns("integrations.urls")
PK_PATTERNS = [p for p in PATTERNS if "pk" in p.pattern.converters]


def _url(pattern: URLPattern, *, ws: str, pk: int) -> str:
    names = set(pattern.pattern.converters)
    values = {"pk": pk, "provider": next(iter(PROVIDERS))}
    if "job" in names:  # an import job of that integration
        values["job"] = _import_job(pk)
    unknown = names - set(values)
    assert not unknown, f"test_urls does not know how to fill {unknown} of {pattern.name}: teach it"
    assert pattern.name, f"every integrations URL needs a name: {pattern.pattern}"
    return reverse(f"integrations:{pattern.name}", kwargs={"ws": ws, **{n: values[n] for n in names}})


def _import_job(pk: int) -> int:
    integration = Integration.objects.get(pk=pk)
    return UsageImport.objects.create(
        workspace=integration.workspace, integration=integration, source="usage.csv", status=UsageImport.Status.DONE
    ).pk


def _ids(patterns: list[URLPattern]) -> list[str]:
    return [p.name or str(p.pattern) for p in patterns]


def _integration(workspace, name: str = "OpenAI") -> Integration:
    integration = Integration(
        workspace=workspace, provider="openai", name=name, settings={"base_url": "http://127.0.0.1:9/v1"}
    )
    integration.set_credential({"api_key": "sk-admin-never-called-0000000000000000"})
    integration.save()
    return integration


def test_the_namespace_has_urls_to_check():
    assert len(PATTERNS) >= 10
    assert {"list", "add", "detail", "usage", "runs", "events", "sync", "sync_status"} <= {p.name for p in PATTERNS}


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_outsider_gets_404(outsider_client, workspace, pattern, method):
    url = _url(pattern, ws=workspace.slug, pk=_integration(workspace).pk)
    assert getattr(outsider_client, method)(url).status_code == 404


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_member_gets_403(member_client, workspace, pattern, method):
    url = _url(pattern, ws=workspace.slug, pk=_integration(workspace).pk)
    assert getattr(member_client, method)(url).status_code == 403


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_is_sent_to_login(client, workspace, pattern, method):
    url = _url(pattern, ws=workspace.slug, pk=_integration(workspace).pk)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids(PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_admin_is_let_in(admin_client, openai_integration, pattern, method):
    # openai_integration points at the sandbox, so Test connection really connects.
    url = _url(pattern, ws=openai_integration.workspace.slug, pk=openai_integration.pk)
    response = getattr(admin_client, method)(url)
    assert response.status_code in (200, 302, 405), response.content[:500]


@pytest.mark.parametrize("pattern", PK_PATTERNS, ids=_ids(PK_PATTERNS))
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_workspaces_integration_is_not_found_under_my_slug(
    admin_client, workspace, other_workspace, pattern, method
):
    theirs = _integration(other_workspace, name="Globex OpenAI")
    response = getattr(admin_client, method)(_url(pattern, ws=workspace.slug, pk=theirs.pk))
    assert response.status_code == 404
    assert b"Globex OpenAI" not in response.content
    theirs.refresh_from_db()
    assert theirs.status == Integration.Status.ACTIVE  # nothing was paused, disconnected or deleted
