"""manage.py rebuild_rollups [--workspace SLUG] [--check] [--queue]

Recomputes the daily rollups (usage.models.UsageDaily) of one workspace or all of them from the
hourly base table, in each workspace's time zone, one integration per transaction, recorded as
a rebuild job (its progress shows on Company Settings → General). `--check` only compares the
rollup totals with the base table and exits 1 when they differ; `--queue` leaves the work to a
Celery worker instead of doing it here.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from usage import rollups
from usage.models import RollupRebuildJob
from usage.rollup_jobs import rollup_rebuild_request, rollup_rebuild_run


class Command(BaseCommand):
    help = "Rebuild the daily usage rollups from the base table (or check them with --check)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", metavar="SLUG", help="Only this workspace (default: every workspace).")
        parser.add_argument("--check", action="store_true", help="Compare rollups with the base table; change nothing.")
        parser.add_argument("--queue", action="store_true", help="Queue a background job per workspace instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        workspaces = Workspace.objects.order_by("slug")
        if options["workspace"]:
            workspaces = workspaces.filter(slug=options["workspace"])
            if not workspaces.exists():
                raise CommandError(f"No workspace with slug {options['workspace']!r}.")
        mismatched = []
        for workspace in workspaces:
            if options["check"]:
                ok = rollups.totals_match(workspace)
                self.stdout.write(
                    f"{workspace.slug}: {'rollups match the base table' if ok else 'rollups DIFFER from the base table'}"
                )
                if not ok:
                    mismatched.append(workspace.slug)
            elif options["queue"]:
                job = rollup_rebuild_request(workspace=workspace)
                self.stdout.write(f"{workspace.slug}: rebuild job {job.pk} queued ({workspace.time_zone})")
            else:
                job = RollupRebuildJob.objects.create(workspace=workspace, time_zone=workspace.time_zone)
                job = rollup_rebuild_run(job_id=job.pk)
                if job.status != RollupRebuildJob.Status.DONE:
                    raise CommandError(f"{workspace.slug}: rebuild {job.status}: {job.error}")
                self.stdout.write(
                    f"{workspace.slug}: rollups rebuilt in {job.time_zone} "
                    f"({job.total} integration{'s' if job.total != 1 else ''}, {rollups.daily_for(workspace).count()} rows)"
                )
        if mismatched:
            raise CommandError(f"Rollups differ from the base table in: {', '.join(mismatched)}", returncode=1)
