"""A real Celery worker killed mid-sync: the sync resumes from its watermark, nothing doubled.

End to end, as in production: a real `celery -A doow worker` process on a real broker (Redis
on this run's db when the suite runs with Redis, else kombu's filesystem transport in a
private directory), the beat dispatcher's task sent through that broker as beat sends it, the
sandbox stalled mid-sync, SIGKILL. After the kill the lease still holds for
DOOW_SYNC_LOCK_SECONDS; once it has lapsed, one dispatcher tick is enough to resume the sync
from the stored watermark, whatever next_sync_at says.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from doow.testing import Broker, Worker, running_workers, wait_for
from integrations.models import Integration, SyncRun
from integrations.providers.base import align_down
from integrations.tests.test_sync_engine import (
    USAGE_PATH,
    rounded,
    stored_cost,
    stored_tokens,
    truth_cost,
    truth_tokens,
)
from usage.models import NATURAL_KEY, UsageRecord

# Long enough that the requeued message of a killed pool child (1 s later, see
# CELERY_WORKER_LOST_WAIT in settings_test) still finds the lease held, as in production.
LEASE_SECONDS = 6
BEAT_PERIOD = timedelta(seconds=settings.CELERY_BEAT_SCHEDULE["dispatch-due-syncs"]["schedule"])
DISPATCH = "integrations.tasks.dispatch_due_syncs"
SYNC = "integrations.tasks.sync_integration"
# Generous for a loaded 2-core machine; the test takes ~15-25 s when the machine is idle.
SYNC_TIMEOUT = 60


def tick(broker: Broker) -> None:
    """What beat does every minute: send the dispatcher task with its expiry."""
    broker.send(DISPATCH, **settings.CELERY_BEAT_SCHEDULE["dispatch-due-syncs"]["options"])


@pytest.fixture
def lossy_integration(openai_integration) -> Integration:
    # Four days of backfill (4-5 one-day chunks) keep the sync short; the kill comes on the third.
    Integration.objects.filter(pk=openai_integration.pk).update(backfill_days=4, next_sync_at=None)
    openai_integration.refresh_from_db()
    return openai_integration


def _sessions_in_a_transaction() -> int:
    """Other sessions of this database inside a transaction (PostgreSQL; SQLite has none: a
    killed writer's transaction is either on disk or rolled back when the file is next opened)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("kill", ["pool child", "whole worker"])
def test_a_killed_worker_s_sync_resumes_from_its_watermark_after_one_tick(
    kill, transactional_db, lossy_integration, sandbox, tmp_path
):
    integration = lossy_integration
    broker = Broker(tmp_path)
    broker.purge()
    # Two days' usage is served; every later usage request stalls (longer than the HTTP
    # timeout, so retries stall too) until the worker is dead.
    sandbox.fault(USAGE_PATH, 200, delay=30, after=2, times=50)

    with running_workers() as started:
        first = Worker(broker, tmp_path / "worker-1.log", DOOW_SYNC_LOCK_SECONDS=str(LEASE_SECONDS))
        started.append(first)
        first.wait_ready()
        tick(broker)  # never synced: due now
        wait_for(
            lambda: SyncRun.objects.filter(integration=integration, chunks_done__gte=2).exists(),
            "two chunks",
            SYNC_TIMEOUT,
            started,
        )
        dead_run = SyncRun.objects.get(integration=integration)
        assert dead_run.status == SyncRun.Status.RUNNING and dead_run.chunks_total >= 4

        if kill == "pool child":
            sync_task = first.received(SYNC)[0]
            first.kill_pool_child()
            sandbox.reset()
            # Its message is delivered again (Worker.kill_pool_child). The dead child's lease
            # still holds, so that delivery skips the sync (with the default 15-minute lease it
            # always does); the dispatcher resumes it once the lease lapses.
            wait_for(lambda: first.received(SYNC).count(sync_task) == 2, "the redelivery", 30, started)
            wait_for(
                lambda: "is already being synced; skipping" in first.output(), "the redelivery to run", 30, started
            )
            assert "WorkerLostError" in first.output()
            resumer = first
        else:
            first.kill_everything()
            sandbox.reset()
            resumer = Worker(broker, tmp_path / "worker-2.log", DOOW_SYNC_LOCK_SECONDS=str(LEASE_SECONDS))
            started.append(resumer)

        # A killed client's COMMIT already on its way still lands on PostgreSQL: read the
        # watermark (and the lease the chunk renewed) once no other session is mid-transaction.
        wait_for(lambda: not _sessions_in_a_transaction(), "the killed worker's last commit", 30, started)
        integration.refresh_from_db()
        watermark = integration.data_through
        lease_end = integration.lock_expires_at
        assert watermark is not None and lease_end is not None
        # The dispatcher pushed next_sync_at ahead when it claimed the sync: waiting for it
        # would leave the run "running" for 15 minutes.
        assert integration.next_sync_at - lease_end > timedelta(minutes=10)
        assert SyncRun.objects.get(pk=dead_run.pk).status == SyncRun.Status.RUNNING
        resumer.wait_ready()

        # One tick once the lease has lapsed (the worker's clock is this test's clock).
        wait_for(lambda: timezone.now() > lease_end, "the lease to lapse", LEASE_SECONDS + 5, started)
        time.sleep(0.3)
        tick(broker)
        wait_for(
            lambda: SyncRun.objects.filter(integration=integration, status=SyncRun.Status.SUCCESS).exists(),
            "the resumed sync",
            SYNC_TIMEOUT,
            started,
        )

    logs = "\n".join(w.output() for w in started)
    dead_run.refresh_from_db()
    assert dead_run.status == SyncRun.Status.ABANDONED
    runs = list(SyncRun.objects.filter(integration=integration).order_by("pk").values_list("pk", "status", "trigger"))
    assert len(runs) == 2, f"{runs}\n{logs}"
    resumed = SyncRun.objects.get(integration=integration, status=SyncRun.Status.SUCCESS)
    # Within the lease plus one dispatcher tick (the tick here came as soon as the lease lapsed).
    assert resumed.started_at - lease_end < BEAT_PERIOD
    # Resumed from the stored watermark (less the restatement window), not from the start.
    provider = integration.provider_obj
    assert resumed.window_start == align_down(watermark - provider.restatement_window, provider.chunk)
    assert resumed.window_start > dead_run.window_start
    assert resumed.window_end >= dead_run.window_end
    # Every row equals the sandbox's truth over the whole window: nothing lost, nothing doubled.
    start, end = dead_run.window_start, resumed.window_end
    assert stored_tokens(integration) == truth_tokens(start, end)
    assert rounded(stored_cost(integration)) == rounded(truth_cost(start, end))
    keys = UsageRecord.objects.filter(integration=integration).values_list(*NATURAL_KEY)
    assert len(keys) == len(set(keys))
    integration.refresh_from_db()
    assert integration.data_through == resumed.window_end
    assert integration.lock_token == "" and integration.lock_expires_at is None
