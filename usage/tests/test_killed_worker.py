"""A real Celery worker's pool child killed mid-import: the same message, requeued at once, imports
the file again at once (not once the heartbeat is HEARTBEAT_STALE, 15 minutes later), every row
stored once.

End to end, as in production: the upload through `usage_import_request`, its message sent on
commit through a real broker (doow.testing.Broker) to a real `celery -A doow worker`, SIGKILL to
the pool child while it checks the file. Its main process requeues the message at once (acks_late
with task_reject_on_worker_lost; CELERY_WORKER_LOST_WAIT is 1 s in settings_test), a new pool
child receives it, and `doow.jobs.job_claim` lets that message claim again the job it claimed
before, although the dead run's heartbeat is seconds old.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from django.db.models import Sum

from doow.jobs import HEARTBEAT_STALE
from doow.testing import Broker, Worker, running_workers, wait_for
from integrations.models import Integration
from integrations.testing import make_integration
from sandbox import authress as fake
from usage.import_jobs import usage_import_request
from usage.importer import PROGRESS_EVERY
from usage.models import UsageImport, UsageRecord
from usage.tests.test_rollup_upkeep import assert_rollups_match

IMPORT = "usage.tasks.import_usage"
# Lines enough that checking and storing take seconds after the first progress report (every
# PROGRESS_EVERY lines), so the kill lands mid-import with seconds to spare on a loaded machine (an
# import takes ~9 s on an idle 2-core machine, the kill comes ~0.5 s in; the test ~35 s).
ROWS = 120_000
RESOURCES = 300
FIRST_DAY = date(2025, 1, 1)
# Generous for a loaded 2-core machine, and still far below HEARTBEAT_STALE: what the requeued
# message had to wait for before it could claim the job.
IMPORT_TIMEOUT = 60
Status = UsageImport.Status


def calls_csv() -> tuple[bytes, int]:
    """An Authress portal file of ROWS distinct (day, resource) rows, and its total of calls."""
    calls = [i % 997 + 1 for i in range(ROWS)]
    lines = (
        f"{FIRST_DAY + timedelta(days=i // RESOURCES)},/v1/workspaces/{i % RESOURCES}/users,GET,{calls[i]}\n"
        for i in range(ROWS)
    )
    return ("date,resource,operation,calls\n" + "".join(lines)).encode(), sum(calls)


@pytest.fixture
def authress(workspace) -> Integration:
    return make_integration(workspace, "Authress", "authress", credential={"access_key": fake.ACCESS_KEY})


def test_a_killed_worker_process_s_import_is_redone_at_once_by_its_requeued_message(
    transactional_db, workspace, authress, tmp_path
):
    data, calls = calls_csv()
    assert ROWS > 5 * PROGRESS_EVERY and IMPORT_TIMEOUT < HEARTBEAT_STALE.total_seconds() / 10
    broker = Broker(tmp_path)
    broker.purge()

    with running_workers() as started:
        worker = Worker(broker, tmp_path / "worker.log")
        started.append(worker)
        worker.wait_ready()
        with broker.enqueuing():  # as the upload page does: the message leaves on commit
            job = usage_import_request(
                integration=authress, stream=io.BytesIO(data), size=len(data), source="calls.csv"
            )
        checking = UsageImport.objects.filter(pk=job.pk, status=Status.CHECKING, attempts=1, lines_checked__gt=0)
        wait_for(checking.exists, "the import's first progress", IMPORT_TIMEOUT, started)
        [message] = worker.received(IMPORT)
        # Mid-check, most of the file still to go: the run dies with nothing stored.
        worker.kill_pool_child()

        # Before the message clause in job_claim, its redelivery found the job running with a
        # fresh heartbeat and left it alone: it stayed "checking" until beat's check 15 minutes on.
        done = UsageImport.objects.filter(pk=job.pk, status=Status.DONE)
        wait_for(done.exists, "the import redone by its requeued message", IMPORT_TIMEOUT, started)
        # The same message, delivered a second time, did it (not a copy beat sent).
        assert worker.received(IMPORT) == [message, message]
        assert "WorkerLostError" in worker.output()

    job.refresh_from_db()
    assert (job.attempts, job.claim_message, job.rows, job.lines_checked) == (2, message, ROWS, ROWS)
    assert bytes(job.data) == b""
    # Every row of the file once, nothing of the killed run doubled.
    stored = UsageRecord.objects.filter(integration=authress)
    assert stored.count() == ROWS
    assert stored.aggregate(total=Sum("quantity"))["total"] == calls
    assert_rollups_match(workspace)
