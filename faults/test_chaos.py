"""Transport-fault chaos: a backfill through the sync engine while the sandbox answers with a
seeded mix of 5xx, 429s and slow answers, sync after sync, until it completes. After every sync
nothing stored may exceed the sandbox's truth; at the end everything must be there, exactly:
rows lost 0, rows doubled 0. The seed is fixed (DOOW_FAULTS_SEED picks another one to explore).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from faults import figures
from faults.chaos import TRUTHS, FaultPlan, compare, stored_rows
from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.testing import make_integration

pytestmark = pytest.mark.django_db

SEED = int(os.environ.get("DOOW_FAULTS_SEED") or 20261206)
BACKFILL_DAYS = 14
CHAOS_SYNCS = 6  # syncs that meet faults
MAX_SYNCS = 10  # by then the backfill must be complete (the last ones meet no new faults)


def _integration(workspace, sandbox, *, backfill_days: int) -> Integration:
    return make_integration(workspace, "OpenAI (chaos)", credential={"api_key": sandbox.OPENAI_ADMIN_KEY},
                            settings={"base_url": sandbox.openai_base_url}, backfill_days=backfill_days)  # fmt: skip


def _end() -> datetime:
    """Yesterday's UTC midnight: every hour before it has fully elapsed, so its truth is fixed."""
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def _count_faults(sandbox) -> int:
    faulted = sum(1 for request in sandbox.requests() if request["faulted"])
    figures.add("faults", faulted)
    sandbox.clear_requests()
    return faulted


def test_the_comparison_sees_a_lost_and_a_doubled_row(workspace, sandbox):
    """The checker is real: a clean sync matches the truth; one row removed is lost, one row
    raised is doubled."""
    integration = _integration(workspace, sandbox, backfill_days=2)
    run = engine.integration_sync(integration_id=integration.pk, until=_end())
    assert run.status == SyncRun.Status.SUCCESS, run.error
    truth = TRUTHS["openai"].rows(run.window_start, run.window_end)
    assert len(truth) > 100
    assert compare(stored_rows(integration), truth, complete=True) == compare({}, {}, complete=True)
    records = integration.usage_records.exclude(quantity=0).exclude(metric="estimated_cost").order_by("pk")
    records.first().delete()
    raised = records.last()
    raised.quantity += 1
    raised.save()
    result = compare(stored_rows(integration), truth, complete=True)
    assert len(result.lost) == 1 and len(result.doubled) == 1


@pytest.mark.parametrize("provider", sorted(TRUTHS))
def test_a_backfill_under_transport_faults_converges_to_the_truth(workspace, sandbox, settings, provider):
    settings.DOOW_HTTP_TIMEOUT_SECONDS = 0.5  # "past the timeout" faults stall for 1 s
    truth_of = TRUTHS[provider]
    integration = _integration(workspace, sandbox, backfill_days=BACKFILL_DAYS)
    plan = FaultPlan(SEED, truth_of.paths)
    end, runs, doubled_ever = _end(), [], 0
    for attempt in range(MAX_SYNCS):
        sandbox.clear_faults()
        if attempt < CHAOS_SYNCS:
            integration.refresh_from_db()
            days_left = (end - (integration.data_through or end - timedelta(days=BACKFILL_DAYS))).days + 1
            for spec in plan.next_round(days_left, one_fatal=attempt == 0):
                sandbox.fault(**spec)
        run = engine.integration_sync(integration_id=integration.pk, until=end)
        runs.append(run)
        figures.add("chaos_syncs")
        _count_faults(sandbox)
        window_start = runs[0].window_start
        partial = compare(stored_rows(integration), truth_of.rows(window_start, end), complete=False)
        doubled_ever += len(partial.doubled)
        assert not partial.doubled and not partial.lost, (
            f"seed {SEED}, sync {attempt + 1} ({run.status}, {run.error_category}) over-counted:\n"
            + partial.describe(stored_rows(integration), truth_of.rows(window_start, end))
        )
        integration.refresh_from_db()
        if run.status == SyncRun.Status.SUCCESS and integration.data_through == end and attempt >= CHAOS_SYNCS - 1:
            break
    sandbox.clear_faults()

    truth = truth_of.rows(runs[0].window_start, end)
    stored = stored_rows(integration)
    final = compare(stored, truth, complete=True)
    figures.add("rows_checked", len(truth))
    figures.add("rows_lost", len(final.lost))
    figures.add("rows_doubled", len(final.doubled) + doubled_ever)
    statuses = [f"{r.status}/{r.error_category or '-'}" for r in runs]
    assert runs[-1].status == SyncRun.Status.SUCCESS and integration.data_through == end, (
        f"seed {SEED}: not complete after {len(runs)} syncs: {statuses}; faults: {plan.injected}"
    )
    assert not final.lost and not final.doubled, f"seed {SEED}: {final.describe(stored, truth)}"
    assert any(r.status == SyncRun.Status.FAILED for r in runs), f"seed {SEED}: no fault made a sync fail: {statuses}"
    assert (end - runs[0].window_start).days >= BACKFILL_DAYS - 1  # the whole backfill was read

    # Once complete, a sync with no fault changes nothing.
    again = engine.integration_sync(integration_id=integration.pk, until=end)
    figures.add("chaos_syncs")
    assert again.status == SyncRun.Status.SUCCESS
    assert stored_rows(integration) == stored
