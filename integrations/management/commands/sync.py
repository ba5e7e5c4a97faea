"""manage.py sync ID [--since YYYY-MM-DD] [--until YYYY-MM-DD]

One sync in the foreground through the same engine as the Celery task. Exit 0 on success;
exit 1 with the failure's category and message otherwise.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import engine, services
from integrations.management.options import day_bounds
from integrations.models import Integration, SyncRun
from usage.export import format_time


class Command(BaseCommand):
    help = "Sync one integration now, in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int, metavar="ID", help="Integration id (as printed by connect).")
        parser.add_argument(
            "--since", metavar="YYYY-MM-DD", help="Read from this day, 00:00 UTC (default: the watermark)."
        )
        parser.add_argument("--until", metavar="YYYY-MM-DD", help="Read through the end of this day (UTC).")

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = day_bounds(options["since"], options["until"])
        pk = options["integration_id"]
        if not Integration.objects.filter(pk=pk).exists():
            raise CommandError(f"No integration with id {pk}.")
        try:
            run = engine.integration_sync(integration_id=pk, since=since, until=until, trigger=SyncRun.Trigger.COMMAND)
        except (engine.SyncBusy, services.SyncNotAllowed) as exc:
            raise CommandError(f"Not synced: {exc}", returncode=1) from None

        window = (
            f"{format_time(run.window_start)} → {format_time(run.window_end)}"
            if run.window_start and run.window_end
            else "(none)"
        )
        self.stdout.write(f"Sync #{run.pk} of integration {pk}: {run.get_status_display()}")
        self.stdout.write(f"Window: {window}")
        self.stdout.write(f"Chunks: {run.chunks_done}/{run.chunks_total}")
        self.stdout.write(f"Rows written: {run.rows_written}")
        self.stdout.write(f"Rows removed (no longer reported): {run.rows_removed}")
        self.stdout.write(f"Provider calls: {run.provider_calls}")
        if run.status == SyncRun.Status.SUCCESS:
            return
        event = (
            run.events.filter(category=run.error_category).order_by("-created_at", "-pk").first()
            if run.error_category
            else None
        )
        details = ""
        if event is not None:
            details += f" (HTTP {event.http_status})" if event.http_status else ""
            details += f" [request id {event.request_id}]" if event.request_id else ""
            details += f"\nHint: {event.hint}" if event.hint else ""
        # Messages were redacted when the event was recorded; nothing else is printed.
        raise CommandError(
            f"Sync failed [{run.error_category or 'sync'}]: {run.error or 'no details'}{details}", returncode=1
        )
