"""manage.py import_usage ID PATH [--format auto|doow|authress]

Imports a usage CSV into one integration as an import job, like the page's upload
(usage/import_jobs.py), but run here in the foreground instead of by a worker: every line is
checked first, and a file with any problem stores nothing. Exit 0 with the number of rows
stored; exit 1 with the line-numbered problems. PATH `-` reads standard input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import Integration
from usage.import_jobs import UsageImportBusy, usage_import_interrupted, usage_import_request, usage_import_run
from usage.importer import FORMAT_LABELS, FORMATS, date_range
from usage.models import UsageImport


class Command(BaseCommand):
    help = "Import usage from a CSV file (Doow export columns, or the Authress portal's date,resource,operation,calls)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int, metavar="ID", help="Integration id (as printed by connect).")
        parser.add_argument("path", metavar="PATH", help="The CSV file, or - for standard input.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="auto",
            help="auto (default) tells the two formats apart by the header.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pk, path = options["integration_id"], options["path"]
        integration = Integration.objects.filter(pk=pk).first()
        if integration is None:
            raise CommandError(f"No integration with id {pk}.")
        try:
            if path == "-":
                job = self._import(integration, sys.stdin.buffer, None, "standard input", options["format"])
            else:
                file = Path(path)
                with file.open("rb") as stream:
                    job = self._import(integration, stream, file.stat().st_size, file.name, options["format"])
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        if job.status != UsageImport.Status.DONE:
            raise CommandError(self._problems(job), returncode=1)
        source = "standard input" if path == "-" else Path(path).name
        self.stdout.write(
            f"Imported {source} into integration {pk} ({integration.name}) as {FORMAT_LABELS[job.format]} CSV."
        )
        self.stdout.write(f"Buckets: {date_range(job.first_start, job.last_end)}")  # type: ignore[arg-type]  # set when done
        self.stdout.write(f"Rows stored: {job.rows}")

    def _import(self, integration: Integration, stream: Any, size: int | None, source: str, fmt: str) -> UsageImport:
        try:
            job = usage_import_request(
                integration=integration, stream=stream, size=size, fmt=fmt, source=source, enqueue=False
            )
        except UsageImportBusy as busy:
            raise CommandError(str(busy)) from None
        if not job.is_active:
            return job
        try:
            return usage_import_run(job_id=job.pk)
        except BaseException:  # Ctrl-C, a SIGTERM turned SystemExit: the operator stopped it
            # Fail it here (only while this foreground run still holds it): left running, beat
            # would take it for lost and have a worker import the file the operator stopped.
            usage_import_interrupted(job_id=job.pk)
            raise

    @staticmethod
    def _problems(job: UsageImport) -> str:
        if not job.problems_total:
            return f"Import failed, nothing stored: {job.error}"
        lines = [
            f"Import rejected, nothing stored ({job.problems_total} problem{'s' if job.problems_total != 1 else ''}):"
        ]
        lines += [f"  line {line}: {message}" if line else f"  {message}" for line, message in job.problems]
        if job.problems_unlisted:
            lines.append(f"  … and {job.problems_unlisted} more")
        return "\n".join(lines)
