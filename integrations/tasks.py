"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

from alerts.tasks import evaluate_workspace_alerts
from integrations import engine, services

logger = logging.getLogger(__name__)


@shared_task(name="integrations.tasks.dispatch_due_syncs", ignore_result=True)
def dispatch_due_syncs() -> list[int]:
    """Run by beat every minute: enqueue every integration whose sync is due."""
    return engine.integration_dispatch_due()


@shared_task(name="integrations.tasks.sync_integration", ignore_result=True)
def sync_integration(integration_id: int, trigger: str = "schedule") -> None:
    try:
        run = engine.integration_sync(integration_id=integration_id, trigger=trigger)
    except engine.SyncBusy:
        logger.info("integration %s is already being synced; skipping", integration_id)
    except services.SyncNotAllowed as exc:
        logger.info("not syncing integration %s: %s", integration_id, exc)
    except Exception:  # one integration never takes the worker down
        logger.exception("sync of integration %s crashed", integration_id)
    else:
        if run.rows_written or run.rows_removed:
            # Spend changed: budgets and anomalies are evaluated now, not at the next beat tick.
            evaluate_workspace_alerts.delay(run.integration.workspace_id)
