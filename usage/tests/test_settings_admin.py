"""The inventory in the Django admin, as a staff superuser: pages load, edits re-attribute,
workspaces come from the application, jobs are read-only."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from integrations.models import Integration
from usage.models import (
    Application,
    AttributionRule,
    License,
    ReattributionJob,
    UsageRecord,
)
from usage.testing import new_record


@pytest.fixture
def inventory(workspace):
    app = Application.objects.create(workspace=workspace, name="Chatbot", vendor="OpenAI")
    lic = License.objects.create(
        workspace=workspace, application=app, plan_name="Enterprise", start_date=date(2026, 1, 1)
    )
    rule = AttributionRule.objects.create(
        workspace=workspace, provider="openai", model="gpt-*", application=app, license=lic
    )
    job = ReattributionJob.objects.create(workspace=workspace, status="done", total=10, done=10)
    return {"application": app, "license": lic, "rule": rule, "job": job}


def admin_url(model: type, view: str, *args) -> str:
    return reverse(f"admin:usage_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("kind", ["application", "license", "rule", "job"])
def test_changelists_and_change_pages_load(superuser_client, inventory, kind):
    obj = inventory[kind]
    assert superuser_client.get(admin_url(type(obj), "changelist")).status_code == 200
    assert superuser_client.get(admin_url(type(obj), "change", obj.pk)).status_code == 200


def test_jobs_are_read_only(superuser_client, inventory):
    assert superuser_client.get(admin_url(ReattributionJob, "add")).status_code == 403
    response = superuser_client.post(admin_url(ReattributionJob, "delete", inventory["job"].pk), {"post": "yes"})
    assert response.status_code == 403
    assert ReattributionJob.objects.filter(pk=inventory["job"].pk).exists()


def test_a_rule_added_in_the_admin_takes_the_applications_workspace_and_reattributes(
    superuser_client, workspace, inventory, django_capture_on_commit_callbacks
):
    integration = Integration(workspace=workspace, provider="openai", name="OpenAI")
    integration.set_credential({"api_key": "sk-admin-admin-test-0000"})
    integration.save()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    new_record(integration, start, "requests", 1, "requests", model="o1").save(force_insert=True)
    data = {
        "provider": "openai",
        "model": "o1",
        "application": inventory["application"].pk,
        "license": "",
        "priority": "5",
    }
    data.update({f: "" for f in AttributionRule.MATCH_FIELDS if f != "model"})
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(admin_url(AttributionRule, "add"), data)
    assert response.status_code == 302, response.content[:2000]
    rule = AttributionRule.objects.get(model="o1")
    assert rule.workspace == workspace
    assert UsageRecord.objects.get().rule == rule


def test_a_rule_cannot_count_against_another_applications_license(superuser_client, workspace, inventory):
    other = Application.objects.create(workspace=workspace, name="Other")
    data = {"provider": "openai", "application": other.pk, "license": inventory["license"].pk, "priority": "5"}
    data.update({f: "" for f in AttributionRule.MATCH_FIELDS})
    response = superuser_client.post(admin_url(AttributionRule, "add"), data)
    assert response.status_code == 200
    assert "This license belongs to another application." in response.content.decode()


def test_priorities_are_editable_in_the_list(superuser_client, inventory, django_capture_on_commit_callbacks):
    rule = inventory["rule"]
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(rule.pk),
        "form-0-priority": "7",
        "_save": "Save",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(admin_url(AttributionRule, "changelist"), data)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.priority == 7
    assert ReattributionJob.objects.filter(status="done").count() == 2


def test_licenses_are_edited_inline_on_their_application(superuser_client, workspace, inventory):
    app = inventory["application"]
    lic = inventory["license"]
    data = {
        "workspace": workspace.pk,
        "name": app.name,
        "vendor": app.vendor,
        "owner": "",
        "category": "",
        "licenses-TOTAL_FORMS": "2",
        "licenses-INITIAL_FORMS": "1",
        "licenses-MIN_NUM_FORMS": "0",
        "licenses-MAX_NUM_FORMS": "1000",
        "licenses-0-id": lic.pk,
        "licenses-0-application": app.pk,
        "licenses-0-plan_name": lic.plan_name,
        "licenses-0-kind": lic.kind,
        "licenses-0-start_date": "2026-01-01",
        "licenses-0-currency": "USD",
        "licenses-1-application": app.pk,
        "licenses-1-plan_name": "Seats",
        "licenses-1-kind": "seats",
        "licenses-1-start_date": "2026-02-01",
        "licenses-1-currency": "USD",
        "licenses-1-seat_count": "10",
    }
    response = superuser_client.post(admin_url(Application, "change", app.pk), data)
    assert response.status_code == 302, response.content[:3000]
    added = License.objects.get(plan_name="Seats")
    assert (added.workspace, added.seat_count) == (workspace, 10)
