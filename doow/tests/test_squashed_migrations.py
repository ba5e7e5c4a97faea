"""The squashed migrations (one per app, `replaces` naming the chain they stand for): an install
that applied the whole old chain upgrades with nothing to apply, a new install runs only the
squashed ones, and an install that applied part of a replaced chain is stopped before anything
runs (README, "Upgrading")."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from accounts.apps import squashed_history_complete

# The migrations of the last release before the squash, in order: what its installs recorded.
OLD_CHAIN = {
    "accounts": ["0001_initial", "0002_workspace_time_zone"],
    "integrations": [
        "0001_initial",
        "0002_provider_state",
        "0003_event_category_import",
        "0004_integration_consecutive_credential_failures",
        "0005_syncrun_rows_removed",
        "0006_integration_account_key_and_share",
    ],
    "usage": [
        "0001_initial",
        "0002_attribution",
        "0003_default_attribution",
        "0004_usagerecord_stream",
        "0005_usage_import_jobs",
        "0006_usage_daily_rollup",
        "0007_rollup_rebuild_jobs",
        "0008_partition_usagerecord",
        "0009_price_overrides",
        "0010_usage_daily_value_indexes",
        "0011_usage_record_export_order_index",
        "0012_application_team",
        "0013_usage_record_labels_and_label_rules",
        "0014_usage_service_tier_batch_context_geo_speed_dimensions",
        "0015_usage_daily_narrow_rollup",
        "0016_usage_record_partition_fillfactor",
        "0017_usage_record_labels_db_default",
    ],
    "alerts": ["0001_budgets_alerts_notifications", "0002_anomaly_rule", "0003_outgoing_webhook"],
}
SQUASHED = {
    "accounts": "0001_squashed_0002",
    "integrations": "0001_squashed_0006",
    "usage": "0001_squashed_0017",
    "alerts": "0001_squashed_0003",
}


def record_only(applied: dict[str, list[str]]) -> MigrationRecorder:
    """The django_migrations rows of these four apps become exactly `applied` (rolled back with
    the test)."""
    recorder = MigrationRecorder(connection)
    recorder.migration_qs.filter(app__in=OLD_CHAIN).delete()
    for app, names in applied.items():
        for name in names:
            recorder.record_applied(app, name)
    return recorder


def test_each_squash_replaces_the_whole_old_chain_and_is_its_apps_first_migration():
    disk = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    for app, names in OLD_CHAIN.items():
        assert sorted(name for a, name in disk if a == app)[0] == SQUASHED[app]  # later ones follow it
        assert not any(disk[key].replaces for key in disk if key[0] == app and key[1] != SQUASHED[app])
        assert disk[app, SQUASHED[app]].replaces == [(app, name) for name in names]


@pytest.mark.django_db
def test_an_install_that_applied_the_old_chain_sees_the_squashes_applied_and_runs_nothing():
    recorder = record_only(OLD_CHAIN)
    # Migrations written after the squash are what such an install still runs: recorded here as
    # applied too, so the plan shows whether the squashes themselves would run again.
    disk = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    newer = sorted(key for key in disk if key[0] in OLD_CHAIN and key[1] != SQUASHED[key[0]])
    plan = MigrationExecutor(connection).migration_plan(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert sorted((m.app_label, m.name) for m, _ in plan) == newer
    for app, name in newer:
        recorder.record_applied(app, name)
    loader = MigrationLoader(connection)
    assert {(app, name) for app, name in SQUASHED.items()} <= set(loader.applied_migrations)
    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    assert squashed_history_complete(databases=["default"]) == []
    call_command("migrate", check_unapplied=True, verbosity=0)  # exits 1 if anything would run
    executor.check_replacements()  # as `migrate` does: the squashes are recorded too
    assert {(app, name) for app, name in SQUASHED.items()} <= set(recorder.applied_migrations())


@pytest.mark.django_db
def test_an_install_that_applied_part_of_a_replaced_chain_is_stopped_before_anything_runs():
    partial = {**OLD_CHAIN, "usage": OLD_CHAIN["usage"][:10], "alerts": []}
    recorder = record_only(partial)
    errors = squashed_history_complete(databases=["default"])
    assert [(e.id, e.msg) for e in errors] == [
        (
            "accounts.E001",
            "Database 'default' has applied 10 of the 17 migrations that usage.0001_squashed_0017 replaces "
            "(the last: 0010_usage_daily_value_indexes).",
        )
    ]
    with pytest.raises(SystemCheckError, match=r"accounts\.E001"):
        call_command("migrate", verbosity=0, skip_checks=False)  # as manage.py runs it
    assert set(recorder.applied_migrations()) >= {("usage", name) for name in partial["usage"]}
    assert ("alerts", SQUASHED["alerts"]) not in recorder.applied_migrations()


@pytest.mark.django_db
def test_a_new_install_records_the_squashes_and_the_names_they_replace():
    applied = set(MigrationRecorder(connection).applied_migrations())  # the test database is one
    for app, names in OLD_CHAIN.items():
        assert (app, SQUASHED[app]) in applied
        assert {(app, name) for name in names} <= applied
