"""Every page fits a phone: 390 px wide, no sideways scrolling of the page.

The demo's workspace (one integration per provider the sandbox fakes, seeded by the demo's own
`seed`), two of them synced so the tables have rows and the charts data. The test signs in
through the form and visits each page at 390×844: the page's scroll width must not exceed the
viewport (wide tables scroll inside their own .table-wrap box), and the collapsed top menu,
once opened, shows "Company Settings" and "Sign out". Every page is also saved as a
screenshot at 390×844 and 1280×800 (screenshots/e2e-NN-*.png) to be looked at.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Workspace
from doow.demo import seed
from e2e.conftest import DESKTOP, PHONE, Page, expect, page_width, sign_in
from integrations import engine
from integrations.models import Integration, SyncRun
from usage.models import UsageRecord

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_workspace(transactional_db: None, sandbox: Any) -> tuple[Workspace, str, str]:
    username, password = seed(sandbox.url)
    workspace = Workspace.objects.get(slug="acme")
    until = timezone.now()
    for provider in ("openai", "anthropic"):
        integration = workspace.integrations.get(provider=provider)
        engine.integration_sync(
            integration_id=integration.pk, since=until - timedelta(days=3), until=until, trigger=SyncRun.Trigger.COMMAND
        )
    return workspace, username, password


def test_every_page_fits_390px_and_the_menu_opens(
    page: Page, demo_workspace: tuple[Workspace, str, str], screenshot: Any
) -> None:
    workspace, username, password = demo_workspace
    openai = workspace.integrations.get(provider="openai")
    assert Integration.objects.filter(workspace=workspace).count() > 3
    assert UsageRecord.objects.filter(integration=openai).exists()
    settings = f"/w/{workspace.slug}/settings"
    pages = {
        "overview": f"/w/{workspace.slug}/",
        "integrations": f"{settings}/integrations/",
        "integration-detail": f"{settings}/integrations/{openai.pk}/",
        "integration-events": f"{settings}/integrations/{openai.pk}/events/",
        "integration-add": f"{settings}/integrations/add/openai/",
        "integration-add-bedrock": f"{settings}/integrations/add/aws_bedrock/",
        "usage-explorer": f"/w/{workspace.slug}/usage/",
        "usage-explorer-table": f"/w/{workspace.slug}/usage/?view=table",
        "applications": f"{settings}/applications/",
        "licenses": f"/w/{workspace.slug}/usage/licenses/",
        "rules": f"{settings}/rules/",
        "unattributed": f"{settings}/unattributed/",
        "pricing": f"{settings}/pricing/",
        "general": f"{settings}/general/",
        "budgets": f"{settings}/budgets/",
        "anomaly-rule": f"{settings}/anomaly-rule/",
        "webhook": f"{settings}/webhook/",
        "notifications": f"/w/{workspace.slug}/notifications/",
    }

    page.set_viewport_size(PHONE)
    sign_in(page, username, password)
    too_wide: dict[str, int] = {}
    for name, url in pages.items():
        response = page.goto(url)
        assert response is not None and response.status == 200, (url, response and response.status)
        page.wait_for_load_state("networkidle")
        width = page_width(page)
        if width > PHONE["width"]:
            too_wide[name] = width
        screenshot(f"390-{name}")

        # The top menu is collapsed on a phone: its links show only once it is opened.
        sign_out = page.get_by_role("button", name="Sign out")
        company = page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Company Settings")
        expect(sign_out).to_be_hidden()
        page.get_by_text("Menu", exact=True).click()
        expect(sign_out).to_be_visible()
        expect(company).to_be_visible()
        assert page_width(page) <= PHONE["width"], f"{name}: the open menu is wider than the phone"
        if name == "integrations":
            screenshot("390-menu-open")
    assert too_wide == {}, f"pages wider than {PHONE['width']} px: {too_wide}"

    # The admin site's login, signed out (the menu is still open on the last page).
    page.get_by_role("button", name="Sign out").click()
    page.goto("/admin/login/")
    assert page_width(page) <= PHONE["width"]
    screenshot("390-admin-login")

    # The wide screen keeps the menu open with no toggle, on the same pages.
    page.set_viewport_size(DESKTOP)
    sign_in(page, username, password)
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.get_by_text("Menu", exact=True)).to_be_hidden()
        assert page_width(page) <= DESKTOP["width"], name
        screenshot(f"1280-{name}")
