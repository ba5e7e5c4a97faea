"""The raw usage table partitioned by month on PostgreSQL: the migration converts a table that
holds rows (both ways), rows land in their month's partition, the upsert still replaces across
partitions, `manage_partitions` creates months ahead, empties the DEFAULT partition, drops only
months past the retention (rollups keep their totals) and changes nothing when run again.
The retention itself also works on SQLite (plain DELETEs)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps as global_apps
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from integrations.providers.base import UsageSample
from usage import partitions
from usage.models import UsageRecord
from usage.store import usage_store_samples

# Written for the default instant (figures of December 2026): pinned there whatever
# DOOW_TEST_CLOCK says (conftest.py: the `clock` marker).
CLOCK = pytest.mark.clock("2026-12-06T12:00:00Z")
pytestmark = CLOCK

TABLE = "usage_usagerecord"
SQUASHED = importlib.import_module("usage.migrations.0001_squashed_0017")
postgres = pytest.mark.postgres


def sample(start: datetime, quantity: str | int, model: str = "gpt-4o") -> UsageSample:
    return UsageSample(
        bucket_start=start, bucket_end=start + timedelta(hours=1), metric="input_tokens",
        quantity=Decimal(quantity), unit="tokens", model=model,
    )  # fmt: skip


def homes() -> dict[int, str]:
    """Each row's id → the partition (table) that physically holds it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, tableoid::regclass::text FROM {TABLE}")
        return dict(cursor.fetchall())


def partition_names() -> list[str]:
    return [p.name for p in partitions.usage_partitions()]


def manage(*args: str) -> str:
    out = StringIO()
    call_command("manage_partitions", *args, stdout=out)
    return out.getvalue()


MONTHS = [datetime(2026, m, 15, 10, tzinfo=UTC) for m in (6, 7, 8, 9, 10, 11, 12)]


def convert(step) -> None:
    """Run one direction of the squashed migration's partitioning step (usage 0008 before the
    squash) on the test database, inside the test's transaction (rolled back with it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks on the table to ALTER
    with connection.schema_editor() as editor:
        step(global_apps, editor)


@postgres
def test_the_migration_converts_a_table_with_rows_and_back(workspace, integration):
    """A new install converts an empty table; the conversion still copies whatever the table
    holds, both ways (the reverse runs when the migration is unapplied)."""
    convert(SQUASHED.unpartition)
    assert not partitions.is_partitioned()
    UsageRecord.objects.bulk_create(
        [
            UsageRecord(
                workspace_id=workspace.pk,
                integration_id=integration.pk,
                provider="openai",
                bucket_start=start + timedelta(hours=i),
                bucket_end=start + timedelta(hours=i + 1),
                model=f"m{i}",
                metric="input_tokens",
                quantity=Decimal(f"{i}.000000001"),
                unit="tokens",
            )
            for start in (datetime(2025, 11, 30, 20, tzinfo=UTC), *MONTHS)
            for i in range(10)
        ]
    )
    before = {r["id"]: r for r in UsageRecord.objects.values()}
    assert len(before) == 80

    convert(SQUASHED.partition)
    assert partitions.is_partitioned()
    # Every row, every column it had, the same ids.
    assert {r["id"]: r for r in UsageRecord.objects.values()} == before
    # Each row in its own month's partition (the 2025-11-30 20:00 + i h rows straddle two).
    for pk, home in homes().items():
        assert home == partitions.partition_name(partitions.month_start(before[pk]["bucket_start"]))
    names = partition_names()
    assert names[0] == f"{TABLE}_p202511" and names[-1] == f"{TABLE}_default"
    assert f"{TABLE}_p202703" in names  # three months ahead of the (pinned) December 2026
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            [TABLE],
        )
        assert [row[0] for row in cursor.fetchall()] == ["id", "bucket_start"]
    # New rows continue the numbering; the natural key is still enforced across partitions.
    usage_store_samples(integration=integration, samples=[sample(MONTHS[0], 5, model="m0")])
    assert UsageRecord.objects.count() == 80
    usage_store_samples(integration=integration, samples=[sample(datetime(2026, 12, 1, tzinfo=UTC), 5)])
    assert UsageRecord.objects.get(bucket_start=datetime(2026, 12, 1, tzinfo=UTC)).pk > max(before)

    # And back: a plain table with the same rows and an identity that continues.
    convert(SQUASHED.unpartition)
    assert not partitions.is_partitioned()
    assert UsageRecord.objects.count() == 81
    assert UsageRecord.objects.aggregate(total=Sum("quantity"))["total"] == sum(
        (r["quantity"] for r in before.values()), Decimal(0)
    ) - Decimal("0.000000001") + Decimal(5) + Decimal(5)  # m0 of June replaced (0.000000001 → 5)
    fresh = UsageRecord.objects.create(
        workspace_id=workspace.pk, integration_id=integration.pk, provider="openai", bucket_start=MONTHS[0],
        bucket_end=MONTHS[0], metric="requests", quantity=1, unit="requests",
    )  # fmt: skip
    assert fresh.pk > max(UsageRecord.objects.exclude(pk=fresh.pk).values_list("pk", flat=True))


@postgres
def test_rows_land_in_their_months_partition_and_strays_in_the_default(integration):
    stray = datetime(2019, 3, 1, tzinfo=UTC)  # no partition for it
    # The months ahead of the pinned instant (the test database may have been migrated at
    # another instant, with other months ahead).
    manage()
    usage_store_samples(integration=integration, samples=[sample(MONTHS[-1], 1), sample(stray, 2)])
    usage_store_samples(integration=integration, samples=[sample(datetime(2027, 1, 31, 23, tzinfo=UTC), 3)])
    where = {UsageRecord.objects.get(pk=pk).bucket_start: home for pk, home in homes().items()}
    assert where == {
        MONTHS[-1]: f"{TABLE}_p202612",
        stray: f"{TABLE}_default",
        datetime(2027, 1, 31, 23, tzinfo=UTC): f"{TABLE}_p202701",
    }


@postgres
def test_the_upsert_replaces_rows_across_partitions(integration):
    first = [sample(start, 10, model=m) for start in MONTHS for m in ("a", "b")]
    usage_store_samples(integration=integration, samples=first)
    manage()  # June to November arrived before their partitions: moved out of the DEFAULT one
    ids = set(UsageRecord.objects.values_list("id", flat=True))
    assert len(ids) == 14 and len(set(homes().values())) == 7
    # The same keys restated in one chunk spanning every partition: replaced, never added.
    usage_store_samples(
        integration=integration, samples=[sample(start, 7, model=m) for start in MONTHS for m in ("a", "b")]
    )
    assert dict(UsageRecord.objects.values_list("id", "quantity")) == {pk: Decimal(7) for pk in ids}


@postgres
def test_manage_partitions_creates_months_ahead_and_is_idempotent(db):
    manage()  # three months ahead of the pinned instant (December 2026): up to March 2027
    assert f"{TABLE}_p202703" in partition_names()
    # The furthest month the database has (its migration may have run at a later instant), and
    # two more than that asked for.
    furthest = max(datetime.strptime(n.rsplit("_p", 1)[1], "%Y%m") for n in partition_names() if "_p" in n)
    ahead = (furthest.year - 2026) * 12 + furthest.month - 12 + 2
    wanted = [
        f"{TABLE}_p{(furthest.year * 12 + furthest.month - 1 + k) // 12}{(furthest.month - 1 + k) % 12 + 1:02d}"
        for k in (1, 2)
    ]
    assert not set(wanted) & set(partition_names())
    out = manage("--months-ahead", str(ahead))
    assert all(f"created {name}" in out for name in wanted), out
    after = partition_names()
    again = manage("--months-ahead", str(ahead))
    assert "created" not in again and "dropped" not in again and "nothing else to do" in again
    assert partition_names() == after


@postgres
def test_rows_in_the_default_partition_move_to_their_own_month(integration):
    old = [sample(datetime(2019, 3, d, tzinfo=UTC), d) for d in (1, 31)] + [sample(datetime(2019, 5, 2, tzinfo=UTC), 9)]
    usage_store_samples(integration=integration, samples=old)
    ids = set(homes())
    assert set(homes().values()) == {f"{TABLE}_default"}
    out = manage()
    assert f"created {TABLE}_p201903" in out and f"created {TABLE}_p201905" in out and "3 rows moved" in out
    assert sorted(homes().values()) == [f"{TABLE}_p201903", f"{TABLE}_p201903", f"{TABLE}_p201905"]
    assert set(homes()) == ids
    # The moved rows are still found by the upsert: restated, not duplicated.
    usage_store_samples(integration=integration, samples=[sample(datetime(2019, 3, 1, tzinfo=UTC), 100)])
    assert UsageRecord.objects.count() == 3
    assert UsageRecord.objects.get(bucket_start=datetime(2019, 3, 1, tzinfo=UTC)).quantity == 100
    assert "nothing else to do" in manage()


def _rollup_total(workspace) -> Decimal | None:
    try:
        daily = global_apps.get_model("usage", "UsageDaily")
    except LookupError:
        return None
    return daily.objects.filter(workspace=workspace).aggregate(total=Sum("quantity"))["total"]


@postgres
def test_retention_drops_only_partitions_past_it_and_rollups_keep_their_totals(workspace, integration, settings):
    usage_store_samples(integration=integration, samples=[sample(s, i + 1) for i, s in enumerate(MONTHS)])
    usage_store_samples(integration=integration, samples=[sample(datetime(2019, 3, 1, tzinfo=UTC), 1000)])
    manage()  # the months before December get their partitions (the stray 2019 row too)
    rollups = _rollup_total(workspace)
    names = partition_names()
    assert {f"{TABLE}_p201903", f"{TABLE}_p202606", f"{TABLE}_p202611"} <= set(names)
    # Pinned in December 2026, three months kept: from 2026-09-01 on.
    out = manage("--retention-months", "3")
    assert "raw rows kept from 2026-09-01" in out
    dropped = {n for n in names if n not in partition_names()}
    assert dropped == {n for n in names if n.startswith(f"{TABLE}_p") and n < f"{TABLE}_p202609"}
    assert {f"{TABLE}_p201903", f"{TABLE}_p202606", f"{TABLE}_p202607", f"{TABLE}_p202608"} <= dropped
    assert sorted(UsageRecord.objects.values_list("bucket_start", flat=True)) == MONTHS[3:]
    assert UsageRecord.objects.aggregate(total=Sum("quantity"))["total"] == 4 + 5 + 6 + 7
    assert _rollup_total(workspace) == rollups  # None without the rollups model; equal with it
    # A rebuild (a time zone change, `rebuild_rollups`) recomputes only the days whose raw rows
    # are all kept: the dropped months' rollups are the only record left of them.
    from usage.rollups import rebuild_workspace

    settings.DOOW_RAW_RETENTION_MONTHS = 3
    rebuild_workspace(workspace)
    assert _rollup_total(workspace) == rollups
    again = manage("--retention-months", "3")
    assert "nothing else to do" in again and partition_names() == sorted(set(names) - dropped, key=names.index)


@pytest.mark.django_db
def test_retention_deletes_only_older_raw_rows_on_any_database(integration, settings):
    usage_store_samples(integration=integration, samples=[sample(s, i + 1) for i, s in enumerate(MONTHS)])
    settings.DOOW_RAW_RETENTION_MONTHS = 2  # from 2026-10-01 on
    out = manage()
    assert "raw rows kept from 2026-10-01" in out
    assert sorted(UsageRecord.objects.values_list("bucket_start", flat=True)) == MONTHS[4:]
    assert "nothing else to do" in manage()
    settings.DOOW_RAW_RETENTION_MONTHS = 0
    assert "raw rows kept forever" in manage()
    assert UsageRecord.objects.count() == 3


def test_retention_cutoff_counts_whole_months():
    now = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    assert partitions.retention_cutoff(now=now, months=0) is None
    assert partitions.retention_cutoff(now=now, months=1) == datetime(2026, 2, 1, tzinfo=UTC)
    assert partitions.retention_cutoff(now=now, months=3) == datetime(2025, 12, 1, tzinfo=UTC)
    assert partitions.retention_cutoff(now=now, months=25) == datetime(2024, 2, 1, tzinfo=UTC)


def test_the_upkeep_runs_daily_from_beat(settings):
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "usage.tasks.manage_usage_partitions"
    )
    assert entry["schedule"] == 86400.0 and entry["options"]["expires"] < 86400


@postgres
def test_retention_deletes_old_rows_left_in_the_default_partition_instead_of_partitioning_them(integration):
    usage_store_samples(
        integration=integration, samples=[sample(datetime(2019, 3, 1, tzinfo=UTC), 1), sample(MONTHS[-1], 2)]
    )
    out = manage("--retention-months", "3")
    assert "1 raw rows older than the retention deleted" in out and "p201903" not in out
    assert list(UsageRecord.objects.values_list("bucket_start", flat=True)) == [MONTHS[-1]]
    assert f"{TABLE}_p201903" not in partition_names()


def changelist(client, **params):
    from django.urls import reverse

    response = client.get(reverse("admin:usage_usagerecord_changelist"), params)
    assert response.status_code == 200
    return response.context["cl"]


def test_the_admin_lists_usage_newest_first_by_month(superuser_client, integration):
    usage_store_samples(integration=integration, samples=[sample(s, i + 1) for i, s in enumerate(MONTHS)])
    manage()
    cl = changelist(superuser_client)
    assert [r.bucket_start for r in cl.result_list] == MONTHS[::-1]
    month_filter = next(f for f in cl.filter_specs if f.parameter_name == "month")
    choices = [c["display"] for c in month_filter.choices(cl)]
    assert {"June 2026", "December 2026"} <= set(choices) and choices.index("December 2026") < choices.index(
        "June 2026"
    )
    cl = changelist(superuser_client, month="2026-07")
    assert [r.bucket_start for r in cl.result_list] == [MONTHS[1]] and cl.result_count == 1
    for bad in ("July", "9999-12", "2026-13"):
        refused = superuser_client.get("/admin/usage/usagerecord/", {"month": bad})
        assert refused.status_code == 302 and refused["Location"].endswith("?e=1")  # the admin's "bad lookup"
    record = UsageRecord.objects.get(bucket_start=MONTHS[2])
    assert superuser_client.get(f"/admin/usage/usagerecord/{record.pk}/change/").status_code == 200


@postgres
def test_an_unfiltered_admin_list_is_counted_from_the_statistics(superuser_client, integration, monkeypatch):
    from usage.admin import EstimatedCountPaginator

    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_BELOW", 10)
    usage_store_samples(
        integration=integration, samples=[sample(MONTHS[-1] + timedelta(hours=h), 1) for h in range(30)]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    usage_store_samples(integration=integration, samples=[sample(MONTHS[-2] + timedelta(hours=h), 1) for h in range(5)])
    assert changelist(superuser_client).result_count == 30  # the estimate: the 5 new rows are not analyzed yet
    assert changelist(superuser_client, metric__exact="input_tokens").result_count == 35  # filtered: exact


@postgres
@pytest.mark.django_db(transaction=True)
def test_a_busy_partition_is_skipped_and_dropped_on_the_next_run(integration, monkeypatch):
    import psycopg

    usage_store_samples(integration=integration, samples=[sample(s, i + 1) for i, s in enumerate(MONTHS)])
    manage()
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    params = connection.get_connection_params()
    # Another session reading June (a long export, say) holds a lock the drop must wait for.
    reader = psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")})
    try:
        reader.execute(f"SELECT count(*) FROM {TABLE}_p202606").fetchone()  # its transaction stays open
        out = manage("--retention-months", "3")
        assert f"skipped {TABLE}_p202606" in out and f"dropped {TABLE}_p202607" in out
        assert f"{TABLE}_p202606" in partition_names() and f"{TABLE}_p202607" not in partition_names()
    finally:
        reader.close()
    out = manage("--retention-months", "3")
    assert f"dropped {TABLE}_p202606" in out and "skipped" not in out
    assert sorted(UsageRecord.objects.values_list("bucket_start", flat=True)) == MONTHS[3:]


@pytest.mark.django_db
def test_the_beat_task_applies_the_retention_setting(integration, settings):
    from usage.tasks import manage_usage_partitions

    usage_store_samples(integration=integration, samples=[sample(s, i + 1) for i, s in enumerate(MONTHS)])
    settings.DOOW_RAW_RETENTION_MONTHS = 1  # from 2026-11-01 on
    manage_usage_partitions.delay()  # eager in the tests: the task body as a worker runs it
    assert sorted(UsageRecord.objects.values_list("bucket_start", flat=True)) == MONTHS[5:]


@postgres
def test_partitions_leave_room_so_a_restated_quantity_is_a_hot_update(integration):
    """Every partition, those the migrations made and those made later, fills its pages to
    FILLFACTOR; a restatement that changes quantities then rewrites most rows in place (HOT:
    no new index entries) instead of as new row versions in every index."""
    manage()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        options = dict(cursor.fetchall())
    assert f"{TABLE}_default" in options and f"{TABLE}_p202612" in options
    assert all(value == [f"fillfactor={partitions.FILLFACTOR}"] for value in options.values()), options
    start = datetime(2026, 12, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(24)]
    models = [f"model-{m}" for m in range(25)]
    usage_store_samples(integration=integration, samples=[sample(h, 1, m) for h in hours for m in models])
    usage_store_samples(integration=integration, samples=[sample(h, 2, m) for h in hours for m in models])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = %s::regclass",
            [f"{TABLE}_p202612"],
        )
        updated, hot = cursor.fetchone()
    assert updated == 600
    assert hot >= 0.25 * updated, f"{hot} of {updated} updates were HOT"
    assert UsageRecord.objects.aggregate(n=Sum("quantity"))["n"] == 1200
