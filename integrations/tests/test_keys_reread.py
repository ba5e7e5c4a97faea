"""The history re-read after a connector upgrade (issue 13), against the OpenAI sandbox.

The integration holds rows the connector wrote before it split completions by service tier and
batch and costs by API key (keys version 1): the same usage, merged into one row per project and
model (per project and line item). The next scheduled sync re-reads that history through the
normal path: every day ends up as the sandbox's truth, no old-key row is left, the new version
is stored and an event says so; a re-read cut short resumes where it stopped and never counts
a token twice; a new integration has nothing to re-read."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from integrations import engine
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.base import Answered, UsageSample, Window, align_down
from integrations.providers.openai.connector import OpenAIProvider
from integrations.providers.testing import days_ago
from integrations.tasks import sync_integration
from integrations.tests.test_sync_engine import rounded, stored_cost, stored_tokens, truth_cost, truth_tokens
from sandbox import openai as fake
from usage.models import UsageRecord
from usage.pricing.estimate import pricing_estimate_samples
from usage.store import usage_store_chunk

pytestmark = pytest.mark.django_db
REREAD = "History re-read after a connector upgrade"
DAY = timedelta(days=1)
OLD_STREAMS = ("usage_completions", "costs")  # what the connector read before the upgrade


class WorkerKilled(BaseException):
    """The worker process stops mid-sync (not an error the engine catches)."""


def latest(provider: OpenAIProvider) -> datetime:
    return align_down(timezone.now() - provider.reporting_delay, provider.bucket)


def old_key(samples: list[UsageSample]) -> list[UsageSample]:
    """The samples as the connector stored them before the upgrade: completions and costs only,
    without service tier, batch or API key (one row holding what the new keys split)."""
    merged: dict[UsageSample, UsageSample] = {}
    for sample in samples:
        if sample.stream not in OLD_STREAMS:
            continue
        plain = replace(sample, service_tier="", batch="", api_key="", quantity=0)
        held = merged.get(plain)
        merged[plain] = replace(plain, quantity=sample.quantity + (held.quantity if held else 0))
    return list(merged.values())


def upgraded(integration: Integration, start: datetime) -> datetime:
    """The integration as the release before left it: synced through the last reported hour by the
    version-1 connector, which stored [start, then) with the old keys (and their estimates).
    Returns `then`."""
    provider = integration.provider_obj
    then = latest(provider)
    credential, settings = integration.get_credential(), integration.settings
    day = start
    while day < then:
        window = Window(day, min(day + DAY, then))
        samples = old_key(list(provider.fetch(credential, settings, window, http=provider.http_client(credential))))
        estimates = pricing_estimate_samples(integration=integration, samples=samples)
        usage_store_chunk(integration=integration, answered=[], samples=[*samples, *estimates])
        day += DAY
    Integration.objects.filter(pk=integration.pk).update(keys_version=1, data_through=then)
    return then


def old_key_rows(integration: Integration):
    rows = UsageRecord.objects.filter(integration=integration)
    return rows.filter(stream__startswith="usage_completions", service_tier="") | rows.filter(
        stream__startswith="costs", api_key=""
    )


def assert_counted_once(integration: Integration, start: datetime, end: datetime) -> None:
    """Every day of [start, end) holds the sandbox's true tokens and costs: once, not twice."""
    assert stored_tokens(integration) == truth_tokens(start, end)
    assert rounded(stored_cost(integration)) == rounded(truth_cost(start, end))


def reread_events(integration: Integration):
    return integration.events.filter(message__startswith=REREAD)


def test_one_scheduled_sync_rereads_the_history_with_the_new_keys(openai_integration):
    integration = openai_integration
    start = days_ago(6)
    then = upgraded(integration, start)
    assert old_key_rows(integration).exists()
    assert_counted_once(integration, start, then)  # the old rows hold the same totals, merged

    sync_integration.delay(integration.pk)  # the Celery task (eager in tests), as beat enqueues it

    run = integration.sync_runs.get()
    assert run.status == SyncRun.Status.SUCCESS and run.trigger == "schedule", run.error
    assert run.window_start == start  # the earliest stored bucket, not the restatement window
    assert run.rows_removed >= 1
    assert not old_key_rows(integration).exists()
    assert_counted_once(integration, start, run.window_end)
    # The usage types the old connector did not read are there for the re-read days too.
    assert UsageRecord.objects.filter(
        integration=integration, stream="usage_embeddings", bucket_start__lt=start + DAY
    ).exists()
    integration.refresh_from_db()
    assert integration.keys_version == OpenAIProvider.keys_version == 2
    assert integration.keys_reread == {}
    event = reread_events(integration).get()
    assert event.level == IntegrationEvent.Level.INFO and event.sync_run_id == run.pk
    assert f"{start:%Y-%m-%d %H:%M} to {run.window_end:%Y-%m-%d %H:%M} UTC" in event.message

    sync_integration.delay(integration.pk)  # the next sync does not re-read again
    second = integration.sync_runs.first()
    assert second.status == SyncRun.Status.SUCCESS
    assert second.window_start == align_down(run.window_end - DAY, DAY)  # the restatement window only
    assert reread_events(integration).count() == 1
    assert_counted_once(integration, start, second.window_end)


@pytest.mark.parametrize("stop", ["error", "worker killed"])
def test_a_reread_cut_short_resumes_where_it_stopped_and_never_counts_twice(openai_integration, monkeypatch, stop):
    integration = openai_integration
    start = days_ago(6)
    then = upgraded(integration, start)
    provider_class = type(integration.provider_obj)
    monkeypatch.setattr(provider_class, "fetch_span", DAY)  # one fetch per day: a stop between days
    original = provider_class.fetch
    fetched: list[Window] = []
    fail_at = 5  # the regular window's two days, two days of history, then the stop

    def stopping(self, credential, settings, window, **kwargs):
        fetched.append(window)
        if len(fetched) == fail_at:
            if stop == "error":
                raise RuntimeError("the worker's connection to the database broke")
            raise WorkerKilled
        yield from original(self, credential, settings, window, **kwargs)

    monkeypatch.setattr(provider_class, "fetch", stopping)
    if stop == "error":
        failed = engine.integration_sync(integration_id=integration.pk)
        assert failed.status == SyncRun.Status.FAILED
    else:
        with pytest.raises(WorkerKilled):
            engine.integration_sync(integration_id=integration.pk)
        assert integration.sync_runs.get().status == SyncRun.Status.RUNNING  # nobody finished it
    integration.refresh_from_db()
    assert integration.keys_version == 1  # not re-read yet: retried
    through = datetime.fromisoformat(integration.keys_reread["through"])
    assert through == start + 2 * DAY  # the two history days stored before the stop
    assert not reread_events(integration).exists()
    assert_counted_once(integration, start, then)  # half re-read, half old rows: each token once

    fetched.clear()
    fail_at = 0
    resumed = engine.integration_sync(integration_id=integration.pk)
    assert resumed.status == SyncRun.Status.SUCCESS, resumed.error
    history = sorted(w.start for w in fetched if w.start < align_down(then - DAY, DAY))
    assert history[0] == through  # resumed, not restarted: the stored days are not read again
    assert not old_key_rows(integration).exists()
    assert_counted_once(integration, start, resumed.window_end)
    integration.refresh_from_db()
    assert integration.keys_version == 2 and integration.keys_reread == {}
    assert f"{start:%Y-%m-%d %H:%M} to" in reread_events(integration).get().message  # the whole range


def test_history_older_than_a_reread_goes_or_than_the_provider_serves_stays_as_stored(openai_integration, monkeypatch):
    integration = openai_integration
    upgraded(integration, days_ago(6))
    monkeypatch.setattr(engine, "REREAD_HISTORY", timedelta(days=4))
    floor = days_ago(4)
    # The provider no longer serves the day before the regular window (say, past its retention):
    # its answer comes back empty, and complete.
    gone = Window(days_ago(2), days_ago(1))
    fake._usage_changes.add(lambda row: None if gone.start <= row.hour_start < gone.end else row)
    fake._cost_changes.add(lambda row: None if gone.start <= row.day < gone.end else row)

    def old(start: datetime, end: datetime) -> set[tuple]:
        rows = old_key_rows(integration).filter(bucket_start__gte=start, bucket_start__lt=end)
        return set(rows.values_list("pk", "quantity"))

    too_old, not_served = old(days_ago(6), floor), old(gone.start, gone.end)
    assert too_old and not_served

    run = engine.integration_sync(integration_id=integration.pk)

    assert run.status == SyncRun.Status.SUCCESS and run.window_start == floor
    assert old(days_ago(6), floor) == too_old
    assert old(gone.start, gone.end) == not_served
    # Every day the provider still serves was re-read.
    assert not old(floor, gone.start) and not old(gone.end, run.window_end)
    event = reread_events(integration).get()
    assert f"Usage before {floor:%Y-%m-%d}" in event.hint
    integration.refresh_from_db()
    assert integration.keys_version == 2


def test_a_new_integration_never_rereads(openai_integration):
    integration = openai_integration
    assert integration.keys_version == OpenAIProvider.keys_version  # created at the current version
    integration.backfill_days = 2
    integration.save()
    sync_integration.delay(integration.pk)
    sync_integration.delay(integration.pk)
    first, second = integration.sync_runs.order_by("pk")
    assert first.window_start == align_down(timezone.now() - 2 * DAY, DAY)  # the backfill, as ever
    assert second.window_start == align_down(first.window_end - DAY, DAY)
    assert not reread_events(integration).exists()


def test_an_old_version_without_synced_rows_takes_the_current_one_without_rereading(openai_integration):
    integration = openai_integration
    Integration.objects.filter(pk=integration.pk).update(keys_version=1, backfill_days=2)
    sync_integration.delay(integration.pk)
    run = integration.sync_runs.get()
    assert run.status == SyncRun.Status.SUCCESS
    assert run.window_start == align_down(timezone.now() - 2 * DAY, DAY)
    integration.refresh_from_db()
    assert integration.keys_version == 2 and not reread_events(integration).exists()


def test_a_ranged_sync_reads_its_range_and_leaves_the_reread_to_the_next_regular_one(openai_integration):
    integration = openai_integration
    start = days_ago(4)
    then = upgraded(integration, start)
    run = engine.integration_sync(
        integration_id=integration.pk, since=days_ago(2), until=days_ago(1), trigger="command"
    )
    assert run.window_start == days_ago(2)
    integration.refresh_from_db()
    assert integration.keys_version == 1
    assert old_key_rows(integration).filter(bucket_start__lt=days_ago(2)).exists()
    assert not old_key_rows(integration).filter(bucket_start__gte=days_ago(2), bucket_start__lt=days_ago(1)).exists()
    assert engine.integration_sync(integration_id=integration.pk).window_start == start
    assert_counted_once(integration, start, then)


def test_a_reread_answers_only_for_the_days_its_stream_returned_something():
    """A chunk longer than a day (Vertex reads 7): a day in it the provider no longer serves
    keeps its rows while the days around it are replaced."""
    d0 = days_ago(10)
    answers = [
        Answered("billing", Window(d0, d0 + 4 * DAY), {"project": {"p"}}),
        Answered("credits", Window(d0, d0 + DAY)),
    ]
    samples = [
        UsageSample(d0 + day, d0 + day + DAY, "cost", 1, "USD", stream="billing") for day in (0 * DAY, DAY, 3 * DAY)
    ]
    assert engine._reread_answers(answers, samples) == [
        Answered("billing", Window(d0, d0 + 2 * DAY), {"project": {"p"}}),  # two days in a row: one answer
        Answered("billing", Window(d0 + 3 * DAY, d0 + 4 * DAY), {"project": {"p"}}),
    ]  # the third day and the credits stream, which returned nothing, remove nothing
