"""doow/jobs.py: job_progress, how the settings pages (re-attribution, pricing, rollup rebuild)
judge their latest background job; task_named, how a process that is no worker finds a task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from doow.jobs import HEARTBEAT_STALE, NO_HEARTBEAT_PATIENCE, QUEUED_PATIENCE, job_progress
from usage.models import ReattributionJob, RollupRebuildJob


def _job(model, workspace, status: str, age: timedelta, silent: timedelta | None = None):
    job = model.objects.create(workspace=workspace, status=status)
    beat = None if silent is None else timezone.now() - silent
    model.objects.filter(pk=job.pk).update(created_at=timezone.now() - age, heartbeat_at=beat)
    job.refresh_from_db()
    return job


def test_no_job_is_neither_active_nor_stalled():
    assert job_progress(None) == (False, False)


@pytest.mark.parametrize("model", [ReattributionJob, RollupRebuildJob])
@pytest.mark.parametrize(
    ("status", "age", "silent", "expected"),
    [
        ("queued", timedelta(seconds=5), None, (True, False)),  # just asked for
        ("queued", QUEUED_PATIENCE + timedelta(seconds=1), None, (True, True)),  # no worker took it
        ("running", HEARTBEAT_STALE * 10, timedelta(seconds=5), (True, False)),  # its worker alive, however long
        ("running", HEARTBEAT_STALE * 10, HEARTBEAT_STALE + timedelta(seconds=1), (True, True)),  # its worker lost
        # An older release's worker (no heartbeat): left to it until the broker would redeliver.
        ("running", HEARTBEAT_STALE * 10, None, (True, False)),
        ("running", NO_HEARTBEAT_PATIENCE + timedelta(seconds=1), None, (True, True)),
        ("done", HEARTBEAT_STALE * 10, HEARTBEAT_STALE * 10, (False, False)),
        ("failed", timedelta(seconds=5), None, (False, False)),
    ],
)
def test_active_while_queued_or_running_and_stalled_when_queued_too_long_or_its_worker_is_lost(
    db, workspace, model, status, age, silent, expected
):
    assert job_progress(_job(model, workspace, status, age, silent)) == expected


# A fresh process, as a web process is before its first job: Django set up, the operator's
# log handler on the root logger, no task module imported yet.
FIRST_ENQUEUE = """
import json, logging, django
django.setup()
import sys
from doow.jobs import task_named
handler = logging.StreamHandler(sys.stderr)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.DEBUG)
before = sorted(sys.modules)
task = task_named("integrations.tasks.sync_integration")
print(json.dumps({
    "task": task.name,
    "imported": "integrations.tasks" not in before and "integrations.tasks" in sys.modules,
    "handler kept": handler in logging.getLogger().handlers,
    "level kept": logging.getLogger().level == logging.DEBUG,
}))
"""


def test_the_first_job_a_process_enqueues_imports_the_tasks_and_leaves_its_logging_alone():
    """Looking a task up imports the apps' task modules, and only that: Celery's worker
    preparation (django.setup() again, whose LOGGING dictConfig replaces the root logger's
    handlers and level, then every system check) has no business in a web process."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "doow.settings_test", "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_ENQUEUE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "task": "integrations.tasks.sync_integration",
        "imported": True,
        "handler kept": True,
        "level kept": True,
    }
