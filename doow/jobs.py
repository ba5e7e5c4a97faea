"""The enqueue seam: how services ask for background work without importing the tasks.

Task modules sit on top (they call services), so a service that starts a job names its task
instead of importing it: `enqueue_on_commit("usage.tasks.rebuild_rollups", job.pk)`. The
name is the task's explicit `name=`; doow/tests/test_layers.py checks that every name given
here is a registered task. See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from doow.celery import app

# A job still queued after this long means no worker is taking jobs: the page says so.
QUEUED_PATIENCE = timedelta(minutes=2)
# A running job's worker writes its heartbeat (the job's HEARTBEAT field) when it claims the job
# and after every step it stores (a week of estimates, an integration's rollups, a batch of
# re-attributed rows, a chunk of an import: seconds to a few minutes on the largest workspaces).
# A running job silent for longer than this lost its worker (killed, its machine gone): its page
# says it stalled, and beat takes it over long before the broker would redeliver its message
# (Redis: visibility_timeout, 12 hours; doow/settings.py).
HEARTBEAT_STALE = timedelta(minutes=15)
# A running job with no heartbeat was claimed by a worker of a release before the heartbeat (it
# never writes one, and never notices another claim): it is taken for lost only once the broker
# would redeliver its message anyway (Redis: visibility_timeout, 12 hours; doow/settings.py), so
# during a rolling deploy a job an old worker is still running is never started a second time.
NO_HEARTBEAT_PATIENCE = timedelta(hours=12)
# A job whose worker was lost this many times (each claim counts) is given up: it fails with an
# error telling the admin what to do, instead of taking down one worker after another.
MAX_CLAIMS = 3
# Beat sends a lost job again every few minutes until a worker claims it; a copy no worker took
# within this long is dropped when one finally receives it (a newer copy does the job), so the
# copies sent while no worker runs never pile up into a backlog of work.
RESEND_EXPIRES = timedelta(hours=1)


def job_last_progress(job: Any) -> datetime:
    """When the job's worker last wrote progress (a job an older release claimed has no
    heartbeat: its creation counts)."""
    return getattr(job, job.HEARTBEAT) or job.created_at


def job_lost(job: Any) -> bool:
    """A running job whose worker wrote no progress for HEARTBEAT_STALE (one with no heartbeat:
    older than NO_HEARTBEAT_PATIENCE)."""
    if job.status not in job.RUNNING:
        return False
    beat = getattr(job, job.HEARTBEAT)
    if beat is None:
        return timezone.now() - job.created_at > NO_HEARTBEAT_PATIENCE
    return timezone.now() - beat > HEARTBEAT_STALE


def jobs_lost(model: Any) -> Q:
    """`job_lost` as a filter on `model`'s jobs."""
    now = timezone.now()
    beat = model.HEARTBEAT
    return Q(status__in=model.RUNNING) & (
        Q(**{f"{beat}__lt": now - HEARTBEAT_STALE})
        | Q(**{f"{beat}__isnull": True, "created_at__lt": now - NO_HEARTBEAT_PATIENCE})
    )


def job_claim(model: Any, job_id: int, *, message: str | None = None, **fields: Any) -> int:
    """Claim the job for this run: a queued one, or a running one whose worker is lost (no
    heartbeat for HEARTBEAT_STALE: its message redelivered, or sent again by `jobs_resend_lost`),
    or a running one that `message` (the task message's id; None from a command in the
    foreground) claimed before: that message delivered again means its worker process died
    (Celery requeues a killed pool child's message at once), and waiting for the heartbeat to go
    stale would only delay it. Never one whose worker is alive otherwise (two workers do not
    run it at once), nor one lost MAX_CLAIMS times. Counts the claim, writes the heartbeat,
    the message and `fields`; returns the claim's number (0: not claimed). The run writes its
    progress through `job_heartbeat`/`job_mine` with that number: once another run claimed the
    job, they match nothing and the run stops (each kind's work is idempotent, so even a run
    still alive when its message comes back — the broker's redelivery after its visibility
    timeout — only loses the work since its last step)."""
    claims = model.CLAIMS
    again = jobs_lost(model)
    if message:
        again |= Q(status__in=model.RUNNING, claim_message=message)
    # Not a job lost MAX_CLAIMS times already: beat gives it up (jobs_resend_lost).
    claimable = (Q(status=model.Status.QUEUED) | again) & Q(**{f"{claims}__lt": MAX_CLAIMS})
    with transaction.atomic():
        claimed = model.objects.filter(claimable, pk=job_id).update(
            **{claims: F(claims) + 1, model.HEARTBEAT: timezone.now(), "claim_message": message or ""}, **fields
        )
        if not claimed:
            return 0
        return model.objects.filter(pk=job_id).values_list(claims, flat=True).get()


def job_mine(model: Any, job_id: int, claim: int) -> Any:
    """The job while this run still holds it (its claim is the latest and it is active)."""
    return model.objects.filter(pk=job_id, status__in=model.ACTIVE, **{model.CLAIMS: claim})


def job_finish(model: Any, job_id: int, status: str, *, claim: int | None = None, **fields: Any) -> None:
    """End the job with `status` and `fields` (`claim`: only while that run still holds it — a
    run claimed again by another worker goes on)."""
    ended = model.objects.filter(pk=job_id) if claim is None else job_mine(model, job_id, claim)
    ended.update(status=status, finished_at=timezone.now(), **fields)


def lost_too_often(what: str) -> str:
    """The first sentence of the error of a job beat gave up on (`what`: "the rebuild", …)."""
    return (
        f"Its worker stopped {MAX_CLAIMS} times before {what} finished (no progress for "
        f"{HEARTBEAT_STALE.total_seconds() / 60:.0f} minutes each time; the worker log or the host's memory may say why). "
    )


def job_heartbeat(model: Any, job_id: int, claim: int, **fields: Any) -> bool:
    """Write progress (`fields`) and the heartbeat of this run's job; False once the job was
    claimed again by another worker or ended (the run stops)."""
    return bool(job_mine(model, job_id, claim).update(**{model.HEARTBEAT: timezone.now()}, **fields))


def jobs_resend_lost(
    model: Any, task: str, *, given_up: str, on_given_up: Callable[[int], object] | None = None, **failed: Any
) -> tuple[int, int]:
    """Run by beat: send `task` again for every running job of `model` whose worker is lost, so a
    live worker claims it (`job_claim`) within minutes instead of the broker's redelivery hours
    later. A job lost MAX_CLAIMS times fails instead, with the error `given_up` (and `failed`
    fields; then `on_given_up(job_id)`). The job stays running (its page says it stalled) until a
    worker claims it; the copies sent while no worker takes them, and the lost message's own
    redelivery later, find it claimed or finished and do nothing. Returns (sent, given up)."""
    sent = failed_count = 0
    for job_id, claims in model.objects.filter(jobs_lost(model)).order_by("pk").values_list("pk", model.CLAIMS):
        if claims < MAX_CLAIMS:
            enqueue_on_commit(task, job_id, expires=RESEND_EXPIRES)
            sent += 1
            continue
        # Only while it is still lost at that claim: a worker may have claimed it meanwhile.
        lost = model.objects.filter(jobs_lost(model), pk=job_id, **{model.CLAIMS: claims})
        if lost.update(status=model.Status.FAILED, error=given_up, finished_at=timezone.now(), **failed):
            failed_count += 1
            if on_given_up is not None:
                on_given_up(job_id)
    return sent, failed_count


def job_progress(job: Any) -> tuple[bool, bool]:
    """(active, stalled) of a workspace's background job as its page shows it (`job` None: there
    is none): active while it is queued or running, stalled while it has waited in the queue
    longer than QUEUED_PATIENCE or its worker is lost (`job_lost`: the page says when it last
    wrote progress, and that beat retries it)."""
    active = job is not None and job.is_active
    queued_long = active and job.status == job.Status.QUEUED and timezone.now() - job.created_at > QUEUED_PATIENCE
    return active, queued_long or (active and job_lost(job))


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


def enqueue_on_commit(name: str, *args: Any, expires: timedelta | None = None) -> None:
    """Send task `name` with `args` once the current transaction commits (at once outside one);
    `expires`: a worker receiving the message later than that drops it unrun."""
    options: dict[str, Any] = {} if expires is None else {"expires": expires.total_seconds()}
    transaction.on_commit(lambda: task_named(name).apply_async(args, **options))
