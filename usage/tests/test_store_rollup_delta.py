"""The PostgreSQL store keeps the rollups by difference (usage.store._execute_copy with a zone,
usage.rollups.apply_delta): each chunk adds new − old per slice and local day instead of
re-aggregating its days from the base table. These tests hold it to what a full rebuild from
the base table gives, row for row (every slice of UsageDaily and of each level derived from it, quantities
exact), through new rows, restatements with changed quantities, units and attribution, ghost
removal, a time zone changed meanwhile, a day already out of step, and writers racing it.
The SQLite path recomputes (test_rollup_upkeep.py covers both databases)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from integrations.providers.base import Answered, UsageSample, Window
from usage import rollups, store
from usage.models import Application, AttributionRule, License, UsageDaily, UsageRecord
from usage.store import usage_store_chunk, usage_store_samples

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the store keeps rollups by difference on PostgreSQL"),
]

ZONE = "America/New_York"  # local days straddle UTC days
T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
MODELS = ("gpt-4o", "o3")
PROJECTS = ("p1", "p2")
METRICS = (("input_tokens", "tokens"), ("cost", "USD"))


def sample(hour: int, quantity: Decimal | str, *, model: str = "gpt-4o", project: str = "p1",
           metric: str = "input_tokens", unit: str | None = None) -> UsageSample:  # fmt: skip
    unit = unit if unit is not None else dict(METRICS)[metric]
    return UsageSample(T0 + hour * H, T0 + (hour + 1) * H, metric, Decimal(quantity), unit,
                       model=model, project=project, stream="usage")  # fmt: skip


def snapshot(workspace) -> tuple[list, ...]:
    """Every rollup slice of the workspace, daily and every derived level, in a stable order."""

    def rows(model, columns: tuple[str, ...]) -> list:
        found = model.objects.filter(workspace=workspace).values_list(*columns)
        return sorted(found, key=lambda row: tuple((v is None, str(v)) for v in row))

    return rows(UsageDaily, rollups.COLUMNS), *(rows(level.model(), level.columns) for level in rollups.LEVELS)


def assert_as_rebuilt(workspace) -> None:
    """The rollups are what a rebuild from the base table writes, slice for slice."""
    kept = snapshot(workspace)
    assert kept[0], "no rollup rows: the test proves nothing"
    assert not UsageDaily.objects.filter(workspace=workspace, rows__lte=0).exists()
    rollups.rebuild_workspace(workspace)
    assert snapshot(workspace) == kept
    assert rollups.totals_match(workspace)


def rollup_statements(captured: CaptureQueriesContext) -> tuple[list[str], list[str]]:
    """(statements adding differences, statements re-aggregating base rows) to UsageDaily."""
    writes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('INSERT INTO "usage_usagedaily"')]
    return [s for s in writes if store._DELTA in s], [s for s in writes if '"usage_usagerecord"' in s]


@pytest.fixture
def zoned(workspace):
    workspace.time_zone = ZONE
    workspace.save()
    return workspace


@pytest.fixture
def inventory(zoned):
    chatbot = Application.objects.create(workspace=zoned, name="Chatbot")
    search = Application.objects.create(workspace=zoned, name="Search")
    plan = License.objects.create(workspace=zoned, application=chatbot, plan_name="Team", start_date=T0.date())
    rules = AttributionRule.objects
    wildcard = rules.create(workspace=zoned, provider="openai", model="gpt-4o*", application=chatbot, license=plan,
                            priority=10)  # fmt: skip
    project = rules.create(workspace=zoned, provider="openai", project="p2", application=search, priority=20)
    return {"chatbot": chatbot, "search": search, "wildcard": wildcard, "project": project}


def test_a_restatement_adds_its_differences_and_reads_no_base_rows_for_the_rollups(zoned, inventory, integration):
    two_days = [sample(h, f"{h}.25", model=m, project=p) for h in range(0, 48, 3) for m in MODELS for p in PROJECTS]
    with CaptureQueriesContext(connection) as captured:
        usage_store_samples(integration=integration, samples=two_days)
    added, recomputed = rollup_statements(captured)
    assert len(added) == 1 and not recomputed
    assert_as_rebuilt(zoned)

    # Quantities changed (to the ninth decimal), a unit changed, and the rules changed so that
    # gpt-4o rows move from Chatbot (with its license) to Search: every kind of difference.
    AttributionRule.objects.filter(pk=inventory["wildcard"].pk).update(application=inventory["search"], license=None)
    restated = [
        sample(
            h, f"{h}.000000001" if m == "o3" else f"{h}.25", model=m, project=p, unit="kilotokens" if h == 6 else None
        )
        for h in range(0, 48, 3)
        for m in MODELS
        for p in PROJECTS
    ]
    with CaptureQueriesContext(connection) as captured:
        usage_store_samples(integration=integration, samples=restated)
    added, recomputed = rollup_statements(captured)
    assert len(added) == 1 and not recomputed
    assert UsageDaily.objects.filter(integration=integration, unit="kilotokens").exists()
    assert not UsageDaily.objects.filter(integration=integration, application=inventory["chatbot"]).exists()
    assert_as_rebuilt(zoned)

    # The same again: nothing changed, nothing written to the rollups.
    with CaptureQueriesContext(connection) as captured:
        usage_store_samples(integration=integration, samples=restated)
    assert rollup_statements(captured) == ([], [])


def test_random_chunks_keep_the_rollups_as_a_rebuild_writes_them(zoned, inventory, integration):
    """A seeded walk through new keys, restated keys (same or new quantity, unit, attribution
    after a rule change), ghosts removed by complete re-reads and empty chunks."""
    rng = random.Random(9)
    keys = [(h, m, p, metric) for h in range(72) for m in MODELS for p in PROJECTS for metric, _ in METRICS]
    stored: dict[tuple, UsageSample] = {}
    for step in range(14):
        if step % 4 == 3:  # the rules change: restated rows take the new attribution
            app, project = rng.choice(
                [(inventory["chatbot"], "p2"), (inventory["search"], "p2"), (inventory["search"], "-")]
            )
            AttributionRule.objects.filter(pk=inventory["project"].pk).update(application=app, project=project)
        first = rng.randrange(0, 60)
        window = [k for k in keys if first <= k[0] < first + rng.choice((3, 12, 30))]
        chunk = []
        for key in window:
            if rng.random() < 0.15:
                continue  # vanished from this read
            kept = stored.get(key)
            if kept is not None and rng.random() < 0.5:
                chunk.append(kept)  # re-read unchanged
                continue
            quantity = Decimal(rng.randrange(-(10**6), 10**12)) / 10**9
            unit = rng.choice(("USD", "EUR")) if key[3] == "cost" else "tokens"
            chunk.append(sample(key[0], quantity, model=key[1], project=key[2], metric=key[3], unit=unit))
        rng.shuffle(chunk)
        if step % 3 == 2:  # a complete re-read of its window: the keys it did not return are removed
            answered = [Answered("usage", Window(T0 + first * H, T0 + (first + 30) * H))]
            with transaction.atomic():
                result = usage_store_chunk(integration=integration, samples=chunk, answered=answered)
            for row in result.removed:
                stored.pop(
                    next(
                        k
                        for k in stored
                        if T0 + k[0] * H == row.bucket_start and k[1:] == (row.model, row.project, row.metric)
                    )
                )
        else:
            usage_store_samples(integration=integration, samples=chunk)
        for s in chunk:
            stored[((s.bucket_start - T0) // H, s.model, s.project, s.metric)] = s
        assert UsageRecord.objects.filter(integration=integration).count() == len(stored)
        assert_as_rebuilt(zoned)


def test_a_zone_changed_since_the_differences_were_summed_recomputes_the_days(
    zoned, inventory, integration, monkeypatch
):
    usage_store_samples(integration=integration, samples=[sample(h, "1") for h in range(0, 30, 2)])
    # The store summed its differences in UTC days; the workspace counts New York's by now.
    monkeypatch.setattr(store, "workspace_zone", lambda workspace_id: UTC)
    with CaptureQueriesContext(connection) as captured:
        usage_store_samples(integration=integration, samples=[sample(h, "2") for h in range(0, 30, 2)])
    added, recomputed = rollup_statements(captured)
    assert recomputed and not added
    assert_as_rebuilt(zoned)


def test_a_day_out_of_step_is_recomputed_not_pushed_below_zero(zoned, inventory, integration):
    usage_store_samples(integration=integration, samples=[sample(h, "5") for h in range(0, 48, 4)])
    first_day = rollups.local_day(T0 + 8 * H, rollups.zone_named(ZONE))
    UsageDaily.objects.filter(integration=integration, day=first_day).delete()  # written without upkeep
    with CaptureQueriesContext(connection) as captured:
        usage_store_samples(integration=integration, samples=[sample(8, "7")])
    added, recomputed = rollup_statements(captured)
    assert added and recomputed and all(str(first_day) not in s for s in added[1:])
    assert_as_rebuilt(zoned)


def _wait_for_lock_wait(pid: int) -> None:
    """Until the backend `pid` waits for a lock (another transaction holds what it needs)."""
    deadline = time.monotonic() + 20
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            if (cursor.fetchone() or [None])[0] == "Lock":
                return
            time.sleep(0.05)
    raise AssertionError("the store never waited for the row")


class Race:
    """Another transaction runs `other` (it writes, then waits) just before the chunk's write
    statement starts, and commits once that statement waits for it. `statements`: what the
    store's cursor executed in the write, in order."""

    def __init__(self, monkeypatch, other: Callable[[], object]) -> None:
        self.other, self.threads, self.statements = other, [], []
        self.holding, self.release = threading.Event(), threading.Event()
        real = store._write_by_difference
        monkeypatch.setattr(store, "_write_by_difference", lambda cursor, *args: real(self.Cursor(self, cursor), *args))

    def _other(self) -> None:
        try:
            with transaction.atomic():
                self.other()
                self.holding.set()
                self.release.wait(30)
        finally:
            connections.close_all()

    def _release_when_waiting(self, pid: int) -> None:
        try:
            _wait_for_lock_wait(pid)
        finally:
            self.release.set()
            connections.close_all()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
        assert len(self.threads) == 2, "the race never ran"

    class Cursor:
        def __init__(self, race: Race, cursor) -> None:
            self.race, self.cursor = race, cursor

        def execute(self, sql: str, params=()) -> None:
            race = self.race
            if threading.current_thread() is not threading.main_thread():
                return self.cursor.execute(sql, params)  # the other writer's own store: as is
            race.statements.append(sql)
            if sql == store._staging(connection.alias).write_by_difference and not race.threads:
                race.threads.append(threading.Thread(target=race._other))
                race.threads[-1].start()
                race.holding.wait(10)
                self.cursor.execute("SELECT pg_backend_pid()")
                race.threads.append(
                    threading.Thread(target=race._release_when_waiting, args=(self.cursor.fetchone()[0],))
                )
                race.threads[-1].start()
            return self.cursor.execute(sql, params)

        def fetchone(self):
            return self.cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_a_row_changed_while_the_chunk_reads_its_old_values_falls_back_to_recomputing(
    workspace, integration, monkeypatch
):
    """Another transaction changes a row the chunk restates after the chunk's UPDATE read its
    old values and before it reaches the row (the UPDATE waits for it): the counts differ, the
    chunk is upserted as a whole and its days recomputed from the base table."""
    workspace.time_zone = ZONE
    workspace.save()
    usage_store_samples(integration=integration, samples=[sample(h, "10") for h in range(6)])
    target = UsageRecord.objects.get(integration=integration, bucket_start=T0 + 2 * H)
    # No upkeep of its own: only a recompute can make the rollups right again.
    race = Race(
        monkeypatch,
        lambda: UsageRecord.objects.filter(pk=target.pk, bucket_start=target.bucket_start).update(quantity=999),
    )
    with CaptureQueriesContext(connection) as captured:
        usage_store_samples(integration=integration, samples=[sample(h, "20") for h in range(6)])
    race.join()
    added, recomputed = rollup_statements(captured)
    assert recomputed and not added  # the counts differed: the days were recomputed
    assert set(UsageRecord.objects.filter(integration=integration).values_list("quantity", flat=True)) == {20}
    assert_as_rebuilt(workspace)


@pytest.mark.django_db(transaction=True)
def test_a_key_stored_by_another_writer_meanwhile_is_restated_not_lost(workspace, integration, monkeypatch):
    """The chunk inserts its new keys by a plain INSERT; a key another chunk stores after the
    statement read the table makes the unique key refuse it: the statement runs again (ON
    CONFLICT DO NOTHING), sees that row as stored and rewrites it by difference."""
    workspace.time_zone = ZONE
    workspace.save()
    # Hour 3 stored by another chunk, with its own upkeep, committed while the chunk waits for it.
    race = Race(monkeypatch, lambda: usage_store_samples(integration=integration, samples=[sample(3, "7")]))
    usage_store_samples(integration=integration, samples=[sample(h, "20") for h in range(6)])
    race.join()
    assert race.statements[-1] == store._staging(connection.alias).write_by_difference_again
    assert set(UsageRecord.objects.filter(integration=integration).values_list("quantity", flat=True)) == {20}
    assert_as_rebuilt(workspace)


@pytest.mark.django_db(transaction=True)
def test_chunks_of_one_integration_stored_at_once_keep_the_rollups_exact(workspace, integration):
    """Two writers restating overlapping keys of one integration at the same time, over and
    over: no deadlock, no error, and the rollups are what a rebuild writes."""
    workspace.time_zone = ZONE
    workspace.save()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(6):
                first = rng.randrange(0, 20)
                chunk = [
                    sample(h, str(rng.randrange(1, 10)), model=m) for h in range(first, first + 12) for m in MODELS
                ]
                usage_store_samples(integration=integration, samples=chunk)
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert_as_rebuilt(workspace)
