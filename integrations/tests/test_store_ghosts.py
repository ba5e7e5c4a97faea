"""The store's removal of rows a complete re-read no longer returns (usage_store_chunk):
exactly the rows a sync wrote for the answered stream, window and scope — never another
stream's, scope's, window's, integration's or an imported row — in one SELECT and one DELETE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from integrations.models import Integration
from integrations.providers.base import Answered, UsageSample, Window
from usage import rollups
from usage.models import UsageRecord
from usage.store import usage_store_chunk, usage_store_samples

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = Window(T0, T0 + 24 * H)


@pytest.fixture
def integration(workspace):
    return _integration(workspace, "OpenAI")


def _integration(workspace, name: str) -> Integration:
    integration = Integration(workspace=workspace, provider="openai", name=name)
    integration.set_credential({"api_key": "sk-admin-store-test-000000"})
    integration.save()
    return integration


def sample(hour: int, model: str = "gpt-4o", *, project: str = "proj_a", metric: str = "input_tokens",
           quantity: int = 10, stream: str = "usage", provenance: str = "reported") -> UsageSample:  # fmt: skip
    return UsageSample(T0 + hour * H, T0 + (hour + 1) * H, metric, Decimal(quantity), "USD" if metric == "cost" else "",
                       model=model, project=project, stream=stream, provenance=provenance)  # fmt: skip


def rows(integration: Integration) -> set[tuple]:
    return set(
        UsageRecord.objects.filter(integration=integration).values_list(
            "bucket_start", "model", "project", "metric", "stream"
        )
    )


def key(s: UsageSample) -> tuple:
    return (s.bucket_start, s.model, s.project, s.metric, s.stream)


def test_a_vanished_key_is_removed_and_returned_as_it_was(integration):
    first = [sample(1, "gpt-4o"), sample(1, "gpt-4o-renamed-later", quantity=7), sample(2, "o3")]
    usage_store_chunk(integration=integration, samples=first, answered=[Answered("usage", DAY)])
    again = [sample(1, "gpt-4o", quantity=11), sample(1, "gpt-4o-2024-08-06", quantity=7), sample(2, "o3")]
    stored = usage_store_chunk(integration=integration, samples=again, answered=[Answered("usage", DAY)])
    assert stored.written == 3
    assert rows(integration) == {key(s) for s in again}
    assert [(r.model, r.quantity, r.bucket_start) for r in stored.removed] == [("gpt-4o-renamed-later", 7, T0 + H)]
    assert UsageRecord.objects.get(integration=integration, model="gpt-4o").quantity == 11


def test_an_answer_with_no_usage_left_removes_every_row_of_its_scope(integration):
    usage_store_chunk(integration=integration, samples=[sample(h) for h in range(5)], answered=[Answered("usage", DAY)])
    stored = usage_store_chunk(integration=integration, samples=[], answered=[Answered("usage", DAY)])
    assert len(stored.removed) == 5 and not rows(integration)


def test_only_the_answered_stream_window_and_scope_lose_rows(integration, workspace):
    other = _integration(workspace, "OpenAI (second org)")
    kept = [
        sample(3, stream="costs", metric="cost"),  # another stream, same window
        sample(3, project="proj_c"),  # outside the scope
        sample(3, metric="output_tokens"),  # outside the metric scope
        sample(-1),  # the hour before the window
        sample(24),  # the window's end is exclusive
    ]
    gone = [sample(3), sample(4, project="proj_b")]
    usage_store_chunk(integration=integration, samples=kept + gone, answered=[])
    usage_store_chunk(integration=other, samples=gone, answered=[])
    answer = Answered("usage", DAY, {"project": ["proj_a", "proj_b"], "metric": ["input_tokens"]})
    stored = usage_store_chunk(integration=integration, samples=[], answered=[answer])
    assert sorted(key_of(r) for r in stored.removed) == sorted(key(s) for s in gone)
    assert rows(integration) == {key(s) for s in kept}
    assert rows(other) == {key(s) for s in gone}  # another integration's rows are its own


def key_of(r: UsageRecord) -> tuple:
    return (r.bucket_start, r.model, r.project, r.metric, r.stream)


def test_imported_rows_are_never_removed(integration):
    # An imported figure written over a synced key becomes imported (stream ""), and stays.
    usage_store_chunk(integration=integration, samples=[sample(1), sample(2)], answered=[])
    usage_store_samples(integration=integration, samples=[sample(1, stream="", provenance="imported", quantity=99)])
    # Even an imported row that somehow carries the stream's name is left alone.
    UsageRecord.objects.create(workspace=integration.workspace, integration=integration, provider="openai",
                               bucket_start=T0 + 5 * H, bucket_end=T0 + 6 * H, metric="input_tokens",
                               quantity=5, unit="tokens", provenance="imported", stream="usage")  # fmt: skip
    stored = usage_store_chunk(integration=integration, samples=[], answered=[Answered("usage", DAY)])
    assert [r.bucket_start for r in stored.removed] == [T0 + 2 * H]
    assert set(UsageRecord.objects.values_list("provenance", "quantity")) == {("imported", 99), ("imported", 5)}


def test_rows_stored_before_streams_existed_are_matched_by_their_named_stream(integration):
    # Migration usage 0004 (squashed since) named old rows' streams; their store_batch stayed NULL.
    usage_store_samples(integration=integration, samples=[sample(1, stream="usage"), sample(2, stream="usage")])
    UsageRecord.objects.update(store_batch=None)  # as the migration leaves rows stored before it
    stored = usage_store_chunk(integration=integration, samples=[sample(1)], answered=[Answered("usage", DAY)])
    assert [r.bucket_start for r in stored.removed] == [T0 + 2 * H]


def test_an_empty_scope_answers_nothing(integration):
    usage_store_chunk(integration=integration, samples=[sample(1)], answered=[])
    stored = usage_store_chunk(integration=integration, samples=[], answered=[Answered("usage", DAY, {"project": []})])
    assert stored.removed == [] and len(rows(integration)) == 1


def test_several_answers_cost_one_select_and_one_delete(integration, django_assert_num_queries):
    streams = {"usage": "input_tokens", "costs": "cost", "other": "requests"}  # keys never shared by two streams
    everything = [sample(h, stream=s, metric=m) for s, m in streams.items() for h in range(24)]
    usage_store_chunk(integration=integration, samples=everything, answered=[])
    answers = [
        Answered(s, Window(T0 + h * H, T0 + (h + 1) * H), {"model": ["gpt-4o"]}) for s in streams for h in range(24)
    ]
    survivors = [sample(h, stream=s, metric=m) for s, m in streams.items() for h in range(0, 24, 2)]
    # rules + upsert, then one SELECT … FOR UPDATE of the vanished rows and one DELETE of them,
    # then the rollups of the days written or removed: the workspace's time zone, one DELETE
    # and one INSERT … SELECT for the daily rollup and the same two for each level derived from
    # it. On PostgreSQL the write is the staging table's (create, savepoint, the one write
    # statement, release, planner settings reset, the removal's index on it) and the rollups
    # are kept by difference (the lock with the zone, the delta's days), the removed days
    # recomputed.
    postgresql = connection.vendor == "postgresql"
    rollup_upkeep = 1 + 2 * (1 + len(rollups.LEVELS))
    with django_assert_num_queries((11 if postgresql else 4) + rollup_upkeep):
        stored = usage_store_chunk(integration=integration, samples=survivors, answered=answers)
    assert len(stored.removed) == 36 and rows(integration) == {key(s) for s in survivors}
    # Nothing vanished: the SELECT finds nothing, and no DELETE of usage rows is sent. On
    # PostgreSQL nothing was rewritten either (every value unchanged), so no day's rollups are
    # touched: the rules, the zone, the staging table's write (create, savepoint, write, release,
    # settings reset), its index for the removal, and the SELECT.
    with django_assert_num_queries(9 if postgresql else 3 + rollup_upkeep):
        assert usage_store_chunk(integration=integration, samples=survivors, answered=answers).removed == []


def test_an_answer_checks_its_scope():
    with pytest.raises(ValueError, match="Unknown scope field"):
        Answered("usage", DAY, {"workspace": ["w"]})
    with pytest.raises(ValueError, match="not one string"):
        Answered("usage", DAY, {"project": "proj_a"})
    answer = Answered("usage", DAY, {"project": ["proj_a"]})
    assert answer.covers(sample(3)) and not answer.covers(sample(3, project="proj_b"))
    assert not answer.covers(sample(3, stream="costs")) and not answer.covers(sample(24))
    assert answer.within(Window(T0 + 20 * H, T0 + 30 * H)) == Answered(
        "usage", Window(T0 + 20 * H, DAY.end), {"project": ["proj_a"]}
    )
    assert answer.within(Window(DAY.end, DAY.end + H)) is None
