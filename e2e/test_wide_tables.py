"""The attribution flow and the Django admin's lists at 1280 px, in Chromium.

Unattributed usage with long project and model names: the Totals column is whole in view at
1280 px without scrolling the table (long names scroll inside its box, after the figures); Ada creates a rule from a group and, while the worker has not yet
re-attributed, lands on the list with the group still there; once the worker is done the list
refreshes itself (no reload) and the group is gone. A superuser then reads the admin's lists
(events with a long message, usage rows with long ids, sync runs, integrations): none is wider
than its box.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from e2e.conftest import DESKTOP, Page, expect, fits_both_sizes, paris_openai, sign_in
from integrations.models import Integration, IntegrationEvent, SyncRun
from usage import rollups
from usage.models import ReattributionJob, UsageRecord
from usage.tasks import reattribute_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
LONG_PROJECT = "proj_customer_support_assistant_europe_west_production_2026"
LONG_MODEL = "ft:gpt-4o-mini-2024-07-18:acme-corp:support-tone-v7:9xYzAbCdEfGh"


@pytest.fixture
def integration(transactional_db: None) -> Integration:
    integration = paris_openai(PASSWORD, superuser=True)
    workspace = integration.workspace
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    metrics = (
        ("input_tokens", 1_234_567, "tokens"),
        ("cached_input_tokens", 456_789, "tokens"),
        ("cache_write_tokens", 98_765, "tokens"),
        ("output_tokens", 345_678, "tokens"),
        ("requests", 12_345, "requests"),
        ("cost", Decimal("1234.56"), "USD"),
    )
    records = [
        UsageRecord(workspace=workspace, integration=integration, provider="openai", bucket_start=moment,
                    bucket_end=moment + timedelta(hours=1), model=model, project=project, metric=metric,
                    quantity=quantity, unit=unit)
        for moment in (start, start + timedelta(days=1))
        for model, project in ((LONG_MODEL, LONG_PROJECT), ("gpt-4o", "proj_search"))
        for metric, quantity, unit in metrics
    ]  # fmt: skip
    UsageRecord.objects.bulk_create(records)
    rollups.refresh_integration(integration.pk)
    SyncRun.objects.create(
        integration=integration, status=SyncRun.Status.SUCCESS, rows_written=len(records),
        window_start=start, window_end=start + timedelta(days=2), finished_at=timezone.now(),
    )  # fmt: skip
    IntegrationEvent.objects.create(
        integration=integration, level="warning", category="rate_limit", http_status=429,
        message="Rate limited by the provider; " + "retrying with a longer wait between calls. " * 12,
    )  # fmt: skip
    return integration


def _fits_its_box(page: Page, table: str) -> None:
    """The table is no wider than the box around it: nothing hidden to the right."""
    sizes = page.locator(table).evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
    assert sizes[0] <= sizes[1], f"{table} at {page.url}: {sizes[0]} px in a {sizes[1]} px box"


def test_unattributed_totals_fit_and_the_list_refreshes_after_reattribution(
    page: Page, integration: Integration, screenshot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []  # no worker: the job waits until the test runs it
    monkeypatch.setattr("usage.services.enqueue_on_commit", lambda name, *args: sent.extend(args))
    page.set_viewport_size(DESKTOP)
    sign_in(page, "ada", PASSWORD)
    page.goto("/w/acme/settings/unattributed/")
    groups = page.locator("#groups")
    long_row = groups.get_by_role("row").filter(has_text=LONG_MODEL)
    expect(long_row).to_have_count(1)
    totals = long_row.locator("td.totals-cell")
    expect(totals).to_contain_text("$2,469.12")
    expect(totals).to_contain_text("2.5M tokens")
    # The money first, then the counts people look at; the other metrics after them by name.
    lines = [" ".join(t.split()) for t in totals.locator("div").all_inner_texts()]
    assert lines[:3] == ["Reported cost $2,469.12", "Input tokens 2.5M tokens", "Output tokens 691,356 tokens"]
    # Long names may make the table scroll inside its box, but the figures come first: the
    # Totals column is whole inside the visible box, with no scrolling.
    wrap = groups.locator(".table-wrap").bounding_box()
    for cell in (totals, long_row.get_by_role("link", name="Create rule from this")):
        box = cell.bounding_box()
        assert box is not None and wrap is not None
        assert wrap["x"] <= box["x"] and box["x"] + box["width"] <= wrap["x"] + wrap["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    fits_both_sizes(page, screenshot, "unattributed")

    page.set_viewport_size(DESKTOP)
    long_row.get_by_role("link", name="Create rule from this").click()
    expect(page.locator("#rule-preview-result")).to_contain_text("12 rows would go to this rule")
    page.get_by_label("New application name").fill("Support assistant")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("Rule saved")).to_be_visible()
    job = ReattributionJob.objects.get()
    assert sent == [job.pk]
    expect(page.locator("#groups").get_by_role("row").filter(has_text=LONG_MODEL)).to_have_count(1)  # not yet

    reattribute_workspace(job.pk)  # the worker
    # The page follows the job and reloads its groups by itself.
    expect(page.locator("#groups").get_by_role("row").filter(has_text=LONG_MODEL)).to_have_count(0)
    expect(page.locator("#groups").get_by_role("row").filter(has_text="proj_search")).to_have_count(1)
    expect(page.get_by_text("Attribution is up to date")).to_be_visible()
    screenshot("unattributed-after-reattribution")


def test_admin_lists_fit_1280(page: Page, integration: Integration, screenshot: Any) -> None:
    page.set_viewport_size(DESKTOP)
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    lists = {
        "events": "/admin/integrations/integrationevent/",
        "integrations": "/admin/integrations/integration/",
        "sync-runs": "/admin/integrations/syncrun/",
        "usage-records": "/admin/usage/usagerecord/",
    }
    for name, url in lists.items():
        page.goto(url)
        expect(page.locator("#result_list tbody tr").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"], name
        _fits_its_box(page, "#result_list")
        screenshot(f"admin-{name}")
