"""When evaluation runs: beat every 15 minutes, and a sync that stored data evaluates its
workspace's alerts at once (not at the next beat tick)."""

from __future__ import annotations

from django.core import mail

from alerts.models import Alert, AnomalyRule, Budget
from integrations.tasks import sync_integration


def test_sync_that_stored_data_evaluates_budgets(workspace, openai_integration):
    AnomalyRule.objects.create(workspace=workspace, enabled=False)
    budget = Budget.objects.create(workspace=workspace, name="Tiny", amount="0.01", alert_on_forecast=False)
    sync_integration.delay(openai_integration.pk)  # the Celery task (eager in tests)
    alert = Alert.objects.get(budget=budget)
    assert alert.level == "exceeded" and alert.numbers["month_to_date"] != "0.00"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    sync_integration.delay(openai_integration.pk)  # re-reads the same data: nothing to tell
    assert len(mail.outbox) == 1


def test_beat_runs_the_evaluation_every_fifteen_minutes():
    """The schedule `celery beat` reads (the Celery app's configuration, from the settings)."""
    from doow.celery import app

    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == "alerts.tasks.evaluate_alerts"]
    assert len(entries) == 1 and entries[0]["schedule"] == 900.0
    assert entries[0]["options"]["expires"] < 900  # a tick that waited too long gives way to the next
    assert app.tasks["alerts.tasks.evaluate_alerts"].name == "alerts.tasks.evaluate_alerts"
