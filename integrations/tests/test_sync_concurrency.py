"""Two workers never sync one integration at once; a killed worker loses and doubles nothing.

These tests commit for real (transactional_db): on PostgreSQL the lock is exercised by two
threads with their own connections, and a real `manage.py sync` process is SIGKILLed mid-sync.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from doow.testing import BASE_DIR, race, subprocess_env
from integrations import engine
from integrations.models import SyncRun
from integrations.tests.test_sync_engine import (
    D0,
    D3,
    USAGE_PATH,
    stored_tokens,
    truth_tokens,
)


def test_lock_holds_under_two_concurrent_syncs(transactional_db, openai_integration, sandbox):
    # Stall the first usage request so whoever gets the lock is still syncing when the other tries.
    sandbox.fault(USAGE_PATH, 200, delay=1.5, times=1)
    outcomes: list[str] = []

    def sync() -> None:
        try:
            outcomes.append(engine.integration_sync(integration_id=openai_integration.pk, since=D0, until=D3).status)
        except engine.SyncBusy:
            outcomes.append("busy")

    assert race(sync, threads=2) == []
    assert sorted(outcomes) == ["busy", SyncRun.Status.SUCCESS]
    assert SyncRun.objects.filter(integration=openai_integration).count() == 1
    assert stored_tokens(openai_integration) == truth_tokens(D0, D3)
    openai_integration.refresh_from_db()
    assert openai_integration.lock_token == "" and openai_integration.lock_expires_at is None


def test_killed_worker_resumes_at_the_watermark_without_double_counting(transactional_db, openai_integration, sandbox):
    # Day 1 is served at once; day 2's usage request stalls, and the worker is killed there.
    sandbox.fault(USAGE_PATH, 200, delay=30, after=1, times=1)
    # The process runs on this test's database and clock; its lease outlasts a slow kill on a
    # loaded machine, and the test moves its own clock past it.
    # One day per provider fetch, so day 1 is stored before day 2's request (a span of days
    # would hold both until the stalled request answered).
    env = subprocess_env(DOOW_SYNC_LOCK_SECONDS="120", DOOW_MAX_FETCH_SPAN_DAYS="1")
    days = ["--since", "2026-11-02", "--until", "2026-11-04"]
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sync", str(openai_integration.pk), *days],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not SyncRun.objects.filter(integration=openai_integration, chunks_done__gte=1).exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the worker never finished its first chunk"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()

    openai_integration.refresh_from_db()
    assert openai_integration.data_through == D0 + timedelta(days=1)
    assert stored_tokens(openai_integration) == truth_tokens(D0, D0 + timedelta(days=1))
    # The dead worker's lease still holds for a moment: nobody else may sync yet.
    assert openai_integration.lock_expires_at > timezone.now()
    with pytest.raises(engine.SyncBusy):
        engine.integration_sync(integration_id=openai_integration.pk, until=D3)
    assert openai_integration.pk not in engine.integration_dispatch_due()

    sandbox.reset()
    with time_machine.travel(openai_integration.lock_expires_at + timedelta(seconds=1), tick=True):  # the lease lapses
        resumed = engine.integration_sync(integration_id=openai_integration.pk, until=D3)
    assert resumed.status == SyncRun.Status.SUCCESS
    assert resumed.window_start == D0  # resumed from the watermark, minus the restatement window
    dead_run = SyncRun.objects.filter(integration=openai_integration).exclude(pk=resumed.pk).get()
    assert dead_run.status == SyncRun.Status.ABANDONED
    assert stored_tokens(openai_integration) == truth_tokens(D0, D3)
