"""A connection dropped mid-answer is a network fault: retried like a reset, then NetworkError
(transient, rescheduled with back-off), never "Unexpected error during sync"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from integrations import engine
from integrations.http import HttpClient
from integrations.models import Integration, SyncRun
from integrations.providers.base import NetworkError
from integrations.tests.test_sync_engine import snapshot, stored_tokens, truth_tokens

D0 = datetime(2026, 11, 2, tzinfo=UTC)
D3 = D0 + timedelta(days=3)
USAGE_PATH = "/openai/v1/organization/usage"
PROJECTS_PATH = "/openai/v1/organization/projects"


def _sync(integration: Integration) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=D0, until=D3, trigger="command")


def _projects(sandbox, http: HttpClient):
    response = http.request(
        "GET",
        sandbox.openai_base_url + "/organization/projects",
        headers={"Authorization": f"Bearer {sandbox.OPENAI_ADMIN_KEY}"},
    )
    return http.decode_json(response)


@pytest.mark.parametrize(
    "fault",
    [
        {"drop": "body"},  # Content-Length promised, half sent: IncompleteRead → ChunkedEncodingError
        {"drop": "reset"},
        {"headers": {"Content-Encoding": "gzip"}, "body": "this is not gzip"},  # ContentDecodingError
    ],
    ids=["short-body", "reset", "undecodable-body"],
)
def test_the_seam_retries_an_answer_cut_short(sandbox, fault):
    sandbox.fault(PROJECTS_PATH, 200, times=2, **fault)
    sleeps: list[float] = []
    http = HttpClient(secrets=[sandbox.OPENAI_ADMIN_KEY], sleep=sleeps.append, backoff=1.0)
    assert _projects(sandbox, http)["object"] == "list"
    assert http.calls == 3 and sleeps == [1.0, 2.0]  # back-off between the attempts, like a reset


def test_an_answer_always_cut_short_is_a_network_error(sandbox):
    sandbox.fault(PROJECTS_PATH, 200, times=10, drop="body")
    http = HttpClient(secrets=[sandbox.OPENAI_ADMIN_KEY], sleep=lambda s: None)
    with pytest.raises(NetworkError) as info:
        _projects(sandbox, http)
    assert "dropped before the whole answer arrived" in info.value.message
    assert http.calls == http.max_attempts


def test_a_short_body_during_a_sync_is_retried_and_nothing_is_lost(openai_integration, sandbox):
    sandbox.fault(USAGE_PATH, 200, drop="body", after=1, times=2)
    run = _sync(openai_integration)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert stored_tokens(openai_integration) == truth_tokens(D0, D3)


@pytest.mark.parametrize("drop", ["body", "reset"])
def test_a_sync_whose_answers_keep_dropping_fails_as_a_network_fault_and_is_rescheduled(
    openai_integration, sandbox, drop
):
    assert _sync(openai_integration).status == SyncRun.Status.SUCCESS
    before = snapshot(openai_integration)
    sandbox.fault(USAGE_PATH, 200, drop=drop, times=1000)
    started = timezone.now()
    run = _sync(openai_integration)

    assert (run.status, run.error_category) == (SyncRun.Status.FAILED, "network")
    assert "Unexpected error" not in run.error
    assert snapshot(openai_integration) == before
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.ACTIVE  # transient: nothing to fix yet
    assert openai_integration.last_error_category == "network"
    assert started < openai_integration.next_sync_at <= timezone.now() + engine.MAX_BACKOFF
    event = openai_integration.events.get(sync_run=run)
    assert event.category == "network" and event.level != "info"
