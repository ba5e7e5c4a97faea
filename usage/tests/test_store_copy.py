"""The store's PostgreSQL path (COPY into a staging table, then one INSERT … SELECT … ON
CONFLICT) leaves exactly what the multi-row INSERT … VALUES path leaves: the same rows, the same
quantities to the ninth decimal, the same attribution, provenance and stream, the same stamps
on what it rewrites, and the same removals; and it runs inside the caller's transaction.

Each scenario runs twice in one database, through the public store functions: once on the
COPY path and once with COPY_VENDORS emptied (the VALUES path SQLite uses), each on its own
integration; the two results are compared, and checked against the expected values too."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError

from integrations.models import Integration
from integrations.providers.base import Answered, UsageSample, Window
from usage import store
from usage.models import Application, AttributionRule, License, UsageRecord
from usage.store import (
    _remove_unanswered,
    usage_prepare_samples,
    usage_store_chunk,
    usage_store_prepared,
    usage_store_samples,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's"),
]

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = Window(T0, T0 + 24 * H)
# The added dimensions (usage/dimensions.py) go last, so the positions below stay those of the first nine.
VALUES = ("bucket_start", "bucket_end", *store.DIMENSION_FIELDS[:9], "metric", "quantity", "unit", "provenance", "stream",
          "application_id", "license_id", "rule_id", "workspace_id", "provider", *store.DIMENSION_FIELDS[9:])  # fmt: skip
# Text a COPY line must escape, and text that looks like COPY's own markers.
AWKWARD = ("tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "quote'\"", "ünïcödé ✓", "  spaced  ")


def sample(hour: int, quantity: str | Decimal = "10", *, model: str = "gpt-4o", project: str = "proj_a",
           metric: str = "input_tokens", stream: str = "usage", provenance: str = "reported", **dims: str) -> UsageSample:  # fmt: skip
    return UsageSample(T0 + hour * H, T0 + (hour + 1) * H, metric, Decimal(quantity), "USD" if "cost" in metric else "",
                       model=model, project=project, stream=stream, provenance=provenance, **dims)  # fmt: skip


@pytest.fixture
def inventory(workspace):
    chatbot = Application.objects.create(workspace=workspace, name="Chatbot")
    search = Application.objects.create(workspace=workspace, name="Search")
    plan = License.objects.create(workspace=workspace, application=chatbot, plan_name="Team", start_date=T0.date())
    rules = AttributionRule.objects
    wildcard = rules.create(
        workspace=workspace, provider="openai", model="gpt-4o*", application=chatbot, license=plan, priority=10
    )
    exact = rules.create(workspace=workspace, provider="openai", project=AWKWARD[0], application=search, priority=20)
    return {"chatbot": chatbot, "search": search, "plan": plan, "wildcard": wildcard, "exact": exact}


def _integration(workspace, name: str) -> Integration:
    integration = Integration(workspace=workspace, provider="openai", name=name)
    integration.set_credential({"api_key": "sk-admin-store-test-000000"})
    integration.save()
    return integration


def rows(integration: Integration) -> list[tuple]:
    return list(UsageRecord.objects.filter(integration=integration).order_by(*VALUES).values_list(*VALUES))


def on_both_paths(workspace, monkeypatch, scenario: Callable[[Integration], object]) -> tuple[tuple, tuple]:
    """(rows, scenario's result) on the COPY path, then the same on the VALUES path."""
    results = []
    for vendors in (store.COPY_VENDORS, frozenset()):
        monkeypatch.setattr(store, "COPY_VENDORS", vendors)
        integration = _integration(workspace, f"OpenAI {len(results)}")
        outcome = scenario(integration)
        results.append((rows(integration), outcome))
    monkeypatch.undo()
    return results[0], results[1]


def test_new_rows_are_the_same_values_attribution_provenance_and_stream(workspace, inventory, monkeypatch):
    chunk = [
        sample(0, "1.123456789"),
        sample(0, "0.0000000005", metric="cost"),  # half a unit of the ninth decimal: rounded by the column
        sample(0, "-2.0000000015", model="o3", metric="cost"),
        sample(1, "123456789012345678901.5", model="o3"),  # 21 integer digits: the column holds 21
        sample(1, "1E+3", model="o1", provenance="derived", metric="cost", stream="prices"),
        sample(2, "7", project=AWKWARD[0], model="o1", provenance="imported", stream=""),
        *[sample(3, str(i), model=text, account=text, api_key=text) for i, text in enumerate(AWKWARD)],
        sample(4, "5", region="eu", deployment="d", endpoint="/v1/chat", resource="r", operation="op", account="acct"),
        sample(4, "6", service_tier="batch", batch="true", context_window="200k-1M", inference_geo="us", speed="fast"),
    ]

    def scenario(integration: Integration) -> int:
        return usage_store_samples(integration=integration, samples=chunk)

    (copied, written), (valued, written_by_values) = on_both_paths(workspace, monkeypatch, scenario)
    assert copied == valued and written == written_by_values == len(chunk)
    stored = {(r[0], r[5], r[11]): r for r in copied}  # (bucket_start, model, metric)
    assert stored[(T0, "gpt-4o", "input_tokens")][12] == Decimal("1.123456789")
    assert stored[(T0, "gpt-4o", "cost")][12] == Decimal("0.000000001")  # numeric rounds half away from zero
    assert stored[(T0, "o3", "cost")][12] == Decimal("-2.000000002")
    assert stored[(T0 + H, "o3", "input_tokens")][12] == Decimal("123456789012345678901.500000000")
    assert stored[(T0 + H, "o1", "cost")][12:16] == (Decimal(1000), "USD", "derived", "prices")
    attributed = {(r[5], r[3]): r[16:19] for r in copied}  # (model, project): (application, license, rule)
    assert attributed[("gpt-4o", "proj_a")] == (inventory["chatbot"].pk, inventory["plan"].pk, inventory["wildcard"].pk)
    assert attributed[("o1", AWKWARD[0])] == (inventory["search"].pk, None, inventory["exact"].pk)
    assert attributed[("o3", "proj_a")] == (None, None, None)
    assert {r[5] for r in copied if r[0] == T0 + 3 * H} == set(AWKWARD)
    assert {(r[2], r[10], r[5]) for r in copied if r[0] == T0 + 3 * H} == {(t, t, t) for t in AWKWARD}
    assert all(r[19] == workspace.pk and r[20] == "openai" for r in copied)
    assert {r[21:] for r in copied if r[0] == T0 + 4 * H} == {("",) * 5, ("batch", "true", "200k-1M", "us", "fast")}


def test_a_restatement_replaces_and_stamps_only_what_changed(workspace, inventory, monkeypatch):
    first = [sample(h, str(h)) for h in range(6)] + [sample(1, "3", provenance="imported", stream="", model="o3")]
    again = [sample(h, str(h + (h % 2))) for h in range(6)] + [sample(1, "3", model="o3")]  # odd hours, o3 restated

    def scenario(integration: Integration) -> tuple:
        before = usage_prepare_samples(integration=integration, samples=first)
        usage_store_prepared(prepared=before)
        after = usage_prepare_samples(integration=integration, samples=again)
        assert usage_store_prepared(prepared=after) == len(again)
        stamps = dict(UsageRecord.objects.filter(integration=integration).values_list("pk", "store_batch"))
        return stamps, before.store_batch, after.store_batch

    copy_path, values_path = on_both_paths(workspace, monkeypatch, scenario)
    (copied, (stamps, before, after)), (valued, (values_stamps, _, values_after)) = copy_path, values_path
    assert copied == valued
    assert [(r[0], r[5], r[12], r[14], r[15]) for r in copied] == [
        *[(T0 + h * H, "gpt-4o", Decimal(h + h % 2), "reported", "usage") for h in range(2)],
        (T0 + H, "o3", Decimal(3), "reported", "usage"),  # imported, now synced: rewritten
        *[(T0 + h * H, "gpt-4o", Decimal(h + h % 2), "reported", "usage") for h in range(2, 6)],
    ]
    by_row = {(r[0], r[5]): r for r in copied}
    assert len(by_row) == 7
    # The VALUES path stamps every row it was given; the COPY path only the rows whose values
    # changed (odd hours, and the row that became synced): the others stay as they were.
    assert set(values_stamps.values()) == {values_after}
    rewritten = UsageRecord.objects.filter(store_batch=after).values_list("bucket_start", "model")
    assert sorted(rewritten) == sorted([(T0 + h * H, "gpt-4o") for h in (1, 3, 5)] + [(T0 + H, "o3")])
    assert sorted(set(stamps.values())) == sorted({before, after})


def test_an_unchanged_row_is_not_rewritten(workspace, inventory):
    integration = _integration(workspace, "OpenAI")
    chunk = [sample(h, f"{h}.5") for h in range(24)]
    usage_store_samples(integration=integration, samples=chunk)

    def versions() -> list[tuple]:  # xmin: the transaction that wrote this version of the row
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, xmin::text, ctid::text FROM usage_usagerecord WHERE integration_id = %s ORDER BY id",
                [integration.pk],
            )
            return cursor.fetchall()

    with transaction.atomic():  # a later transaction than the first store
        original = versions()
        usage_store_samples(integration=integration, samples=chunk)
        assert versions() == original
        AttributionRule.objects.filter(pk=inventory["wildcard"].pk).update(model="o*")  # gpt-4o no longer matches
        usage_store_samples(integration=integration, samples=chunk)
        assert [v[0] for v in versions()] == [v[0] for v in original]
        assert all(new != old for new, old in zip(versions(), original, strict=True))
    assert set(UsageRecord.objects.filter(integration=integration).values_list("application_id", flat=True)) == {None}


def test_duplicate_keys_in_one_chunk_collapse_last_wins(workspace, inventory, monkeypatch):
    chunk = [sample(1, "1"), sample(2, "2"), sample(1, "11", provenance="derived"), sample(1, "111", stream="costs")]

    def scenario(integration: Integration) -> int:
        return usage_store_samples(integration=integration, samples=chunk)

    (copied, written), (valued, written_by_values) = on_both_paths(workspace, monkeypatch, scenario)
    assert copied == valued and written == written_by_values == 2
    assert [(r[0], r[12], r[14], r[15]) for r in copied] == [
        (T0 + H, Decimal(111), "reported", "costs"),
        (T0 + 2 * H, Decimal(2), "reported", "usage"),
    ]


def test_a_vanished_key_is_removed_and_an_unchanged_one_is_kept(workspace, inventory, monkeypatch):
    first = [sample(h, model=m) for h in range(4) for m in ("gpt-4o", "gone", "o3")]
    first.append(sample(5, model="kept", provenance="imported", stream="usage"))
    first.append(sample(6, model="other-stream", stream="costs"))
    again = [sample(h, model=m, quantity=("12" if m == "o3" else "10")) for h in range(4) for m in ("gpt-4o", "o3")]

    def scenario(integration: Integration) -> tuple:
        usage_store_chunk(integration=integration, samples=first, answered=[])
        stored = usage_store_chunk(integration=integration, samples=again, answered=[Answered("usage", DAY)])
        return stored.written, sorted((r.bucket_start, r.model) for r in stored.removed)

    (copied, outcome), (valued, values_outcome) = on_both_paths(workspace, monkeypatch, scenario)
    assert copied == valued and outcome == values_outcome
    assert outcome == (8, [(T0 + h * H, "gone") for h in range(4)])
    assert sorted({r[5] for r in copied}) == ["gpt-4o", "kept", "o3", "other-stream"]


def test_an_empty_chunk_still_removes_against_its_own_stamp(workspace, inventory):
    integration = _integration(workspace, "OpenAI")
    with transaction.atomic():
        usage_store_chunk(integration=integration, samples=[sample(1), sample(2)], answered=[])
        # The staging table of the chunk above is still there; an empty chunk must not read it.
        stored = usage_store_chunk(integration=integration, samples=[], answered=[Answered("usage", DAY)])
    assert sorted(r.bucket_start for r in stored.removed) == [T0 + H, T0 + 2 * H]
    assert not UsageRecord.objects.filter(integration=integration).exists()


def test_it_runs_inside_the_callers_transaction(workspace, inventory):
    integration = _integration(workspace, "OpenAI")

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        with transaction.atomic():
            usage_store_samples(integration=integration, samples=[sample(h) for h in range(5)])
            assert UsageRecord.objects.filter(integration=integration).count() == 5
            raise Abandon
    assert not UsageRecord.objects.filter(integration=integration).exists()
    # Several chunks in one transaction (an import stores several), each with its own staging.
    with transaction.atomic():
        prepared = [usage_prepare_samples(integration=integration, samples=[sample(h, str(h))]) for h in range(3)]
        assert sum(usage_store_prepared(prepared=p) for p in prepared) == 3
    assert sorted(UsageRecord.objects.filter(integration=integration).values_list("quantity", flat=True)) == [0, 1, 2]


def test_removing_outside_a_transaction_is_refused_not_guessed(transactional_db, workspace, inventory):
    """The removal reads the chunk's staging table, which lives only inside one transaction:
    called on its own outside one it refuses; usage_store_chunk always opens one."""
    integration = _integration(workspace, "OpenAI")
    usage_store_chunk(integration=integration, samples=[sample(1), sample(2)], answered=[])
    prepared = usage_prepare_samples(integration=integration, samples=[sample(1)])
    with pytest.raises(TransactionManagementError):
        _remove_unanswered(integration, [Answered("usage", DAY)], prepared)
    stored = usage_store_chunk(integration=integration, samples=[sample(1)], answered=[Answered("usage", DAY)])
    assert [r.bucket_start for r in stored.removed] == [T0 + 2 * H]
    usage_store_chunk(integration=integration, samples=[sample(1), sample(2)], answered=[])
    with transaction.atomic():
        stored = usage_store_chunk(integration=integration, samples=[sample(1)], answered=[Answered("usage", DAY)])
    assert [r.bucket_start for r in stored.removed] == [T0 + 2 * H]


def test_preparing_reads_only_the_rules_and_storing_costs_two_queries(workspace, inventory, django_assert_num_queries):
    integration = _integration(workspace, "OpenAI")
    chunk = [sample(h % 24, str(h), model=f"m{h // 24}") for h in range(5000)]
    with django_assert_num_queries(1):
        prepared = usage_prepare_samples(integration=integration, samples=chunk)
    assert prepared.rows == 5000 and prepared.bucket_starts == {T0 + h * H for h in range(24)}
    with django_assert_num_queries(2):  # staging (re)created, then the upsert; the COPY is not counted
        assert usage_store_prepared(prepared=prepared) == 5000
    assert UsageRecord.objects.filter(integration=integration).count() == 5000


def test_only_the_days_of_rows_that_changed_have_their_rollups_recomputed(workspace, inventory):
    """A re-read whose rows are all unchanged recomputes no rollup (the COPY path knows which
    rows its upsert rewrote); one changed row recomputes its own day only; the rollups equal
    the base table throughout, and a sync's re-read that removes a vanished row still
    recomputes that row's day."""
    from django.test.utils import CaptureQueriesContext

    from usage import rollups

    integration = _integration(workspace, "OpenAI rollups")
    two_days = [sample(hour, str(hour + 1)) for hour in range(0, 48, 6)]  # 1 and 2 November
    usage_store_samples(integration=integration, samples=two_days)
    assert rollups.totals_match(workspace)

    def rollup_writes(chunk: list[UsageSample], answered: list[Answered] | None = None) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            if answered is None:
                usage_store_samples(integration=integration, samples=chunk)
            else:
                with transaction.atomic():
                    usage_store_chunk(integration=integration, samples=chunk, answered=answered)
        return [q["sql"] for q in captured.captured_queries if q["sql"].startswith('INSERT INTO "usage_usagedaily"')]

    assert rollup_writes(two_days) == []  # nothing changed: no day recomputed
    changed = [*two_days[:-1], sample(42, "99")]  # 2 November, 18:00
    writes = rollup_writes(changed)
    assert len(writes) == 1 and "2026-11-02" in writes[0] and "2026-11-01" not in writes[0], writes
    assert rollups.totals_match(workspace)
    # A complete re-read of 1 November without its 06:00 row: that row is removed, its day recomputed.
    first_day = [s for s in changed if s.bucket_start < T0 + 24 * H and s.bucket_start != T0 + 6 * H]
    writes = rollup_writes(first_day, [Answered("usage", DAY)])
    assert writes and all("2026-11-01" in sql for sql in writes), writes
    assert not UsageRecord.objects.filter(integration=integration, bucket_start=T0 + 6 * H).exists()
    assert rollups.totals_match(workspace)
