"""Celery tasks of the usage app: thin wrappers that take ids and call services."""
from __future__ import annotations

import logging

from celery import shared_task

from usage import services

logger = logging.getLogger(__name__)


@shared_task(name="usage.tasks.reattribute_workspace", ignore_result=True)
def reattribute_workspace(job_id: int) -> None:
    """Re-attribute a workspace's usage after its rules changed (see services.reattribution_run)."""
    try:
        services.reattribution_run(job_id=job_id)
    except Exception:
        logger.exception("re-attribution job %s crashed", job_id)
