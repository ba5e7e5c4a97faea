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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.models import Membership, Workspace
from integrations.models import Integration
from usage import rollups
from usage.models import (
    Application,
    PricingRecomputeJob,
    ReattributionJob,
    RollupRebuildJob,
    Team,
    UsageImport,
    UsageRecord,
)
from usage.testing import new_record

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the fixtures skip (or fail in CI) with the reason
    Page = Any  # type: ignore[misc,assignment]

# The figures are December 2026's, seen on 6 December (whatever DOOW_TEST_CLOCK says).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.clock("2026-12-06T12:00:00Z")]

USERNAME = "ada"
PASSWORD = "e2e-correct-horse-battery"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture
def acme_with_spend(transactional_db: None) -> Workspace:
    workspace = Workspace.objects.create(name="Acme Corp", slug="acme")
    user = get_user_model().objects.create_user(username=USERNAME, password=PASSWORD, email="ada@example.com")
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.ADMIN)
    platform = Team.objects.create(workspace=workspace, name="Platform", cost_centre="CC-4100")
    bot = Application.objects.create(workspace=workspace, name="Support bot", team=platform)
    rows = []
    for name, provider, metric in (("OpenAI prod", "openai", "cost"), ("Groq", "groq", "estimated_cost")):
        integration = Integration(workspace=workspace, provider=provider, name=name, data_through=datetime.now(UTC))
        integration.set_credential({"api_key": f"sk-admin-e2e-overview-{provider}"})
        integration.save()
        # $2.00 (OpenAI, reported) or $0.50 (Groq, estimated) a day in November, $3.00 or $1.00
        # a day on 1–6 December.
        november, december = (Decimal(2), Decimal(3)) if provider == "openai" else (Decimal("0.5"), Decimal(1))
        model = "gpt-4o" if provider == "openai" else "llama-3.3-70b"
        application = bot if provider == "groq" else None
        days = [(datetime(2026, 11, d, 9, tzinfo=UTC), november) for d in range(1, 31)]
        days += [(datetime(2026, 12, d, 9, tzinfo=UTC), december) for d in range(1, 7)]
        rows += [
            new_record(integration, day, metric, amount, model=model, application=application) for day, amount in days
        ]
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
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
    page.goto("/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Spend overview", level=1)).to_be_visible()
    assert page.url.endswith("/w/acme/")
    # Dec 1..6: $18.00 reported by OpenAI, $6.00 estimated for Groq
    expect(page.get_by_test_id("mtd-USD")).to_have_text("$24.00")
    expect(page.get_by_text("$18.00 reported")).to_be_visible()
    expect(page.get_by_text("$6.00 estimated")).to_be_visible()
    expect(page.get_by_text("Daily spend by provider")).to_be_visible()
    expect(page.locator("#overview-chart canvas")).to_be_visible()  # the chart drew (the box unhides)
    _shoot(page, "provider")

    split = page.get_by_role("navigation", name="Split by")
    split.get_by_role("link", name="Application").click()
    expect(page.get_by_text("Daily spend by application")).to_be_visible()
    expect(split.get_by_role("link", name="Application")).to_have_attribute("aria-current", "true")
    assert page.url.endswith("/w/acme/?by=application")
    page.locator("#overview-chart summary").click()
    expect(page.locator("#overview-chart table")).to_contain_text("Support bot")
    _shoot(page, "application")

    # Spend by team: the Support bot belongs to Platform; OpenAI's usage has no application.
    split.get_by_role("link", name="Team").click()
    expect(page.get_by_text("Daily spend by team")).to_be_visible()
    expect(split.get_by_role("link", name="Team")).to_have_attribute("aria-current", "true")
    assert page.url.endswith("/w/acme/?by=team")
    page.locator("#overview-chart summary").click()
    expect(page.locator("#overview-chart table thead")).to_contain_text("Platform")
    expect(page.locator("#overview-chart table thead")).to_contain_text("No team")
    _shoot(page, "team")


def _sign_in(page: Page) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Spend overview", level=1)).to_be_visible()


def test_the_explorer_answers_with_spend_for_this_month_then_compares_and_splits_by_team(
    page: Page, acme_with_spend: Workspace
) -> None:
    _sign_in(page)
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


def test_an_admin_checks_the_invoice_against_list_price(page: Page, acme_with_spend: Workspace) -> None:
    """Company Settings → Pricing: reported cost beside the list-price estimate per provider and
    month, and the price on a chosen day."""
    _sign_in(page)
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Company Settings").click()
    page.get_by_role("link", name="Pricing", exact=True).click()
    expect(page.get_by_role("heading", name="Pricing", level=1)).to_be_visible()
    table = page.locator("table").first
    november = table.locator("tr", has_text="2026-11").filter(has_text="OpenAI")
    expect(november).to_contain_text("$60.00")  # 30 × $2.00 reported
    expect(november).to_contain_text("no priced usage")  # no token rows here: no estimate, never $0.00
    expect(november).not_to_contain_text("$0.00")
    expect(november).to_contain_text("Reported")
    groq = table.locator("tr", has_text="2026-12").filter(has_text="Groq")
    expect(groq).to_contain_text("not reported")
    expect(groq).to_contain_text("$6.00")
    expect(groq).to_contain_text("Estimated")
    page.get_by_label("Prices on", exact=True).fill("2026-11-15")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("The price every estimate of 15 Nov 2026")).to_be_visible()
    assert "on=2026-11-15" in page.url
    _shoot(page, "invoice", prefix="pricing")


def test_the_pricing_page_says_when_a_failed_recompute_is_no_longer_retried(
    page: Page, acme_with_spend: Workspace
) -> None:
    """Beat retried the recompute twice; after its third failure the page says so and how to
    start it again."""
    PricingRecomputeJob.objects.create(
        workspace=acme_with_spend, status="failed", attempt=3, error="RuntimeError: the details are in the worker log.",
        finished_at=datetime.now(UTC) - timedelta(minutes=5),
    )  # fmt: skip
    _sign_in(page)
    page.goto("/w/acme/settings/pricing/")
    alert = page.get_by_role("alert").filter(has_text="Recomputing estimates failed 3 times")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("not retried automatically any more")
    _shoot(page, "recompute-failed", prefix="pricing")


def test_the_pricing_page_says_a_recompute_whose_worker_went_silent_stalled(
    page: Page, acme_with_spend: Workspace
) -> None:
    PricingRecomputeJob.objects.create(
        workspace=acme_with_spend, status="running", total=120_000, done=48_000, claims=1,
        heartbeat_at=datetime.now(UTC) - timedelta(minutes=20),
    )  # fmt: skip
    _sign_in(page)
    page.goto("/w/acme/settings/pricing/")
    status = page.get_by_role("status").filter(has_text="Recomputing estimates stalled")
    expect(status).to_be_visible()
    expect(status).to_contain_text("last wrote progress 20 min ago (48,000 of 120,000 usage rows priced)")
    _shoot(page, "recompute-stalled", prefix="pricing")


def test_the_job_panels_say_a_job_whose_worker_went_silent_stalled_and_will_be_handed_over(
    page: Page, acme_with_spend: Workspace
) -> None:
    """Re-attribution, the rollup rebuild and a CSV import, each left running by a lost worker."""
    silent = datetime.now(UTC) - timedelta(minutes=20)
    ReattributionJob.objects.create(
        workspace=acme_with_spend, status="running", total=90_000, done=30_000, claims=1, heartbeat_at=silent
    )
    RollupRebuildJob.objects.create(
        workspace=acme_with_spend, time_zone="UTC", status="running", total=2, done=1, claims=1, heartbeat_at=silent
    )
    openai = Integration.objects.get(workspace=acme_with_spend, provider="openai")
    UsageImport.objects.create(
        workspace=acme_with_spend, integration=openai, source="march.csv", status="storing",
        lines_total=5_000, lines_checked=5_000, rows=5_000, rows_prepared=2_000, attempts=1, updated_at=silent,
    )  # fmt: skip
    _sign_in(page)
    for url, what, name in (
        ("/w/acme/settings/rules/", "Re-attribution stalled", "reattribution"),
        ("/w/acme/settings/general/", "Recomputing the daily totals stalled", "rollup-rebuild"),
        (f"/w/acme/settings/integrations/{openai.pk}/", "The import of march.csv stalled", "import"),
    ):
        page.goto(url)
        status = page.get_by_role("status").filter(has_text=what)
        expect(status).to_be_visible()
        expect(status).to_contain_text("its worker last reported progress 20 min ago")
        expect(status).to_contain_text("handed to another worker automatically within minutes")
        _shoot(page, f"{name}-stalled", prefix="jobs")


def test_a_wide_split_shows_the_top_ten_and_other_which_opens_the_rest(page: Page, acme_with_spend: Workspace) -> None:
    """25 more models on 2 December, $1 … $25: split by model, the chart and the tables show the
    ten largest and "Other (17 more)"; its link lists the next ten, with the top ten as one line."""
    openai = Integration.objects.get(workspace=acme_with_spend, provider="openai")
    UsageRecord.objects.bulk_create(
        [
            new_record(openai, datetime(2026, 12, 2, 10, tzinfo=UTC), "cost", str(i), model=f"model-{i:02}")
            for i in range(1, 26)
        ]
    )
    rollups.rebuild_workspace(acme_with_spend)
    _sign_in(page)
    page.goto("/w/acme/usage/?by=model")
    expect(page.get_by_role("heading", name="Spend per day, by model")).to_be_visible()
    expect(page.locator("#results canvas")).to_be_visible()
    table = page.get_by_test_id("spend-table")
    expect(table.locator("tbody tr")).to_have_count(11)
    expect(table.locator("tbody tr").first).to_contain_text("model-25")
    expect(table.locator("tbody tr").last).to_contain_text("Other (17 more)")
    expect(table.locator("tfoot")).to_contain_text("All 27 models")
    expect(table.locator("tfoot")).to_contain_text("$349.00")  # $24 + $1 + … + $25
    _shoot(page, "wide-split", prefix="explorer")

    table.get_by_role("link", name="Other (17 more)").click()
    expect(table.locator("tbody tr").first).to_contain_text("Top 10 models")
    expect(table.locator("tbody tr").nth(1)).to_contain_text("model-16")
    expect(page.get_by_role("navigation", name="Pages of models").first).to_contain_text("Models 11–20 of 27")
    assert "groups=2" in page.url
    _shoot(page, "wide-split-page-2", prefix="explorer")
