"""Scheduled syncs under transport chaos: the reusable harness.

`backfill_under_chaos` turns on the sandbox's seeded chaos (sandbox/chaos.py: resets, short
bodies, 5xx, 429, answers slower than the client's timeout) for one integration's provider,
then runs the real engine the way the dispatcher would: `engine.integration_sync` with the
schedule trigger, the clock moved to each `next_sync_at` the engine set, until a sync succeeds
or `max_syncs` have run. It returns a `ChaosReport` (syncs, requests seen, faults injected per
kind, the window covered); the caller compares the store with the sandbox's truth over
`report.window_start` → `report.data_through`, as the sandbox saw it at `report.finished_at`
(the clock is moved back when the function returns).

    report = backfill_under_chaos(integration=integration, sandbox=sandbox, rate=0.3, seed=8)
    print(report.summary())
    assert report.succeeded and report.syncs <= 5
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

import time_machine
from django.test import override_settings
from django.utils import timezone

from integrations import engine
from integrations.models import Integration, SyncRun
from sandbox.testing import SandboxClient

# The client gives up on an answer after TIMEOUT seconds; a "slow" fault answers after SLOW.
TIMEOUT = 0.2
SLOW = 0.5
# By default a 429 says Retry-After: 0, which the seam honours inline (a longer wait is the
# same path, only slower). A 429 without Retry-After is left to the engine by design: the sync
# ends and is rescheduled minutes later. Pass retry_after=["0", None] to include those.
RETRY_AFTER: list[str | None] = ["0"]


@dataclass
class ChaosReport:
    provider: str
    rate: float
    seed: int
    runs: list[SyncRun] = field(default_factory=list)
    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    window_start: datetime | None = None
    data_through: datetime | None = None
    finished_at: datetime | None = None  # the (moved) clock when the last sync ended: truth's "now"

    @property
    def syncs(self) -> int:
        return len(self.runs)

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    @property
    def succeeded(self) -> bool:
        return bool(self.runs) and self.runs[-1].status == SyncRun.Status.SUCCESS

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in self.injected.items())
        outcomes = " → ".join(
            run.status if run.status == "success" else f"{run.status}:{run.error_category}" for run in self.runs
        )
        return (
            f"chaos {self.provider} rate={self.rate:.0%} seed={self.seed}: {self.requests} provider requests, "
            f"{self.faults} faults injected ({kinds}); {self.syncs} syncs ({outcomes}); "
            f"window {self.window_start or '-'} → {self.data_through or '-'}"
        )


def backfill_under_chaos(
    *,
    integration: Integration,
    sandbox: SandboxClient,
    rate: float = 0.3,
    seed: int = 0,
    max_syncs: int = 5,
    kinds: list[str] | None = None,
    retry_after: list[str | None] | None = None,
) -> ChaosReport:
    """Scheduled syncs of `integration` while `rate` of its provider's requests fail at random
    (reproducibly from `seed`), until one succeeds or `max_syncs` ran. Faults are on only for
    the syncs themselves; the clock is back where it was when this returns."""
    report = ChaosReport(provider=integration.provider, rate=rate, seed=seed)
    with ExitStack() as stack, override_settings(DOOW_HTTP_TIMEOUT_SECONDS=TIMEOUT):
        sandbox.chaos(
            f"/{integration.provider}/",
            rate,
            seed=seed,
            kinds=kinds,
            delay=SLOW,
            retry_after=retry_after or RETRY_AFTER,
        )
        try:
            for _ in range(max_syncs):
                integration.refresh_from_db()
                if integration.next_sync_at is not None and integration.next_sync_at > timezone.now():
                    # The dispatcher would start this sync no earlier than the engine asked.
                    stack.enter_context(time_machine.travel(integration.next_sync_at, tick=True))
                run = engine.integration_sync(integration_id=integration.pk, trigger=SyncRun.Trigger.SCHEDULE)
                report.runs.append(run)
                if run.status == SyncRun.Status.SUCCESS:
                    break
        finally:
            stats = sandbox.stop_chaos() or {}
        report.finished_at = timezone.now()
    report.requests = int(stats.get("requests", 0))
    report.injected = dict(stats.get("injected", {}))
    integration.refresh_from_db()
    report.window_start = report.runs[0].window_start if report.runs else None
    report.data_through = integration.data_through
    return report
