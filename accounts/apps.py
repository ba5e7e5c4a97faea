from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


def squashed_history_complete(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Each squashed migration (`replaces`) must find all or none of the migrations it replaces
    applied. Their files are gone, so on a database that applied only some of them Django would
    leave that app out of the plan and carry on (another app's tables on top of half of this
    one's); `migrate` runs this check first and stops instead (README, "Upgrading")."""
    from django.db import connections
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    errors: list[checks.CheckMessage] = []
    disk = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    for alias in databases or ():
        recorder = MigrationRecorder(connections[alias])
        if not recorder.has_table():
            continue
        applied = set(recorder.applied_migrations())
        for (app, name), migration in sorted(disk.items()):
            done = [target for target in migration.replaces if target in applied]
            if done and len(done) < len(migration.replaces):
                errors.append(
                    checks.Error(
                        f"Database '{alias}' has applied {len(done)} of the {len(migration.replaces)} migrations "
                        f"that {app}.{name} replaces (the last: {done[-1][1]}).",
                        hint="Upgrade to the last release before the squash, run migrate there, then upgrade to "
                        "this one (README, Upgrading).",
                        id="accounts.E001",
                    )
                )
    return errors


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        checks.register(squashed_history_complete, checks.Tags.database)
