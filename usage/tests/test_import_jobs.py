"""Usage imports as jobs: the Celery task checks and stores the file kept in the database,
all rows or none; a redelivered job runs again, a crashed one says so; old files expire;
staff see the jobs (never the file) in Django admin."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from doow.jobs import HEARTBEAT_STALE
from integrations.models import Integration, IntegrationEvent
from integrations.testing import make_integration
from sandbox import authress as fake
from usage import import_jobs, importer
from usage.models import UsageImport, UsageRecord
from usage.tasks import expire_usage_imports, import_usage

GOOD = fake.portal_csv(date(2025, 3, 1), date(2025, 3, 4)).encode()
ROWS = len(fake.truth_calls(date(2025, 3, 1), date(2025, 3, 4)))
BAD = b"date,resource,operation,calls\n2025-03-01,r,GET,5\n2025-13-01,r,GET,5\n"


@pytest.fixture
def integration(workspace) -> Integration:
    return make_integration(workspace, "Authress", "authress", credential={"access_key": fake.ACCESS_KEY},
                            settings={"base_url": "http://127.0.0.1:9"})  # fmt: skip


def queue(integration: Integration, data: bytes = GOOD, source: str = "calls.csv") -> UsageImport:
    return import_jobs.usage_import_request(
        integration=integration, stream=io.BytesIO(data), size=len(data), source=source, enqueue=False
    )


def test_the_task_imports_the_file_kept_in_the_database(integration) -> None:
    job = queue(integration)
    assert job.status == UsageImport.Status.QUEUED and bytes(job.data) == GOOD and job.lines_total == ROWS

    import_usage.apply(args=[job.pk])  # the Celery task, as a worker runs it

    job.refresh_from_db()
    assert job.status == UsageImport.Status.DONE and job.format == "authress"
    assert job.rows == ROWS == job.lines_checked and job.attempts == 1
    assert job.first_start.date() == date(2025, 3, 1) and job.last_end.date() == date(2025, 3, 4)
    assert bytes(job.data) == b"" and job.finished_at is not None  # the file is dropped once imported
    assert UsageRecord.objects.filter(integration=integration).count() == ROWS
    event = integration.events.get()
    assert event.category == IntegrationEvent.Category.IMPORT and f"Imported {ROWS} usage rows" in event.message


def test_the_same_file_again_changes_nothing(integration) -> None:
    import_jobs.usage_import_run(job_id=queue(integration).pk)
    before = sorted(UsageRecord.objects.values_list("bucket_start", "resource", "operation", "quantity"))
    again = import_jobs.usage_import_run(job_id=queue(integration).pk)
    assert again.status == UsageImport.Status.DONE
    assert sorted(UsageRecord.objects.values_list("bucket_start", "resource", "operation", "quantity")) == before


def test_a_bad_file_stores_nothing_and_the_job_and_the_event_say_why(integration) -> None:
    job = import_jobs.usage_import_run(job_id=queue(integration, BAD).pk)
    assert job.status == UsageImport.Status.FAILED
    assert job.problems == [[3, "date '2025-13-01' is not a date such as 2025-03-01"]] and job.problems_total == 1
    assert not UsageRecord.objects.exists()
    event = integration.events.get()
    assert event.category == IntegrationEvent.Category.IMPORT
    assert "rejected; nothing was stored. line 3: date '2025-13-01'" in event.message
    assert bytes(UsageImport.objects.get().data) == b""


def test_a_failure_while_storing_stores_nothing(integration, monkeypatch) -> None:
    # The file is checked, its rows prepared in batches; the second batch's SQL fails.
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 10)
    calls: list[int] = []
    store = importer.usage_store_prepared

    def store_then_fail(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return store(**kwargs)

    monkeypatch.setattr(importer, "usage_store_prepared", store_then_fail)
    job = import_jobs.usage_import_run(job_id=queue(integration).pk)
    assert len(calls) == 2
    assert job.status == UsageImport.Status.FAILED and job.problems_total == 0
    assert job.error.startswith("Unexpected error during the import (RuntimeError); nothing was stored.")
    assert not UsageRecord.objects.exists()  # the first batch was rolled back with the rest
    event = integration.events.get()
    assert event.level == IntegrationEvent.Level.ERROR and "Usage import of calls.csv failed." in event.message
    assert "disk full" not in event.message


def test_a_redelivered_job_runs_again_until_its_worker_died_too_often(integration) -> None:
    job = queue(integration)
    # A worker claimed it and died mid-import (no progress since); the broker delivers the task again.
    lost = timezone.now() - HEARTBEAT_STALE - timedelta(seconds=1)
    UsageImport.objects.filter(pk=job.pk).update(
        status=UsageImport.Status.STORING, attempts=1, rows_prepared=10, updated_at=lost
    )
    assert import_jobs.usage_import_run(job_id=job.pk).status == UsageImport.Status.DONE
    assert UsageImport.objects.get(pk=job.pk).attempts == 2
    assert UsageRecord.objects.count() == ROWS

    other = queue(integration, source="huge.csv")
    UsageImport.objects.filter(pk=other.pk).update(
        status=UsageImport.Status.CHECKING, attempts=import_jobs.MAX_ATTEMPTS, updated_at=lost
    )
    given_up = import_jobs.usage_import_run(job_id=other.pk)
    assert given_up.status == UsageImport.Status.FAILED and "stopped 3 times before finishing" in given_up.error
    assert "Usage import of huge.csv failed." in integration.events.first().message


def test_a_finished_job_is_left_alone(integration) -> None:
    job = import_jobs.usage_import_run(job_id=queue(integration).pk)
    UsageRecord.objects.all().delete()
    assert import_jobs.usage_import_run(job_id=job.pk).status == UsageImport.Status.DONE
    assert not UsageRecord.objects.exists()


def test_a_disconnected_integration_or_a_file_over_the_limit_fails_at_once(integration, monkeypatch) -> None:
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 100)
    big = queue(integration, GOOD * 2)
    assert big.status == UsageImport.Status.FAILED and big.size == 2 * len(GOOD) and bytes(big.data) == b""
    assert big.problems[0][1].startswith("the file is 0.0 MB; the limit is 0 MB")
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.DISCONNECTED)
    integration.refresh_from_db()
    gone = queue(integration, b"date,calls\n2025-03-01,1\n")
    assert gone.status == UsageImport.Status.FAILED and "disconnected" in gone.problems[0][1]
    assert integration.events.count() == 2 and not UsageRecord.objects.exists()


def test_old_files_expire_and_old_jobs_are_deleted(integration) -> None:
    now = timezone.now()
    fresh_done = import_jobs.usage_import_run(job_id=queue(integration).pk)
    old_done = import_jobs.usage_import_run(job_id=queue(integration).pk)
    waiting = queue(integration, source="forgotten.csv")  # no worker ever took it
    long_ago = now - import_jobs.KEEP_UNFINISHED - timedelta(minutes=1)
    UsageImport.objects.filter(pk=waiting.pk).update(created_at=long_ago)
    UsageImport.objects.filter(pk=old_done.pk).update(
        finished_at=now - import_jobs.KEEP_FINISHED - timedelta(minutes=1)
    )
    recent = queue(integration, source="new.csv")  # queued just now: kept

    expire_usage_imports.apply()  # the beat task

    waiting.refresh_from_db()
    assert waiting.status == UsageImport.Status.FAILED and bytes(waiting.data) == b""
    assert "No worker finished this import within 7 days" in waiting.error
    assert not UsageImport.objects.filter(pk=old_done.pk).exists()
    assert UsageImport.objects.filter(pk=fresh_done.pk).exists()
    assert UsageImport.objects.get(pk=recent.pk).status == UsageImport.Status.QUEUED
    assert "Usage import of forgotten.csv failed." in integration.events.first().message


def test_staff_see_import_jobs_in_the_admin_but_never_the_file(integration) -> None:
    job = queue(integration, GOOD, source="calls.csv")
    staff = Client()
    staff.force_login(
        get_user_model().objects.create_superuser(username="root", password="x", email="root@example.com")
    )
    listing = staff.get(reverse("admin:usage_usageimport_changelist"))
    page = staff.get(reverse("admin:usage_usageimport_change", args=[job.pk]))
    assert listing.status_code == 200 and page.status_code == 200
    assert "calls.csv" in listing.content.decode() and "Queued" in listing.content.decode()
    assert b"/v1/" not in listing.content and b"/v1/" not in page.content  # the file's content
    assert staff.get(reverse("admin:usage_usageimport_add")).status_code == 403
