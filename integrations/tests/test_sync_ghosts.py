"""The engine's side of "a re-read never leaves a ghost": answers act only for a chunk whose
fetch ended without an error, in that chunk's transaction, and never outside that chunk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations import engine
from integrations.models import SyncRun
from integrations.providers.base import Answered, Window
from integrations.providers.openai.connector import OpenAIProvider
from integrations.tests.restatement import stored_rows
from sandbox import openai as fake

pytestmark = pytest.mark.django_db
D0 = datetime(2026, 11, 2, tzinfo=UTC)
DAY = timedelta(days=1)
O3 = "o3-mini-2025-01-31"
COSTS_PATH = "/openai/v1/organization/costs"


def sync(integration, since: datetime, until: datetime) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")


def test_a_chunk_that_fails_after_one_stream_answered_removes_nothing(openai_integration, sandbox):
    assert sync(openai_integration, D0, D0 + DAY).status == SyncRun.Status.SUCCESS
    before = stored_rows(openai_integration)
    assert stored_rows(openai_integration, model=O3)

    fake.withdraw_model(O3)
    sandbox.fault(COSTS_PATH, 503, times=1000)  # usage is read completely, then costs fail
    failed = sync(openai_integration, D0, D0 + DAY)
    assert failed.status == SyncRun.Status.FAILED and failed.rows_removed == 0
    assert stored_rows(openai_integration) == before  # nothing stored, nothing removed

    sandbox.clear_faults()
    assert sync(openai_integration, D0, D0 + DAY).rows_removed > 0
    assert not stored_rows(openai_integration, model=O3)


def test_an_answer_never_reaches_outside_the_chunk_being_stored(openai_integration, monkeypatch):
    assert sync(openai_integration, D0, D0 + 2 * DAY).status == SyncRun.Status.SUCCESS
    first_day = stored_rows(openai_integration, bucket_start__lt=D0 + DAY)
    assert stored_rows(openai_integration, model=O3, bucket_start__lt=D0 + DAY)
    original = OpenAIProvider.fetch

    def overreaching(self, *args, answered=None, **kwargs):
        yield from original(self, *args, answered=answered, **kwargs)
        # A buggy connector claims a month around the chunk.
        answered.append(Answered("usage_completions", Window(D0 - 30 * DAY, D0 + 30 * DAY)))
        answered.append(Answered("costs", Window(D0 - 30 * DAY, D0 + 30 * DAY)))

    monkeypatch.setattr(OpenAIProvider, "fetch", overreaching)
    fake.withdraw_model(O3)
    run = sync(openai_integration, D0 + DAY, D0 + 2 * DAY)  # the second day only
    assert run.status == SyncRun.Status.SUCCESS and run.rows_removed > 0
    assert not stored_rows(openai_integration, model=O3, bucket_start__gte=D0 + DAY)
    assert stored_rows(openai_integration, bucket_start__lt=D0 + DAY) == first_day  # outside the chunk: untouched
