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


def test_an_import_that_stored_spend_evaluates_at_once(
    workspace, openai, admin_user, admin_client, django_capture_on_commit_callbacks
):
    """An uploaded CSV (Company Settings → the integration → Import usage) is stored by the
    import task, which then evaluates the workspace like a sync does."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    AnomalyRule.objects.create(workspace=workspace, enabled=False)
    budget = Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    url = reverse("integrations:import_usage", kwargs={"ws": "acme", "pk": openai.pk})
    csv = b"bucket_start,bucket_end,metric,quantity,unit\n2026-12-06T00:00:00Z,2026-12-06T01:00:00Z,cost,120,USD\n"
    for _ in range(2):  # the same file again stores nothing new: nothing more to tell
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(url, {"file": SimpleUploadedFile("costs.csv", csv, content_type="text/csv")})
        assert response.status_code == 302
    alert = Alert.objects.get(budget=budget)
    assert alert.level == "exceeded" and alert.numbers["month_to_date"] == "120.00"
    assert [m.subject for m in mail.outbox] == ["[Doow] Opened: Budget AI spend passed 100%"]
