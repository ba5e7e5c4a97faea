"""A worker host lost mid-job (power off: its message unacknowledged, Redis redelivers it only
after the 12-hour visibility timeout): the job's page says it stalled and when its worker last
reported progress; beat's `resend_lost_jobs` hands it to another worker once its heartbeat is
older than HEARTBEAT_STALE, and the re-run stores exactly once. A job whose worker is alive is
left alone, by beat and by a redelivered message; the lost message's own late redelivery does
nothing; a job lost MAX_CLAIMS times fails with what to do.

For each kind (usage imports, re-attribution, rollup rebuilds), driven through the Celery tasks
and the pages; the worker's death is a BaseException raised where it stored its first step (its
`except Exception` never runs, as when the process is killed)."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils.html import strip_tags

from doow.jobs import HEARTBEAT_STALE, MAX_CLAIMS, NO_HEARTBEAT_PATIENCE, RESEND_EXPIRES
from integrations.models import Integration, IntegrationEvent
from sandbox import authress as fake
from usage import attribution, import_jobs, importer, rollup_jobs, rollups, services, tasks
from usage.models import Application, AttributionRule, ReattributionJob, RollupRebuildJob, UsageImport, UsageRecord
from usage.tests.test_rollup_rebuild import import_hours
from usage.tests.test_rollup_upkeep import assert_rollups_match

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 10, 1, tzinfo=UTC)
CSV = b"date,resource,operation,calls\n" + b"".join(
    f"2025-03-{d:02},/v1/users/{{userId}},GET,{d * 7}\n".encode() for d in range(1, 11)
)


class WorkerKilled(BaseException):
    """The worker's process stopping where it is (its `except Exception` never runs)."""


def killed_in(target: object, name: str, run: Callable[[], object]) -> None:
    """`run()` (a worker's run of the job) with its worker killed where it calls `target.name`."""

    def killed(*args: object, **kwargs: object) -> None:
        raise WorkerKilled

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(target, name, killed)
        with pytest.raises(WorkerKilled):
            run()


def lost_later():
    """The clock once the job's heartbeat is stale: its worker counts as lost."""
    return time_machine.travel(datetime.now(UTC) + HEARTBEAT_STALE + timedelta(minutes=1), tick=False)


def text(response) -> str:
    """A page as its reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(strip_tags(response.content.decode())))


def beat(capture) -> list:
    """Beat's check; returns the task messages it sent (not yet delivered)."""
    with capture(execute=False) as sent:
        tasks.resend_lost_jobs()
    return sent


@pytest.fixture
def usage(workspace) -> list[Integration]:
    return import_hours(workspace, start=T0, hours=48, models=("gpt-4o", "o1"))


# ---------------------------------------------------------------- rollup rebuilds
def test_a_rollup_rebuild_whose_worker_was_lost_is_sent_again_and_rebuilt_once(
    admin_client, workspace, usage, monkeypatch, django_capture_on_commit_callbacks
):
    workspace.time_zone = "Asia/Tokyo"
    workspace.save(update_fields=["time_zone"])
    with django_capture_on_commit_callbacks(execute=False) as first:
        job = rollup_jobs.rollup_rebuild_request(workspace=workspace)
    real = rollups.rebuild_workspace

    def killed_after_the_first_integration(workspace, on_integration=None, **kwargs):
        def progress(done: int, total: int) -> None:
            on_integration(done, total)
            raise WorkerKilled

        return real(workspace, on_integration=progress, **kwargs)

    monkeypatch.setattr(rollups, "rebuild_workspace", killed_after_the_first_integration)
    with pytest.raises(WorkerKilled):
        first[0]()
    monkeypatch.setattr(rollups, "rebuild_workspace", real)
    job.refresh_from_db()
    assert (job.status, job.done, job.claims) == ("running", 1, 1) and job.heartbeat_at is not None

    # Its worker is alive as far as anyone can tell: beat and another copy of the task leave it.
    assert beat(django_capture_on_commit_callbacks) == []
    tasks.rebuild_rollups(job.pk)
    job.refresh_from_db()
    assert (job.status, job.claims) == ("running", 1)
    page = text(admin_client.get(reverse("accounts:settings_general", kwargs={"ws": workspace.slug})))
    assert "stalled" not in page and "Recomputing daily totals in Asia/Tokyo" in page

    with lost_later():
        page = text(admin_client.get(reverse("accounts:settings_general", kwargs={"ws": workspace.slug})))
        assert "Recomputing the daily totals stalled: its worker last reported progress 16 min ago" in page
        assert "handed to another worker automatically within minutes" in page and "1 of 2 integrations" in page
        sent = beat(django_capture_on_commit_callbacks)
        assert len(sent) == 1
        sent[0]()  # another worker takes it
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.claims, job.time_zone) == ("done", 2, 2, 2, "Asia/Tokyo")
    assert_rollups_match(workspace)  # every row counted once, in the new zone
    assert rollups.daily_for(workspace).filter(day=datetime(2026, 10, 3).date()).exists()  # Tokyo's third day

    tasks.rebuild_rollups(job.pk)  # the lost message, redelivered 12 hours later: nothing
    job.refresh_from_db()
    assert (job.status, job.claims) == ("done", 2)
    assert_rollups_match(workspace)


def test_a_rollup_rebuild_beats_within_an_integration_so_a_large_one_is_not_taken_for_lost(
    workspace, usage, monkeypatch
):
    monkeypatch.setattr(rollups, "REBUILD_SPAN_DAYS", 1)  # two spans per integration (48 hours)
    job = RollupRebuildJob.objects.create(workspace=workspace, time_zone="UTC")
    real = rollups.refresh_days
    beats: list[tuple[int, datetime]] = []

    def span(integration_id, days, **kwargs):
        job.refresh_from_db()
        beats.append((job.done, job.heartbeat_at))
        return real(integration_id, days, **kwargs)

    monkeypatch.setattr(rollups, "refresh_days", span)
    tasks.rebuild_rollups(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and len(beats) == 4
    # Before the first integration's second span (nothing done yet), its first span's heartbeat.
    (_, claimed), (done, first_span) = beats[:2]
    assert done == 0 and first_span > claimed


def test_a_rollup_rebuild_lost_too_often_fails_with_what_to_do(
    admin_client, workspace, django_capture_on_commit_callbacks
):
    job = RollupRebuildJob.objects.create(
        workspace=workspace, time_zone="UTC", status="running", claims=MAX_CLAIMS, heartbeat_at=datetime.now(UTC)
    )
    with lost_later():
        assert beat(django_capture_on_commit_callbacks) == []
        tasks.rebuild_rollups(job.pk)  # nor does its redelivered message claim it a fourth time
    job.refresh_from_db()
    assert (job.status, job.claims) == ("failed", MAX_CLAIMS)
    assert job.error == rollup_jobs.GIVEN_UP and "`manage.py rebuild_rollups`" in job.error
    page = text(admin_client.get(reverse("accounts:settings_general", kwargs={"ws": workspace.slug})))
    assert f"Its worker stopped {MAX_CLAIMS} times before the rebuild finished" in page


# ---------------------------------------------------------------- re-attribution
def test_a_reattribution_whose_worker_was_lost_is_sent_again_and_applied_once(
    admin_client, workspace, usage, monkeypatch, django_capture_on_commit_callbacks
):
    app = Application.objects.create(workspace=workspace, name="Assistant")
    AttributionRule.objects.create(workspace=workspace, provider="openai", model="o1", application=app)
    with django_capture_on_commit_callbacks(execute=False) as first:
        job = services.reattribution_request(workspace=workspace)
    real = attribution.reattribute

    def killed_after_the_first_batch(records, matcher, **kwargs):
        on_batch = kwargs.pop("on_batch", None)

        def progress(rows: int) -> bool:
            on_batch(rows)
            raise WorkerKilled

        return real(records, matcher, batch_size=10, on_batch=progress if on_batch else None, **kwargs)

    monkeypatch.setattr(services, "reattribute", killed_after_the_first_batch)
    with pytest.raises(WorkerKilled):
        first[0]()
    monkeypatch.setattr(services, "reattribute", real)
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.claims) == ("running", 10, 96, 1)

    assert beat(django_capture_on_commit_callbacks) == []
    tasks.reattribute_workspace(job.pk)  # another copy (not its own message) while its worker is alive: nothing
    job.refresh_from_db()
    assert (job.status, job.done, job.claims) == ("running", 10, 1)
    progress_url = reverse("usage_settings:reattribution", kwargs={"ws": workspace.slug})
    assert "stalled" not in text(admin_client.get(progress_url, HTTP_HX_REQUEST="true"))

    with lost_later():
        page = text(admin_client.get(progress_url, HTTP_HX_REQUEST="true"))
        assert "Re-attribution stalled: its worker last reported progress 16 min ago" in page
        assert "handed to another worker automatically within minutes" in page and "10 of 96 rows checked" in page
        sent = beat(django_capture_on_commit_callbacks)
        assert len(sent) == 1
        sent[0]()
    job.refresh_from_db()
    assert (job.status, job.done, job.claims) == ("done", 96, 2)
    attributed = UsageRecord.objects.filter(workspace=workspace, application=app)
    assert attributed.count() == 48 and not attributed.exclude(model="o1").exists()
    assert not UsageRecord.objects.filter(workspace=workspace, model="o1", application__isnull=True).exists()
    assert_rollups_match(workspace)  # the rows moved in the rollups once

    tasks.reattribute_workspace(job.pk)  # the lost message, late: nothing
    job.refresh_from_db()
    assert (job.status, job.claims) == ("done", 2)
    assert_rollups_match(workspace)


def test_a_newer_reattribution_does_not_wait_for_an_older_one_whose_worker_is_lost(workspace, usage, monkeypatch):
    lost = ReattributionJob.objects.create(
        workspace=workspace, status="running", claims=1, heartbeat_at=datetime.now(UTC)
    )
    with lost_later():
        job = ReattributionJob.objects.create(workspace=workspace)
        monkeypatch.setattr(services.time, "sleep", lambda seconds: pytest.fail("waited for a lost worker"))
        tasks.reattribute_workspace(job.pk)
    lost.refresh_from_db()
    job.refresh_from_db()
    assert (lost.status, lost.error, job.status) == ("failed", services.ABANDONED, "done")


def test_a_reattribution_lost_too_often_fails_with_what_to_do(
    admin_client, workspace, django_capture_on_commit_callbacks
):
    job = ReattributionJob.objects.create(
        workspace=workspace, status="running", claims=MAX_CLAIMS, heartbeat_at=datetime.now(UTC)
    )
    with lost_later():
        assert beat(django_capture_on_commit_callbacks) == []
    job.refresh_from_db()
    assert job.status == "failed" and job.error == services.GIVEN_UP
    page = text(
        admin_client.get(reverse("usage_settings:reattribution", kwargs={"ws": workspace.slug}), HTTP_HX_REQUEST="true")
    )
    assert f"Its worker stopped {MAX_CLAIMS} times before the re-attribution finished" in page
    assert "save any rule to run it again" in page


# ---------------------------------------------------------------- usage imports
@pytest.fixture
def authress(workspace) -> Integration:
    from integrations.testing import make_integration

    return make_integration(workspace, "Authress", "authress", credential={"access_key": fake.ACCESS_KEY},
                            settings={"base_url": "http://127.0.0.1:9"})  # fmt: skip


def upload(integration: Integration, source: str = "calls.csv") -> UsageImport:
    return import_jobs.usage_import_request(
        integration=integration, stream=io.BytesIO(CSV), size=len(CSV), source=source, enqueue=False
    )


def test_an_import_whose_worker_was_lost_is_sent_again_and_stored_once(
    admin_client, workspace, authress, django_capture_on_commit_callbacks
):
    job = upload(authress)
    killed_in(importer, "usage_store_prepared", lambda: tasks.import_usage(job.pk))  # while storing
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("storing", 1) and not UsageRecord.objects.exists()

    assert beat(django_capture_on_commit_callbacks) == []
    tasks.import_usage(job.pk)  # another copy (not its own message) while its worker is alive: not a second run
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("storing", 1) and not UsageRecord.objects.exists()
    detail = reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": authress.pk})

    with lost_later():
        page = text(admin_client.get(detail))
        assert "The import of calls.csv stalled: its worker last reported progress 16 min ago" in page
        assert "handed to another worker automatically within minutes" in page
        sent = beat(django_capture_on_commit_callbacks)
        assert len(sent) == 1
        sent[0]()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.rows) == ("done", 2, 10) and bytes(job.data) == b""
    stored = UsageRecord.objects.filter(integration=authress)
    assert stored.count() == 10 and sum(stored.values_list("quantity", flat=True)) == Decimal(7 * 55)
    assert_rollups_match(workspace)

    tasks.import_usage(job.pk)  # the lost message, late: nothing
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("done", 2) and stored.count() == 10
    assert_rollups_match(workspace)


def test_a_killed_worker_process_s_own_message_requeued_claims_the_import_again_at_once(workspace, authress):
    """Celery requeues a killed pool child's message at once (acks_late, reject_on_worker_lost):
    that same message, delivered again, takes the job over without waiting HEARTBEAT_STALE; a
    different message (beat's copy, say) still leaves a job whose heartbeat is fresh alone."""
    job = upload(authress)
    killed_in(
        importer,
        "usage_store_prepared",
        lambda: tasks.import_usage.apply(args=(job.pk,), task_id="message-1", throw=True),
    )
    job.refresh_from_db()
    assert (job.status, job.attempts, job.claim_message) == ("storing", 1, "message-1")

    tasks.import_usage.apply(args=(job.pk,), task_id="message-2")  # not its message: nothing
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("storing", 1) and not UsageRecord.objects.exists()

    tasks.import_usage.apply(args=(job.pk,), task_id="message-1")  # its own, requeued: at once
    job.refresh_from_db()
    assert (job.status, job.attempts, job.rows) == ("done", 2, 10)
    stored = UsageRecord.objects.filter(integration=authress)
    assert stored.count() == 10 and sum(stored.values_list("quantity", flat=True)) == Decimal(7 * 55)
    assert_rollups_match(workspace)


@pytest.mark.parametrize("kind", ["rollup rebuild", "re-attribution"])
def test_a_killed_worker_process_s_own_message_requeued_claims_the_job_again_at_once(workspace, usage, kind):
    if kind == "rollup rebuild":
        workspace.time_zone = "Asia/Tokyo"
        workspace.save(update_fields=["time_zone"])
        job = RollupRebuildJob.objects.create(workspace=workspace, time_zone="Asia/Tokyo")
        task, target, name = tasks.rebuild_rollups, rollups, "rebuild_workspace"
    else:
        app = Application.objects.create(workspace=workspace, name="Reasoning")
        AttributionRule.objects.create(workspace=workspace, provider="openai", model="o1", application=app)
        job = ReattributionJob.objects.create(workspace=workspace)
        task, target, name = tasks.reattribute_workspace, services, "reattribute"
    killed_in(target, name, lambda: task.apply(args=(job.pk,), task_id="message-1", throw=True))
    job.refresh_from_db()
    assert (job.status, job.claims, job.claim_message) == ("running", 1, "message-1")

    task.apply(args=(job.pk,), task_id="message-2")  # not its message, its heartbeat fresh: nothing
    job.refresh_from_db()
    assert (job.status, job.claims) == ("running", 1)

    task.apply(args=(job.pk,), task_id="message-1")  # its own, requeued: at once
    job.refresh_from_db()
    assert (job.status, job.claims) == ("done", 2)
    assert_rollups_match(workspace)
    if kind == "re-attribution":
        assert UsageRecord.objects.filter(workspace=workspace, application__name="Reasoning").count() == 48


def test_an_import_command_interrupted_is_failed_not_left_for_beat_to_finish(
    authress, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """Ctrl-C on `manage.py import_usage`: left running, beat would take the import for lost and
    have a worker store the file the operator stopped."""
    path = tmp_path / "calls.csv"
    path.write_bytes(CSV)

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importer, "usage_store_prepared", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_command("import_usage", str(authress.pk), str(path), stdout=io.StringIO())
    job = UsageImport.objects.get()
    assert (job.status, job.error, bytes(job.data)) == ("failed", import_jobs.INTERRUPTED, b"")
    with lost_later():
        assert beat(django_capture_on_commit_callbacks) == []
    assert not UsageRecord.objects.exists()


def test_a_run_taken_over_that_then_crashes_fails_nothing_of_the_newer_run(authress, monkeypatch):
    job = upload(authress)

    def claimed_again_then_crashed(**kwargs):
        # Outside the import's transaction, while this run was silent: another worker's claim.
        UsageImport.objects.filter(pk=job.pk).update(attempts=2, claim_message="message-2")
        raise RuntimeError("lock timeout")

    monkeypatch.setattr(import_jobs, "usage_import_csv", claimed_again_then_crashed)
    tasks.import_usage.apply(args=(job.pk,), task_id="message-1")
    job.refresh_from_db()
    assert (job.status, job.error, job.attempts) == ("checking", "", 2) and bytes(job.data) == CSV
    assert not authress.events.exists()


def test_a_run_claimed_by_another_worker_meanwhile_stores_nothing(authress, monkeypatch):
    """Its worker was only slow (taken for lost, the job claimed again): its rows roll back."""
    job = upload(authress)
    real = importer.usage_store_prepared

    def claimed_again_meanwhile(**kwargs):
        UsageImport.objects.filter(pk=job.pk).update(attempts=2)  # another worker's claim
        return real(**kwargs)

    monkeypatch.setattr(importer, "usage_store_prepared", claimed_again_meanwhile)
    tasks.import_usage(job.pk)
    # Its rows (and the other claim, made inside its transaction here) rolled back: not done.
    job.refresh_from_db()
    assert job.status == "storing" and not UsageRecord.objects.exists()


def test_an_import_lost_too_often_fails_with_an_event(authress, django_capture_on_commit_callbacks):
    job = upload(authress, source="huge.csv")
    UsageImport.objects.filter(pk=job.pk).update(status="checking", attempts=MAX_CLAIMS, updated_at=datetime.now(UTC))
    with lost_later():
        assert beat(django_capture_on_commit_callbacks) == []
    job.refresh_from_db()
    assert job.status == "failed" and job.error == import_jobs.GIVEN_UP and bytes(job.data) == b""
    assert "Split the file by date range" in job.error
    event = authress.events.get()
    assert event.level == IntegrationEvent.Level.ERROR and "Usage import of huge.csv failed." in event.message


@pytest.mark.parametrize(
    ("model", "task", "page"),
    [
        (RollupRebuildJob, "rebuild_rollups", "accounts:settings_general"),
        (ReattributionJob, "reattribute_workspace", "usage_settings:rules"),
    ],
)
def test_a_job_an_older_release_is_running_is_not_started_a_second_time_beside_it(
    admin_client, workspace, usage, django_capture_on_commit_callbacks, model, task, page, monkeypatch
):
    """A rolling deploy: the release before claimed the job and writes no heartbeat. However long
    it runs, neither beat nor its redelivered message starts it again beside the old run, and its
    page does not call it stalled, until the broker would redeliver it anyway (12 hours)."""
    job = model.objects.create(workspace=workspace, status="running", claims=0)
    monkeypatch.setattr(services.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(services, "SUPERSEDE_WAIT_SECONDS", 0)
    with time_machine.travel(datetime.now(UTC) + HEARTBEAT_STALE * 20, tick=False):
        assert beat(django_capture_on_commit_callbacks) == []
        getattr(tasks, task)(job.pk)
        job.refresh_from_db()
        assert (job.status, job.claims, job.heartbeat_at) == ("running", 0, None)
        assert "stalled" not in text(admin_client.get(reverse(page, kwargs={"ws": workspace.slug})))
    with time_machine.travel(datetime.now(UTC) + NO_HEARTBEAT_PATIENCE + timedelta(minutes=1), tick=False):
        assert "stalled" in text(admin_client.get(reverse(page, kwargs={"ws": workspace.slug})))
        sent = beat(django_capture_on_commit_callbacks)
        assert len(sent) == 1
        sent[0]()
    job.refresh_from_db()
    assert (job.status, job.claims) == ("done", 1)
    assert_rollups_match(workspace)


def test_a_copy_sent_again_expires_so_none_pile_up_while_no_worker_runs(
    workspace, django_capture_on_commit_callbacks, monkeypatch
):
    job = RollupRebuildJob.objects.create(
        workspace=workspace, time_zone="UTC", status="running", claims=1, heartbeat_at=datetime.now(UTC)
    )
    published: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(tasks.rebuild_rollups, "apply_async", lambda args, **options: published.append((args, options)))
    with lost_later():
        for _ in range(3):  # three ticks with no worker running: three copies, each expiring
            for callback in beat(django_capture_on_commit_callbacks):
                callback()
    assert published == [((job.pk,), {"expires": RESEND_EXPIRES.total_seconds()})] * 3
    job.refresh_from_db()
    assert (job.status, job.claims) == ("running", 1)


def test_beat_checks_for_lost_jobs_every_few_minutes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["resend-lost-jobs"]
    assert entry["task"] == "usage.tasks.resend_lost_jobs" and entry["schedule"] * 2 < HEARTBEAT_STALE.total_seconds()


def test_staff_see_how_often_a_job_was_started_and_its_last_progress_in_the_admin(
    superuser_client, workspace, authress
):
    ReattributionJob.objects.create(workspace=workspace, status="running", claims=2, heartbeat_at=datetime.now(UTC))
    job = upload(authress)
    UsageImport.objects.filter(pk=job.pk).update(status="checking", attempts=2, updated_at=datetime.now(UTC))
    reattribution = text(superuser_client.get(reverse("admin:usage_reattributionjob_changelist")))
    imports = text(superuser_client.get(reverse("admin:usage_usageimport_changelist")))
    assert "Claims" in reattribution and "Heartbeat at" in reattribution, reattribution
    assert "Attempts" in imports and "Updated at" in imports, imports
