"""Inventory and attribution services: views, admin, tasks and integrations call these.

Anything that can change which rows a rule matches (a rule saved, moved or deleted; an
application or license deleted) requests a background re-attribution of the workspace in the
same transaction, enqueued after commit. A workspace has at most one job queued (later changes
reuse it: it reads the rules when it starts) and at most one running (a newer job makes the
running one stop at its next batch, and waits for it to do so).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from django.db import transaction
from django.utils import timezone

from doow.jobs import (
    enqueue_on_commit,
    job_claim,
    job_finish,
    job_heartbeat,
    jobs_lost,
    jobs_resend_lost,
    lost_too_often,
)
from usage import rollups
from usage.attribution import load_matcher, reattribute
from usage.models import (
    Application,
    AttributionRule,
    License,
    ReattributionJob,
    UsageRecord,
)

if TYPE_CHECKING:
    from accounts.models import Workspace
    from integrations.providers.base import Provider

logger = logging.getLogger(__name__)

APPLICATION_CATEGORIES = {"ai": "AI provider", "cloud": "Cloud platform"}
# Default rules catch everything of their provider, so they go after any rule a person writes
# (the form proposes 100).
DEFAULT_RULE_PRIORITY = 1000
# How long a new job waits for an older running one to notice it was superseded (one batch
# takes well under a second) before taking the older one's worker for dead.
SUPERSEDE_WAIT_SECONDS = 30.0
SUPERSEDE_POLL_SECONDS = 0.25
# A sync chunk that read the rules just before they changed may store its rows after the job
# walked past them; the job re-checks rows stored this long before it started.
INGEST_GRACE = timedelta(minutes=10)
SUPERSEDED = "Superseded by a newer re-attribution: the rules changed again."
ABANDONED = "The worker running this re-attribution stopped; a newer one took over."
GIVEN_UP = lost_too_often("the re-attribution") + (
    "Some usage may still be attributed by the previous rules: once the workers are healthy, save any rule to run it again."
)

Status = ReattributionJob.Status


class _Superseded(Exception):
    pass


# ------------------------------------------------------------------ applications and defaults
def application_get_or_create(*, workspace: Workspace, name: str, vendor: str = "", category: str = "") -> Application:
    """The workspace's application called `name` (case-insensitively), created if missing."""
    name = name.strip()
    found = workspace.applications.filter(name__iexact=name).first()
    if found is not None:
        return found
    return Application.objects.create(workspace=workspace, name=name, vendor=vendor, category=category)


def attribution_ensure_default(*, workspace: Workspace, provider: Provider) -> AttributionRule | None:
    """Connecting a provider attributes its usage to an application of its vendor.

    Creates the application (named for the vendor) if the workspace has none by that name or
    vendor, and a catch-all default rule if the workspace has no default rule for the provider.
    Returns the new rule, or None when one existed.
    """
    if workspace.attribution_rules.filter(provider=provider.slug, is_default=True).exists():
        return None
    name = provider.vendor or provider.name
    with transaction.atomic():
        application = workspace.applications.filter(name__iexact=name).first()
        if application is None and provider.vendor:
            application = workspace.applications.filter(vendor__iexact=provider.vendor).order_by("pk").first()
        if application is None:
            application = Application.objects.create(
                workspace=workspace,
                name=name,
                vendor=provider.vendor,
                category=APPLICATION_CATEGORIES.get(provider.category, ""),
            )
        rule = AttributionRule.objects.create(
            workspace=workspace,
            provider=provider.slug,
            application=application,
            priority=DEFAULT_RULE_PRIORITY,
            is_default=True,
        )
        # Usage kept from an earlier (disconnected) integration of this provider joins in.
        if workspace.usage_records.filter(provider=provider.slug, application__isnull=True).exists():
            reattribution_request(workspace=workspace)
    return rule


def _delete_attributed(obj: Application | License, **attributed_to: Application | License) -> None:
    """Delete `obj`, to which usage is attributed. Its rollup rows go with it; the base rows fall
    back to no application / license: recompute the days they cover in the same transaction,
    then re-attribute them in the background."""
    with transaction.atomic():
        workspace = obj.workspace
        days = rollups.days_by_integration(rollups.daily_for(workspace).filter(**attributed_to))
        obj.delete()
        rollups.refresh_by_integration(days)
        reattribution_request(workspace=workspace)


def application_delete(*, application: Application) -> None:
    """Delete an application with its licenses and rules; its usage falls to the next rule."""
    _delete_attributed(application, application=application)


def license_delete(*, license: License) -> None:
    _delete_attributed(license, license=license)


# ------------------------------------------------------------------ rules
def attribution_rule_save(*, rule: AttributionRule, new_application_name: str = "") -> AttributionRule:
    """Create or update a rule (optionally for a new application named inline) and re-attribute."""
    with transaction.atomic():
        if new_application_name.strip():
            rule.application = application_get_or_create(workspace=rule.workspace, name=new_application_name)
        rule.save()
        reattribution_request(workspace=rule.workspace)
    return rule


def attribution_rule_delete(*, rule: AttributionRule) -> None:
    with transaction.atomic():
        workspace = rule.workspace
        rule.delete()
        reattribution_request(workspace=workspace)


def attribution_rule_move(*, rule: AttributionRule, direction: Literal["up", "down"]) -> bool:
    """Swap a rule with its neighbour in precedence order; False if it is already at that end.

    Neighbours with different priorities swap values. Equal priorities (ordered by id) cannot be
    swapped that way, so priorities are raised just enough, from the moved pair on, for the
    order by (priority, id) to be the intended one; every other rule keeps its number.
    """
    with transaction.atomic():
        rules = list(rule.workspace.attribution_rules.select_for_update().order_by("priority", "pk"))
        index = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
        other = index - 1 if direction == "up" else index + 1
        if not 0 <= other < len(rules):
            return False
        a, b = rules[index], rules[other]
        a.priority, b.priority = b.priority, a.priority
        rules[index], rules[other] = b, a
        changed = {a.pk: a, b.pk: b}
        for previous, current in pairwise(rules):
            lowest = previous.priority if previous.pk < current.pk else previous.priority + 1
            if current.priority < lowest:
                current.priority = lowest
                changed[current.pk] = current
        AttributionRule.objects.bulk_update(list(changed.values()), ["priority"])
        reattribution_request(workspace=rule.workspace)
    return True


# ------------------------------------------------------------------ re-attribution jobs
def reattribution_request(*, workspace: Workspace) -> ReattributionJob:
    """Ask for the workspace's rows to be re-attributed after this transaction commits."""
    with transaction.atomic():
        # Locked so that a worker cannot start this queued job (and read the old rules)
        # between our check and our commit; it then reads the rules as we leave them.
        job = workspace.reattribution_jobs.select_for_update().filter(status=Status.QUEUED).order_by("-pk").first()
        if job is None:
            job = ReattributionJob.objects.create(workspace=workspace)
    job_id = job.pk
    enqueue_on_commit("usage.tasks.reattribute_workspace", job_id)
    return job


def reattribution_resend_lost() -> tuple[int, int]:
    """Run by beat: send again every re-attribution whose worker is lost; give up on one lost
    MAX_CLAIMS times (GIVEN_UP). Returns (sent, given up)."""
    return jobs_resend_lost(ReattributionJob, "usage.tasks.reattribute_workspace", given_up=GIVEN_UP)


def reattribution_latest(*, workspace: Workspace) -> ReattributionJob | None:
    return workspace.reattribution_jobs.order_by("-pk").first()


def _newer_job_exists(job: ReattributionJob) -> bool:
    return ReattributionJob.objects.filter(workspace_id=job.workspace_id, pk__gt=job.pk).exists()


def _finish(job_id: int, status: str, *, claim: int | None = None, **fields: object) -> None:
    job_finish(ReattributionJob, job_id, status, claim=claim, **fields)


def _wait_for_older_jobs(job: ReattributionJob) -> None:
    older = ReattributionJob.objects.filter(workspace_id=job.workspace_id, pk__lt=job.pk)
    older.filter(status=Status.QUEUED).update(status=Status.FAILED, error=SUPERSEDED, finished_at=timezone.now())
    # One whose worker is lost (no heartbeat) will not notice: no need to wait for it.
    older.filter(jobs_lost(ReattributionJob)).update(status=Status.FAILED, error=ABANDONED, finished_at=timezone.now())
    deadline = time.monotonic() + SUPERSEDE_WAIT_SECONDS
    while older.filter(status=Status.RUNNING).exists():
        if time.monotonic() > deadline:
            older.filter(status=Status.RUNNING).update(
                status=Status.FAILED, error=ABANDONED, finished_at=timezone.now()
            )
            return
        time.sleep(SUPERSEDE_POLL_SECONDS)


def reattribution_run(*, job_id: int, message: str | None = None) -> ReattributionJob:
    """Re-attribute every row of the job's workspace in batches, recording progress.

    A queued job is claimed; a running one only once its worker is lost (no heartbeat for
    HEARTBEAT_STALE: its message redelivered, or sent again by beat) or `message` claimed it
    before (its worker process died: doow.jobs.job_claim), and then run again from the start
    (matching is idempotent); one whose worker is alive, or a finished one, is left alone.
    """
    job = ReattributionJob.objects.get(pk=job_id)
    if job.status not in (Status.QUEUED, Status.RUNNING):
        return job
    if _newer_job_exists(job):
        _finish(job.pk, Status.FAILED, error=SUPERSEDED)
        return ReattributionJob.objects.get(pk=job_id)
    _wait_for_older_jobs(job)
    claim = job_claim(ReattributionJob, job.pk, message=message, status=Status.RUNNING, done=0, error="")
    if not claim:
        return ReattributionJob.objects.get(pk=job_id)
    started = timezone.now()
    records = UsageRecord.objects.filter(workspace_id=job.workspace_id)
    progress = {"done": 0, "total": records.count()}
    if not job_heartbeat(ReattributionJob, job.pk, claim, total=progress["total"]):
        return ReattributionJob.objects.get(pk=job_id)
    # Read the rules only now that the job is claimed (see reattribution_request).
    matcher = load_matcher(workspace_id=job.workspace_id)

    def still_mine(rows: int) -> bool:
        if not job_heartbeat(ReattributionJob, job.pk, claim):
            raise _Superseded
        return True

    def on_batch(rows: int) -> bool:
        progress["done"] += rows
        progress["total"] = max(progress["total"], progress["done"])  # rows stored meanwhile
        mine = job_heartbeat(ReattributionJob, job.pk, claim, done=progress["done"], total=progress["total"])
        if not mine or _newer_job_exists(job):
            raise _Superseded
        return True

    try:
        changed = reattribute(records, matcher, on_batch=on_batch)
        # The rows stored meanwhile: their batches keep the heartbeat too (a large backlog takes minutes).
        changed += reattribute(records.filter(updated_at__gte=started - INGEST_GRACE), matcher, on_batch=still_mine)
    except _Superseded:
        _finish(job.pk, Status.FAILED, error=SUPERSEDED, claim=claim)
    except Exception as exc:
        logger.exception("re-attribution job %s failed", job.pk)
        _finish(
            job.pk,
            Status.FAILED,
            error=f"Re-attribution failed ({type(exc).__name__}); the details are in the worker log.",
            claim=claim,
        )
    else:
        logger.info("re-attribution job %s: %s of %s rows changed", job.pk, changed, progress["done"])
        _finish(job.pk, Status.DONE, done=progress["done"], total=progress["done"], claim=claim)
    return ReattributionJob.objects.get(pk=job_id)
