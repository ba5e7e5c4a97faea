"""Company Settings → Integrations through HTTP: list, add (against the sandbox), detail,
usage filters, Sync now, test, pause/resume, edit, rotate, disconnect."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.registry import PROVIDERS, providers_by_category
from integrations.testing import make_integration
from usage.models import UsageRecord
from usage.testing import make_record

HX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, integration: Integration | None = None, **kwargs) -> str:
    ws = kwargs.pop("ws", None) or integration.workspace.slug
    if integration is not None:
        kwargs["pk"] = integration.pk
    return reverse(f"integrations:{name}", kwargs={"ws": ws, **kwargs})


def add_url(workspace, provider: str = "openai") -> str:
    return reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": provider})


def add_sandbox_openai(client, workspace, sandbox, project_ids: str = ""):
    """Submit the add form for the sandbox's OpenAI organisation, following the redirect."""
    data = {"name": "OpenAI (sandbox)", "credential_api_key": sandbox.OPENAI_ADMIN_KEY,
            "setting_base_url": sandbox.openai_base_url, "setting_project_ids": project_ids}  # fmt: skip
    return client.post(add_url(workspace), data, follow=True)


def _record(
    integration: Integration, *, hour: datetime, metric: str = "input_tokens", quantity: str = "100", **dims
) -> UsageRecord:
    unit = {"input_tokens": "tokens", "output_tokens": "tokens", "requests": "requests", "cost": "USD"}[metric]
    return make_record(integration, hour, metric, quantity, unit, **dims)


@pytest.fixture
def integration(workspace, admin_user) -> Integration:
    """An OpenAI integration that no test lets reach the network."""
    return make_integration(
        workspace,
        "OpenAI production",
        credential={"api_key": "sk-admin-offline-0000000000000000wxyz"},
        settings={"base_url": "http://127.0.0.1:9/v1"},
        created_by=admin_user,
    )


@pytest.fixture
def usage_rows(integration) -> list[UsageRecord]:
    base = datetime(2025, 3, 1, tzinfo=UTC)
    rows = []
    for day in range(3):
        for model, project in (("gpt-4o", "proj_a"), ("gpt-4o-mini", "proj_b")):
            hour = base + timedelta(days=day, hours=10)
            for metric, quantity in (("input_tokens", "1000"), ("output_tokens", "250")):
                dims = {"model": model, "project": project, "account": "org-1"}
                rows.append(_record(integration, hour=hour, metric=metric, quantity=quantity, **dims))
    return rows


# ---------------------------------------------------------------- list
def test_list_empty_state_and_every_registered_provider(admin_client, workspace):
    response = admin_client.get(url("list", ws=workspace.slug))
    body = response.content.decode()
    assert response.status_code == 200
    assert "No integrations yet" in body
    for label, providers in providers_by_category():
        assert label in body
        for provider in providers:
            assert add_url(workspace, provider.slug) in body
            assert provider.name in body


def test_list_shows_own_integrations_only(admin_client, integration, other_workspace):
    Integration.objects.create(workspace=other_workspace, provider="openai", name="Globex secret project")
    integration.last_sync_at = timezone.now() - timedelta(minutes=5)
    integration.data_through = datetime(2025, 3, 4, 9, tzinfo=UTC)
    integration.save()
    body = admin_client.get(url("list", ws=integration.workspace.slug)).content.decode()
    assert "OpenAI production" in body and url("detail", integration) in body
    assert "Globex secret project" not in body
    assert ">Stale<" in body  # data through 2025-03-04 is long behind OpenAI's reporting delay
    assert ">5 min ago</time>" in body
    assert "4 Mar 2025, 09:00 UTC" in body


# ---------------------------------------------------------------- add
def test_add_form_is_built_from_the_provider_declaration(admin_client, workspace):
    provider = PROVIDERS["openai"]
    body = admin_client.get(add_url(workspace)).content.decode()
    for field in provider.credential_fields + provider.setting_fields:
        assert field.label in body
    for field in provider.credential_fields:
        if field.secret:
            assert re.search(rf'<input type="password" name="credential_{field.name}"', body)
    for field in provider.setting_fields:
        if field.default:
            assert f'placeholder="{field.default}"' in body
    assert provider.credential_help in html.unescape(strip_tags(body))
    assert reverse("integrations:provider_docs", kwargs={"ws": workspace.slug, "provider": "openai"}) in body


def test_unknown_provider_is_404(admin_client, workspace):
    assert admin_client.get(add_url(workspace, "nope")).status_code == 404


def test_provider_docs_page(admin_client, workspace):
    response = admin_client.get(
        reverse("integrations:provider_docs", kwargs={"ws": workspace.slug, "provider": "openai"})
    )
    assert response.status_code == 200
    assert "OpenAI setup guide" in response.content.decode()


def test_add_against_the_sandbox_creates_a_verified_encrypted_integration(admin_client, workspace, sandbox):
    response = add_sandbox_openai(admin_client, workspace, sandbox, project_ids="")
    integration = workspace.integrations.get()
    assert response.redirect_chain[-1][0] == url("detail", integration)
    body = response.content.decode()
    assert "Connected OpenAI (sandbox)" in body
    assert sandbox.OPENAI_ORGANIZATION_ID in body  # what the key can see, from verify
    assert "Customer chatbot" in body and "proj_sandboxAlpha0001" in body
    assert integration.get_credential() == {"api_key": sandbox.OPENAI_ADMIN_KEY}
    assert integration.credential_hint == f"…{sandbox.OPENAI_ADMIN_KEY[-4:]}"
    assert integration.credential_hint in body
    with connection.cursor() as cursor:
        cursor.execute("SELECT credential FROM integrations_integration WHERE id = %s", [integration.pk])
        stored = cursor.fetchone()[0]
    stored = stored if isinstance(stored, str) else bytes(stored).decode("latin-1")
    assert sandbox.OPENAI_ADMIN_KEY not in stored  # ciphertext at rest
    assert sandbox.OPENAI_ADMIN_KEY not in body
    assert "SECRET" not in body  # no part of the sandbox keys leaks either


def test_a_project_filter_naming_a_missing_project_is_a_warning_alert(admin_client, workspace, sandbox):
    response = add_sandbox_openai(admin_client, workspace, sandbox, project_ids="proj_sandboxAlpha0001, proj_elsewhere")
    body = response.content.decode()
    warning = "Project ids not found in this organization: proj_elsewhere."
    alerts = re.findall(r'<div class="alert alert-warning[^"]*" role="alert">(.*?)</div>', body, re.S)
    assert any(warning in alert for alert in alerts), alerts
    assert body.count(warning) == 1  # the alert only, not also a line among the key's facts
    facts = body[body.index("What this key can see") :]
    assert "Warnings" not in facts and "proj_elsewhere" not in facts


def test_project_key_is_refused_with_the_admin_key_message(admin_client, workspace, sandbox):
    response = admin_client.post(
        add_url(workspace),
        {"name": "Mine", "credential_api_key": sandbox.OPENAI_PROJECT_KEY, "setting_base_url": sandbox.openai_base_url},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert not Integration.objects.exists()
    assert "project API key" in body and "Admin key" in body
    assert "admin-keys" in body  # the hint says where to create one
    assert sandbox.OPENAI_PROJECT_KEY not in body  # the secret is not typed back into the form
    assert 'value="Mine"' in body and f'value="{sandbox.openai_base_url}"' in body  # the rest is kept
    assert not sandbox.requests("/openai/")  # refused before any call


def test_rejected_key_shows_the_providers_error(admin_client, workspace, sandbox):
    response = admin_client.post(
        add_url(workspace),
        {"credential_api_key": sandbox.OPENAI_REVOKED_KEY, "setting_base_url": sandbox.openai_base_url},
    )
    body = response.content.decode()
    assert not Integration.objects.exists()
    assert "alert-error" in body and "What to do:" in body
    assert "HTTP 401" in body
    assert sandbox.OPENAI_REVOKED_KEY not in body


def test_missing_key_is_a_field_error(admin_client, workspace):
    response = admin_client.post(add_url(workspace), {"name": "x"})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Integration.objects.exists()


# ---------------------------------------------------------------- detail
def test_detail_shows_sync_state_and_provider_timing(admin_client, integration):
    now = timezone.now()
    integration.last_sync_at = now - timedelta(minutes=3)
    integration.last_success_at = now - timedelta(minutes=3)
    integration.data_through = datetime(2025, 3, 4, 9, tzinfo=UTC)
    integration.next_sync_at = now + timedelta(minutes=57)
    integration.identity = {
        "account_id": "org-xyz",
        "summary": "Organization org-xyz · 1 project",
        "details": {"projects": [{"id": "proj_a", "name": "Alpha", "status": "active"}]},
    }
    integration.save()
    body = admin_client.get(url("detail", integration)).content.decode()
    assert "Last sync" in body and ">3 min ago</time>" in body
    assert f"{integration.last_sync_at.astimezone(UTC):%-d %b %Y, %H:%M} UTC" in body
    assert "Data through" in body and "4 Mar 2025, 09:00 UTC" in body
    assert "Next sync" in body and ">in 57 min</time>" in body
    assert "15 minutes" in body and "1 day" in body  # reporting delay, restatement window
    assert "org-xyz" in body and "Alpha" in body and "proj_a" in body
    assert "…wxyz" in body and "sk-admin-offline" not in body


def test_detail_of_an_integration_in_error_shows_message_and_hint(admin_client, integration):
    integration.status = Integration.Status.ERROR
    integration.last_error_category = "scope"
    integration.last_error_message = "The key lacks the api.usage.read scope."
    integration.save()
    IntegrationEvent.objects.create(
        integration=integration,
        level="error",
        category="scope",
        message=integration.last_error_message,
        hint="Create an Admin key and rotate it here.",
        http_status=403,
        request_id="req_123",
    )
    body = admin_client.get(url("detail", integration)).content.decode()
    assert "Permission missing" in body  # a scope error: the key works but may not read usage
    assert "The key lacks the api.usage.read scope." in body
    assert "Create an Admin key and rotate it here." in body
    assert "req_123" in body


def test_empty_sections_say_so(admin_client, integration):
    body = admin_client.get(url("detail", integration)).content.decode()
    assert "No usage stored yet" in body and "last 30 days" in body
    assert "No syncs yet" in body


def test_a_successful_sync_that_stored_nothing_says_so_with_its_window(admin_client, integration):
    window = (datetime(2026, 12, 5, 0, tzinfo=UTC), datetime(2026, 12, 6, 11, tzinfo=UTC))
    SyncRun.objects.create(
        integration=integration,
        window_start=window[0],
        window_end=window[1],
        status=SyncRun.Status.SUCCESS,
        finished_at=datetime(2026, 12, 6, 11, 30, tzinfo=UTC),
        rows_written=0,
    )
    for body in (
        admin_client.get(url("detail", integration)).content.decode(),
        admin_client.get(url("usage", integration), **HX).content.decode(),
    ):
        text = " ".join(strip_tags(body).split())
        assert "No usage stored yet" not in text and "starts within a minute" not in text
        assert "found no usage in its window, 5 Dec 2026, 00:00 UTC → 6 Dec 2026, 11:00 UTC" in text


# ---------------------------------------------------------------- usage section
TOTAL = re.compile(
    r'data-metric="(\w+)"[^>]*><span class="total-metric">[^<]+</span><span class="total-value">([^<]+)<'
)


def test_usage_totals_and_filters(admin_client, integration, usage_rows):
    response = admin_client.get(url("usage", integration), {"model": "gpt-4o", "view": "rows"}, **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and body.lstrip().startswith('<section id="usage"')
    assert body.count("<tr>") == 1 + 6  # header + 3 days × 2 metrics of gpt-4o
    assert "gpt-4o-mini</td>" not in body
    assert dict(TOTAL.findall(body)) == {"input_tokens": "3,000 tokens", "output_tokens": "750 tokens"}
    # The selects list the values stored.
    assert '<option value="gpt-4o-mini">' in body and '<option value="proj_b">' in body
    # The address bar follows the filter, pointing at the full page.
    assert response["HX-Push-Url"] == url("detail", integration) + "?model=gpt-4o&view=rows"


def test_usage_date_range_and_project(admin_client, integration, usage_rows):
    body = admin_client.get(
        url("usage", integration),
        {"date_from": "2025-03-02", "date_to": "2025-03-02", "project": "proj_b", "view": "rows"},
        **HX,
    ).content.decode()
    assert body.count("<tr>") == 1 + 2
    assert "2 Mar 2025, 10:00 UTC" in body and "1 Mar 2025, 10:00" not in body
    assert dict(TOTAL.findall(body)) == {"input_tokens": "1,000 tokens", "output_tokens": "250 tokens"}


def test_usage_filters_work_without_htmx_on_the_detail_page(admin_client, integration, usage_rows):
    response = admin_client.get(
        url("detail", integration), {"model": "gpt-4o-mini", "metric": "output_tokens", "view": "rows"}
    )
    assert response.context["usage_page"].paginator.count == 3
    assert [t["total"] for t in response.context["usage_totals"]] == [Decimal("750")]


def _cells(table: str) -> list[list[str]]:
    rows = [
        [" ".join(strip_tags(cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]
    return [row for row in rows if row]  # the header row has no <td>


def test_usage_opens_on_a_summary_by_model_project_and_day_with_the_rows_behind_a_tab(
    admin_client, integration, usage_rows
):
    _record(
        integration,
        hour=datetime(2025, 3, 2, 9, tzinfo=UTC),
        metric="cost",
        quantity="1234.5",
        model="gpt-4o",
        project="proj_a",
    )
    make_record(integration, datetime(2025, 3, 1, 9, tzinfo=UTC), "audio_seconds", "16560", "seconds",
                model="gpt-4o-mini", project="proj_b")  # fmt: skip
    integration.identity = {"details": {"projects": [{"id": "proj_a", "name": "Support bot"}]}}
    integration.save()
    body = admin_client.get(url("detail", integration)).content.decode()
    section = body[body.index('<section id="usage"') :]
    section = section[: section.index("</section>")]
    assert "table-usage" not in section  # no raw rows until asked for
    assert "Stored rows (14)" in section
    assert TOTAL.findall(section) == [  # the money first, as in the tables below; names after
        ("cost", "$1,234.50"),
        ("input_tokens", "6,000 tokens"),
        ("output_tokens", "1,500 tokens"),
        ("audio_seconds", "4.6 h"),
    ]
    tables = dict(re.findall(r'<h3 class="small-heading">([^<]+)</h3>(.*?)</table>', section, re.S))
    assert set(tables) == {"By model", "By project", "By day"}
    # Money first, then the counts; ordered by spend, projects by their names.
    assert _cells(tables["By model"]) == [
        ["gpt-4o", "$1,234.50", "3,000 tokens", "750 tokens"],
        ["gpt-4o-mini", "—", "3,000 tokens", "750 tokens"],
    ]
    assert _cells(tables["By project"])[0] == ["Support bot", "$1,234.50", "3,000 tokens", "750 tokens"]
    assert [row[0] for row in _cells(tables["By day"])] == ["Mon 3 Mar 2025", "Sun 2 Mar 2025", "Sat 1 Mar 2025"]
    # One bar per day of the headline metric (spend), scaled to the largest.
    assert re.findall(r'<progress class="bar" max="100" value="(\d+)">([^<]+)<', section) == [
        ("0", "$0.00"),
        ("100", "$1,234.50"),
        ("0", "$0.00"),
    ]
    # The raw rows are one click away, with the filters kept.
    rows = admin_client.get(url("usage", integration), {"view": "rows", "model": "gpt-4o"}, **HX).content.decode()
    assert "table-usage" in rows and rows.count("<tr>") == 1 + 7
    assert 'aria-current="page">Stored rows' in " ".join(rows.split())


def test_usage_no_match_empty_state(admin_client, integration, usage_rows):
    # After every row (2025-03), and within the accepted dates (2030 is no longer: see test_dates).
    body = admin_client.get(url("usage", integration), {"date_from": "2026-01-01"}, **HX).content.decode()
    assert "No rows match these filters" in body


def test_usage_is_paginated_by_50(admin_client, integration):
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(60):
        _record(integration, hour=base + timedelta(hours=i), model="gpt-4o")
    first = admin_client.get(url("detail", integration), {"view": "rows"})
    assert len(first.context["usage_page"].object_list) == 50
    assert "Page 1 of 2" in first.content.decode()
    second = admin_client.get(url("usage", integration), {"page": 2, "view": "rows"}, **HX).content.decode()
    assert second.count("<tr>") == 1 + 10
    assert "Page 2 of 2" in second
    assert f'href="{url("detail", integration)}?page=1&amp;view=rows#usage"' in second  # plain link beside hx-get


def test_usage_of_another_integration_never_shows(admin_client, integration, usage_rows, other_workspace):
    theirs = Integration.objects.create(workspace=other_workspace, provider="openai", name="Theirs")
    _record(theirs, hour=datetime(2025, 3, 1, 10, tzinfo=UTC), model="their-secret-model")
    body = admin_client.get(url("usage", integration), **HX).content.decode()
    assert "their-secret-model" not in body


# ---------------------------------------------------------------- sync now
def test_sync_now_returns_a_polling_fragment_then_refreshes_the_page(
    admin_client, openai_integration, django_capture_on_commit_callbacks
):
    openai_integration.backfill_days = 1
    openai_integration.save()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(url("sync", openai_integration), **HX)
    assert len(callbacks) == 1
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'id="sync-panel"' in body and 'hx-trigger="every 2s"' in body
    assert "Sync queued" in body
    status_url = re.search(r'hx-get="([^"]+sync/status/[^"]+)"', body).group(1).replace("&amp;", "&")

    run = openai_integration.sync_runs.get()  # the eager task ran when the transaction committed
    assert run.status == SyncRun.Status.SUCCESS and run.rows_written > 0

    done = admin_client.get(status_url, **HX)
    done_body = done.content.decode()
    assert "every 2s" not in done_body  # polling stops
    assert "Sync finished" in done_body and f"{run.rows_written:,} rows written" in done_body
    assert {"usage-changed", "runs-changed", "events-changed", "integration-changed"} <= {
        e.strip() for e in done["HX-Trigger"].split(",")
    }

    usage = admin_client.get(url("usage", openai_integration), HTTP_HX_TRIGGER="usage", **HX).content.decode()
    assert "No usage stored yet" not in usage and "input_tokens" in usage
    runs = admin_client.get(url("runs", openai_integration), **HX).content.decode()
    assert "Succeeded" in runs and "Sync now" in runs


def test_sync_status_shows_progress_of_a_running_sync(admin_client, integration):
    SyncRun.objects.create(
        integration=integration, status=SyncRun.Status.RUNNING, chunks_total=4, chunks_done=1, rows_written=1234
    )
    page = admin_client.get(url("detail", integration)).content.decode()
    assert 'hx-trigger="every 2s"' in page  # a sync already running is followed on page load
    fragment = admin_client.get(url("sync_status", integration), {"after": 0, "requested": int(time.time())}, **HX)
    body = fragment.content.decode()
    assert "1 of 4 chunks" in body and "1,234 rows written" in body and "every 2s" in body
    assert "HX-Trigger" not in fragment


def test_sync_now_stops_waiting_for_a_worker_that_never_comes(admin_client, integration):
    body = admin_client.get(
        url("sync_status", integration), {"after": 0, "requested": int(time.time()) - 600}, **HX
    ).content.decode()
    assert "every 2s" not in body and "No worker has started this sync" in body


def test_sync_now_on_a_paused_integration_explains(admin_client, integration, django_capture_on_commit_callbacks):
    integration.status = Integration.Status.PAUSED
    integration.save()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        body = admin_client.post(url("sync", integration), **HX).content.decode()
    assert not callbacks
    assert "paused" in body and "Resume it" in body and "every 2s" not in body


def test_sync_now_without_htmx_redirects_with_a_message(admin_client, integration, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(url("sync", integration), follow=True)
    assert response.redirect_chain[-1][0] == url("detail", integration)
    assert "Sync queued" in response.content.decode()


# ---------------------------------------------------------------- test connection
def test_test_connection_shows_what_the_key_sees(admin_client, openai_integration, sandbox):
    response = admin_client.post(url("test", openai_integration), **HX)
    body = response.content.decode()
    assert "Connection works" in body and sandbox.OPENAI_ORGANIZATION_ID in body
    assert "integration-changed" in response["HX-Trigger"]
    openai_integration.refresh_from_db()
    assert openai_integration.verified_at is not None
    assert sandbox.OPENAI_ADMIN_KEY not in body


def test_test_connection_shows_the_error_and_hint(admin_client, openai_integration, sandbox):
    sandbox.fault("/openai/v1/organization/projects", 401)
    body = admin_client.post(url("test", openai_integration), **HX).content.decode()
    assert "Connection test failed" in body and "What to do:" in body and "HTTP 401" in body
    assert openai_integration.events.filter(level="error", category="credential").exists()
    events = admin_client.get(url("events", openai_integration), **HX).content.decode()
    assert "Credential" in events and "401" in events


# ---------------------------------------------------------------- pause / resume
def test_pause_and_resume(admin_client, integration):
    response = admin_client.post(url("pause", integration), **HX)
    body = response.content.decode()
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED and integration.next_sync_at is None
    assert body.lstrip().startswith('<section id="summary"') and ">Resume</button>" in body
    assert response["HX-Trigger"] == "events-changed"

    response = admin_client.post(url("resume", integration), follow=True)  # without htmx
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE
    assert "Resumed" in response.content.decode()


def test_resume_does_not_revive_a_disconnected_integration(admin_client, integration):
    integration.status = Integration.Status.DISCONNECTED
    integration.save()
    admin_client.post(url("resume", integration))
    integration.refresh_from_db()
    assert integration.status == Integration.Status.DISCONNECTED


# ---------------------------------------------------------------- edit
def test_edit_settings(admin_client, integration):
    response = admin_client.post(
        url("edit", integration),
        {
            "name": "OpenAI prod",
            "sync_interval": "360",
            "backfill_days": "7",
            "setting_base_url": "",
            "setting_project_ids": "proj_a",
        },
    )
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.name == "OpenAI prod"
    assert integration.sync_interval == timedelta(hours=6)
    assert integration.backfill_days == 7
    assert integration.settings == {"project_ids": "proj_a"}


def test_edit_rejects_a_bad_url_with_the_reason(admin_client, integration):
    response = admin_client.post(
        url("edit", integration),
        {"name": "x", "sync_interval": "60", "backfill_days": "30", "setting_base_url": "ftp://example.com"},
    )
    body = response.content.decode()
    assert response.status_code == 200 and "not an http(s) URL" in body
    integration.refresh_from_db()
    assert integration.name == "OpenAI production"


# ---------------------------------------------------------------- rotate
def test_rotate_never_shows_the_old_secret_and_replaces_it(admin_client, openai_integration, sandbox):
    page = admin_client.get(url("rotate", openai_integration)).content.decode()
    assert "never shown" in page and openai_integration.credential_hint in page
    assert sandbox.OPENAI_ADMIN_KEY not in page

    new_key = "sk-admin-rotated-key-000000000000NEW1"
    response = admin_client.post(url("rotate", openai_integration), {"credential_api_key": new_key}, follow=True)
    body = response.content.decode()
    openai_integration.refresh_from_db()
    assert openai_integration.get_credential() == {"api_key": new_key}
    assert openai_integration.credential_hint == "…NEW1"
    assert new_key not in body and sandbox.OPENAI_ADMIN_KEY not in body
    assert "Credential replaced" in body


def test_rotate_to_a_project_key_is_refused(admin_client, openai_integration, sandbox):
    body = admin_client.post(
        url("rotate", openai_integration), {"credential_api_key": sandbox.OPENAI_PROJECT_KEY}
    ).content.decode()
    assert "project API key" in body and sandbox.OPENAI_PROJECT_KEY not in body
    openai_integration.refresh_from_db()
    assert openai_integration.get_credential() == {"api_key": sandbox.OPENAI_ADMIN_KEY}


# ---------------------------------------------------------------- disconnect
def test_disconnect_asks_first(admin_client, integration, usage_rows):
    body = admin_client.get(url("disconnect", integration)).content.decode()
    assert 'value="keep"' in body and 'value="delete"' in body
    assert "12</strong> usage rows" in body


def test_disconnect_keeping_the_data(admin_client, integration, usage_rows):
    response = admin_client.post(url("disconnect", integration), {"data_choice": "keep"}, follow=True)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.DISCONNECTED
    assert integration.get_credential() == {} and integration.credential_hint == ""
    assert integration.usage_records.count() == len(usage_rows)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == url("detail", integration)
    assert "Disconnected" in body and "gpt-4o" in body


def test_disconnect_deleting_the_data(admin_client, integration, usage_rows):
    response = admin_client.post(url("disconnect", integration), {"data_choice": "delete"}, follow=True)
    assert not Integration.objects.filter(pk=integration.pk).exists()
    assert not UsageRecord.objects.exists()
    assert response.redirect_chain[-1][0] == url("list", ws=integration.workspace.slug)
    assert "were deleted" in response.content.decode()


def test_disconnect_needs_a_choice(admin_client, integration):
    response = admin_client.post(url("disconnect", integration), {})
    assert response.status_code == 200
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


# ---------------------------------------------------------------- secrets
def test_no_page_or_fragment_contains_the_secret(admin_client, integration):
    from integrations.tests.test_urls import PATTERNS, _url

    secret = integration.get_credential()["api_key"]
    for pattern in PATTERNS:
        target = _url(pattern, ws=integration.workspace.slug, pk=integration.pk)
        for headers in ({}, HX):
            response = admin_client.get(target, **headers)
            assert secret not in response.content.decode(), pattern.name


def test_every_htmx_link_is_also_a_plain_link(admin_client, integration, usage_rows):
    for i in range(60):
        _record(integration, hour=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i), model="gpt-4o")
    body = admin_client.get(url("detail", integration), {"model": "gpt-4o"}).content.decode()
    links = re.findall(r"<a\b[^>]*>", body)
    hx_links = [a for a in links if "hx-get=" in a]
    assert hx_links  # pagination and "Clear"
    assert all("href=" in a for a in hx_links), [a for a in hx_links if "href=" not in a]
    forms = re.findall(r"<form\b[^>]*>", body)
    assert all("action=" in f for f in forms if "hx-post=" in f or "hx-get=" in f)


def test_a_next_sync_already_passed_reads_due_now(admin_client, integration):
    integration.next_sync_at = timezone.now() - timedelta(minutes=2)
    integration.save()
    assert "due now" in admin_client.get(url("list", ws=integration.workspace.slug)).content.decode()
    assert "due now" in admin_client.get(url("detail", integration)).content.decode()


def test_a_private_base_url_is_refused_on_its_field(admin_client, workspace, settings):
    settings.DOOW_ALLOW_PRIVATE_ENDPOINTS = False
    response = admin_client.post(
        add_url(workspace),
        {"credential_api_key": "sk-admin-field-error-000000000", "setting_base_url": "https://10.0.0.8/v1"},
    )
    form = response.context["form"]
    assert "private" in " ".join(form.errors["setting_base_url"])
    assert not form.non_field_errors()
    assert not Integration.objects.exists()


# ---------------------------------------------------------------- event log
def _event(integration: Integration, message: str, *, level: str = "info", category: str = "sync") -> IntegrationEvent:
    return IntegrationEvent.objects.create(integration=integration, level=level, category=category, message=message)


def test_the_event_log_sits_above_the_usage_and_shows_the_latest_ten(admin_client, integration, usage_rows):
    for n in range(12):
        _event(integration, f"Sync number {n} finished.")
    body = admin_client.get(url("detail", integration)).content.decode()
    assert body.index('id="events"') < body.index('id="usage"') < body.index('id="runs"')
    events = body[body.index('<section id="events"') :]
    events = events[: events.index("</section>")]
    assert "Sync number 11 finished." in events and "Sync number 2 finished." in events
    assert "Sync number 1 finished." not in events  # the 11th newest is on the event log's page
    assert f'href="{url("events", integration)}">View all events' in events


def test_the_event_log_filters_by_level_and_category(admin_client, integration):
    _event(integration, "Key refused by the provider.", level="error", category="credential")
    _event(integration, "Slow down: rate limited.", level="warning", category="rate_limit")
    _event(integration, "Sync finished: 12 rows.")
    card = admin_client.get(
        url("events", integration), {"level": "error"}, HTTP_HX_TARGET="events", **HX
    ).content.decode()
    assert card.lstrip().startswith('<section id="events"') and "<html" not in card
    assert "Key refused" in card and "rate limited" not in card and "Sync finished" not in card
    assert '<option value="error" selected>' in card
    # The card refreshes (events-changed) with its filters kept.
    assert f'hx-get="{url("events", integration)}?level=error"' in card
    card = admin_client.get(
        url("events", integration), {"category": "rate_limit"}, HTTP_HX_TARGET="events", **HX
    ).content.decode()
    assert "rate limited" in card and "Key refused" not in card
    card = admin_client.get(
        url("events", integration), {"level": "error", "category": "sync"}, HTTP_HX_TARGET="events", **HX
    ).content.decode()
    assert "No events match these filters." in card
    # A level that is not one is ignored, not an error.
    assert admin_client.get(url("events", integration), {"level": "<script>"}).status_code == 200


def test_view_all_events_is_its_own_paginated_page(admin_client, integration, usage_rows):
    for n in range(60):
        _event(integration, f"Event {n:02d}.", level="warning" if n % 2 else "info")
    response = admin_client.get(url("events", integration))
    body = response.content.decode()
    assert response.status_code == 200 and "<h1>Event log</h1>" in body
    assert 'id="usage"' not in body and 'id="runs"' not in body  # not the whole detail page
    assert body.count("<tr>") == 1 + 50 and "Page 1 of 2" in body
    assert "Event 59." in body and "Event 09." not in body
    second = admin_client.get(url("events", integration), {"page": 2}).content.decode()
    assert "Event 09." in second and "Event 59." not in second and second.count("<tr>") == 1 + 10
    warnings = admin_client.get(url("events", integration), {"level": "warning"}).content.decode()
    assert "30 events match" in warnings and "Event 58." not in warnings and "Event 59." in warnings


def test_another_workspaces_event_log_is_a_404(admin_client, other_workspace):
    theirs = Integration.objects.create(workspace=other_workspace, provider="openai", name="Theirs")
    _event(theirs, "Their secret event.")
    assert admin_client.get(url("events", theirs, ws="acme")).status_code == 404


def test_times_show_in_the_workspace_time_zone_with_the_zone_named(admin_client, workspace, integration):
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    _record(integration, hour=datetime(2026, 12, 5, 22, tzinfo=UTC), model="gpt-4o")
    SyncRun.objects.create(
        integration=integration, status=SyncRun.Status.SUCCESS, rows_written=1234567,
        window_start=datetime(2026, 12, 5, 0, tzinfo=UTC), window_end=datetime(2026, 12, 6, 11, tzinfo=UTC),
    )  # fmt: skip
    body = " ".join(strip_tags(admin_client.get(url("detail", integration), {"view": "rows"}).content.decode()).split())
    assert "Bucket start (Europe/Paris)" in body and "5 Dec 2026, 23:00 CET" in body  # 22:00 UTC
    assert "5 Dec 2026, 01:00 CET → 6 Dec 2026, 12:00 CET" in body  # the run's window
    assert "1.2M" in body  # rows written, as a count people read
    assert "times in Europe/Paris" in body and "times are UTC" not in body
