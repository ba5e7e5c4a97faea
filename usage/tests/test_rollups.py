"""Daily rollups (usage/rollups.py): a rollup total equals the base-table total, per local day
in the workspace's time zone, after every write path."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import F, Sum

from integrations.models import Integration
from usage import rollups
from usage.models import Application, UsageDaily, UsageRecord

T0 = datetime(2026, 10, 24, tzinfo=UTC)  # Europe/Paris leaves summer time on 2026-10-25


def base_rows(
    integration: Integration, hours: int, *, application: Application | None = None, start: datetime = T0
) -> None:
    UsageRecord.objects.bulk_create(
        UsageRecord(
            workspace_id=integration.workspace_id,
            integration=integration,
            provider=integration.provider,
            bucket_start=start + timedelta(hours=h),
            bucket_end=start + timedelta(hours=h + 1),
            model=("gpt-4o", "o1")[h % 2],
            metric=metric,
            quantity=Decimal(h) + Decimal("0.000000001"),
            unit=unit,
            application=application,
        )
        for h in range(hours)
        for metric, unit in (("input_tokens", "tokens"), ("cost", "USD"))
    )


def per_day(queryset, day_expr) -> dict:
    return {
        (row["d"], row["metric"], row["unit"], row["application_id"]): row["q"]
        for row in queryset.order_by()
        .values("metric", "unit", "application_id", d=F(day_expr))
        .annotate(q=Sum("quantity"))
    }


def local_days_of_base(workspace) -> dict:
    zone = rollups.zone_of(workspace)
    totals: dict = {}
    for r in UsageRecord.objects.filter(workspace=workspace):
        key = (r.bucket_start.astimezone(zone).date(), r.metric, r.unit, r.application_id)
        totals[key] = totals.get(key, 0) + r.quantity
    return totals


def rollup_days(workspace) -> dict:
    return per_day(rollups.daily_for(workspace), "day")


def test_refresh_days_sums_base_rows_per_local_day(workspace, integration):
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    base_rows(integration, 72)
    zone = rollups.zone_of(workspace)
    days = rollups.days_of(UsageRecord.objects.values_list("bucket_start", flat=True), zone)
    assert days == {date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26), date(2026, 10, 27)}
    rollups.refresh_days(integration.pk, days)
    assert rollup_days(workspace) == local_days_of_base(workspace)
    # 2026-10-25 in Paris has 25 hours (summer time ends): 25 buckets of each metric and model split.
    assert sum(UsageDaily.objects.filter(day=date(2026, 10, 25)).values_list("rows", flat=True)) == 2 * 25
    assert rollups.totals_match(workspace)


def test_refresh_days_replaces_only_the_days_given(workspace, integration):
    base_rows(integration, 48)
    rollups.refresh_days(integration.pk, {date(2026, 10, 24), date(2026, 10, 25)})
    UsageRecord.objects.filter(bucket_start__gte=T0 + timedelta(days=1)).update(quantity=Decimal("7"))
    UsageRecord.objects.filter(bucket_start__lt=T0 + timedelta(hours=1)).delete()
    rollups.refresh_days(integration.pk, {date(2026, 10, 25)})
    day1 = UsageDaily.objects.filter(day=date(2026, 10, 24), metric="cost").aggregate(q=Sum("quantity"))["q"]
    assert day1 == sum(Decimal(h) + Decimal("0.000000001") for h in range(24))  # not refreshed: stale on purpose
    rollups.refresh_days(integration.pk, {date(2026, 10, 24)})
    assert rollup_days(workspace) == local_days_of_base(workspace)


def test_rebuild_workspace_follows_a_time_zone_change(workspace, integration, other_workspace):
    base_rows(integration, 50)
    rollups.rebuild_workspace(workspace)
    assert set(rollups.daily_for(workspace).values_list("day", flat=True)) == {
        date(2026, 10, 24),
        date(2026, 10, 25),
        date(2026, 10, 26),
    }
    workspace.time_zone = "America/Los_Angeles"
    workspace.save()
    progress = []
    rollups.rebuild_workspace(workspace, on_integration=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 1)]
    assert rollup_days(workspace) == local_days_of_base(workspace)
    assert min(rollups.daily_for(workspace).values_list("day", flat=True)) == date(2026, 10, 23)
    assert not rollups.daily_for(other_workspace).exists()


def test_unique_slice_treats_null_attribution_as_one_value(workspace, integration):
    from django.db import IntegrityError, transaction

    base_rows(integration, 1)
    rollups.refresh_days(integration.pk, {date(2026, 10, 24)})
    row = UsageDaily.objects.filter(application__isnull=True).first()
    row.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        row.save()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_integration_take_turns(workspace, integration):
    """A rebuild and a chunk's refresh of the same day, concurrently: without the advisory lock
    the second INSERT collides with the first's slice (or misses its rows)."""
    import threading

    from django.db import connection, connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has a single writer")
    base_rows(integration, 24)
    holding, errors = threading.Event(), []

    def first() -> None:
        try:
            with transaction.atomic():
                rollups.refresh_integration(integration.pk)
                holding.set()
                threading.Event().wait(0.5)  # keep the lock while the other writer starts
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            holding.set()
            connections.close_all()

    def second() -> None:
        holding.wait(5)
        try:
            with transaction.atomic():
                rollups.refresh_moments(integration.pk, [T0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert rollup_days(workspace) == local_days_of_base(workspace)


def test_a_rebuild_goes_span_by_span_and_drops_days_outside(workspace, integration, monkeypatch):
    monkeypatch.setattr(rollups, "REBUILD_SPAN_DAYS", 2)
    base_rows(integration, 24 * 5)  # Oct 24..28 UTC
    UsageDaily.objects.create(
        workspace=workspace,
        integration=integration,
        provider="openai",
        day=date(2026, 1, 1),
        metric="cost",
        unit="USD",
        quantity=Decimal("9"),
        rows=1,
    )  # fmt: skip  (a stale row before the first day, e.g. from another zone)
    rollups.rebuild_workspace(workspace)
    assert rollup_days(workspace) == local_days_of_base(workspace)
    assert min(UsageDaily.objects.values_list("day", flat=True)) == date(2026, 10, 24)


def test_rebuild_all_fills_rollups_from_existing_rows(workspace, integration, other_workspace):
    base_rows(integration, 30)  # bulk_create: no upkeep
    assert not UsageDaily.objects.exists()
    rollups.rebuild_all()
    assert rollup_days(workspace) == local_days_of_base(workspace)
