"""Price overrides and the background recomputation of estimates they trigger.

Saving or deleting an override requests a recompute job for the workspace in the same
transaction, enqueued after commit (a queued job is reused: it reads the overrides when it
starts). The job walks the workspace's usage integration by integration, a week at a time,
and stores each week's estimates through the usage store with an answer for every estimate
stream of that week, so an estimate that no longer applies is removed like any ghost.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Subquery
from django.utils import timezone

from doow.jobs import enqueue_on_commit
from integrations.providers.base import Answered, UsageSample, Window, align_down
from usage.models import DIMENSION_FIELDS, PriceOverride, PricingRecomputeJob, UsageRecord
from usage.pricing.estimate import ESTIMATED_COST, estimate_stream, is_estimate_stream, pricing_estimate_samples
from usage.pricing.overrides import load_overrides
from usage.pricing.prices import PRICED_METRICS, price_data_version
from usage.store import usage_store_chunk

if TYPE_CHECKING:
    from accounts.models import Workspace

logger = logging.getLogger(__name__)

STEP = timedelta(days=7)
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


def pricing_recompute_request(*, workspace: Workspace) -> PricingRecomputeJob:
    """A queued recompute of the workspace's estimates, enqueued when the transaction commits."""
    job = workspace.pricing_jobs.filter(status=Status.QUEUED).first()
    if job is not None:
        return job
    job = PricingRecomputeJob.objects.create(workspace=workspace)
    enqueue_on_commit("usage.tasks.recompute_prices", job.pk)
    return job


def pricing_recompute_if_prices_changed() -> list[int]:
    """Run by beat: a recompute for every workspace with priced usage whose latest recompute
    priced with other list-price data than the installed one (genai-prices upgraded, the
    compute table edited; a workspace never recomputed counts as changed). A queued job is left
    to start: it reads the current data then. The jobs' progress shows on the Pricing page.
    Returns the workspace ids a recompute was requested for."""
    from accounts.models import Workspace

    current = price_data_version()
    latest = PricingRecomputeJob.objects.filter(workspace=OuterRef("pk")).order_by("-created_at", "-pk")
    workspaces = Workspace.objects.filter(
        Exists(UsageRecord.objects.filter(workspace=OuterRef("pk"), metric__in=PRICED_METRICS))
    ).annotate(priced_with=Subquery(latest.values("price_data")[:1]), last_status=Subquery(latest.values("status")[:1]))
    requested = []
    for workspace in workspaces.order_by("pk"):
        if workspace.priced_with == current or workspace.last_status == Status.QUEUED:
            continue
        with transaction.atomic():
            pricing_recompute_request(workspace=workspace)
        requested.append(workspace.pk)
    if requested:
        logger.info("list prices changed (%s): recomputing the estimates of %s workspaces", current, len(requested))
    return requested


def pricing_recompute_latest(*, workspace: Workspace) -> PricingRecomputeJob | None:
    return workspace.pricing_jobs.first()


def pricing_recompute_run(*, job_id: int) -> PricingRecomputeJob:
    """Recompute every estimate of the job's workspace with its current overrides."""
    job = PricingRecomputeJob.objects.select_related("workspace").get(pk=job_id)
    if job.status != Status.QUEUED:
        return job
    workspace = job.workspace
    usage = workspace.usage_records.filter(metric__in=PRICED_METRICS)
    PricingRecomputeJob.objects.filter(pk=job.pk).update(
        status=Status.RUNNING, total=usage.count(), price_data=price_data_version()
    )
    try:
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
                    stored = usage_store_chunk(integration=integration, samples=estimates, answered=answers)
                PricingRecomputeJob.objects.filter(pk=job.pk).update(
                    done=F("done") + len(samples), written=F("written") + stored.written
                )
                start = window.end
    except Exception as exc:  # recorded on the job for the page; details in the log
        logger.exception("price recompute %s failed", job.pk)
        PricingRecomputeJob.objects.filter(pk=job.pk).update(
            status=Status.FAILED,
            error=f"{type(exc).__name__}: the details are in the worker log.",
            finished_at=timezone.now(),
        )
    else:
        PricingRecomputeJob.objects.filter(pk=job.pk).update(status=Status.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    return job


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
