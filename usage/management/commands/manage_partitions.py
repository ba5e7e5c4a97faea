"""manage.py manage_partitions [--months-ahead N] [--retention-months N]

Creates the coming months' partitions of the raw usage table (PostgreSQL), moves rows out of
its DEFAULT partition into their month's partition, and drops raw months older than the
retention (DOOW_RAW_RETENTION_MONTHS; 0 keeps them forever). Beat runs the same upkeep daily;
running it again changes nothing. On SQLite only the retention applies (batched DELETEs).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from usage import partitions


class Command(BaseCommand):
    help = "Create the coming months' usage partitions and drop raw months past the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--months-ahead", type=int, default=partitions.MONTHS_AHEAD, metavar="N",
            help=f"Partitions to have ready after the current month (default {partitions.MONTHS_AHEAD}).",
        )  # fmt: skip
        parser.add_argument(
            "--retention-months", type=int, default=None, metavar="N",
            help="Whole months of raw rows kept before the current one; 0 keeps all (default: DOOW_RAW_RETENTION_MONTHS).",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["months_ahead"] < 0 or (options["retention_months"] or 0) < 0:
            self.stderr.write("--months-ahead and --retention-months take 0 or more.")
            raise SystemExit(2)
        report = partitions.usage_partitions_manage(
            months_ahead=options["months_ahead"], retention_months=options["retention_months"]
        )
        if not partitions.is_partitioned():
            self.stdout.write("The usage table is not partitioned on this database (SQLite keeps one table).")
        for name in report.created:
            self.stdout.write(f"created {name}")
        for name in report.dropped:
            self.stdout.write(f"dropped {name}")
        for name in report.skipped:
            self.stdout.write(f"skipped {name} (the table was busy; the next run tries again)")
        if report.rows_moved:
            self.stdout.write(f"{report.rows_moved} rows moved out of the default partition")
        if report.rows_deleted:
            self.stdout.write(f"{report.rows_deleted} raw rows older than the retention deleted")
        kept = f"raw rows kept from {report.cutoff:%Y-%m-%d} (UTC)" if report.cutoff else "raw rows kept forever"
        changed = report.created or report.dropped or report.rows_deleted or report.skipped
        self.stdout.write(kept if changed else f"{kept}; nothing else to do")
