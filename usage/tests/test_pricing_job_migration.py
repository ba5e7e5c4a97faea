"""usage 0021 on an install that ran 0020 (which wrote price_data when a job started): a job that
did not finish no longer counts as priced with that data, and of several active jobs of one
workspace only the newest stays active, so the one-active-job constraint can be built."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from usage.models import PricingRecomputeJob


@pytest.mark.django_db(transaction=True)
def test_0021_keeps_one_active_job_and_forgets_the_data_of_unfinished_ones(workspace):
    call_command("migrate", "usage", "0020", verbosity=0)
    try:
        with connection.cursor() as cursor:
            for status in ("running", "queued", "failed", "done"):
                cursor.execute(
                    "INSERT INTO usage_pricingrecomputejob"
                    " (workspace_id, status, total, done, written, error, created_at, price_data)"
                    " VALUES (%s, %s, 0, 0, 0, '', CURRENT_TIMESTAMP, 'genai-prices 0.0.1; table old')",
                    [workspace.pk, status],
                )
    finally:
        call_command("migrate", "usage", verbosity=0)
    jobs = PricingRecomputeJob.objects.order_by("pk")
    assert [(j.status, j.price_data, j.requested_price_data) for j in jobs] == [
        ("failed", "", "genai-prices 0.0.1; table old"),  # the older active job: replaced
        ("queued", "", "genai-prices 0.0.1; table old"),
        ("failed", "", "genai-prices 0.0.1; table old"),
        ("done", "genai-prices 0.0.1; table old", ""),
    ]
    assert jobs[0].error == "A newer recompute replaced it."
