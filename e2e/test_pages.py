"""The integration page, the event log, the rule preview and the AWS setup steps, in Chromium.

A workspace in Europe/Paris with an OpenAI integration holding three days of hourly usage for
two models, some events of each level, and no rules (so all of it is unattributed). Ada signs
in and: finds health and the event log above the usage; filters the log to errors in place and
opens "View all events", its own paginated page; reads the usage summary (totals, a bar a day,
by model and project) and switches to the stored rows; starts a rule from an unattributed group
and watches its preview change as she narrows the model; copies the AWS trust policy. Every
page she sees fits 390 px without sideways scrolling, and is saved at 1280 and 390 px.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from e2e.conftest import Page, expect, fits_both_sizes, paris_openai, sign_in
from integrations.models import Integration, IntegrationEvent
from usage import rollups
from usage.models import UsageRecord

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def integration(transactional_db: None) -> Integration:
    integration = paris_openai(PASSWORD)
    workspace = integration.workspace
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    records = []
    for hour in range(72):
        moment = start + timedelta(hours=hour)
        for model, project in (("gpt-4o", "proj_support"), ("gpt-4o-mini", "proj_search")):
            for metric, quantity, unit in (("input_tokens", 400_000, "tokens"), ("cost", Decimal("1.25"), "USD")):
                records.append(
                    UsageRecord(workspace=workspace, integration=integration, provider="openai", bucket_start=moment,
                                bucket_end=moment + timedelta(hours=1), model=model, project=project, metric=metric,
                                quantity=quantity, unit=unit)
                )  # fmt: skip
    UsageRecord.objects.bulk_create(records)
    rollups.refresh_integration(integration.pk)
    for n in range(12):
        level, category = (("info", "sync"), ("warning", "rate_limit"), ("error", "credential"))[n % 3]
        IntegrationEvent.objects.create(
            integration=integration, level=level, category=category, message=f"Event {n}: {level}."
        )
    return integration


def test_integration_page_event_log_rule_preview_and_copy(
    page: Page, integration: Integration, screenshot: Any
) -> None:
    sign_in(page, "ada", PASSWORD)
    detail = f"/w/acme/settings/integrations/{integration.pk}/"
    page.goto(detail)

    # Health and the event log come before the usage.
    events, usage = page.locator("#events"), page.locator("#usage")
    assert events.bounding_box()["y"] < usage.bounding_box()["y"]
    expect(events.locator("tbody tr")).to_have_count(10)  # the latest ten
    events.get_by_label("Level").select_option("error")
    events.get_by_role("button", name="Filter").click()
    expect(page.locator("#events tbody tr")).to_have_count(4)
    expect(page.locator("#events tbody")).not_to_contain_text("warning.")

    # The usage opens on its summary; the stored rows are a tab away.
    expect(usage.locator(".total").first).to_contain_text("$")
    local_days = integration.usage_daily.values("day").distinct().count()  # 3 or 4 days in Europe/Paris
    expect(usage.locator("progress.bar")).to_have_count(local_days)
    expect(usage.get_by_role("heading", name="By model")).to_be_visible()
    usage.get_by_role("link", name="Stored rows").click()
    expect(page.locator("#usage table.table-usage tbody tr")).to_have_count(50)
    assert "view=rows" in page.url
    # Screenshots last on a page: Playwright leaves an empty style="" on inputs it hid the caret
    # of, which an htmx swap would then copy (and the CSP refuse).
    page.goto(detail)
    fits_both_sizes(page, screenshot, "integration-page")

    # View all events: its own page, paginated, filterable.
    page.goto(detail)
    page.get_by_role("link", name="View all events").click()
    expect(page.get_by_role("heading", name="Event log", level=1)).to_be_visible()
    expect(page.locator("#usage")).to_have_count(0)
    expect(page.locator("tbody tr")).to_have_count(12)
    fits_both_sizes(page, screenshot, "event-log")

    # A rule from an unattributed group previews what it takes, and follows the fields.
    page.goto("/w/acme/settings/unattributed/")
    page.get_by_role("row").filter(has_text="gpt-4o-mini").get_by_role("link", name="Create rule from this").click()
    preview = page.locator("#rule-preview-result")
    expect(preview).to_contain_text("144 rows would go to this rule")
    expect(preview).to_contain_text("$90.00")
    page.get_by_label("Project").fill("")
    page.get_by_label("Model", exact=True).fill("gpt-4o*")
    expect(page.locator("#rule-preview-result")).to_contain_text("288 rows would go to this rule")
    expect(page.locator("#rule-preview-result")).to_contain_text("$180.00")
    fits_both_sizes(page, screenshot, "rule-preview")

    # The AWS trust policy: whole, and one click copies it.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/w/acme/settings/integrations/add/aws_bedrock/")
    page.locator("[data-copy=setup-code-1]").click()
    expect(page.locator("[data-copy=setup-code-1]")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert '"sts:AssumeRole"' in copied and '"sts:ExternalId"' in copied
    fits_both_sizes(page, screenshot, "aws-setup")
