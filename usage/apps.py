from __future__ import annotations

import sqlite3

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _raise_sqlite_parameter_limit(sender, connection, **kwargs) -> None:
    """Django assumes SQLite's old 999-variable limit and splits bulk upserts into 52-row
    batches; modern SQLite allows far more. Use the real limit so a chunk is one statement."""
    if connection.vendor == "sqlite" and hasattr(connection.connection, "getlimit"):
        connection.features.max_query_params = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


class UsageConfig(AppConfig):
    name = "usage"

    def ready(self) -> None:
        connection_created.connect(_raise_sqlite_parameter_limit, dispatch_uid="usage-sqlite-limit")
