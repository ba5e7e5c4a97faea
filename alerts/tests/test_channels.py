"""Every rule end to end, through the Celery task: the condition opens an alert that reaches
people on every channel once (a mail to the admins, an unread entry on the Notifications page,
one signed POST to the webhook received by a local server), a run with nothing changed tells
nobody anything, and a full day back to normal resolves it on every channel once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from alerts.models import Alert, AnomalyRule, Budget, Notification
from alerts.tasks import evaluate_alerts, evaluate_workspace_alerts
from alerts.tests.conftest import create_webhook, put_spend, verify
from integrations.models import Integration

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
TODAY = NOW.date()


def _set(integration: Integration, **fields) -> None:
    Integration.objects.filter(pk=integration.pk).update(**fields)


def _healthy(integration: Integration, moment: datetime) -> None:
    _set(integration, status="active", last_error_category="", last_error_message="", data_through=moment)


def _steady_then_spike(integration: Integration) -> None:
    put_spend(integration, {TODAY - timedelta(days=n): "100" for n in range(2, 31)})
    put_spend(integration, {TODAY - timedelta(days=1): "400"})


def _over_budget(integration: Integration) -> None:
    # Anomalies off: the next day, today's 120 against nothing before would be one as well.
    AnomalyRule.objects.create(workspace=integration.workspace, enabled=False)
    Budget.objects.create(workspace=integration.workspace, name="AI spend", amount=100)
    put_spend(integration, {TODAY: "120"})


@dataclass(frozen=True)
class Rule:
    kind: str
    level: str
    subject: str  # in the mail's subject and the notification's title
    link: str  # the payload's kind-specific link
    open: Callable[[Integration], None]
    close: Callable[[Integration, datetime], None]  # back to normal at that moment


RULES = {
    "budget": Rule(
        "budget",
        "exceeded",
        "Budget AI spend passed 100%",
        "budgets",
        _over_budget,
        lambda i, moment: Budget.objects.update(amount=1000),
    ),
    "anomaly": Rule(
        "anomaly",
        "anomaly",
        "Provider openai spent 400.00 USD on 2026-12-05, usually 100.00",
        "explorer",
        _steady_then_spike,
        lambda i, moment: put_spend(i, {TODAY - timedelta(days=1): "100", TODAY: "100"}),  # restated
    ),
    "credential rejected": Rule(
        "integration",
        "credential_rejected",
        "Integration OpenAI prod had its credential rejected",
        "integration",
        lambda i: _set(i, status="error", last_error_category="credential", last_error_message="401: invalid key"),
        _healthy,
    ),
    "permission missing": Rule(
        "integration",
        "permission_missing",
        "Integration OpenAI prod is missing a permission",
        "integration",
        lambda i: _set(i, last_error_category="permission", last_error_message="403: missing api.usage.read"),
        _healthy,
    ),
    "paused": Rule(
        "integration",
        "paused",
        "Integration OpenAI prod is paused",
        "integration",
        lambda i: _set(i, status="paused"),
        _healthy,
    ),
    "stale": Rule(
        "integration",
        "stale",
        "Integration OpenAI prod is stale",
        "integration",
        lambda i: _set(i, data_through=NOW - timedelta(days=4)),
        _healthy,
    ),
}


@pytest.mark.parametrize("name", RULES)
def test_each_rule_reaches_every_channel_once_per_change(
    name, workspace, openai, admin_user, member_user, admin_client, receiver, on_commit, settings
):
    settings.DOOW_BASE_URL = "https://doow.example.com"
    rule = RULES[name]
    secret = create_webhook(admin_client, receiver.url)
    _healthy(openai, NOW)
    rule.open(openai)
    notifications = reverse("alerts:notifications", kwargs={"ws": "acme"})

    with on_commit():
        evaluate_alerts.delay()
    alert = Alert.objects.get()
    assert (alert.kind, alert.state, alert.level) == (rule.kind, "open", rule.level)
    # Mail: one, to the admins only, with a link workers build from DOOW_BASE_URL.
    assert [(m.to, m.subject) for m in mail.outbox] == [([admin_user.email], f"[Doow] Opened: {rule.subject}")]
    assert "https://doow.example.com/w/acme/notifications/" in mail.outbox[0].body
    # Notifications page: one unread entry, counted in the top navigation.
    page = admin_client.get(notifications).content.decode()
    assert (
        page.count(f"<strong>{rule.subject}</strong>") == 1
        and "1 unread." in page
        and 'data-testid="unread-count"' in page
    )
    # Webhook: one signed POST with the documented payload.
    assert len(receiver.requests) == 1 and verify(secret, receiver.requests[0])
    payload = receiver.bodies()[0]
    assert payload["event"] == "alert.opened" and payload["alert"]["id"] == alert.pk
    assert (payload["alert"]["kind"], payload["alert"]["level"], payload["alert"]["title"]) == (
        rule.kind,
        rule.level,
        rule.subject,
    )
    assert payload["links"][rule.link].startswith("https://doow.example.com/w/acme/")

    # Nothing changed: nothing more on any channel, at the next tick and the one after.
    for _ in range(2):
        with on_commit():
            evaluate_alerts.delay()
    assert len(mail.outbox) == 1 and Notification.objects.count() == 1 and len(receiver.requests) == 1

    # Back to normal: told only after a full day below, then once.
    rule.close(openai, NOW)
    for moment, told in (
        (NOW + timedelta(minutes=15), 1),
        (NOW + timedelta(hours=23), 1),
        (NOW + timedelta(hours=24, minutes=15), 2),
        (NOW + timedelta(hours=24, minutes=30), 2),
    ):
        with time_machine.travel(moment, tick=False), on_commit():
            _set(openai, data_through=moment)  # syncs keep arriving
            evaluate_alerts.delay()
        assert (len(mail.outbox), len(receiver.requests)) == (told, told), (moment, [m.subject for m in mail.outbox])
    alert.refresh_from_db()
    assert alert.state == "resolved" and mail.outbox[1].subject.startswith("[Doow] Resolved: ")
    assert receiver.bodies()[1]["event"] == "alert.resolved" and receiver.bodies()[1]["alert"]["state"] == "resolved"
    assert verify(secret, receiver.requests[1])
    page = admin_client.get(notifications).content.decode()
    assert "2 unread." in page and "Resolved" in page
    # The member (not an admin) was told nothing.
    assert not Notification.objects.filter(user=member_user).exists()


def test_anomaly_links_to_the_explorer_filtered_to_it(workspace, openai, admin_user, admin_client):
    """The model that spiked, not the provider total: the link shows that model's day only."""
    history = {TODAY - timedelta(days=n): "100" for n in range(2, 31)}
    put_spend(openai, history, model="gpt-4o")
    put_spend(openai, {TODAY - timedelta(days=1): "400"}, model="gpt-4o")
    put_spend(openai, {**history, TODAY - timedelta(days=1): "100"}, model="gpt-4o-mini")
    _healthy(openai, NOW)
    evaluate_alerts.delay()
    alert = Alert.objects.get(key="anomaly:model:gpt-4o")
    assert alert.numbers["spend"] == "400.00" and alert.numbers["median"] == "100.00"
    assert not Alert.objects.filter(key="anomaly:model:gpt-4o-mini").exists()

    page = admin_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"})).content.decode()
    link = "/w/acme/usage/?model=gpt-4o&amp;date_from=2026-12-05&amp;date_to=2026-12-05"
    assert f'href="{link}"' in page
    explorer = admin_client.get(link.replace("&amp;", "&"))
    assert explorer.status_code == 200
    shown = explorer.content.decode()
    assert "$400.00" in shown  # gpt-4o on 5 December…
    assert "$500.00" not in shown  # …not the provider's total that day (with gpt-4o-mini)
    assert date(2026, 12, 5) == explorer.context["filters"].date_from == explorer.context["filters"].date_to


def test_a_busy_workspace_is_evaluated_in_at_most_20_queries_from_the_rollups(
    workspace, admin_user, member_user, receiver, admin_client, django_capture_on_commit_callbacks
):
    """Budgets, anomalies (by provider, model and application) and integrations all changing at
    once, with a webhook: the number of queries does not grow with them, and the raw usage table
    is never read."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from alerts.tests.conftest import make_integration
    from usage.models import Application

    create_webhook(admin_client, receiver.url)
    history = {TODAY - timedelta(days=n): "100" for n in range(2, 31)}
    for n in range(4):
        app = Application.objects.create(workspace=workspace, name=f"App {n}")
        integration = make_integration(workspace, name=f"I{n}", provider=("openai", "anthropic")[n % 2])
        put_spend(integration, history, model=f"m{n}", application=app)
        put_spend(integration, {TODAY - timedelta(days=1): "900"}, model=f"m{n}", application=app)
        _set(integration, data_through=NOW, status="paused" if n == 3 else "active")
        Budget.objects.create(workspace=workspace, name=f"B{n}", scope="application", application=app, amount=500)
    with CaptureQueriesContext(connection) as first, django_capture_on_commit_callbacks() as queued:
        evaluate_workspace_alerts.delay(workspace.pk)
    kinds = sorted(Alert.objects.values_list("kind", flat=True))
    # 4 budgets, 2 providers + 4 models + 4 applications spiking, 1 paused integration.
    assert kinds == ["anomaly"] * 10 + ["budget"] * 4 + ["integration"]
    assert len(mail.outbox) == 15 and len(queued) == 15
    with CaptureQueriesContext(connection) as second:
        evaluate_workspace_alerts.delay(workspace.pk)
    assert len(mail.outbox) == 15
    for run in (first, second):
        sql = [q["sql"] for q in run.captured_queries]
        assert len(sql) <= 20, "\n".join(sql)
        assert not any("usage_usagerecord" in s for s in sql)
