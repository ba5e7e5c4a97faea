"""Integration alerts through the Celery task: credential rejected, permission missing, paused
and stale (Integration.health), told once per change, resolved after a full healthy day,
mutable per integration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from alerts.models import Alert, Mute, Notification
from alerts.tasks import evaluate_alerts
from integrations.models import Integration

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("no_anomalies")


def _set(integration: Integration, **fields) -> None:
    Integration.objects.filter(pk=integration.pk).update(**fields)


def test_healthy_integration_raises_nothing(workspace, openai, admin_user):
    _set(openai, data_through=NOW - timedelta(hours=2))
    evaluate_alerts.delay()
    assert not Alert.objects.exists() and mail.outbox == []


def test_credential_rejected_opens_once_and_resolves_after_a_healthy_day(workspace, openai, admin_user):
    _set(openai, status="error", last_error_category="credential", last_error_message="401: invalid API key")
    evaluate_alerts.delay()
    evaluate_alerts.delay()
    alert = Alert.objects.get(integration=openai)
    assert (alert.kind, alert.state, alert.level) == ("integration", "open", "credential_rejected")
    assert alert.numbers["health"] == "needs_attention"
    assert len(mail.outbox) == 1 and "credential rejected" in mail.outbox[0].subject
    assert "401: invalid API key" in mail.outbox[0].body
    assert "sk-admin" not in mail.outbox[0].body  # never the secret

    _set(openai, status="active", last_error_category="", last_error_message="", data_through=NOW)
    evaluate_alerts.delay()
    assert Alert.objects.get().state == "open" and len(mail.outbox) == 1
    with time_machine.travel(NOW + timedelta(days=1, minutes=1), tick=False):
        _set(openai, data_through=NOW + timedelta(days=1))
        evaluate_alerts.delay()
    assert Alert.objects.get().state == "resolved"
    assert len(mail.outbox) == 2 and "Resolved" in mail.outbox[1].subject


def test_stale_then_paused_escalates(workspace, openai, admin_user):
    _set(openai, data_through=NOW - timedelta(days=4))
    evaluate_alerts.delay()
    alert = Alert.objects.get()
    assert alert.level == "stale" and "is stale" in mail.outbox[0].subject
    _set(openai, status="paused")
    evaluate_alerts.delay()
    alert.refresh_from_db()
    assert (alert.state, alert.level) == ("escalated", "paused")
    _set(openai, status="paused", last_error_category="credential", last_error_message="Paused after 3 rejections")
    evaluate_alerts.delay()
    alert.refresh_from_db()
    assert alert.level == "credential_rejected"
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["[Doow] Opened", "[Doow] Escalated", "[Doow] Escalated"]


def test_other_permanent_failure_is_failing(workspace, openai, admin_user):
    _set(openai, status="error", last_error_category="provider_response", last_error_message="unexpected JSON shape")
    evaluate_alerts.delay()
    assert Alert.objects.get().level == "failing" and "is failing" in mail.outbox[0].subject


def test_permission_missing(workspace, openai, admin_user):
    _set(openai, last_error_category="permission", last_error_message="403: missing api.usage.read")
    evaluate_alerts.delay()
    assert Alert.objects.get().level == "permission_missing"
    assert "missing a permission" in mail.outbox[0].subject


def test_disconnected_integration_raises_nothing(workspace, openai, admin_user):
    _set(openai, status="disconnected", data_through=NOW - timedelta(days=30))
    evaluate_alerts.delay()
    assert not Alert.objects.exists()


def test_mute_per_integration(workspace, openai, admin_user, admin_client, member_client):
    url = reverse("alerts:integration_mute", kwargs={"ws": "acme", "pk": openai.pk})
    assert member_client.post(url, {"mute": "1"}).status_code == 403
    assert admin_client.post(url, {"mute": "1"}).status_code == 302
    _set(openai, status="paused")
    evaluate_alerts.delay()
    assert Alert.objects.get().level == "paused"
    assert mail.outbox == [] and not Notification.objects.exists()
    page = admin_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"})).content.decode()
    assert "Integration alerts" in page and "<td>OpenAI prod</td>" in page and "Unmute" in page
    assert (
        "Integration alerts"
        not in member_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"})).content.decode()
    )
    admin_client.post(url, {"mute": "0"})
    assert not Mute.objects.exists()
    # Unmuted: the next change is told again (here: resolved after a healthy day).
    _set(openai, status="active", data_through=NOW)
    evaluate_alerts.delay()  # healthy from now…
    with time_machine.travel(NOW + timedelta(days=1, minutes=5), tick=False):  # …for a full day
        _set(openai, data_through=NOW + timedelta(days=1))
        evaluate_alerts.delay()
        evaluate_alerts.delay()
    assert [m.subject for m in mail.outbox] == ["[Doow] Resolved: Integration OpenAI prod is healthy"]
