"""Celery tasks of the usage app: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from alerts.tasks import evaluate_workspace_alerts
from usage import import_jobs, partitions, rollup_jobs, services
from usage.models import UsageImport
from usage.pricing import services as pricing_services

logger = logging.getLogger(__name__)


@shared_task(name="usage.tasks.reattribute_workspace", bind=True, ignore_result=True)
def reattribute_workspace(self: Task, job_id: int) -> None:
    """Re-attribute a workspace's usage after its rules changed (see services.reattribution_run)."""
    try:
        services.reattribution_run(job_id=job_id, message=self.request.id)
    except Exception:
        logger.exception("re-attribution job %s crashed", job_id)


@shared_task(name="usage.tasks.import_usage", bind=True, ignore_result=True)
def import_usage(self: Task, job_id: int) -> None:
    """Check and store an uploaded usage CSV (see usage/import_jobs.py)."""
    try:
        job = import_jobs.usage_import_run(job_id=job_id, message=self.request.id)
    except Exception:
        logger.exception("usage import %s crashed", job_id)
        return
    if job.status == UsageImport.Status.DONE and job.rows:
        # Spend may have changed: budgets and anomalies are evaluated now, as after a sync.
        evaluate_workspace_alerts.delay(job.workspace_id)


@shared_task(name="usage.tasks.expire_usage_imports", ignore_result=True)
def expire_usage_imports() -> None:
    """Run by beat every hour: drop files no worker finished, delete old finished jobs."""
    expired, deleted = import_jobs.usage_import_expire()
    if expired or deleted:
        logger.info("usage imports: %s expired, %s old jobs deleted", expired, deleted)


@shared_task(name="usage.tasks.resend_lost_jobs", ignore_result=True)
def resend_lost_jobs() -> None:
    """Run by beat every few minutes: send again the imports, re-attributions and rollup
    rebuilds whose worker is lost (no progress for doow.jobs.HEARTBEAT_STALE), so another worker
    takes them over now rather than when the broker redelivers their message (Redis: 12 hours);
    one lost too often fails with an error saying what to do. (A lost price recompute is
    handled by its own hourly check, recompute_prices_if_changed.)"""
    for kind, resend in (
        ("usage import", import_jobs.usage_import_resend_lost),
        ("re-attribution", services.reattribution_resend_lost),
        ("rollup rebuild", rollup_jobs.rollup_rebuild_resend_lost),
    ):
        sent, given_up = resend()
        if sent or given_up:
            logger.warning("%s: %s jobs whose worker stopped sent again, %s given up", kind, sent, given_up)


@shared_task(name="usage.tasks.rebuild_rollups", bind=True, ignore_result=True)
def rebuild_rollups(self: Task, job_id: int) -> None:
    """Rebuild a workspace's daily rollups, e.g. after its time zone changed (usage/rollup_jobs.py)."""
    try:
        rollup_jobs.rollup_rebuild_run(job_id=job_id, message=self.request.id)
    except Exception:
        logger.exception("rollup rebuild %s crashed", job_id)


@shared_task(name="usage.tasks.manage_usage_partitions", ignore_result=True)
def manage_usage_partitions() -> None:
    """Run by beat daily: the coming months' partitions, the raw retention (usage/partitions.py)."""
    partitions.usage_partitions_manage()


@shared_task(name="usage.tasks.recompute_prices", ignore_result=True)
def recompute_prices(job_id: int, send: int | None = None) -> None:
    """Recompute a workspace's estimates after its price overrides or the list prices changed
    (usage.pricing.services). Routed to the `pricing` queue (settings.CELERY_TASK_ROUTES).
    `send`: the message's number (None from an older release: run it)."""
    try:
        pricing_services.pricing_recompute_run(job_id=job_id, send=send)
    except Exception:
        logger.exception("price recompute job %s crashed", job_id)


@shared_task(name="usage.tasks.recompute_prices_if_changed", ignore_result=True)
def recompute_prices_if_changed() -> None:
    """Run by beat every hour: recompute the estimates of every workspace once the installed
    list-price data changed (usage.pricing.services.pricing_recompute_if_prices_changed)."""
    pricing_services.pricing_recompute_if_prices_changed()
