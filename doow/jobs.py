"""The enqueue seam: how services ask for background work without importing the tasks.

Task modules sit on top (they call services), so a service that starts a job names its task
instead of importing it: `enqueue_on_commit("usage.tasks.rebuild_rollups", job.pk)`. The
name is the task's explicit `name=`; doow/tests/test_layers.py checks that every name given
here is a registered task. See docs/architecture.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Task
from django.db import transaction
from django.utils import timezone

from doow.celery import app

# A job still queued after this long means no worker is taking jobs: the page says so.
QUEUED_PATIENCE = timedelta(minutes=2)


def job_progress(job: Any) -> tuple[bool, bool]:
    """(active, stalled) of a workspace's background job as its page shows it (`job` None: there
    is none): active while it is queued or running, stalled while it has waited in the queue
    longer than QUEUED_PATIENCE."""
    active = job is not None and job.is_active
    stalled = active and job.status == job.Status.QUEUED and timezone.now() - job.created_at > QUEUED_PATIENCE
    return active, stalled


def task_named(name: str) -> Task:
    """The registered Celery task `name`, importing the apps' task modules on first use (a web
    process has not loaded them; a worker has).

    Only the imports: not `app.loader.import_default_modules()`, whose signal makes Celery's
    Django fixup prepare a worker in this process (django.setup() again, so the LOGGING
    dictConfig replaces the root logger's handlers and level, then every system check), in
    the middle of whichever request or command first enqueues a job."""
    if name not in app.tasks:
        app.autodiscover_tasks(force=True)  # every installed app's tasks.py, as the worker does
    return app.tasks[name]


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send task `name` with `args` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: task_named(name).delay(*args))
