"""Celery tasks: thin wrappers that take ids and call services."""
from __future__ import annotations

from celery import shared_task

from alerts import services


@shared_task(name="alerts.tasks.evaluate_alerts", ignore_result=True)
def evaluate_alerts() -> int:
    """Run by beat every 15 minutes: every workspace's budgets and integrations."""
    return services.alerts_evaluate_all()


@shared_task(name="alerts.tasks.evaluate_workspace_alerts", ignore_result=True)
def evaluate_workspace_alerts(workspace_id: int) -> None:
    """Run after a sync that stored data."""
    services.alerts_evaluate_workspace(workspace_id=workspace_id)
