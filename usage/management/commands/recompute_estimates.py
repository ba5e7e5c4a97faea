"""manage.py recompute_estimates --workspace SLUG | --all

Recomputes the estimated_cost rows of a workspace's stored usage in the foreground, with the
prices of the installed genai-prices, the dated compute table and the workspace's overrides:
run it after upgrading the genai-prices pin or editing usage/pricing/compute_prices.json (the
Pricing page does the same in the background when an override changes). Prints one line per
workspace; exit 1 when a recompute failed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from usage.models import PricingRecomputeJob
from usage.pricing.services import pricing_recompute_claim_here, pricing_recompute_run


class Command(BaseCommand):
    help = "Recompute the list-price estimates (estimated_cost) of stored usage."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--workspace", help="Workspace slug.")
        group.add_argument("--all", action="store_true", help="Every workspace.")

    def handle(self, *args: Any, **options: Any) -> None:
        workspaces = Workspace.objects.order_by("slug")
        if not options["all"]:
            workspaces = workspaces.filter(slug=options["workspace"])
            if not workspaces.exists():
                raise CommandError(f"No workspace with slug {options['workspace']!r}.")
        failed = []
        for workspace in workspaces:
            # The workspace's one active job, run here: a queued one's message then finds it
            # done, a running one's worker finds it claimed again and stops at its next week.
            job = pricing_recompute_claim_here(workspace=workspace)
            job = pricing_recompute_run(job_id=job.pk)
            self.stdout.write(
                f"{workspace.slug}: {job.done} usage rows priced, {job.written} estimates written ({job.status})"
            )
            if job.status != PricingRecomputeJob.Status.DONE:
                failed.append(f"{workspace.slug}: {job.error}")
        if failed:
            raise CommandError("Recompute failed for " + "; ".join(failed))
