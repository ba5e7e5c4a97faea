"""Price overrides and the background recomputation of estimates they trigger.

Saving or deleting an override requests a recompute job for the workspace in the same
transaction, enqueued after commit (a queued job is reused: it reads the overrides when it
starts). The job walks the workspace's usage integration by integration, a week at a time,
and stores each week's estimates through the usage store with an answer for every estimate
stream of that week, so an estimate that no longer applies is removed like any ghost.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Q, Subquery
from django.utils import timezone

from doow.jobs import HEARTBEAT_STALE, QUEUED_PATIENCE, enqueue_on_commit, job_lost, jobs_lost
from integrations.providers.base import Answered, UsageSample, Window, align_down
from usage.models import DIMENSION_FIELDS, PriceOverride, PricingRecomputeJob, UsageDaily
from usage.pricing.estimate import ESTIMATED_COST, estimate_stream, is_estimate_stream, pricing_estimate_samples
from usage.pricing.overrides import load_overrides
from usage.pricing.prices import PRICED_METRICS, price_data_version
from usage.rollups import level_for
from usage.store import usage_store_chunk

if TYPE_CHECKING:
    from accounts.models import Workspace

logger = logging.getLogger(__name__)

STEP = timedelta(days=7)
# Beat retries a failed recompute of the same price data after RETRY_BACKOFF × its attempt, up
# to MAX_ATTEMPTS attempts; then the job stays failed and the Pricing page says so.
MAX_ATTEMPTS = 3
RETRY_BACKOFF = timedelta(hours=1)
# A running job's worker writes its heartbeat when it claims the job and after every week of an
# integration it stores (one week's priced usage: thousands of rows, seconds to a few minutes on
# the largest workspaces); a running job silent for longer than doow.jobs.HEARTBEAT_STALE lost
# its worker (killed, the machine gone). Beat, a new request and a redelivered message then
# take it over.
LOST_ERROR = f"Its worker stopped (no progress for {HEARTBEAT_STALE.total_seconds() / 60:.0f} minutes); the recompute starts again."
Status = PricingRecomputeJob.Status


def price_override_create(*, workspace: Workspace, user=None, **fields) -> PriceOverride:
    with transaction.atomic():
        override = PriceOverride.objects.create(workspace=workspace, created_by=user, **fields)
        pricing_recompute_request(workspace=workspace)
    return override


def price_override_delete(*, override: PriceOverride) -> None:
    with transaction.atomic():
        workspace = override.workspace
        override.delete()
        pricing_recompute_request(workspace=workspace)


def pricing_recompute_request(
    *, workspace: Workspace, requested: str | None = None, attempt: int = 1
) -> PricingRecomputeJob:
    """The workspace's one active recompute, asked for once the transaction commits.

    A workspace has at most one queued or running job (a partial unique constraint; the
    workspace row is locked meanwhile). A queued job is reused (it reads the overrides and
    prices when it starts) and sent again if it waited longer than QUEUED_PATIENCE (its message
    was lost); a running one is marked to run again once it ends, so a change it may have
    missed is applied after it. `requested`: the price data the caller wants applied (beat);
    `attempt`: a new job's attempt at it (beat's retry of a failed one)."""
    from accounts.models import Workspace

    requested = requested or price_data_version()
    with transaction.atomic():
        Workspace.objects.select_for_update(no_key=True).filter(pk=workspace.pk).first()
        job = workspace.pricing_jobs.filter(status__in=PricingRecomputeJob.ACTIVE).first()
        if job is None:
            try:
                with transaction.atomic():
                    job = PricingRecomputeJob.objects.create(
                        workspace=workspace, requested_price_data=requested, attempt=attempt
                    )
            except IntegrityError:  # another request created it meanwhile (SQLite locks no row)
                job = workspace.pricing_jobs.get(status__in=PricingRecomputeJob.ACTIVE)
            else:
                _send(job)
                return job
        # A queued job is updated only while still queued: a worker that claimed it meanwhile
        # may have read the overrides already, so it is then marked to run again instead.
        queued = PricingRecomputeJob.objects.filter(pk=job.pk, status=Status.QUEUED)
        if queued.update(requested_price_data=requested):
            if _stale(job):
                _send(job)
        else:
            if pricing_recompute_fail_lost(job):
                return pricing_recompute_request(workspace=workspace, requested=requested)  # a new job
            running = PricingRecomputeJob.objects.filter(pk=job.pk, status=Status.RUNNING)
            if not running.update(rerun=True, requested_price_data=requested):
                return pricing_recompute_request(workspace=workspace, requested=requested)  # it just ended
    job.refresh_from_db()
    return job


def pricing_recompute_claim_here(*, workspace: Workspace) -> PricingRecomputeJob:
    """The workspace's active job, or a new one, to run in this process (no message sent):
    `manage.py recompute_estimates`."""
    from accounts.models import Workspace

    with transaction.atomic():
        Workspace.objects.select_for_update(no_key=True).filter(pk=workspace.pk).first()
        job = workspace.pricing_jobs.filter(status__in=PricingRecomputeJob.ACTIVE).first()
        if job is None:
            job = PricingRecomputeJob.objects.create(workspace=workspace, requested_price_data=price_data_version())
    return job


def _stale_heartbeat() -> Q:
    """Running jobs whose worker is lost (doow.jobs.jobs_lost)."""
    return jobs_lost(PricingRecomputeJob)


def pricing_recompute_lost(job: PricingRecomputeJob) -> bool:
    """A running job whose worker wrote no progress for HEARTBEAT_STALE (the page says stalled)."""
    return job_lost(job)


def pricing_recompute_fail_lost(job: PricingRecomputeJob) -> bool:
    """Mark a lost running job failed (beat's retry, or the next request, takes over); whether it was."""
    if not pricing_recompute_lost(job):
        return False
    lost = PricingRecomputeJob.objects.filter(_stale_heartbeat(), pk=job.pk, claims=job.claims)
    if lost.update(status=Status.FAILED, error=LOST_ERROR, finished_at=timezone.now()):
        logger.warning("price recompute %s: its worker stopped (no progress since %s)", job.pk, job.heartbeat_at)
        return True
    return False


def _stale(job: PricingRecomputeJob) -> bool:
    """A queued job no worker took within QUEUED_PATIENCE of its last message, while no other
    workspace's recompute is running (alive): one waiting behind those is not sent again."""
    if timezone.now() - (job.sent_at or job.created_at) <= QUEUED_PATIENCE:
        return False
    running = PricingRecomputeJob.objects.filter(status=Status.RUNNING).exclude(pk=job.pk)
    return not running.exclude(_stale_heartbeat()).exists()


def _send(job: PricingRecomputeJob) -> None:
    """Send the job's task (after commit), numbered: a worker runs only the latest message of a
    queued job, so one sent again after an outage does not run twice."""
    sends = job.sends + 1
    PricingRecomputeJob.objects.filter(pk=job.pk).update(sends=sends, sent_at=timezone.now())
    job.sends = sends
    enqueue_on_commit("usage.tasks.recompute_prices", job.pk, sends)


def pricing_recompute_if_prices_changed(*, limit: int | None = None) -> list[int]:
    """Run by beat every hour: a recompute for each workspace with priced usage whose estimates
    do not use the installed price data (genai-prices upgraded, the compute table edited,
    PRICING_RULES_VERSION bumped; a workspace never recomputed counts as changed), at most
    `limit` (settings.DOOW_PRICING_RECOMPUTES_PER_HOUR) per run, so an upgrade spreads the
    full-history recomputes over the hours instead of queueing every workspace at once.

    Per workspace, by its latest job: done with the installed data, or requested for it already
    (a worker of another release priced it: it logged a warning) — nothing; queued — sent again
    if stale; running — left to finish, unless its worker is lost (no heartbeat for
    HEARTBEAT_STALE: then marked failed, and retried as one); failed — retried after RETRY_BACKOFF × attempt, at most
    MAX_ATTEMPTS times for the same data, then left failed (the Pricing page says so).
    Returns the workspace ids a recompute was requested (or sent again) for."""
    from accounts.models import Workspace

    limit = settings.DOOW_PRICING_RECOMPUTES_PER_HOUR if limit is None else limit
    current = price_data_version()
    now = timezone.now()
    # Priced usage, asked of the smallest daily rollup that has a metric (the raw table has no
    # index on it); every integration counts, a second reader of one account too.
    rollup = level_for(("metric",))
    daily = rollup.model() if rollup is not None else UsageDaily
    latest = PricingRecomputeJob.objects.filter(workspace=OuterRef("pk")).order_by("-created_at", "-pk")
    workspaces = Workspace.objects.filter(
        Exists(daily.objects.filter(workspace=OuterRef("pk"), metric__in=PRICED_METRICS))
    ).annotate(last_job=Subquery(latest.values("pk")[:1]))
    requested: list[int] = []
    for workspace in workspaces.order_by("pk").iterator():
        if len(requested) >= limit:
            logger.info("price recompute: %s workspaces requested this hour; the rest wait for the next", limit)
            break
        job = PricingRecomputeJob.objects.filter(pk=workspace.last_job).first()
        if job is not None and pricing_recompute_fail_lost(job):
            job.refresh_from_db()
        if _wanted(job, current=current, now=now):
            retry = job is not None and job.status == Status.FAILED and job.requested_price_data == current
            attempt = job.attempt + 1 if job is not None and retry else 1
            pricing_recompute_request(workspace=workspace, requested=current, attempt=attempt)
            requested.append(workspace.pk)
    if requested:
        logger.info("price data %s: recomputing the estimates of %s workspaces", current, len(requested))
    return requested


def _wanted(job: PricingRecomputeJob | None, *, current: str, now: datetime) -> bool:
    if job is None:
        return True
    if job.status == Status.QUEUED:
        return _stale(job)
    if job.status == Status.RUNNING:
        return False
    if job.status == Status.DONE and job.price_data == current:
        return False
    if job.status == Status.DONE and job.requested_price_data == current:
        # A worker of another release priced it (a deploy under way): asked again after a while.
        return job.finished_at is None or now - job.finished_at > RETRY_BACKOFF
    if job.status == Status.FAILED and job.requested_price_data == current:
        retry_at = pricing_recompute_retry_at(job)
        return retry_at is not None and now >= retry_at
    return True


def pricing_recompute_retry_at(job: PricingRecomputeJob) -> datetime | None:
    """When beat retries a failed job (None: it does not any more, or the job did not fail)."""
    if job.status != Status.FAILED or job.attempt >= MAX_ATTEMPTS or job.finished_at is None:
        return None
    return job.finished_at + RETRY_BACKOFF * job.attempt


def pricing_recompute_latest(*, workspace: Workspace) -> PricingRecomputeJob | None:
    return workspace.pricing_jobs.first()


class _Superseded(Exception):
    """The job was claimed again (its message redelivered, or sent again): the newer run goes on."""


def pricing_recompute_run(*, job_id: int, send: int | None = None) -> PricingRecomputeJob:
    """Recompute every estimate of the job's workspace with its current overrides.

    A running job is claimed again and restarted by the redelivery of the message that started
    it once its worker is lost (no heartbeat for HEARTBEAT_STALE: the estimates are idempotent
    upserts), by `send` None (the command) at once; a finished one is left alone, as is a message older
    than the job's latest (`send`). The price data is recorded only once the job is done. A job
    marked to re-run (prices changed while it ran) queues its follow-up when it ends."""
    job = PricingRecomputeJob.objects.select_related("workspace").get(pk=job_id)
    active = PricingRecomputeJob.objects.filter(pk=job.pk, status__in=PricingRecomputeJob.ACTIVE)
    if send is not None:
        # The first message to arrive starts it; a copy sent again does not restart it, nor does
        # the broker's redelivery of the one that started it while its worker is alive (its
        # heartbeat is fresh): only once the worker is lost.
        active = active.filter(Q(status=Status.QUEUED) | (Q(claimed_send=send) & _stale_heartbeat()))
    claimed = active.update(
        status=Status.RUNNING,
        done=0,
        written=0,
        error="",
        rerun=False,
        claims=F("claims") + 1,
        claimed_send=send or 0,
        heartbeat_at=timezone.now(),
    )
    if not claimed:
        return PricingRecomputeJob.objects.get(pk=job_id)
    job.refresh_from_db()
    mine = PricingRecomputeJob.objects.filter(pk=job.pk, status=Status.RUNNING, claims=job.claims)
    workspace = job.workspace
    applied = ""
    try:
        applied = price_data_version()
        if job.requested_price_data and job.requested_price_data != applied:
            logger.warning(
                "price recompute %s was requested with price data %r; this worker has %r (another release)",
                job.pk, job.requested_price_data, applied,
            )  # fmt: skip
        total = workspace.usage_records.filter(metric__in=PRICED_METRICS).count()
        if not mine.update(total=total, heartbeat_at=timezone.now()):
            raise _Superseded
        overrides = load_overrides(workspace_id=workspace.pk)
        for integration in workspace.integrations.all():
            bounds = integration.usage_records.aggregate(first=Min("bucket_start"), last=Max("bucket_start"))
            if bounds["first"] is None:
                continue
            start = align_down(bounds["first"], timedelta(days=1))
            while start <= bounds["last"]:
                window = Window(start, start + STEP)
                samples = _usage_samples(integration, window)
                estimates = pricing_estimate_samples(integration=integration, samples=samples, overrides=overrides)
                streams = {estimate_stream(s.stream) for s in samples} | set(
                    integration.usage_records.filter(
                        metric=ESTIMATED_COST, bucket_start__gte=window.start, bucket_start__lt=window.end
                    ).values_list("stream", flat=True).distinct().order_by()
                )  # fmt: skip
                answers = [Answered(s, window) for s in sorted(streams) if is_estimate_stream(s)]
                with transaction.atomic():
                    # Still this run's job (the update locks its row until the week is stored):
                    # a run superseded meanwhile stores nothing more.
                    if not mine.update(heartbeat_at=timezone.now()):
                        raise _Superseded
                    stored = usage_store_chunk(integration=integration, samples=estimates, answered=answers)
                    mine.update(done=F("done") + len(samples), written=F("written") + stored.written)
                start = window.end
    except _Superseded:
        logger.info("price recompute %s was claimed again; the newer run goes on", job.pk)
        return PricingRecomputeJob.objects.get(pk=job_id)
    except Exception as exc:  # recorded on the job for the page; details in the log
        logger.exception("price recompute %s failed", job.pk)
        mine.update(
            status=Status.FAILED,
            error=f"{type(exc).__name__}: the details are in the worker log.",
            finished_at=timezone.now(),
        )
    else:
        mine.update(status=Status.DONE, price_data=applied, finished_at=timezone.now())
    _follow_up(job.pk)
    return PricingRecomputeJob.objects.get(pk=job_id)


def _follow_up(job_id: int) -> None:
    """Prices or overrides changed while the job ran: a new job runs with them now."""
    job = PricingRecomputeJob.objects.select_related("workspace").get(pk=job_id)
    if job.rerun and not job.is_active:
        with transaction.atomic():
            PricingRecomputeJob.objects.filter(pk=job.pk).update(rerun=False)
            pricing_recompute_request(workspace=job.workspace, requested=job.requested_price_data or None)


def _usage_samples(integration, window: Window) -> list[UsageSample]:
    fields = ("bucket_start", "bucket_end", "metric", "quantity", "unit", *DIMENSION_FIELDS, "provenance", "stream")
    rows = integration.usage_records.filter(
        metric__in=PRICED_METRICS, bucket_start__gte=window.start, bucket_start__lt=window.end
    ).values_list(*fields)
    return [UsageSample(**dict(zip(fields, row, strict=True))) for row in rows.iterator(chunk_size=2000)]


def override_effective_default() -> date:
    """New overrides apply from the first day of the current month (UTC): closed months keep
    their estimates unless the admin picks an earlier date on purpose."""
    today = timezone.now().date()
    return today.replace(day=1)
