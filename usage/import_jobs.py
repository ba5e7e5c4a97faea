"""Usage imports as background jobs: the upload waits in the database, a worker imports it.

A file of 200k rows takes minutes to check and store, longer than a web request may take
(gunicorn's worker timeout answered HTTP 500 and nothing was stored). The page's upload only
saves the file in a UsageImport row and enqueues its id; a Celery worker checks and stores
it through usage.importer, all rows or none as before, reporting progress on the row; the
page polls it. `manage.py import_usage` runs the same job in the foreground.

The bytes live in the database every worker reads (never on the web host's disk) and are
dropped as soon as the import ends; finished jobs are deleted after KEEP_FINISHED, and a
file that no worker finished within KEEP_UNFINISHED is dropped with its job failed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from doow.jobs import enqueue_on_commit
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
# A job whose worker reported nothing for this long is taken for dead: the page says so and
# takes a new upload.
STALLED_AFTER = timedelta(minutes=10)
KEEP_UNFINISHED = timedelta(days=7)
KEEP_FINISHED = timedelta(days=30)
# A job whose worker died this many times (redelivered each time) is given up.
MAX_ATTEMPTS = 3


class UsageImportBusy(Exception):
    """The integration already has an import in progress."""


def usage_import_stalled(job: UsageImport, *, now: datetime | None = None) -> bool:
    """An active job with no news for STALLED_AFTER (a killed worker, a lost message)."""
    now = now or timezone.now()
    return job.is_active and now - (job.updated_at or job.created_at) > STALLED_AFTER


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
    if current is not None and current.is_active and not usage_import_stalled(current):
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


def usage_import_run(*, job_id: int) -> UsageImport:
    """Check and store a queued import (the Celery task and the command call this).

    A job found checking or storing is run again (its worker died and the task was
    redelivered; storing is idempotent), up to MAX_ATTEMPTS; a finished one is left alone.
    """
    now = timezone.now()
    claimed = UsageImport.objects.filter(pk=job_id, status__in=UsageImport.ACTIVE, attempts__lt=MAX_ATTEMPTS).update(
        status=Status.CHECKING,
        attempts=F("attempts") + 1,
        started_at=now,
        updated_at=now,
        lines_checked=0,
        rows_prepared=0,
    )
    job = UsageImport.objects.select_related("integration__workspace").get(pk=job_id)
    if not claimed:
        if job.is_active:
            _crashed(
                job,
                f"The import stopped {job.attempts} times before finishing (its worker was killed, perhaps out of "
                "memory); nothing was stored. Split the file by date range and import the parts.",
            )
        return _reload(job_id)

    def progress(phase: str, done: int, total: int) -> None:
        fields: dict[str, object] = {"updated_at": timezone.now()}
        if phase == "checking":
            fields.update(status=Status.CHECKING, lines_checked=done)
        else:
            fields.update(status=Status.STORING, rows_prepared=done, rows=total)
        UsageImport.objects.filter(pk=job_id).update(**fields)

    def stored(result: ImportResult) -> None:
        # Inside the import's transaction: the job is done exactly when its rows are stored.
        finished = timezone.now()
        UsageImport.objects.filter(pk=job_id).update(
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

    try:
        usage_import_csv(
            integration=job.integration,
            data=bytes(job.data),
            fmt=job.requested_format,
            source=job.source,
            progress=progress,
            on_stored=stored,
        )
    except UsageImportError as error:  # the file's fault: its problems are on the job and in the event log
        _fill_failure(job, error)
        UsageImport.objects.filter(pk=job_id).update(
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
        )
    return _reload(job_id)


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


# ---------------------------------------------------------------- helpers
def _fill_failure(job: UsageImport, error: UsageImportError) -> None:
    job.status = Status.FAILED
    job.problems = [[p.line, p.message] for p in error.problems]
    job.problems_total = error.total
    job.data = b""
    job.finished_at = timezone.now()
    job.updated_at = job.finished_at


def _crashed(job: UsageImport, message: str) -> None:
    finished = timezone.now()
    UsageImport.objects.filter(pk=job.pk).update(
        status=Status.FAILED, error=message, data=b"", updated_at=finished, finished_at=finished
    )
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
