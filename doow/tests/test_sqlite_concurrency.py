"""The embedded SQLite default holds web, worker and beat writing at once.

Three processes share the test database file, as `make demo`'s web, worker and beat share
var/db.sqlite3: a real `manage.py sync` storing chunks, a second process doing what pages do
(session saves, an integration's settings saved through the service), and this test process
downloading a usage export slowly, which keeps a read open for seconds. The writers run with
a busy timeout shorter than that read: in SQLite's rollback journal every commit waits for
open reads, so they would fail with "database is locked"; in WAL they never wait for readers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.urls import reverse

from doow.testing import BASE_DIR, subprocess_env
from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.tests.test_sync_engine import D0, USAGE_PATH, stored_tokens, truth_tokens
from usage.export import CHUNK_SIZE, LINES_PER_PIECE

BUSY_TIMEOUT = 4.0  # seconds a writer may wait for a lock in this test (production: 20)
READ_SECONDS = BUSY_TIMEOUT * 2
MIDDLE = D0 + timedelta(days=10)
END = D0 + timedelta(days=24)

PAGE_WRITER = """
import json, sys, time
from pathlib import Path

import django

django.setup()
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError

from integrations.models import Integration
from integrations.services import integration_update

pk, stop = int(sys.argv[1]), Path(sys.argv[2])
sessions, renames, errors = [], 0, []
while not stop.exists():
    try:
        session = SessionStore()
        session["visits"] = len(sessions)
        session.create()
        sessions.append(session.session_key)
        integration = Integration.objects.get(pk=pk)
        integration_update(
            integration=integration, name=f"OpenAI #{renames}", settings=integration.settings,
            sync_interval=integration.sync_interval, backfill_days=integration.backfill_days,
        )
        renames += 1
    except OperationalError as exc:
        errors.append(str(exc))
    time.sleep(0.01)
print(json.dumps({"sessions": sessions, "renames": renames, "errors": errors}))
"""


@pytest.fixture
def sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL has row locks; this is about the embedded SQLite default")


def test_the_database_is_in_wal_mode(sqlite_only, db):
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_sync_and_page_writes_in_two_processes_never_find_the_database_locked(
    sqlite_only, transactional_db, openai_integration, admin_client, sandbox, tmp_path
):
    integration = openai_integration
    # Usage already stored, enough for the export to keep its cursor open across fetches.
    before = engine.integration_sync(
        integration_id=integration.pk, since=D0, until=MIDDLE, trigger=SyncRun.Trigger.COMMAND
    )
    assert before.status == SyncRun.Status.SUCCESS
    rows = integration.usage_records.count()
    assert rows > 2 * CHUNK_SIZE
    # The sync in the other process stores two more weeks, one chunk every ~0.5 s.
    sandbox.fault(USAGE_PATH, 200, delay=0.5, times=100)

    env = subprocess_env(DOOW_TEST_SQLITE_TIMEOUT=str(BUSY_TIMEOUT))
    stop = tmp_path / "stop"
    since, until = MIDDLE.date(), (END - timedelta(days=1)).date()  # --until is inclusive
    syncer = subprocess.Popen(
        [sys.executable, "manage.py", "sync", str(integration.pk), "--since", str(since), "--until", str(until)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pages = subprocess.Popen(
        [sys.executable, "-c", PAGE_WRITER, str(integration.pk), str(stop)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        second = SyncRun.objects.filter(integration=integration, chunks_done__gte=1).exclude(pk=before.pk)
        _wait(second.exists, "the sync's first chunk", syncer)
        _wait(Session.objects.exists, "the first page write", pages)

        # A slow download while both write: READ_SECONDS in all, and the export's cursor
        # stays open until its last fetch (CHUNK_SIZE rows at a time), well past BUSY_TIMEOUT.
        response = admin_client.get(reverse("usage:export", kwargs={"ws": integration.workspace.slug}))
        pause = READ_SECONDS * LINES_PER_PIECE / rows
        chunks_before, sessions_before = second.get().chunks_done, Session.objects.count()
        exported = b""
        for piece in response.streaming_content:
            exported += piece
            time.sleep(pause)
        # Both processes committed while the download's read was open.
        assert second.get().chunks_done >= chunks_before + 2
        assert Session.objects.count() >= sessions_before + 2

        sync_output, _ = syncer.communicate(timeout=120)
        stop.touch()
        page_output, page_errors = pages.communicate(timeout=60)
    finally:
        stop.touch()
        for proc in (syncer, pages):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # The header and every row stored when the download began (the sync had added some).
    assert rows + 1 <= exported.count(b"\n") <= integration.usage_records.count() + 1
    assert "database is locked" not in sync_output, sync_output
    assert syncer.returncode == 0, sync_output
    assert page_output.strip(), page_errors
    report = json.loads(page_output.strip().splitlines()[-1])
    assert report["errors"] == [], report["errors"][:5]
    # Every write of both processes is there.
    run = second.get()
    assert run.status == SyncRun.Status.SUCCESS and run.chunks_done == run.chunks_total
    assert stored_tokens(integration) == truth_tokens(D0, END)
    assert report["renames"] > 0 and report["sessions"]
    assert Session.objects.filter(session_key__in=report["sessions"]).count() == len(report["sessions"])
    assert Integration.objects.get(pk=integration.pk).name == f"OpenAI #{report['renames'] - 1}"


def _wait(condition: Callable[[], bool], what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process stopped before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
