"""Usage imports as background jobs: the upload waits in the database, a worker imports it.

A file of 200k rows takes minutes to check and store, longer than a web request may take
(gunicorn's worker timeout answered HTTP 500 and nothing was stored). The page's upload only
saves the file in a UsageImport row and enqueues its id; a Celery worker checks and stores
it through usage.importer, all rows or none as before, reporting progress on the row; the
page polls it. `manage.py import_usage` runs the same job in the foreground.

The bytes live in the database every worker reads (never on the web host's disk) and are
dropped as soon as the import ends; finished jobs are deleted after KEEP_FINISHED, and a
file that no worker finished within KEEP_UNFINISHED is dropped with its job failed.

The worker writes a heartbeat (`updated_at`) when it claims the job and as it checks and
stores; a job whose worker is lost (doow.jobs.HEARTBEAT_STALE) is sent again by beat
(`usage_import_resend_lost`) and imported from the start by whichever worker claims it. The
rows are stored in one transaction, by their natural key, and only while the run still holds
the job: a lost run stored nothing, and a second run stores each row once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from doow.jobs import MAX_CLAIMS, enqueue_on_commit, job_claim, job_heartbeat, job_lost, job_mine, jobs_resend_lost
from integrations.events import integration_record_event
from integrations.models import IntegrationEvent
from usage.importer import (
    DISCONNECTED,
    FORMATS,
    ImportProblem,
    ImportResult,
    UsageImportError,
    read_limited,
    usage_import_csv,
    usage_import_record_rejection,
)
from usage.models import UsageImport

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from integrations.models import Integration

logger = logging.getLogger(__name__)

Status = UsageImport.Status
# A job still queued this long (its message lost) is stalled, as is one whose worker is lost
# (doow.jobs.job_lost): the page says so and takes a new upload, which replaces it.
STALLED_AFTER = timedelta(minutes=10)
KEEP_UNFINISHED = timedelta(days=7)
KEEP_FINISHED = timedelta(days=30)
# A job whose worker died this many times (sent again or redelivered each time) is given up.
MAX_ATTEMPTS = MAX_CLAIMS
GIVEN_UP = (
    f"The import stopped {MAX_ATTEMPTS} times before finishing (its worker was stopped or killed, perhaps out of "
    "memory); nothing was stored. Split the file by date range and import the parts."
)
REPLACED = "A new file was uploaded while this import was stalled; nothing of this one was stored."
INTERRUPTED = "The import command was interrupted before it finished; nothing was stored. Run it again."


class _Superseded(Exception):
    """Another worker claimed the job (this run's worker was taken for lost): it goes on."""


class UsageImportBusy(Exception):
    """The integration already has an import in progress."""


def usage_import_stalled(job: UsageImport, *, now: datetime | None = None) -> bool:
    """A job queued for STALLED_AFTER (a lost message), or one whose worker is lost (no progress
    for HEARTBEAT_STALE: beat sends it again)."""
    now = now or timezone.now()
    queued = job.status == Status.QUEUED and now - (job.updated_at or job.created_at) > STALLED_AFTER
    return queued or job_lost(job)


def usage_import_latest(*, integration: Integration) -> UsageImport | None:
    return integration.usage_imports.defer("data").first()


def usage_import_request(
    *,
    integration: Integration,
    stream: IO[bytes],
    size: int | None = None,
    fmt: str = "auto",
    source: str = "",
    user: AbstractBaseUser | AnonymousUser | None = None,
    enqueue: bool = True,
) -> UsageImport:
    """Keep an uploaded file for import and enqueue the job once this transaction commits.

    A file refused without reading it (over the size limit, unknown format, a disconnected
    integration) gives a failed job at once, with its event, and nothing queued. Raises
    UsageImportBusy while another import of the integration is in progress.
    """
    current = usage_import_latest(integration=integration)
    if current is not None and current.is_active:
        # A stalled one is replaced (unless a worker claimed it meanwhile): beat must not import
        # the old file after the new one.
        replaced = UsageImport.objects.filter(pk=current.pk, status=current.status, attempts=current.attempts)
        if not usage_import_stalled(current) or not replaced.update(
            status=Status.FAILED, error=REPLACED, data=b"", finished_at=timezone.now()
        ):
            raise UsageImportBusy(
                f"An import of {current.source or 'a CSV file'} is still in progress; wait for it to finish before uploading another file."
            )
    job = UsageImport(
        workspace_id=integration.workspace_id,
        integration=integration,
        created_by=user if user is not None and user.is_authenticated else None,  # type: ignore[misc]  # the AUTH_USER_MODEL
        source=" ".join(source.split())[:200],
        requested_format=fmt[:16],
        size=size or 0,
    )
    try:
        if fmt not in FORMATS:
            raise UsageImportError([ImportProblem(None, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")])
        if integration.status == integration.Status.DISCONNECTED:
            raise UsageImportError([ImportProblem(None, DISCONNECTED)])
        data = read_limited(stream, size=size)
    except UsageImportError as error:
        usage_import_record_rejection(integration=integration, error=error, source=source)
        _fill_failure(job, error)
        job.save()
        return job
    job.data = data
    job.size = len(data)
    # Lines after the header: an estimate for the progress bar until the file is read.
    job.lines_total = max(0, data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1)
    with transaction.atomic():
        job.save()
        if enqueue:
            enqueue_on_commit("usage.tasks.import_usage", job.pk)
    return job


def usage_import_run(*, job_id: int, message: str | None = None) -> UsageImport:
    """Check and store a queued import (the Celery task and the command call this).

    A job found checking or storing is run again from the start once its worker is lost (no
    progress for HEARTBEAT_STALE: its message redelivered, or sent again by beat) or `message`
    claimed it before (its worker process died: doow.jobs.job_claim) — nothing of the lost run
    was stored — up to MAX_ATTEMPTS; one whose worker is alive, or a finished one, is left alone.
    """
    now = timezone.now()
    claim = job_claim(
        UsageImport, job_id, message=message, status=Status.CHECKING, started_at=now, lines_checked=0, rows_prepared=0
    )
    job = UsageImport.objects.select_related("integration__workspace").get(pk=job_id)
    if not claim:
        if job.attempts >= MAX_ATTEMPTS and (job.status == Status.QUEUED or job_lost(job)):
            _crashed(job, GIVEN_UP)
        return _reload(job_id)

    def progress(phase: str, done: int, total: int) -> None:
        fields: dict[str, object] = {}
        if phase == "checking":
            fields.update(status=Status.CHECKING, lines_checked=done)
        else:
            fields.update(status=Status.STORING, rows_prepared=done, rows=total)
        if not job_heartbeat(UsageImport, job_id, claim, **fields):
            raise _Superseded

    def stored(result: ImportResult) -> None:
        # Inside the import's transaction: the job is done exactly when its rows are stored.
        finished = timezone.now()
        done = job_mine(UsageImport, job_id, claim).update(
            status=Status.DONE,
            format=result.format,
            rows=result.stored,
            rows_prepared=result.stored,
            lines_checked=result.rows,
            lines_total=result.rows,
            first_start=result.first_start,
            last_end=result.last_end,
            data=b"",
            updated_at=finished,
            finished_at=finished,
        )
        if not done:  # claimed again meanwhile: this run's rows roll back, the newer run stores them
            raise _Superseded

    try:
        usage_import_csv(
            integration=job.integration,
            data=bytes(job.data),
            fmt=job.requested_format,
            source=job.source,
            progress=progress,
            on_stored=stored,
        )
    except _Superseded:
        logger.info("usage import %s was claimed again by another worker; the newer run goes on", job_id)
    except UsageImportError as error:  # the file's fault: its problems are on the job and in the event log
        _fill_failure(job, error)
        job_mine(UsageImport, job_id, claim).update(
            status=job.status,
            problems=job.problems,
            problems_total=job.problems_total,
            data=b"",
            updated_at=job.finished_at,
            finished_at=job.finished_at,
        )
    except Exception as exc:  # a bug must not leave the job "checking" forever
        logger.exception("usage import %s failed unexpectedly", job_id)
        _crashed(
            job,
            f"Unexpected error during the import ({type(exc).__name__}); nothing was stored. The details are in the worker log.",
            claim=claim,
        )
    return _reload(job_id)


def usage_import_interrupted(*, job_id: int) -> bool:
    """An import run in the foreground (`manage.py import_usage`) was stopped: fail it, nothing
    stored, while no worker has claimed it since (its claim has no message). True if it failed."""
    finished = timezone.now()
    return bool(
        UsageImport.objects.filter(pk=job_id, status__in=UsageImport.ACTIVE, claim_message="").update(
            status=Status.FAILED, error=INTERRUPTED, data=b"", updated_at=finished, finished_at=finished
        )
    )


def usage_import_expire(*, now: datetime | None = None) -> tuple[int, int]:
    """Drop files no worker finished within KEEP_UNFINISHED (their jobs fail, with an event)
    and delete jobs finished more than KEEP_FINISHED ago. Returns (expired, deleted)."""
    now = now or timezone.now()
    cutoff = now - KEEP_UNFINISHED
    stale = UsageImport.objects.filter(status__in=UsageImport.ACTIVE).filter(
        Q(updated_at__lt=cutoff) | Q(updated_at__isnull=True, created_at__lt=cutoff)
    )
    expired = 0
    for job in stale.defer("data").select_related("integration__workspace"):
        _crashed(
            job,
            f"No worker finished this import within {KEEP_UNFINISHED.days} days; the file was dropped. Upload it again.",
        )
        expired += 1
    deleted, _ = UsageImport.objects.filter(
        status__in=(Status.DONE, Status.FAILED), finished_at__lt=now - KEEP_FINISHED
    ).delete()
    return expired, deleted


def usage_import_resend_lost() -> tuple[int, int]:
    """Run by beat: send again every import whose worker is lost; give up on one lost
    MAX_ATTEMPTS times (GIVEN_UP, with its integration event). Returns (sent, given up)."""
    return jobs_resend_lost(
        UsageImport,
        "usage.tasks.import_usage",
        given_up=GIVEN_UP,
        on_given_up=lambda job_id: _crash_event(_reload(job_id), GIVEN_UP),
        data=b"",
        updated_at=timezone.now(),
    )


# ---------------------------------------------------------------- helpers
def _fill_failure(job: UsageImport, error: UsageImportError) -> None:
    job.status = Status.FAILED
    job.problems = [[p.line, p.message] for p in error.problems]
    job.problems_total = error.total
    job.data = b""
    job.finished_at = timezone.now()
    job.updated_at = job.finished_at


def _crashed(job: UsageImport, message: str, *, claim: int | None = None) -> None:
    """Fail the job with `message` and its event (`claim`: only while that run still holds it —
    a run another worker claimed meanwhile fails nothing of the newer run's)."""
    finished = timezone.now()
    jobs = UsageImport.objects.filter(pk=job.pk) if claim is None else job_mine(UsageImport, job.pk, claim)
    if jobs.update(status=Status.FAILED, error=message, data=b"", updated_at=finished, finished_at=finished):
        _crash_event(job, message)


def _crash_event(job: UsageImport, message: str) -> None:
    of = f" of {job.source}" if job.source else ""
    integration_record_event(
        integration=job.integration,
        level=IntegrationEvent.Level.ERROR,
        category=IntegrationEvent.Category.IMPORT,
        message=f"Usage import{of} failed. {message}",
        hint="Nothing already stored was changed. If this repeats, report it to your operator.",
    )


def _reload(job_id: int) -> UsageImport:
    return UsageImport.objects.defer("data").select_related("integration__workspace").get(pk=job_id)
