"""The engine reads a provider a fetch span at a time (up to 31 days) and stores it a chunk at
a time: a span changes how many calls a sync makes, never what it stores; each chunk still
removes what its part of the answer no longer holds; the lease is renewed while a long fetch
runs, and a sync whose lease was taken over mid-fetch stops before storing anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations import engine
from integrations.http import HttpClient
from integrations.models import Integration, SyncRun
from integrations.providers.openai.connector import OpenAIProvider
from integrations.tests.restatement import stored_rows
from sandbox import openai as fake

pytestmark = pytest.mark.django_db
D0 = datetime(2026, 11, 2, tzinfo=UTC)
DAY = timedelta(days=1)
O3 = "o3-mini-2025-01-31"


def sync(integration: Integration, since: datetime, until: datetime) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")


@pytest.fixture
def fetched(monkeypatch) -> list:
    windows: list = []
    original = OpenAIProvider.fetch

    def recording(self, credential, settings, window, **kwargs):
        windows.append(window)
        return original(self, credential, settings, window, **kwargs)

    monkeypatch.setattr(OpenAIProvider, "fetch", recording)
    return windows


def test_a_span_changes_the_calls_not_the_rows(openai_integration, fetched, monkeypatch):
    run = sync(openai_integration, D0, D0 + 10 * DAY)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert [(w.start, w.end) for w in fetched] == [(D0, D0 + 10 * DAY)]  # one fetch
    # 240 hourly buckets in pages of 168 for completions and six more usage endpoints, one page of
    # daily vector-store buckets, and one page of costs.
    assert run.provider_calls == 7 * 2 + 1 + 1
    assert run.chunks_total == run.chunks_done == 10  # stored a day per transaction
    one_fetch = stored_rows(openai_integration)
    openai_integration.refresh_from_db()
    assert openai_integration.data_through == D0 + 10 * DAY

    # The same window a day per fetch: ten times the calls, the same rows.
    monkeypatch.setattr(OpenAIProvider, "fetch_span", DAY)
    fetched.clear()
    again = sync(openai_integration, D0, D0 + 10 * DAY)
    assert len(fetched) == 10
    assert again.provider_calls == 10 * 9  # the eight usage endpoints and costs, for each day
    assert stored_rows(openai_integration) == one_fetch and again.rows_removed == 0


def test_a_window_longer_than_the_span_is_fetched_in_spans_of_whole_chunks(openai_integration, fetched, monkeypatch):
    monkeypatch.setattr(OpenAIProvider, "fetch_span", timedelta(days=3, hours=5))  # rounded up to 4 days
    run = sync(openai_integration, D0, D0 + 10 * DAY)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert [(w.start, w.end) for w in fetched] == [
        (D0, D0 + 4 * DAY),
        (D0 + 4 * DAY, D0 + 8 * DAY),
        (D0 + 8 * DAY, D0 + 10 * DAY),
    ]
    assert run.chunks_done == 10


def test_each_chunk_of_a_span_removes_what_the_answer_no_longer_holds(openai_integration, sandbox):
    assert sync(openai_integration, D0, D0 + 3 * DAY).status == SyncRun.Status.SUCCESS
    withdrawn = {
        day: stored_rows(openai_integration, model=O3, bucket_start__gte=day, bucket_start__lt=day + DAY)
        for day in (D0, D0 + DAY, D0 + 2 * DAY)
    }
    assert all(withdrawn.values()), "the model has usage on each day"
    before = stored_rows(openai_integration)

    fake.withdraw_model(O3)
    run = sync(openai_integration, D0 + DAY, D0 + 3 * DAY)  # one fetch, two chunks
    assert run.status == SyncRun.Status.SUCCESS
    assert run.rows_removed == len(withdrawn[D0 + DAY]) + len(withdrawn[D0 + 2 * DAY])
    assert not stored_rows(openai_integration, model=O3, bucket_start__gte=D0 + DAY)
    assert stored_rows(openai_integration, bucket_start__lt=D0 + DAY) == {r for r in before if r[0] < D0 + DAY}


def test_a_long_fetch_renews_the_lease_before_its_first_chunk_is_stored(openai_integration, settings, monkeypatch):
    settings.DOOW_SYNC_LOCK_SECONDS = 0  # renewed at every call
    renewals: list[int] = []
    original = engine._renew_lock

    def recording(pk, token):
        renewals.append(SyncRun.objects.get(integration_id=pk).chunks_done)
        return original(pk, token)

    monkeypatch.setattr(engine, "_renew_lock", recording)
    run = sync(openai_integration, D0, D0 + 3 * DAY)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    # One renewal per call during the fetch (nothing stored yet), then one after each chunk.
    assert renewals == [0] * run.provider_calls + [1, 2, 3]


def test_a_lease_taken_over_mid_fetch_stops_the_sync_before_it_stores(openai_integration, monkeypatch, settings):
    settings.DOOW_SYNC_LOCK_SECONDS = 0
    original = HttpClient.request

    def another_worker_takes_over(self, *args, **kwargs):
        response = original(self, *args, **kwargs)
        Integration.objects.filter(pk=openai_integration.pk).update(lock_token="another-worker")
        return response

    monkeypatch.setattr(HttpClient, "request", another_worker_takes_over)
    with pytest.raises(engine.SyncLockLost):
        sync(openai_integration, D0, D0 + 3 * DAY)
    assert not stored_rows(openai_integration)
    assert Integration.objects.get(pk=openai_integration.pk).lock_token == "another-worker"  # not released by us
