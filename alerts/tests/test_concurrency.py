"""Overlapping evaluations of one workspace (a beat tick while an after-sync run is under way)
tell a change once: the second waits for the first's commit and then finds nothing new."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from django.core import mail
from django.db import connection

from alerts import services
from alerts.models import Alert, AnomalyRule, Budget, Notification
from alerts.tests.conftest import put_spend

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_overlapping_runs_tell_an_escalation_once(workspace, openai, admin_user, monkeypatch):
    AnomalyRule.objects.create(workspace=workspace, enabled=False)
    Budget.objects.create(workspace=workspace, name="AI spend", amount=1000, alert_on_forecast=False)
    put_spend(openai, {date(2026, 12, 6): "900"})
    services.alerts_evaluate_workspace(workspace_id=workspace.pk)
    assert Alert.objects.get().level == "warning" and len(mail.outbox) == 1

    put_spend(openai, {date(2026, 12, 6): "1100"})
    read = services.spend_detail

    def slow_read(*args, **kwargs):
        rows = read(*args, **kwargs)
        time.sleep(0.5)  # both runs are past their start before either records anything
        return rows

    monkeypatch.setattr(services, "spend_detail", slow_read)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            services.alerts_evaluate_workspace(workspace_id=workspace.pk)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=30)
    assert errors == []
    alert = Alert.objects.get()
    assert (alert.state, alert.level) == ("escalated", "exceeded")
    assert [m.subject for m in mail.outbox] == [
        "[Doow] Opened: Budget AI spend passed 80%",
        "[Doow] Escalated: Budget AI spend passed 100%",
    ]
    assert list(Notification.objects.values_list("event", flat=True)) == ["escalated", "opened"]
