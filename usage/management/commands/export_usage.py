"""manage.py export_usage --workspace SLUG [--integration ID] [--since D] [--until D] [--format csv|focus]
[--output FILE]

Writes the workspace's normalized usage to standard output (or FILE): `csv` has the
docs/architecture.md columns (usage.export.CSV_COLUMNS), `focus` is FOCUS 1.2
(usage.export_focus.FOCUS_HEADER; docs/export.md). Both stream from the database, so memory
stays flat however many rows are written; on PostgreSQL both are PostgreSQL's own
`COPY (SELECT …) TO STDOUT`, byte for byte what the Python writer gives, and its UTF-8 blocks
go to the file or standard output's binary layer as they come (no decode, no encode). The
bytes are the page's download of the same rows (usage/views/export.py).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from integrations.management.options import day_bounds
from usage.export import usage_export_queryset
from usage.export_copy import CSV_EXPORT, CopyExport
from usage.export_focus_copy import FOCUS_EXPORT

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from usage.models import UsageRecord

# csv and focus: COPY … TO STDOUT on PostgreSQL, the Python writer on SQLite (usage/export_copy.py).
EXPORTS: dict[str, CopyExport] = {"csv": CSV_EXPORT, "focus": FOCUS_EXPORT}


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
            choices=sorted(EXPORTS),
            default="csv",
            help="csv: docs/architecture.md columns; focus: FOCUS 1.2 (docs/export.md).",
        )
        parser.add_argument(
            "--output",
            metavar="FILE",
            help="Write to FILE (created, or replaced once the export is complete) instead of standard output.",
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
        export = EXPORTS[options["format"]]
        if options["output"]:
            _write_file(Path(options["output"]), export, records)
            return
        # Standard output's binary layer takes COPY's bytes as they are; a text-only stdout
        # (call_command(stdout=StringIO()) in tests) gets them decoded.
        binary = getattr(self.stdout, "buffer", None)
        try:
            if binary is None:
                export.write(self.stdout, records)
            else:
                self.stdout.flush()
                export.write_bytes(binary, records)
                binary.flush()
        except BrokenPipeError:
            # The reader stopped early (`| head`): not an error worth a traceback.
            _silence_stdout()
            raise SystemExit(1) from None


def _write_file(path: Path, export: CopyExport, records: QuerySet[UsageRecord]) -> None:
    """The export into `path`, by way of a temporary file beside it that replaces `path` only
    once complete: a failed export leaves a file already there untouched and no temporary file
    behind. A path that is a symlink, or exists and is no regular file (/dev/stdout, a FIFO, a
    device), is written through as it is: replacing it would put a file in its place."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        try:
            with open(path, "wb") as out:
                export.write_bytes(out, records)
        except OSError as error:
            raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
        return
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
    temporary = Path(name)
    try:
        with open(fd, "wb") as out:
            # mkstemp makes it 0600: give it the mode the file has, or a new file would get.
            os.fchmod(out.fileno(), _mode_for(path))
            export.write_bytes(out, records)
        try:
            os.replace(temporary, path)
        except OSError as error:
            raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    """The permission bits of the file at `path`, or of a new file under the current umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (e.g. in tests)
        pass
