"""Every write path keeps the daily rollups equal to the base table, per integration, local day
(in the workspace's time zone), metric, unit, application and license: a sync, a restatement (a
key re-read with a new value), ghost removal, re-attribution, deleting an application, a license
or an integration, and CSV import. Run on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.tests.restatement import import_rows
from sandbox import openai as fake
from usage import rollups, services
from usage.models import (
    AttributionRule,
    License,
    UsageDaily,
    UsageDailyNarrow,
    UsageDailyProject,
    UsageDailyTotal,
    UsageRecord,
)

pytestmark = pytest.mark.django_db
ZONE = "America/New_York"  # local days straddle UTC days: 05:00Z is midnight
O3 = "o3-mini-2025-01-31"


def base_totals(workspace, *, by: tuple[str, ...] = ()) -> Counter:
    """The base table summed as the daily rollup is: per integration, local day, metric, unit,
    application and license, and per the fields in `by` (the narrow rollup's model and region)
    between the day and the metric."""
    zone = rollups.zone_named(workspace.time_zone)
    totals: Counter = Counter()
    for r in UsageRecord.objects.filter(workspace=workspace):
        key = (
            r.integration_id,
            r.bucket_start.astimezone(zone).date(),
            *(getattr(r, field) for field in by),
            r.metric,
            r.unit,
            r.application_id,
            r.license_id,
        )
        totals[key] += r.quantity
        totals[("rows", *key)] += 1
    return totals


def narrow_totals(workspace, model=UsageDailyNarrow, dimensions: tuple[str, ...] = ("model", "region")) -> Counter:
    totals: Counter = Counter()
    for d in model.objects.filter(workspace=workspace):
        key = (
            d.integration_id,
            d.day,
            *(getattr(d, name) for name in dimensions),
            d.metric,
            d.unit,
            d.application_id,
            d.license_id,
        )
        assert key not in totals, "one slice stored twice"
        totals[key] += d.quantity
        totals[("rows", *key)] += d.rows
    return totals


def rollup_totals(workspace) -> Counter:
    totals: Counter = Counter()
    for d in rollups.daily_for(workspace):
        key = (d.integration_id, d.day, d.metric, d.unit, d.application_id, d.license_id)
        totals[key] += d.quantity
        totals[("rows", *key)] += d.rows
    return totals


def assert_rollups_match(workspace) -> Counter:
    workspace.refresh_from_db()
    base = base_totals(workspace)
    assert base, "nothing stored: the test proves nothing"
    assert rollup_totals(workspace) == base
    assert not UsageDaily.objects.filter(rows__lte=0).exists()
    # The narrow rollup, against the base table directly (not only against UsageDaily).
    assert narrow_totals(workspace) == base_totals(workspace, by=("model", "region"))
    assert not UsageDailyNarrow.objects.filter(rows__lte=0).exists()
    # The other derived levels too: per project; without any dimension.
    for model in (UsageDailyProject, UsageDailyTotal):
        level = next(level for level in rollups.LEVELS if level.model() is model)
        assert narrow_totals(workspace, model, level.dimensions) == base_totals(workspace, by=level.dimensions)
        assert not model.objects.filter(rows__lte=0).exists()
    assert rollups.narrow_matches(workspace)
    return base


def sync(integration: Integration, since: datetime, until: datetime) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


@pytest.fixture
def zoned(workspace):
    workspace.time_zone = ZONE
    workspace.save()
    return workspace


@pytest.fixture
def synced(zoned, openai_integration, pinned_clock):
    since = pinned_clock.replace(hour=0) - timedelta(days=2)
    sync(openai_integration, since, pinned_clock)
    return openai_integration, since


def test_a_sync_a_restatement_and_a_ghost_keep_rollups_equal_to_base_rows(zoned, synced, pinned_clock):
    integration, since = synced
    first = assert_rollups_match(zoned)
    # Today's UTC cost bucket (00:00Z) falls on the local day before, in New York.
    today = pinned_clock.replace(hour=0, minute=0).astimezone(rollups.zone_named(ZONE)).date()
    cost_today = sum(v for k, v in first.items() if k[1] == today and k[2] == "cost")

    # Six hours later the provider restates today's costs (they grow during the day): the same
    # keys re-read with new values replace the old ones, in the rollups too.
    with time_machine.travel(pinned_clock + timedelta(hours=6), tick=True):
        sync(integration, since, pinned_clock + timedelta(hours=6))
    again = assert_rollups_match(zoned)
    assert sum(v for k, v in again.items() if k[1] == today and k[2] == "cost") > cost_today

    # A model withdrawn by the provider: its rows are removed as ghosts, and its rollups too.
    assert UsageDaily.objects.filter(model=O3).exists()
    fake.withdraw_model(O3)
    with time_machine.travel(pinned_clock + timedelta(hours=6), tick=True):
        assert sync(integration, since, pinned_clock + timedelta(hours=6)).rows_removed > 0
    assert_rollups_match(zoned)
    assert not UsageDaily.objects.filter(model=O3).exists()


def test_re_attribution_and_deleting_what_usage_was_attributed_to(zoned, synced, django_capture_on_commit_callbacks):
    _integration, _ = synced
    before = assert_rollups_match(zoned)
    with django_capture_on_commit_callbacks(execute=True):
        rule = services.attribution_rule_save(
            rule=AttributionRule(workspace=zoned, provider="openai", model="o3*", priority=1),
            new_application_name="Reasoning",
        )
    assert services.reattribution_latest(workspace=zoned).status == "done"
    after = assert_rollups_match(zoned)
    assert UsageDaily.objects.filter(application=rule.application, model=O3).exists()
    assert sum(v for k, v in after.items() if k[0] != "rows") == sum(v for k, v in before.items() if k[0] != "rows")

    # A license on the application, then the rule pointing at it: rows move to (app, license).
    license_ = License.objects.create(
        workspace=zoned, application=rule.application, plan_name="Pro", start_date="2026-01-01"
    )
    with django_capture_on_commit_callbacks(execute=True):
        rule.license = license_
        services.attribution_rule_save(rule=rule)
    assert UsageDaily.objects.filter(license=license_).exists()
    assert_rollups_match(zoned)

    # Deleting the license, then the application: their rollup rows go, the base rows fall
    # back (first to no license, then to the default rule), and the totals still agree.
    with django_capture_on_commit_callbacks(execute=False):
        services.license_delete(license=license_)
    assert_rollups_match(zoned)
    with django_capture_on_commit_callbacks(execute=False):
        services.application_delete(application=rule.application)
    assert_rollups_match(zoned)  # before the re-attribution job: NULL application, summed as such
    services.reattribution_run(job_id=services.reattribution_latest(workspace=zoned).pk)
    assert_rollups_match(zoned)


def test_a_re_attribution_batch_repairs_a_day_written_without_upkeep(zoned, synced, django_capture_on_commit_callbacks):
    _integration, _ = synced
    UsageDaily.objects.filter(model=O3).delete()  # out of step, as if written before rollups existed
    with django_capture_on_commit_callbacks(execute=True):
        services.attribution_rule_save(
            rule=AttributionRule(workspace=zoned, provider="openai", model="o3*", priority=1),
            new_application_name="Reasoning",
        )
    assert_rollups_match(zoned)


def test_deleting_an_integration_deletes_its_rollups(zoned, synced, admin_client, pinned_clock):
    integration, _ = synced
    other = Integration.objects.create(workspace=zoned, provider="openai", name="Imported")
    start = pinned_clock.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    import_rows(
        other,
        [dict(bucket_start=start, bucket_end=start + timedelta(hours=1), metric="cost", quantity="2.5", unit="USD")],
    )
    assert UsageDaily.objects.filter(integration=integration).exists()
    url = reverse("integrations:disconnect", kwargs={"ws": zoned.slug, "pk": integration.pk})
    assert admin_client.post(url, {"data_choice": "delete"}).status_code == 302
    assert not UsageDaily.objects.filter(integration_id=integration.pk).exists()
    assert not UsageDailyNarrow.objects.filter(integration_id=integration.pk).exists()
    assert not UsageDailyProject.objects.filter(integration_id=integration.pk).exists()
    assert not UsageDailyTotal.objects.filter(integration_id=integration.pk).exists()
    assert_rollups_match(zoned)
    assert UsageDaily.objects.get(integration=other).quantity == Decimal("2.5")


def test_csv_import_and_re_import_with_new_values(zoned):
    integration = Integration.objects.create(workspace=zoned, provider="openai", name="Imported")
    t0 = datetime(2026, 11, 1, tzinfo=UTC)  # New York leaves summer time this day
    rows = [
        dict(bucket_start=t0 + timedelta(hours=h), bucket_end=t0 + timedelta(hours=h + 1), metric=metric, unit=unit,
             model=("gpt-4o", "o1")[h % 2], quantity=str((Decimal(h) / 7).quantize(Decimal("1E-9"))))
        for h in range(0, 30)
        for metric, unit in (("input_tokens", "tokens"), ("cost", "USD"))
    ]  # fmt: skip
    import_rows(integration, rows)
    assert_rollups_match(zoned)
    # 30 hours from 00:00Z: 4 on Oct 31 (EDT, UTC-4), 25 on Nov 1 (04:00Z to 05:00Z the next
    # day: summer time ends), 1 on Nov 2; two metrics each (and the estimated cost the import
    # adds beside the tokens, counted apart).
    imported = UsageDaily.objects.exclude(metric="estimated_cost")
    per_day = {
        d: sum(imported.filter(day=d).values_list("rows", flat=True))
        for d in ("2026-10-31", "2026-11-01", "2026-11-02")
    }
    assert per_day == {"2026-10-31": 8, "2026-11-01": 50, "2026-11-02": 2}
    import_rows(integration, [dict(r, quantity="1") for r in rows[::3]])  # a third restated
    assert_rollups_match(zoned)
    # One rollup row per (local day, model, metric): 2 x 2 on Oct 31 and Nov 1, 1 x 2 on Nov 2.
    assert UsageDaily.objects.filter(integration=integration).exclude(metric="estimated_cost").count() == 10
