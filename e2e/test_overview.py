"""The spend overview in a real browser: sign in → land on the overview → month to date with
its reported and estimated parts → switch the chart's split (htmx, the URL follows), to the team
too; then the explorer: spend first for this month, another date preset, the comparison with the
previous period and the split by team.

Acme's usage is stored as base rows (one reporting provider, one priced from list prices) and
rolled up as every write path does; everything after that happens through the pages. The page
is photographed at a desktop (1280×800) and a phone (390×844) size.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Workspace
from e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Page, expect, sign_in
from integrations.testing import make_integration
from usage.models import Application, Team
from usage.testing import make_record

# The figures are December 2026's, seen on 6 December (whatever DOOW_TEST_CLOCK says).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.clock("2026-12-06T12:00:00Z")]

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture
def acme_with_spend(acme_admin: Workspace) -> Workspace:
    workspace = acme_admin
    platform = Team.objects.create(workspace=workspace, name="Platform", cost_centre="CC-4100")
    bot = Application.objects.create(workspace=workspace, name="Support bot", team=platform)
    # A day's spend: in November $2.00 from OpenAI and $0.50 for Groq, on 1-6 December $3.00 and $1.00.
    daily = {("openai", 11): "2", ("groq", 11): "0.5", ("openai", 12): "3", ("groq", 12): "1"}
    for name, provider, metric in (("OpenAI prod", "openai", "cost"), ("Groq", "groq", "estimated_cost")):
        integration = make_integration(
            workspace,
            name,
            provider,
            credential={"api_key": f"sk-admin-e2e-overview-{provider}"},
            data_through=datetime.now(UTC),
        )
        model = "gpt-4o" if provider == "openai" else "llama-3.3-70b"
        application = bot if provider == "groq" else None
        for month, days in ((11, 30), (12, 6)):
            for d in range(1, days + 1):
                day = datetime(2026, month, d, 9, tzinfo=UTC)
                make_record(integration, day, metric, daily[provider, month], model=model, application=application)
    return workspace


def _shoot(page: Page, name: str, prefix: str = "overview") -> None:
    folder = Path(os.environ.get("DOOW_E2E_SCREENSHOTS", Path(settings.BASE_DIR) / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(300)  # the charts redraw at the new width (a full-page shot is taken as laid out)
        page.screenshot(path=str(folder / f"{prefix}-{name}-{label}-{width}x{height}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_sign_in_lands_on_the_overview_and_switches_the_split(page: Page, acme_with_spend: Workspace) -> None:
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD, lands_on="Spend overview")
    assert page.url.endswith("/w/acme/")
    # Dec 1..6: $18.00 reported by OpenAI, $6.00 estimated for Groq
    expect(page.get_by_test_id("mtd-USD")).to_have_text("$24.00")
    expect(page.get_by_text("$18.00 reported")).to_be_visible()
    expect(page.get_by_text("$6.00 estimated")).to_be_visible()
    expect(page.get_by_text("Daily spend by provider")).to_be_visible()
    expect(page.locator("#overview-chart canvas")).to_be_visible()  # the chart drew (the box unhides)
    _shoot(page, "provider")

    _split_by(page, "Application")
    expect(page.locator("#overview-chart table")).to_contain_text("Support bot")
    _shoot(page, "application")

    # Spend by team: the Support bot belongs to Platform; OpenAI's usage has no application.
    _split_by(page, "Team")
    expect(page.locator("#overview-chart table thead")).to_contain_text("Platform")
    expect(page.locator("#overview-chart table thead")).to_contain_text("No team")
    _shoot(page, "team")


def _split_by(page: Page, label: str) -> None:
    """Switch the overview chart's split to `label` (htmx): its heading, the current link and the
    URL follow. Then open the chart's table."""
    split = page.get_by_role("navigation", name="Split by")
    split.get_by_role("link", name=label).click()
    expect(page.get_by_text(f"Daily spend by {label.lower()}")).to_be_visible()
    expect(split.get_by_role("link", name=label)).to_have_attribute("aria-current", "true")
    assert page.url.endswith(f"/w/acme/?by={label.lower()}")
    page.locator("#overview-chart summary").click()


def test_the_explorer_answers_with_spend_for_this_month_then_compares_and_splits_by_team(
    page: Page, acme_with_spend: Workspace
) -> None:
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD, lands_on="Spend overview")
    page.get_by_role("link", name="Explore usage").click()
    expect(page.get_by_role("heading", name="Usage", level=1)).to_be_visible()
    dates = page.get_by_role("navigation", name="Dates")
    expect(dates.get_by_role("link", name="This month")).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("window")).to_contain_text("1 Dec 2026 – 6 Dec 2026")
    expect(page.get_by_test_id("spend-USD")).to_have_text("$24.00")
    expect(page.locator(".spend-tiles").get_by_text("$18.00 reported")).to_be_visible()
    expect(page.locator(".spend-tiles").get_by_text("$6.00 estimated")).to_be_visible()
    expect(page.get_by_role("heading", name="Spend per day, by provider")).to_be_visible()
    expect(page.locator("#results canvas")).to_be_visible()
    _shoot(page, "this-month", prefix="explorer")

    dates.get_by_role("link", name="Last month").click()
    expect(page.get_by_test_id("window")).to_contain_text("1 Nov 2026 – 30 Nov 2026")
    expect(page.get_by_test_id("spend-USD")).to_have_text("$75.00")  # 30 × $2.00 + 30 × $0.50
    assert "range=last_month" in page.url

    page.get_by_label("Compare with the previous period").check()  # an htmx swap of the results
    expect(page.get_by_test_id("window")).to_contain_text("compared with 1 Oct 2026 – 31 Oct 2026")
    expect(page.get_by_test_id("change")).to_contain_text("▲ $75.00")  # nothing in October
    page.get_by_label("Split by").select_option("team")
    expect(page.get_by_role("heading", name="Spend by team")).to_be_visible()
    table = page.get_by_test_id("spend-table")
    expect(table).to_contain_text("Platform")
    expect(table).to_contain_text("No team")
    assert "by=team" in page.url and "compare=on" in page.url
    # the date preset survives a filter change (the hidden range rides along with its dates)
    expect(dates.get_by_role("link", name="Last month")).to_have_attribute("aria-current", "true")
    _shoot(page, "team-compare", prefix="explorer")
