"""The outgoing webhook: set up in Company Settings, a signed JSON POST per told alert change,
retried with back-off on network errors, 5xx and 429, logged, and under the SSRF rules of
provider base URLs. Requests are received by a local HTTP server on 127.0.0.1 (allowed by
DOOW_ALLOW_PRIVATE_ENDPOINTS, as in every test of the seam); the SSRF tests turn that off and
play the resolver themselves (integrations/tests/netfakes.py)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from alerts import webhooks
from alerts.models import Alert, Budget, Mute, Webhook, WebhookDelivery
from alerts.tasks import evaluate_alerts
from alerts.tests.conftest import create_webhook as create
from alerts.tests.conftest import put_spend, verify
from integrations.tests.netfakes import PUBLIC, ConnectRecorder, FakeDns

pytestmark = pytest.mark.usefixtures("no_anomalies")


def page(ws: str = "acme") -> str:
    return reverse("alerts:webhook", kwargs={"ws": ws})


# ------------------------------------------------------------------ settings page
def test_secret_is_shown_once_then_only_its_last_four(admin_client, workspace, receiver):
    secret = create(admin_client, receiver.url)
    assert secret.startswith("whsec_") and len(secret) > 30
    hook = Webhook.objects.get(workspace=workspace)
    assert hook.url == receiver.url and hook.secret == secret and hook.secret_hint == secret[-4:]
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT secret FROM alerts_webhook WHERE id = %s", [hook.pk])
        stored = cursor.fetchone()[0]
    assert secret not in str(stored)
    body = admin_client.get(page()).content.decode()
    assert secret not in body and f"…{secret[-4:]}" in body and receiver.url in body


def test_times_are_in_the_workspace_zone_and_named(admin_client, workspace, receiver):
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    create(admin_client, receiver.url)
    hook = Webhook.objects.get(workspace=workspace)
    Webhook.objects.filter(pk=hook.pk).update(created_at=datetime(2026, 12, 1, 8, 5, tzinfo=UTC))
    WebhookDelivery.objects.create(
        webhook=hook, delivery_id="d-1", event="ping", attempt=1, status_code=200, duration_ms=12,
        created_at=datetime(2026, 12, 5, 23, 30, tzinfo=UTC),
    )  # fmt: skip
    body = " ".join(admin_client.get(page()).content.decode().split())
    assert "since 1 Dec 2026, 09:05 CET" in body
    assert '<td class="nowrap">6 Dec 2026, 00:30 CET</td>' in body  # 23:30 UTC is already the 6th in Paris
    assert "(UTC)" not in body


def test_replacing_makes_a_new_secret_and_delete_removes_it(admin_client, workspace, receiver):
    first = create(admin_client, receiver.url)
    second = create(admin_client, receiver.url + "/v2")
    assert first != second
    hook = Webhook.objects.get(workspace=workspace)
    assert hook.url.endswith("/v2") and hook.secret == second
    response = admin_client.post(reverse("alerts:webhook_delete", kwargs={"ws": "acme"}))
    assert response.status_code == 302 and not Webhook.objects.exists()
    assert b"Add a webhook" in admin_client.get(page()).content


def test_only_admins_and_only_their_workspace(admin_client, member_client, outsider_client, receiver):
    create(admin_client, receiver.url)
    assert member_client.get(page()).status_code == 403
    assert member_client.post(page(), {"url": receiver.url}).status_code == 403
    for name in ("webhook", "webhook_delete", "webhook_test"):
        assert outsider_client.post(reverse(f"alerts:{name}", kwargs={"ws": "acme"})).status_code == 404
    assert Webhook.objects.count() == 1 and receiver.requests == []


# ------------------------------------------------------------------ delivery
def test_alert_change_is_posted_signed_once(workspace, openai, admin_user, admin_client, receiver, on_commit, settings):
    settings.DOOW_BASE_URL = "https://doow.example.com"
    secret = create(admin_client, receiver.url)
    budget = Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    put_spend(openai, {date(2026, 12, 6): "120"})
    with on_commit():
        evaluate_alerts.delay()
    with on_commit():
        evaluate_alerts.delay()  # nothing changed: nothing sent
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert verify(secret, request)
    assert request["path"] == "/hooks/doow" and request["headers"]["Content-Type"] == "application/json"
    payload = json.loads(request["body"])
    alert = Alert.objects.get()
    assert payload["version"] == 1 and payload["event"] == "alert.opened"
    assert (
        request["headers"]["X-Doow-Event"] == "alert.opened" and request["headers"]["X-Doow-Delivery"] == payload["id"]
    )
    assert payload["workspace"] == {"slug": "acme", "name": workspace.name}
    assert payload["alert"]["id"] == alert.pk and payload["alert"]["kind"] == "budget"
    assert payload["alert"]["state"] == "open" and payload["alert"]["level"] == "exceeded"
    assert payload["alert"]["title"] == "Budget AI spend passed 100%"
    assert (
        payload["alert"]["numbers"]["month_to_date"] == "120.00" and payload["alert"]["numbers"]["budget"] == "100.00"
    )
    assert payload["links"] == {
        "notifications": "https://doow.example.com/w/acme/notifications/",
        "budgets": "https://doow.example.com/w/acme/settings/budgets/",
    }
    assert secret not in request["body"].decode()

    # Resolved: a second delivery, once.
    budget.amount = 1000
    budget.save()
    for moment in (
        datetime(2026, 12, 6, 13, tzinfo=UTC),
        datetime(2026, 12, 7, 14, tzinfo=UTC),
        datetime(2026, 12, 7, 15, tzinfo=UTC),
    ):
        with time_machine.travel(moment, tick=False), on_commit():
            evaluate_alerts.delay()
    # (By 7 December the integration's data is stale too: that is an alert of its own.)
    budget_events = [b for b in receiver.bodies() if b["alert"]["kind"] == "budget"]
    assert [b["event"] for b in budget_events] == ["alert.opened", "alert.resolved"]
    assert budget_events[1]["alert"]["state"] == "resolved" and budget_events[1]["alert"]["id"] == alert.pk
    assert all(verify(secret, r) for r in receiver.requests)

    log = admin_client.get(page()).content.decode()
    assert log.count("alert.opened") >= 1 and "alert.resolved" in log and ">200<" in log
    assert secret not in log
    assert set(WebhookDelivery.objects.values_list("status_code", "attempt")) == {(200, 1)}
    assert WebhookDelivery.objects.filter(alert=alert).count() == 2


def test_muted_budget_sends_nothing(workspace, openai, admin_user, admin_client, receiver, on_commit):
    create(admin_client, receiver.url)
    budget = Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    Mute.objects.create(workspace=workspace, budget=budget)
    put_spend(openai, {date(2026, 12, 6): "120"})
    with on_commit():
        evaluate_alerts.delay()
    assert Alert.objects.count() == 1 and receiver.requests == []


def test_500_is_retried_with_the_same_body_then_succeeds(admin_client, receiver, on_commit):
    secret = create(admin_client, receiver.url)
    receiver.script = [500, 502, 200]
    with on_commit():
        response = admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    assert response.status_code == 302
    assert len(receiver.requests) == 3
    assert len({r["body"] for r in receiver.requests}) == 1 and all(verify(secret, r) for r in receiver.requests)
    assert receiver.bodies()[0]["event"] == "ping" and receiver.bodies()[0]["version"] == 1
    assert len({r["headers"]["X-Doow-Delivery"] for r in receiver.requests}) == 1
    rows = list(WebhookDelivery.objects.order_by("attempt").values_list("attempt", "status_code", "will_retry"))
    assert rows == [(1, 500, True), (2, 502, True), (3, 200, False)]
    log = admin_client.get(page()).content.decode()
    assert "Server error 500" in log and "3 of 5" in log


def test_429_is_retried_but_another_4xx_is_not(admin_client, receiver, on_commit):
    create(admin_client, receiver.url)
    receiver.script = [429, 200]
    with on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    assert len(receiver.requests) == 2
    receiver.requests.clear()
    receiver.script = [410]
    with on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    assert len(receiver.requests) == 1
    last = WebhookDelivery.objects.first()
    assert (last.status_code, last.attempt, last.will_retry, last.error) == (410, 1, False, "Refused with 410")


def test_gives_up_after_the_last_attempt(admin_client, receiver, on_commit):
    create(admin_client, receiver.url)
    receiver.script = [503]
    with on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    assert len(receiver.requests) == webhooks.WEBHOOK_MAX_ATTEMPTS == 5
    assert list(WebhookDelivery.objects.order_by("attempt").values_list("will_retry", flat=True)) == [True] * 4 + [
        False
    ]


def test_network_errors_are_retried(admin_client, workspace, on_commit):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    create(admin_client, f"http://127.0.0.1:{port}/hook")
    with on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    rows = list(WebhookDelivery.objects.order_by("attempt").values_list("attempt", "status_code", "error"))
    assert rows == [(n, None, "Could not connect") for n in range(1, 6)]


def test_back_off_doubles_and_honours_retry_after_within_a_cap():
    assert [webhooks.backoff_seconds(n) for n in range(1, 5)] == [30, 60, 120, 240]
    assert webhooks.backoff_seconds(1, retry_after=300) == 300
    assert webhooks.backoff_seconds(3, retry_after=10) == 120
    assert webhooks.backoff_seconds(1, retry_after=86400) == webhooks.WEBHOOK_MAX_DELAY_SECONDS


# ------------------------------------------------------------------ SSRF
def test_private_and_plain_http_urls_are_refused_when_saved(admin_client, settings, monkeypatch):
    settings.DOOW_ALLOW_PRIVATE_ENDPOINTS = False
    FakeDns({"hooks.example.test": [["10.0.0.8"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    for url, words in (
        ("https://hooks.example.test/doow", "private"),
        ("https://169.254.169.254/latest", "metadata"),
        ("http://hooks.example.test/doow", "https"),
    ):
        response = admin_client.post(page(), {"url": url})
        assert response.status_code == 400
        assert words in " ".join(response.context["form"].errors["url"])
    assert not Webhook.objects.exists() and wire.attempts == []


def test_a_name_rebinding_to_loopback_after_the_save_is_refused_at_send_time(
    admin_client, settings, monkeypatch, on_commit
):
    settings.DOOW_ALLOW_PRIVATE_ENDPOINTS = False
    # Public when saved, 127.0.0.1 at every later lookup (the one the connection makes).
    FakeDns({"hooks.example.test": [[PUBLIC], ["127.0.0.1"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    create(admin_client, "https://hooks.example.test/doow")
    with on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    delivery = WebhookDelivery.objects.get()  # refused once, never retried
    assert delivery.status_code is None and not delivery.will_retry
    assert delivery.error.startswith("Refused:") and "loopback" in delivery.error
    assert wire.attempts == []


def test_the_delivery_log_keeps_ninety_days(admin_client, workspace, receiver, on_commit):
    create(admin_client, receiver.url)
    with time_machine.travel(datetime(2026, 8, 1, tzinfo=UTC), tick=False), on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    with time_machine.travel(datetime(2026, 9, 20, tzinfo=UTC), tick=False), on_commit():
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    assert WebhookDelivery.objects.count() == 2
    with on_commit():  # 6 December: August's attempt is more than 90 days old
        admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "acme"}))
    assert sorted(d.created_at.month for d in WebhookDelivery.objects.all()) == [9, 12]
