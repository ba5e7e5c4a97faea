"""manage.py export_usage --workspace SLUG [--integration ID] [--since D] [--until D] [--format csv|focus]

Writes the workspace's normalized usage to standard output: `csv` has the docs/architecture.md columns
(usage.export.CSV_COLUMNS), `focus` is FOCUS 1.2 (usage.export_focus.FOCUS_HEADER; docs/export.md).
Both stream from the database, so memory stays flat however many rows are written; on
PostgreSQL the CSV is PostgreSQL's own `COPY (SELECT …) TO STDOUT`, byte for byte the same.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from integrations.management.options import day_bounds
from usage.export import usage_export_queryset
from usage.export_copy import usage_csv_write
from usage.export_focus_copy import usage_focus_write

# csv and focus: COPY … TO STDOUT on PostgreSQL, the Python writer on SQLite (usage/export_copy.py).
WRITERS = {"csv": usage_csv_write, "focus": usage_focus_write}


class Command(BaseCommand):
    help = "Export normalized usage to standard output: docs/architecture.md CSV or FOCUS 1.2 CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="Workspace slug.")
        parser.add_argument("--integration", type=int, metavar="ID", help="Only this integration (of that workspace).")
        parser.add_argument("--since", metavar="YYYY-MM-DD", help="Buckets starting on or after this day (UTC).")
        parser.add_argument(
            "--until", metavar="YYYY-MM-DD", help="Buckets starting on or before the end of this day (UTC)."
        )
        parser.add_argument(
            "--format",
            choices=sorted(WRITERS),
            default="csv",
            help="csv: docs/architecture.md columns; focus: FOCUS 1.2 (docs/export.md).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = day_bounds(options["since"], options["until"])
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"No workspace with slug {options['workspace']!r}.")
        integration_id = options["integration"]
        # Start from the tenant: an id of another workspace is refused like a missing one.
        if integration_id is not None and not workspace.integrations.filter(pk=integration_id).exists():
            raise CommandError(f"Workspace {workspace.slug} has no integration with id {integration_id}.")
        records = usage_export_queryset(workspace=workspace, integration_id=integration_id, since=since, until=until)
        try:
            WRITERS[options["format"]](self.stdout, records)
        except BrokenPipeError:
            # The reader stopped early (`| head`): not an error worth a traceback.
            _silence_stdout()
            raise SystemExit(1) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (e.g. in tests)
        pass
