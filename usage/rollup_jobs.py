"""Rebuilding a workspace's daily rollups in the background, with progress.

Asked for when an admin changes the workspace's time zone (Company Settings → General: every
local day moves) and by `manage.py rebuild_rollups`. The job recomputes one integration per
transaction (usage.rollups.rebuild_workspace), recording how many are done; a newer request for
the same workspace supersedes it (the newer job redoes everything in the zone then current).
Store chunks, imports and re-attribution keep running meanwhile: each reads the zone afresh
and takes the integration's rollup lock, so whatever commits is counted in the current zone.

The worker writes a heartbeat when it claims the job and after each span of days it rebuilds; a job whose
worker is lost (doow.jobs.HEARTBEAT_STALE) is sent again by beat (`rollup_rebuild_resend_lost`)
and rebuilt from the start by whichever worker claims it: rebuilding an integration replaces
its rollups, so a second run counts every row once.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from doow.jobs import (
    enqueue_on_commit,
    job_claim,
    job_finish,
    job_heartbeat,
    jobs_resend_lost,
    lost_too_often,
)
from usage import rollups
from usage.models import RollupRebuildJob

logger = logging.getLogger(__name__)
Status = RollupRebuildJob.Status
SUPERSEDED = "A newer rebuild was requested; it rebuilds everything."
GIVEN_UP = lost_too_often("the rebuild") + (
    "Daily totals may still count days in the previous zone: once the workers are healthy, whoever runs Doow "
    "can rebuild them with `manage.py rebuild_rollups`."
)


class _Superseded(Exception):
    pass


def rollup_rebuild_request(*, workspace) -> RollupRebuildJob:
    """Queue a rebuild of the workspace's rollups, started once this transaction commits.
    A job still queued is reused (it reads the zone only when it starts)."""
    with transaction.atomic():
        job = workspace.rollup_rebuild_jobs.select_for_update().filter(status=Status.QUEUED).order_by("-pk").first()
        if job is None:
            job = RollupRebuildJob.objects.create(workspace=workspace, time_zone=workspace.time_zone)
        elif job.time_zone != workspace.time_zone:
            job.time_zone = workspace.time_zone
            job.save(update_fields=["time_zone"])
    job_id = job.pk
    enqueue_on_commit("usage.tasks.rebuild_rollups", job_id)
    return job


def rollup_rebuild_latest(*, workspace) -> RollupRebuildJob | None:
    return workspace.rollup_rebuild_jobs.order_by("-pk").first()


def _newer_exists(job: RollupRebuildJob) -> bool:
    return RollupRebuildJob.objects.filter(workspace_id=job.workspace_id, pk__gt=job.pk).exists()


def _finish(job_id: int, status: str, *, claim: int | None = None, **fields: object) -> None:
    job_finish(RollupRebuildJob, job_id, status, claim=claim, **fields)


def rollup_rebuild_run(*, job_id: int, message: str | None = None) -> RollupRebuildJob:
    """Run a queued job, or a running one whose worker is lost (redelivered, or sent again by
    beat) or that `message` claimed before (its worker process died: doow.jobs.job_claim); a
    finished one, or one whose worker is alive, is left alone."""
    job = RollupRebuildJob.objects.select_related("workspace").get(pk=job_id)
    if not job.is_active:
        return job
    if _newer_exists(job):
        _finish(job.pk, Status.FAILED, error=SUPERSEDED)
        return RollupRebuildJob.objects.get(pk=job_id)
    workspace = job.workspace
    claim = job_claim(
        RollupRebuildJob,
        job.pk,
        message=message,
        status=Status.RUNNING,
        done=0,
        error="",
        time_zone=workspace.time_zone,
        started_at=timezone.now(),
    )
    if not claim:
        return RollupRebuildJob.objects.get(pk=job_id)

    def progress(done: int, total: int) -> None:
        if not job_heartbeat(RollupRebuildJob, job.pk, claim, done=done, total=total) or _newer_exists(job):
            raise _Superseded

    def alive() -> None:
        # A large integration's days take many minutes: its worker is not taken for lost meanwhile.
        if not job_heartbeat(RollupRebuildJob, job.pk, claim):
            raise _Superseded

    try:
        written = rollups.rebuild_workspace(workspace, on_integration=progress, on_span=alive)
    except _Superseded:
        _finish(job.pk, Status.FAILED, error=SUPERSEDED, claim=claim)
    except Exception as exc:
        logger.exception("rollup rebuild %s failed", job.pk)
        _finish(
            job.pk,
            Status.FAILED,
            error=f"The rebuild failed ({type(exc).__name__}); the details are in the worker log.",
            claim=claim,
        )
    else:
        logger.info("rollup rebuild %s: %s rollup rows for workspace %s", job.pk, written, workspace.pk)
        job.refresh_from_db(fields=["total"])
        _finish(job.pk, Status.DONE, done=job.total, claim=claim)
    return RollupRebuildJob.objects.get(pk=job_id)


def rollup_rebuild_resend_lost() -> tuple[int, int]:
    """Run by beat: send again every rebuild whose worker is lost; give up on one lost
    MAX_CLAIMS times (GIVEN_UP). Returns (sent, given up)."""
    return jobs_resend_lost(RollupRebuildJob, "usage.tasks.rebuild_rollups", given_up=GIVEN_UP)
