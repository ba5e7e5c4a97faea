"""The beat dispatcher enqueues exactly the due integrations, by id, with `expires`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

import integrations.testing
from doow.testing import race
from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.tasks import dispatch_due_syncs, sync_integration


@pytest.fixture
def make_integration(workspace):
    def make(name: str, **fields) -> Integration:
        return integrations.testing.make_integration(workspace, name, **fields)

    return make


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[dict] = []

    def fake_apply_async(args=None, kwargs=None, **options):
        calls.append({"args": args, "kwargs": kwargs, **options})

    monkeypatch.setattr(sync_integration, "apply_async", fake_apply_async)
    return calls


def test_dispatcher_enqueues_exactly_the_due_integrations(make_integration, enqueued):
    now = timezone.now()
    due_past = make_integration("due", next_sync_at=now - timedelta(minutes=5))
    due_new = make_integration("never synced", next_sync_at=None)
    due_error = make_integration(
        "failing but due", status=Integration.Status.ERROR, next_sync_at=now - timedelta(seconds=1)
    )
    make_integration("later", next_sync_at=now + timedelta(minutes=10))
    make_integration("paused", status=Integration.Status.PAUSED, next_sync_at=now - timedelta(hours=1))
    make_integration("disconnected", status=Integration.Status.DISCONNECTED, next_sync_at=now - timedelta(hours=1))
    make_integration(
        "being synced",
        next_sync_at=now - timedelta(hours=1),
        lock_token="x",
        lock_expires_at=now + timedelta(minutes=5),
    )

    dispatch_due_syncs.apply()  # the beat task, run in-process

    assert sorted(c["args"][0] for c in enqueued) == sorted([due_past.pk, due_new.pk, due_error.pk])
    assert all(c["expires"] == engine.DISPATCH_EXPIRES_SECONDS for c in enqueued)
    assert all(isinstance(c["args"][0], int) and len(c["args"]) == 1 for c in enqueued)


def test_dispatcher_does_not_enqueue_twice_while_a_sync_is_queued(make_integration, enqueued):
    make_integration("due", next_sync_at=timezone.now() - timedelta(minutes=1))
    engine.integration_dispatch_due()
    engine.integration_dispatch_due()
    assert len(enqueued) == 1


def test_expired_lock_does_not_block_dispatch(make_integration, enqueued):
    past = timezone.now() - timedelta(minutes=1)
    stale = make_integration("worker died", next_sync_at=past, lock_token="dead", lock_expires_at=past)
    engine.integration_dispatch_due()
    assert [c["args"][0] for c in enqueued] == [stale.pk]


def test_one_enqueue_failure_does_not_stop_the_others(make_integration, monkeypatch):
    now = timezone.now()
    first = make_integration("a", next_sync_at=now - timedelta(minutes=2))
    second = make_integration("b", next_sync_at=now - timedelta(minutes=1))
    sent: list[int] = []

    def flaky(args=None, kwargs=None, **options):
        if args[0] == first.pk:
            raise ConnectionError("broker hiccup")
        sent.append(args[0])

    monkeypatch.setattr(sync_integration, "apply_async", flaky)
    assert engine.integration_dispatch_due() == [second.pk]
    assert sent == [second.pk]
    # The failed one's claim is released, so the next tick retries it.
    assert Integration.objects.due(timezone.now()).filter(pk=first.pk).exists()
    assert not Integration.objects.due(timezone.now()).filter(pk=second.pk).exists()


def test_a_broker_that_keeps_failing_releases_the_rest_of_the_batch(make_integration, monkeypatch):
    now = timezone.now()
    due = [
        make_integration(f"due {i}", next_sync_at=now - timedelta(minutes=1)).pk
        for i in range(engine.DISPATCH_GIVE_UP_AFTER + 4)
    ]
    attempts: list[int] = []

    def broker_down(args=None, kwargs=None, **options):
        attempts.append(args[0])
        raise ConnectionError("broker down")

    monkeypatch.setattr(sync_integration, "apply_async", broker_down)
    assert engine.integration_dispatch_due() == []
    # It stopped trying after DISPATCH_GIVE_UP_AFTER failures in a row, and every claim was released.
    assert len(attempts) == engine.DISPATCH_GIVE_UP_AFTER
    assert sorted(Integration.objects.due(timezone.now()).values_list("pk", flat=True)) == sorted(due)


def test_dispatch_puts_a_real_message_on_the_broker(make_integration, settings):
    """Not mocked: the message goes through the configured broker (memory://, or Redis in CI)."""
    from doow.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    integration = make_integration("due", next_sync_at=timezone.now() - timedelta(minutes=1))
    queue_name = app.conf.task_default_queue
    try:
        with app.connection_for_write() as conn:
            simple = conn.SimpleQueue(queue_name)
            simple.clear()
            assert engine.integration_dispatch_due() == [integration.pk]
            message = simple.get(timeout=5)
            try:
                headers = message.headers
                assert headers["task"] == "integrations.tasks.sync_integration"
                assert headers["expires"]
                body_args = message.decode()[0]
                assert body_args == [integration.pk]
            finally:
                message.ack()
                simple.close()
    finally:
        app.conf.task_always_eager = True


# ------------------------------------------------------------------ stranded syncs (worker died mid-sync)
def _stranded(make_integration, name: str = "worker died", **fields) -> tuple[Integration, SyncRun]:
    """A sync claimed by the dispatcher a minute ago whose worker died: the lease has lapsed,
    the run still says running and next_sync_at is the claim's, far ahead."""
    now = timezone.now()
    integration = make_integration(
        name,
        next_sync_at=now + engine.DISPATCH_CLAIM - timedelta(minutes=1),
        lock_token="dead-worker",
        lock_expires_at=now - timedelta(seconds=1),
        **fields,
    )
    run = SyncRun.objects.create(integration=integration, chunks_total=14, chunks_done=4)
    return integration, run


def test_a_stranded_sync_is_enqueued_again_and_its_run_abandoned(make_integration, enqueued):
    integration, run = _stranded(make_integration)
    make_integration("later", next_sync_at=timezone.now() + timedelta(minutes=10))

    dispatch_due_syncs.apply()

    assert [c["args"][0] for c in enqueued] == [integration.pk]
    assert enqueued[0]["kwargs"] == {"trigger": SyncRun.Trigger.SCHEDULE}
    run.refresh_from_db()
    assert run.status == SyncRun.Status.ABANDONED and run.finished_at is not None
    integration.refresh_from_db()
    # The dead worker's lease is broken, and the claim keeps the next tick from enqueueing it again.
    assert integration.lock_token == "" and integration.lock_expires_at is None
    assert integration.next_sync_at > timezone.now() + engine.DISPATCH_CLAIM - timedelta(minutes=1)
    assert not Integration.objects.stranded(timezone.now()).filter(pk=integration.pk).exists()
    dispatch_due_syncs.apply()
    assert len(enqueued) == 1


def test_a_run_left_running_without_a_lease_is_enqueued_again(make_integration, enqueued):
    # A failure that escaped the engine after its run started: the lease was released in the
    # sync's `finally`, but the run still says running.
    integration = make_integration("crashed", next_sync_at=timezone.now() + timedelta(minutes=50))
    run = SyncRun.objects.create(integration=integration)
    engine.integration_dispatch_due()
    assert [c["args"][0] for c in enqueued] == [integration.pk]
    run.refresh_from_db()
    assert run.status == SyncRun.Status.ABANDONED


def test_a_sync_whose_lease_is_alive_is_left_alone(make_integration, enqueued):
    now = timezone.now()
    integration = make_integration(
        "syncing",
        next_sync_at=now - timedelta(minutes=1),
        lock_token="alive",
        lock_expires_at=now + timedelta(seconds=30),
    )
    run = SyncRun.objects.create(integration=integration, chunks_total=14, chunks_done=4)

    engine.integration_dispatch_due()

    assert enqueued == []
    run.refresh_from_db()
    integration.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING
    assert integration.lock_token == "alive"


def test_a_stranded_sync_of_a_paused_integration_is_not_enqueued(make_integration, enqueued):
    _stranded(make_integration, status=Integration.Status.PAUSED)
    engine.integration_dispatch_due()
    assert enqueued == []


def test_racing_dispatchers_enqueue_each_stranded_sync_once(transactional_db, make_integration, enqueued):
    stranded = [_stranded(make_integration, f"died {i}")[0].pk for i in range(8)]
    due = [make_integration(f"due {i}", next_sync_at=timezone.now() - timedelta(minutes=1)).pk for i in range(8)]
    assert race(engine.integration_dispatch_due, threads=3) == []
    assert sorted(c["args"][0] for c in enqueued) == sorted(stranded + due)
    assert not SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()


# ------------------------------------------------------------------ one tick, many integrations
def _tick_queries(django_assert_max_num_queries, expected: int) -> int:
    with django_assert_max_num_queries(8) as captured:
        assert len(engine.integration_dispatch_due()) == expected
    return len(captured.captured_queries)


def test_a_tick_costs_the_same_queries_however_many_are_due(make_integration, enqueued, django_assert_max_num_queries):
    now = timezone.now()
    for i in range(3):
        make_integration(f"few {i}", next_sync_at=now - timedelta(minutes=1))
    few = _tick_queries(django_assert_max_num_queries, 3)

    for i in range(40):
        make_integration(f"due {i}", next_sync_at=now - timedelta(minutes=1))
    for i in range(40):
        _stranded(make_integration, f"died {i}")
    many = _tick_queries(django_assert_max_num_queries, 80)

    assert many == few
    assert not SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()
    assert len({c["args"][0] for c in enqueued}) == len(enqueued) == 83


def test_a_tick_claims_at_most_one_batch(make_integration, enqueued, monkeypatch):
    monkeypatch.setattr(engine, "DISPATCH_BATCH", 5)
    now = timezone.now()
    pks = [make_integration(f"due {i}", next_sync_at=now - timedelta(minutes=10 - i)).pk for i in range(7)]
    assert engine.integration_dispatch_due() == pks[:5]  # the longest-waiting first
    assert engine.integration_dispatch_due() == pks[5:]


# ------------------------------------------------------------------ racing dispatchers on PostgreSQL
def postgres_only(test):
    skip = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and SKIP LOCKED are PostgreSQL's")
    return pytest.mark.postgres(skip(test))


@pytest.mark.parametrize("rounds", [3])
@postgres_only
def test_two_dispatchers_racing_on_postgres_claim_each_integration_once(
    transactional_db, make_integration, enqueued, rounds
):
    stranded = [_stranded(make_integration, f"died {i}")[0].pk for i in range(150)]
    due = [make_integration(f"due {i}", next_sync_at=timezone.now() - timedelta(minutes=1)).pk for i in range(300)]
    assert race(engine.integration_dispatch_due, threads=2, rounds=rounds) == []
    sent = [c["args"][0] for c in enqueued]
    assert len(sent) == len(set(sent))
    assert sorted(sent) == sorted(stranded + due)
    assert not SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()


@postgres_only
def test_a_dispatcher_skips_what_another_is_claiming_without_waiting(transactional_db, make_integration, enqueued):
    stranded, run = _stranded(make_integration)
    due = make_integration("due", next_sync_at=timezone.now() - timedelta(minutes=1))
    claimed = threading.Event()
    release = threading.Event()
    other: list[list[int]] = []

    def other_dispatcher_mid_claim() -> None:
        try:
            with transaction.atomic():
                other.append(engine._claim_due(timezone.now(), timezone.now() + engine.DISPATCH_CLAIM))
                claimed.set()
                release.wait(timeout=20)  # its transaction stays open: the rows stay locked
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_dispatcher_mid_claim)
    thread.start()
    try:
        assert claimed.wait(timeout=10)
        started = time.monotonic()
        assert engine.integration_dispatch_due() == []  # skipped, not double-claimed
        assert time.monotonic() - started < 5  # and not blocked on the other's row locks
    finally:
        release.set()
        thread.join(timeout=30)
    assert other == [sorted([stranded.pk, due.pk])]
    # Once the other committed, neither is due any more, and the dead worker's run is abandoned.
    assert engine.integration_dispatch_due() == []
    run.refresh_from_db()
    assert run.status == SyncRun.Status.ABANDONED
