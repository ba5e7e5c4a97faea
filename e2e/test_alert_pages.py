"""Budgets, the overview's budget card and the notifications page in a real browser, at
1280×800 and 390×844, after the Celery evaluation raised a budget, an anomaly and an
integration alert: the admin sees each with its state, follows the anomaly's link to the
explorer filtered to that day, and marks everything read. Each page fits a phone (no sideways
scrolling) and is saved as a screenshot (screenshots/e2e-NN-*.png)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Workspace
from alerts.models import Budget
from alerts.tasks import evaluate_alerts
from alerts.tests.conftest import put_spend
from conftest import PASSWORD
from e2e.conftest import DESKTOP, PHONE, Page, expect, fits_both_sizes, sign_in
from integrations.models import Integration
from integrations.testing import make_integration
from usage.models import Application

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.clock("2026-12-06T12:00:00Z")]
TODAY = date(2026, 12, 6)


def test_budgets_overview_and_notifications(page: Page, admin_user: Any, workspace: Workspace, screenshot: Any) -> None:
    openai = make_integration(workspace, data_through=timezone.now())
    anthropic = make_integration(workspace, name="Anthropic prod", provider="anthropic")
    Integration.objects.filter(pk=anthropic.pk).update(
        status="error", last_error_category="credential", last_error_message="401: invalid x-api-key"
    )
    chatbot = Application.objects.create(workspace=workspace, name="Support chatbot")
    put_spend(openai, {TODAY - timedelta(days=n): "100" for n in range(2, 31)}, model="gpt-4o", application=chatbot)
    put_spend(openai, {TODAY - timedelta(days=1): "400"}, model="gpt-4o", application=chatbot)
    Budget.objects.create(workspace=workspace, name="All AI spend", amount=4000)
    Budget.objects.create(
        workspace=workspace, name="Support chatbot", scope="application", application=chatbot, amount=500
    )
    Budget.objects.create(workspace=workspace, name="Anthropic", scope="provider", provider="anthropic", amount=300)
    evaluate_alerts.delay()

    page.set_viewport_size(DESKTOP)
    sign_in(page, admin_user.username, PASSWORD)
    card = page.locator("#overview-budgets")
    expect(card.get_by_role("row", name="Support chatbot")).to_contain_text("Passed 100%")
    expect(card.get_by_role("row", name="All AI spend")).to_contain_text("Forecast to exceed")
    expect(card.get_by_role("row", name="Anthropic")).to_contain_text("Within budget")
    page.set_viewport_size(PHONE)  # the chart sizes itself on load: load it at the phone's width
    page.reload()
    fits_both_sizes(page, screenshot, "overview-budgets")

    page.goto(f"/w/{workspace.slug}/settings/budgets/")
    expect(page.get_by_role("row", name="Support chatbot")).to_contain_text("$800.00 (160%)")
    fits_both_sizes(page, screenshot, "budgets")

    page.get_by_role("link", name="Notifications").click()
    # Two budgets, an anomaly by provider, model and application, and the rejected key.
    expect(page.get_by_test_id("unread-count")).to_have_text("6")
    expect(page.get_by_text("Integration Anthropic prod had its credential rejected").first).to_be_visible()
    fits_both_sizes(page, screenshot, "notifications")

    model = page.locator("li.notification", has_text="Model gpt-4o spent 400.00 USD")
    model.get_by_role("link", name="Open in the explorer").click()
    assert "model=gpt-4o" in page.url and "date_from=2026-12-05" in page.url and "date_to=2026-12-05" in page.url
    expect(page.get_by_text("$400.00").first).to_be_visible()

    page.get_by_role("link", name="Notifications").click()
    page.get_by_role("button", name="Mark all read").click()
    expect(page.get_by_text("Nothing unread.")).to_be_visible()
    expect(page.get_by_test_id("unread-count")).to_have_count(0)
