"""manage.py import_usage ID PATH [--format auto|doow|authress]

Imports a usage CSV into one integration through the same service as the page's upload
(usage.importer): every line is checked first, and a file with any problem stores nothing.
Exit 0 with the number of rows stored; exit 1 with the line-numbered problems. PATH `-`
reads standard input.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import Integration
from usage.importer import (
    FORMAT_LABELS,
    FORMATS,
    ImportResult,
    UsageImportError,
    usage_import_file,
)


class Command(BaseCommand):
    help = "Import usage from a CSV file (Doow export columns, or the Authress portal's date,resource,operation,calls)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int, metavar="ID", help="Integration id (as printed by connect).")
        parser.add_argument("path", metavar="PATH", help="The CSV file, or - for standard input.")
        parser.add_argument(
            "--format", choices=FORMATS, default="auto", help="auto (default) tells the two formats apart by the header."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pk, path = options["integration_id"], options["path"]
        integration = Integration.objects.filter(pk=pk).first()
        if integration is None:
            raise CommandError(f"No integration with id {pk}.")
        try:
            if path == "-":
                result = self._import(integration, sys.stdin.buffer, None, "standard input", options["format"])
            else:
                file = Path(path)
                with file.open("rb") as stream:
                    result = self._import(integration, stream, file.stat().st_size, file.name, options["format"])
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        source = "standard input" if path == "-" else Path(path).name
        self.stdout.write(
            f"Imported {source} into integration {pk} ({integration.name}) as {FORMAT_LABELS[result.format]} CSV."
        )
        self.stdout.write(f"Buckets: {result.date_range}")
        self.stdout.write(f"Rows stored: {result.stored}")

    def _import(self, integration: Integration, stream: Any, size: int | None, source: str, fmt: str) -> ImportResult:
        try:
            return usage_import_file(integration=integration, stream=stream, size=size, fmt=fmt, source=source)
        except UsageImportError as error:
            raise CommandError(self._problems(error), returncode=1) from None

    @staticmethod
    def _problems(error: UsageImportError) -> str:
        lines = [f"Import rejected, nothing stored ({error.total} problem{'s' if error.total != 1 else ''}):"]
        lines += [f"  {problem}" for problem in error.problems]
        if error.unlisted:
            lines.append(f"  … and {error.unlisted} more")
        return "\n".join(lines)
