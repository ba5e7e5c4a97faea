"""doow/jobs.py's job_progress: how the settings pages (re-attribution, pricing, rollup rebuild)
judge their latest background job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from doow.jobs import QUEUED_PATIENCE, job_progress
from usage.models import ReattributionJob, RollupRebuildJob


def _job(model, workspace, status: str, age: timedelta):
    job = model.objects.create(workspace=workspace, status=status)
    model.objects.filter(pk=job.pk).update(created_at=timezone.now() - age)
    job.refresh_from_db()
    return job


def test_no_job_is_neither_active_nor_stalled():
    assert job_progress(None) == (False, False)


@pytest.mark.parametrize("model", [ReattributionJob, RollupRebuildJob])
@pytest.mark.parametrize(
    ("status", "age", "expected"),
    [
        ("queued", timedelta(seconds=5), (True, False)),  # just asked for
        ("queued", QUEUED_PATIENCE + timedelta(seconds=1), (True, True)),  # no worker took it
        ("running", QUEUED_PATIENCE * 10, (True, False)),  # a worker has it, however long
        ("done", QUEUED_PATIENCE * 10, (False, False)),
        ("failed", timedelta(seconds=5), (False, False)),
    ],
)
def test_active_while_queued_or_running_and_stalled_only_when_queued_too_long(
    db, workspace, model, status, age, expected
):
    assert job_progress(_job(model, workspace, status, age)) == expected
