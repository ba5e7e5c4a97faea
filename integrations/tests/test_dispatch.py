"""The beat dispatcher enqueues exactly the due integrations, by id, with `expires`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import engine
from integrations.models import Integration
from integrations.tasks import dispatch_due_syncs, sync_integration


@pytest.fixture
def make_integration(workspace):
    def make(name: str, **fields) -> Integration:
        integration = Integration(workspace=workspace, provider="openai", name=name, **fields)
        integration.set_credential({"api_key": "sk-admin-dispatch-test-000000"})
        integration.save()
        return integration

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
    due_error = make_integration("failing but due", status=Integration.Status.ERROR, next_sync_at=now - timedelta(seconds=1))
    make_integration("later", next_sync_at=now + timedelta(minutes=10))
    make_integration("paused", status=Integration.Status.PAUSED, next_sync_at=now - timedelta(hours=1))
    make_integration("disconnected", status=Integration.Status.DISCONNECTED, next_sync_at=now - timedelta(hours=1))
    make_integration("being synced", next_sync_at=now - timedelta(hours=1), lock_token="x", lock_expires_at=now + timedelta(minutes=5))

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
    # The failed one keeps its due time, so the next tick retries it.
    first.refresh_from_db()
    assert first.next_sync_at <= now


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
