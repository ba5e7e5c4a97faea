"""The Django admin, over HTTP as a staff superuser: no credential field, actions, read-only logs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Membership
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.services import integration_record_event
from integrations.testing import make_integration
from usage.models import UsageRecord
from usage.testing import make_record

KEY = "sk-admin-admintest-Kp3vX9qLm2Wz7RtY4nB8cD1e"


@pytest.fixture
def integration(workspace, admin_user) -> Integration:
    return make_integration(workspace, credential={"api_key": KEY}, created_by=admin_user)


@pytest.fixture
def history(integration):
    run = SyncRun.objects.create(
        integration=integration,
        trigger=SyncRun.Trigger.COMMAND,
        status=SyncRun.Status.FAILED,
        error_category="credential",
        error="The provider rejected the credential.",
    )
    integration_record_event(
        integration=integration,
        sync_run=run,
        level=IntegrationEvent.Level.ERROR,
        category=IntegrationEvent.Category.CREDENTIAL,
        message="The provider rejected the credential: quota-probe-message",
        hint="Rotate it.",
        http_status=401,
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    record = make_record(
        integration, start, "input_tokens", "100", "tokens", model="gpt-4o", stream="usage_completions"
    )
    return run, record


def _url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def _body(response) -> str:
    return response.content.decode()


def test_integration_changelist_lists_columns_without_the_credential(superuser_client, integration):
    response = superuser_client.get(_url("integrations_integration_changelist"))
    assert response.status_code == 200
    body = _body(response)
    assert "OpenAI prod" in body and "Acme Corp" in body
    for column in (
        "column-name",
        "column-workspace",
        "column-provider",
        "column-status",
        "column-last_sync_at",
        "column-data_through",
        "column-next_sync_at",
    ):
        assert column in body
    assert KEY not in body


def test_provider_filter_is_fed_by_the_registry(superuser_client, integration):
    url = _url("integrations_integration_changelist")
    body = _body(superuser_client.get(url))
    assert "?provider=openai" in body and ">OpenAI<" in body
    assert "OpenAI prod" in _body(superuser_client.get(url, {"provider": "openai"}))
    assert "OpenAI prod" not in _body(superuser_client.get(url, {"provider": "anthropic"}))
    assert "OpenAI prod" in _body(
        superuser_client.get(url, {"status__exact": "active", "workspace__id__exact": integration.workspace_id})
    )
    assert "OpenAI prod" in _body(superuser_client.get(url, {"q": "prod"}))
    assert "OpenAI prod" not in _body(superuser_client.get(url, {"q": "nothing-like-it"}))


def test_change_page_hides_the_credential_and_shows_hint_identity_and_history(superuser_client, integration, history):
    Integration.objects.filter(pk=integration.pk).update(identity={"account_id": "org-visible-identity"})
    response = superuser_client.get(_url("integrations_integration_change", integration.pk))
    assert response.status_code == 200
    body = _body(response)
    assert 'name="credential"' not in body and "id_credential" not in body.replace("id_credential_hint", "")
    assert integration.credential_hint in body and integration.credential_hint.endswith(KEY[-4:])
    assert "org-visible-identity" in body
    assert "quota-probe-message" in body  # recent events
    assert f"#{history[0].pk}" in body  # recent sync runs
    assert f"integration__id__exact={integration.pk}" in body
    assert KEY not in body and KEY[9:-4] not in body
    # the links to the full lists work (the lookup is allowed)
    for model in ("syncrun", "integrationevent"):
        listing = superuser_client.get(
            _url(f"integrations_{model}_changelist"), {"integration__id__exact": integration.pk}
        )
        assert listing.status_code == 200


def test_saving_the_change_page_keeps_the_credential(superuser_client, integration):
    url = _url("integrations_integration_change", integration.pk)
    response = superuser_client.post(
        url,
        {
            "name": "Renamed",
            "sync_interval": "02:00:00",
            "backfill_days": "7",
            "credential": "sk-admin-injected-through-admin-000000",  # ignored: not a form field
        },
    )
    assert response.status_code == 302, _body(response)[:2000]
    integration.refresh_from_db()
    assert integration.name == "Renamed"
    assert integration.sync_interval == timedelta(hours=2)
    assert integration.get_credential() == {"api_key": KEY}


def test_integrations_cannot_be_added_in_the_admin(superuser_client, db):
    assert superuser_client.get(_url("integrations_integration_add")).status_code == 403


def test_sync_now_action_enqueues_after_commit(superuser_client, integration, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = superuser_client.post(
            _url("integrations_integration_changelist"),
            {"action": "sync_now", "_selected_action": [integration.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert len(callbacks) == 1
    assert "Sync requested for 1 integration" in _body(response)


def test_sync_now_of_a_paused_integration_is_refused_with_a_message(
    superuser_client, integration, django_capture_on_commit_callbacks
):
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.PAUSED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = superuser_client.post(
            _url("integrations_integration_changelist"),
            {"action": "sync_now", "_selected_action": [integration.pk]},
            follow=True,
        )
    assert callbacks == []
    assert "Not synced" in _body(response)


def test_pause_action_pauses_and_records_an_event(superuser_client, integration):
    response = superuser_client.post(
        _url("integrations_integration_changelist"),
        {"action": "pause", "_selected_action": [integration.pk]},
        follow=True,
    )
    assert response.status_code == 200
    integration.refresh_from_db()
    assert integration.status == Integration.Status.PAUSED
    assert integration.next_sync_at is None
    assert integration.events.filter(category="sync", message__contains="Paused by root").exists()

    superuser_client.post(
        _url("integrations_integration_changelist"), {"action": "resume", "_selected_action": [integration.pk]}
    )
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ACTIVE


def test_sync_runs_are_listed_filtered_and_read_only(superuser_client, integration, history):
    run, _ = history
    url = _url("integrations_syncrun_changelist")
    assert superuser_client.get(url).status_code == 200
    for params in ({"status__exact": "failed"}, {"trigger__exact": "command"}, {"provider": "openai"}):
        response = superuser_client.get(url, params)
        assert response.status_code == 200 and _url("integrations_syncrun_change", run.pk) in _body(response)
    assert _url("integrations_syncrun_change", run.pk) not in _body(
        superuser_client.get(url, {"provider": "anthropic"})
    )
    change = superuser_client.get(_url("integrations_syncrun_change", run.pk))
    assert change.status_code == 200 and 'name="_save"' not in _body(change)
    assert superuser_client.post(_url("integrations_syncrun_change", run.pk), {"status": "success"}).status_code == 403
    assert superuser_client.get(_url("integrations_syncrun_add")).status_code == 403
    assert superuser_client.get(_url("integrations_syncrun_delete", run.pk)).status_code == 403


def test_events_are_filtered_searched_and_read_only(superuser_client, integration, history):
    url = _url("integrations_integrationevent_changelist")
    for params in (
        {"category__exact": "credential"},
        {"level__exact": "error"},
        {"provider": "openai"},
        {"q": "quota-probe"},
    ):
        response = superuser_client.get(url, params)
        assert response.status_code == 200 and "quota-probe-message" in _body(response)
    assert "quota-probe-message" not in _body(superuser_client.get(url, {"q": "absent-words"}))
    event = IntegrationEvent.objects.filter(message__contains="quota-probe").get()
    assert superuser_client.get(_url("integrations_integrationevent_change", event.pk)).status_code == 200
    assert (
        superuser_client.post(_url("integrations_integrationevent_change", event.pk), {"message": "x"}).status_code
        == 403
    )
    assert superuser_client.get(_url("integrations_integrationevent_add")).status_code == 403


def test_events_are_filtered_by_workspace_and_integration_and_searched_by_whose(superuser_client, integration, history):
    from accounts.models import Workspace

    other_workspace = Workspace.objects.create(name="Globex", slug="globex")
    other = Integration(workspace=other_workspace, provider="anthropic", name="Globex Claude")
    other.set_credential({"api_key": "sk-ant-admin01-" + "x" * 40})
    other.save()
    long_message = "Rate limited by the provider; " + "retrying later. " * 20 + "globex-tail"
    integration_record_event(
        integration=other, level=IntegrationEvent.Level.WARNING, category=IntegrationEvent.Category.RATE_LIMIT,
        message=long_message, hint="Wait.", http_status=429,
    )  # fmt: skip
    url = _url("integrations_integrationevent_changelist")

    def listed(params: dict) -> tuple[bool, bool]:
        body = _body(superuser_client.get(url, params))
        return "quota-probe-message" in body, "Rate limited by the provider" in body

    # Both are filters in the sidebar, each choice a link.
    sidebar = _body(superuser_client.get(url))
    sidebar = sidebar[sidebar.index('id="changelist-filter"') :]
    assert "By workspace" in sidebar and "By integration" in sidebar
    assert f"?integration__workspace__id__exact={other_workspace.pk}" in sidebar
    assert f"?integration__id__exact={other.pk}" in sidebar
    assert listed({"integration__workspace__id__exact": integration.workspace.pk}) == (True, False)
    assert listed({"integration__workspace__id__exact": other_workspace.pk}) == (False, True)
    assert listed({"integration__id__exact": other.pk}) == (False, True)
    assert listed({"q": "Globex Claude"}) == (False, True)
    assert listed({"q": "globex"}) == (False, True)  # the workspace's slug
    assert listed({"q": integration.name}) == (True, False)
    # A long message is cut in the list (whole on hover), whole on the event's own page.
    body = _body(superuser_client.get(url, {"integration__id__exact": other.pk}))
    assert "globex-tail</span>" not in body and 'title="Rate limited by the provider;' in body
    event = other.events.get()
    assert "globex-tail" in _body(superuser_client.get(_url("integrations_integrationevent_change", event.pk)))


def test_usage_records_are_not_editable(superuser_client, history):
    _, record = history
    url = _url("usage_usagerecord_changelist")
    for params in ({}, {"provider": "openai"}, {"metric__exact": "input_tokens"}, {"bucket_start__year": "2026"},
                   {"stream": "usage_completions"}, {"provenance": "reported"}):  # fmt: skip
        response = superuser_client.get(url, params)
        assert response.status_code == 200 and "gpt-4o" in _body(response)
    assert "gpt-4o" not in _body(superuser_client.get(url, {"stream": "costs"}))
    change = superuser_client.get(_url("usage_usagerecord_change", record.pk))
    assert change.status_code == 200 and 'name="_save"' not in _body(change)
    assert superuser_client.post(_url("usage_usagerecord_change", record.pk), {"quantity": "1"}).status_code == 403
    assert superuser_client.get(_url("usage_usagerecord_add")).status_code == 403
    assert superuser_client.post(_url("usage_usagerecord_delete", record.pk), {"post": "yes"}).status_code == 403
    # no bulk delete action either
    response = superuser_client.post(url, {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"})
    record.refresh_from_db()
    assert record.quantity == Decimal("100")
    assert response.status_code in (200, 302)


def test_workspace_with_memberships_and_membership_admin(superuser_client, workspace, admin_user):
    response = superuser_client.get(_url("accounts_workspace_change", workspace.pk))
    assert response.status_code == 200
    assert "memberships-TOTAL_FORMS" in _body(response)
    membership = Membership.objects.get(user=admin_user)
    assert superuser_client.get(_url("accounts_membership_changelist")).status_code == 200
    assert superuser_client.get(_url("accounts_membership_change", membership.pk)).status_code == 200


def test_workspace_admins_who_are_not_staff_are_sent_to_the_login(admin_client, integration):
    for url in (
        _url("index"),
        _url("integrations_integration_changelist"),
        _url("integrations_integration_change", integration.pk),
    ):
        response = admin_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_sync_now_action_runs_the_sync(superuser_client, openai_integration, django_capture_on_commit_callbacks):
    Integration.objects.filter(pk=openai_integration.pk).update(backfill_days=1)
    with django_capture_on_commit_callbacks(execute=True):
        superuser_client.post(
            _url("integrations_integration_changelist"),
            {"action": "sync_now", "_selected_action": [openai_integration.pk]},
        )
    run = SyncRun.objects.get(integration=openai_integration)
    assert (run.trigger, run.status) == (SyncRun.Trigger.MANUAL, SyncRun.Status.SUCCESS)


def test_admin_shows_the_last_outcome_and_the_account(superuser_client, integration):
    Integration.objects.filter(pk=integration.pk).update(
        last_error_category="rate_limit", last_error_message="Throttled (HTTP 429).", account_key="openai:org-1"
    )
    listing = superuser_client.get(reverse("admin:integrations_integration_changelist")).content.decode()
    assert "Rate limited — retrying: Throttled (HTTP 429)." in listing
    change = superuser_client.get(
        reverse("admin:integrations_integration_change", args=[integration.pk])
    ).content.decode()
    assert "openai:org-1" in change and "Whole account" in change


def test_usage_and_sync_run_lists_have_few_enough_columns_to_fit_1280_px(superuser_client, history):
    _run, record = history
    columns = re.compile(r'<th scope="col"[^>]*class="[^"]*\bcolumn-(\w+)')
    usage = _body(superuser_client.get(_url("usage_usagerecord_changelist")))
    assert columns.findall(usage) == [
        "bucket", "integration", "short_model", "short_project", "metric", "amount", "attributed_to",
    ]  # fmt: skip
    assert f"{record.bucket_start:%Y-%m-%d %H:%M} · 1 h" in usage and "100 tokens" in usage
    assert "<th" in usage and ">Model<" in usage and ">Project<" in usage  # the headers still read so
    # A long id is cut in the list (whole on hover), whole on the record's page.
    long_model = "ft:gpt-4o-mini-2024-07-18:acme-corp:support-tone-v7:9xYzAbCdEfGh"
    UsageRecord.objects.filter(pk=record.pk).update(model=long_model)
    usage = _body(superuser_client.get(_url("usage_usagerecord_changelist")))
    assert f'<span title="{long_model}">ft:gpt-4o-mini-2024-07-…</span>' in usage
    assert long_model in _body(superuser_client.get(_url("usage_usagerecord_change", record.pk)))
    runs = _body(superuser_client.get(_url("integrations_syncrun_changelist")))
    assert columns.findall(runs) == [
        "pk",
        "integration",
        "status",
        "started_at",
        "took",
        "window",
        "rows",
        "error_category",
    ]
    # The lists get the page's width: no nav sidebar beside them (the home page lists every model).
    assert 'id="nav-sidebar"' not in usage and 'id="nav-sidebar"' not in runs
