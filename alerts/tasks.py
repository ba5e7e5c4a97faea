"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from alerts import services, webhooks


@shared_task(name="alerts.tasks.evaluate_alerts", ignore_result=True)
def evaluate_alerts() -> int:
    """Run by beat every 15 minutes: every workspace's budgets and integrations."""
    return services.alerts_evaluate_all()


@shared_task(name="alerts.tasks.evaluate_workspace_alerts", ignore_result=True)
def evaluate_workspace_alerts(workspace_id: int) -> None:
    """Run after a sync that stored data."""
    services.alerts_evaluate_workspace(workspace_id=workspace_id)


@shared_task(name="alerts.tasks.deliver_webhook", bind=True, ignore_result=True, max_retries=None)
def deliver_webhook(
    self, webhook_id: int, body: str, delivery_id: str, event: str, alert_id: int | None = None
) -> None:
    """One attempt to POST an alert change (or a ping) to a workspace's webhook; retried with
    exponential back-off on network errors, 5xx and 429 (alerts/webhooks.py decides)."""

    attempt = self.request.retries + 1
    result = webhooks.webhook_attempt(
        webhook_id=webhook_id, body=body, delivery_id=delivery_id, event=event, alert_id=alert_id, attempt=attempt
    )
    if result.retry:
        raise self.retry(countdown=webhooks.backoff_seconds(attempt, result.retry_after))
