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


def task_named(name: str) -> Task:
    """The registered Celery task `name`, importing the apps' task modules on first use (a web
    process has not loaded them; a worker has)."""
    if name not in app.tasks:
        app.loader.import_default_modules()  # runs the autodiscovery of every app's tasks.py
    return app.tasks[name]


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send task `name` with `args` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: task_named(name).delay(*args))


# A job still queued this long after it was asked for: no worker took it (the page says to check
# the worker).
QUEUED_PATIENCE = timedelta(minutes=2)


def job_progress(job: Any) -> tuple[bool, bool]:
    """(active, stalled) for a page showing a workspace's latest background job (a
    usage.models.BackgroundJob, or None): active while queued or running; stalled while still
    queued QUEUED_PATIENCE after it was created."""
    active = job is not None and job.is_active
    stalled = active and job.status == job.Status.QUEUED and timezone.now() - job.created_at > QUEUED_PATIENCE
    return active, stalled
