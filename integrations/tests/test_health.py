"""Status that tells the truth: the badge and list show the last outcome (connected, rate
limited — retrying, permission missing, needs attention, paused, stale), a refused Test
connection never leaves "Connected", and usage pages warn while a filtered integration is
failing or stale. Driven through the pages, the sync command and the sandbox."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from integrations.models import Integration
from usage.models import UsageRecord

HX = {"HTTP_HX_REQUEST": "true"}
USAGE_PATH = "/openai/v1/organization/usage"
PROJECTS_PATH = "/openai/v1/organization/projects"


def list_body(client, workspace) -> str:
    return client.get(reverse("integrations:list", kwargs={"ws": workspace.slug})).content.decode()


def badge_in_list(client, integration: Integration) -> str:
    """The state cell of the integration's row on the list."""
    body = list_body(client, integration.workspace)
    row = body.split(f'/integrations/{integration.pk}/"', 1)[1].split("</tr>", 1)[0]
    return row


def detail_title(client, integration: Integration) -> str:
    body = client.get(
        reverse("integrations:detail", kwargs={"ws": integration.workspace.slug, "pk": integration.pk})
    ).content.decode()
    return body.split("<h1>", 1)[1].split("</h1>", 1)[0]


def explorer(client, workspace, **params) -> str:
    return client.get(reverse("usage:explorer", kwargs={"ws": workspace.slug}), params).content.decode()


def synced_through(integration: Integration, through: datetime) -> Integration:
    """As if a sync had succeeded with data up to `through` (the engine's own columns)."""
    Integration.objects.filter(pk=integration.pk).update(
        data_through=through, last_success_at=through, last_sync_at=through, status="active", last_error_category=""
    )
    integration.refresh_from_db()
    UsageRecord.objects.create(
        workspace=integration.workspace,
        integration=integration,
        provider=integration.provider,
        bucket_start=through - timedelta(hours=1),
        bucket_end=through,
        metric="input_tokens",
        quantity=Decimal(10),
        unit="tokens",
    )
    return integration


def yesterday() -> str:
    return (timezone.now() - timedelta(days=1)).date().isoformat()


def make(workspace, name: str, provider: str = "openai") -> Integration:
    integration = Integration(
        workspace=workspace, provider=provider, name=name, settings={"base_url": "http://127.0.0.1:9/v1"}
    )
    integration.set_credential({"api_key": "sk-admin-offline-0000000000000000wxyz"})
    integration.save()
    return integration


# ---------------------------------------------------------------- the one rule
def test_fresh_data_is_connected_and_old_data_is_stale(admin_client, workspace):
    now = timezone.now()
    fresh = synced_through(make(workspace, "Fresh"), now - timedelta(hours=2))
    # OpenAI reports hours after 15 minutes: the newest hour it can have reported ends at
    # now − 15 min, aligned down to the hour; data a day older than that is stale.
    edge = synced_through(make(workspace, "Edge"), now - timedelta(hours=24, minutes=10))
    stale = synced_through(make(workspace, "Behind"), now - timedelta(hours=25, minutes=20))
    assert fresh.health.code == edge.health.code == "connected"
    assert stale.health.code == "stale" and stale.health.stale
    assert ">Connected<" in badge_in_list(admin_client, fresh)
    row = badge_in_list(admin_client, stale)
    assert ">Stale<" in row and ">Connected<" not in row
    assert "Stale" in detail_title(admin_client, stale)


def test_a_daily_provider_is_stale_only_when_a_whole_day_is_missing(workspace):
    # OpenRouter reports whole UTC days an hour late: the newest day it can have reported
    # ends at the last midnight at least an hour ago; today's day is never in yet.
    newest = (timezone.now() - timedelta(hours=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    on_time = make(workspace, "Yesterday in", provider="openrouter")
    # A day behind the newest possible: more than now − delay − 24 h ago, yet not late.
    Integration.objects.filter(pk=on_time.pk).update(data_through=newest - timedelta(days=1))
    on_time.refresh_from_db()
    assert on_time.health.code == "connected"
    behind = make(workspace, "Two days behind", provider="openrouter")
    Integration.objects.filter(pk=behind.pk).update(data_through=newest - timedelta(days=1, hours=1))
    behind.refresh_from_db()
    assert behind.health.code == "stale"


def test_never_synced_becomes_stale_once_overdue(workspace):
    integration = make(workspace, "New")
    assert integration.health.code == "connected"
    Integration.objects.filter(pk=integration.pk).update(created_at=timezone.now() - timedelta(days=2))
    integration.refresh_from_db()
    assert integration.health.code == "stale"


def test_paused_and_disconnected(admin_client, workspace):
    paused = make(workspace, "Paused one")
    Integration.objects.filter(pk=paused.pk).update(status="paused")
    gone = make(workspace, "Gone")
    Integration.objects.filter(pk=gone.pk).update(status="disconnected")
    assert ">Paused<" in badge_in_list(admin_client, paused)
    assert ">Disconnected<" in badge_in_list(admin_client, gone)
    paused.refresh_from_db()
    gone.refresh_from_db()
    assert paused.health.stale and not gone.health.stale  # design: paused counts as stale


def test_import_only_provider_is_never_stale(workspace):
    integration = Integration.objects.create(workspace=workspace, provider="authress", name="Authress")
    Integration.objects.filter(pk=integration.pk).update(created_at=timezone.now() - timedelta(days=90))
    integration.refresh_from_db()
    assert integration.health.code == "connected"


# ---------------------------------------------------------------- outcomes of real syncs and tests
def test_rate_limited_sync_shows_rate_limited_retrying(admin_client, openai_integration, sandbox):
    sandbox.fault(USAGE_PATH, 429, times=1000, headers={"Retry-After": "120"})
    with pytest.raises(CommandError, match="rate_limit"):
        call_command("sync", str(openai_integration.pk), "--since", yesterday(), stdout=io.StringIO())
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.ACTIVE  # the engine keeps retrying
    row = badge_in_list(admin_client, openai_integration)
    assert "Rate limited — retrying" in row and ">Connected<" not in row
    assert "Rate limited" in detail_title(admin_client, openai_integration)


def test_successful_sync_after_rate_limit_is_connected_again(admin_client, openai_integration, sandbox):
    sandbox.fault(USAGE_PATH, 429, times=1000, headers={"Retry-After": "120"})
    with pytest.raises(CommandError, match="rate_limit"):
        call_command("sync", str(openai_integration.pk), "--since", yesterday(), stdout=io.StringIO())
    sandbox.clear_faults()
    call_command("sync", str(openai_integration.pk), stdout=io.StringIO())
    assert ">Connected<" in badge_in_list(admin_client, openai_integration)


def test_refused_test_connection_never_leaves_connected(admin_client, openai_integration, sandbox):
    assert "Connected" in detail_title(admin_client, openai_integration)
    sandbox.fault(PROJECTS_PATH, 401)
    response = admin_client.post(reverse("integrations:test", kwargs={"ws": "acme", "pk": openai_integration.pk}), **HX)
    assert "Connection test failed" in response.content.decode()
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.ERROR
    assert openai_integration.last_error_category == "credential"
    title = detail_title(admin_client, openai_integration)
    assert "Needs attention" in title and "Connected" not in title
    row = badge_in_list(admin_client, openai_integration)
    assert "Needs attention" in row and ">Connected<" not in row

    # The key works again: the next test says so, and a sync is due at once.
    response = admin_client.post(reverse("integrations:test", kwargs={"ws": "acme", "pk": openai_integration.pk}), **HX)
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.ACTIVE and openai_integration.last_error_category == ""
    assert openai_integration.next_sync_at <= timezone.now()
    assert "Connected" in detail_title(admin_client, openai_integration)


def test_permission_refused_by_test_connection_says_permission_missing(admin_client, openai_integration, sandbox):
    sandbox.fault(PROJECTS_PATH, 403)
    admin_client.post(reverse("integrations:test", kwargs={"ws": "acme", "pk": openai_integration.pk}), **HX)
    openai_integration.refresh_from_db()
    assert openai_integration.last_error_category in ("permission", "scope")
    assert "Permission missing" in badge_in_list(admin_client, openai_integration)


def test_throttled_test_connection_shows_retrying_not_connected(admin_client, openai_integration, sandbox):
    sandbox.fault(PROJECTS_PATH, 429, times=1000, headers={"Retry-After": "120"})
    admin_client.post(reverse("integrations:test", kwargs={"ws": "acme", "pk": openai_integration.pk}), **HX)
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.ACTIVE  # throttling fixes itself
    row = badge_in_list(admin_client, openai_integration)
    assert "Rate limited — retrying" in row and ">Connected<" not in row


def test_refused_test_keeps_a_paused_integration_paused(admin_client, openai_integration, sandbox):
    Integration.objects.filter(pk=openai_integration.pk).update(status="paused")
    sandbox.fault(PROJECTS_PATH, 401)
    admin_client.post(reverse("integrations:test", kwargs={"ws": "acme", "pk": openai_integration.pk}), **HX)
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.PAUSED


# ---------------------------------------------------------------- the usage banner
def test_explorer_banner_while_a_filtered_integration_is_stale(admin_client, workspace):
    now = timezone.now()
    behind = synced_through(make(workspace, "OpenAI behind"), now - timedelta(days=3))
    synced_through(make(workspace, "Anthropic fresh", provider="anthropic"), now - timedelta(hours=1))
    body = explorer(admin_client, workspace)
    assert "may be incomplete" in body and "OpenAI behind" in body and ">Stale<" in body
    assert reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": behind.pk}) in body
    # Filtered to the healthy provider or integration: no banner.
    assert "may be incomplete" not in explorer(admin_client, workspace, provider="anthropic")
    fresh = workspace.integrations.get(name="Anthropic fresh")
    assert "may be incomplete" not in explorer(admin_client, workspace, integration=str(fresh.pk))
    assert "may be incomplete" in explorer(admin_client, workspace, provider="openai")
    # The htmx partial (a filter change) carries it too.
    partial = admin_client.get(reverse("usage:explorer", kwargs={"ws": workspace.slug}), {"provider": "openai"}, **HX)
    assert "may be incomplete" in partial.content.decode()


def test_license_pages_carry_the_banner_too(member_client, workspace):
    """The licenses' spend comes from the same usage: their pages say when it may be incomplete."""
    from datetime import date

    from usage.models import Application
    from usage.testing import make_license

    app = Application.objects.create(workspace=workspace, name="Support bot")
    lic = make_license(app, "Scale tier", "usage_commitment", date(2026, 1, 1), committed_amount=1000)
    pages = [reverse("usage:licenses", kwargs={"ws": workspace.slug}),
             reverse("usage:license", kwargs={"ws": workspace.slug, "pk": lic.pk})]  # fmt: skip
    synced_through(make(workspace, "OpenAI fresh"), timezone.now() - timedelta(hours=1))
    assert not any("may be incomplete" in member_client.get(p).content.decode() for p in pages)
    synced_through(make(workspace, "OpenAI behind"), timezone.now() - timedelta(days=3))
    for page in pages:
        body = member_client.get(page).content.decode()
        assert "may be incomplete" in body and "OpenAI behind" in body and ">Stale<" in body


@pytest.fixture
def failing(workspace) -> Integration:
    """An OpenAI integration, "OpenAI failing", synced an hour ago and then refused its key."""
    failing = synced_through(make(workspace, "OpenAI failing"), timezone.now() - timedelta(hours=1))
    Integration.objects.filter(pk=failing.pk).update(
        status="error", last_error_category="credential", last_error_message="Invalid API key."
    )
    return failing


def test_explorer_banner_for_a_failing_integration(admin_client, failing, workspace):
    body = explorer(admin_client, workspace)
    assert "may be incomplete" in body and "Needs attention" in body and "Invalid API key." in body


def test_no_banner_when_everything_is_current(admin_client, workspace):
    synced_through(make(workspace, "OpenAI"), timezone.now() - timedelta(hours=1))
    assert "may be incomplete" not in explorer(admin_client, workspace)


def test_banner_skips_disconnected_and_uncounted_duplicates(admin_client, workspace):
    now = timezone.now()
    synced_through(make(workspace, "OpenAI"), now - timedelta(hours=1))
    old = synced_through(make(workspace, "Old copy"), now - timedelta(days=5))
    Integration.objects.filter(pk=old.pk).update(status="disconnected")
    dup = synced_through(make(workspace, "Dup copy"), now - timedelta(days=5))
    Integration.objects.filter(pk=dup.pk).update(status="paused", account_share="duplicate")
    assert "may be incomplete" not in explorer(admin_client, workspace)


def test_members_see_the_banner_without_error_details_or_settings_links(member_client, failing, workspace):
    body = explorer(member_client, workspace)
    assert "may be incomplete" in body and "OpenAI failing" in body and "Needs attention" in body
    assert "Invalid API key." not in body
    assert reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": failing.pk}) not in body
    assert "Company Settings" in body
