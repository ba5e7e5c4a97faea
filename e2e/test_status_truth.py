"""Status that tells the truth and one account counted once, in a real browser.

Ada connects Acme's OpenAI organization (the sandbox), then connects it again: the form
refuses ("already connected as …") and offers to read only part of the account; ticking it
connects a second integration that both pages mark as sharing the account. A Test connection
the provider refuses turns the badge from Connected to Needs attention on the page and the
list, and the Usage page warns that its figures may be incomplete until the key works again.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from accounts.models import Workspace
from e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Page, expect, sign_in
from integrations.models import Integration

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_connect_form(page: Page, sandbox: Any, name: str) -> None:
    page.goto("/w/acme/settings/integrations/add/openai/")
    page.get_by_label("Admin API key").fill(sandbox.OPENAI_ADMIN_KEY)
    page.get_by_label("Name").fill(name)
    page.get_by_text("Advanced settings").click()
    page.get_by_label("API base URL").fill(sandbox.openai_base_url)


def test_duplicate_refused_then_split_and_a_refused_test_shows(
    page: Page, sandbox: Any, acme_admin: Workspace, screenshot: Any
) -> None:
    # Sign-in lands on the spend overview, the workspace home.
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD, lands_on="Spend overview")

    fill_connect_form(page, sandbox, "OpenAI production")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_role("status").filter(has_text="Connected OpenAI production")).to_be_visible()

    # The same organization again: refused, with the way to split offered.
    fill_connect_form(page, sandbox, "OpenAI research")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_role("alert").filter(has_text="already connected as OpenAI production")).to_be_visible()
    screenshot("duplicate-refused")
    assert Integration.objects.filter(workspace=acme_admin).count() == 1
    page.get_by_label("Admin API key").fill(sandbox.OPENAI_ADMIN_KEY)  # never sent back: typed again
    page.get_by_label("Read only part of this account").check()
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.get_by_role("status").filter(has_text="Connected OpenAI research")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Shares its account with OpenAI production"))).to_be_visible()
    research = Integration.objects.get(workspace=acme_admin, name="OpenAI research")
    assert research.account_share == Integration.AccountShare.SPLIT

    # The provider refuses the key at Test connection: the badge stops saying Connected.
    production = Integration.objects.get(workspace=acme_admin, name="OpenAI production")
    page.goto(f"/w/acme/settings/integrations/{production.pk}/")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Connected")
    expect(page.get_by_text(re.compile(r"Shares its account with OpenAI research"))).to_be_visible()
    sandbox.fault("/openai/v1/organization/projects", 401)
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("Connection test failed")).to_be_visible()
    expect(heading).to_contain_text("Needs attention")  # the summary refreshes itself
    expect(heading).not_to_contain_text("Connected")
    screenshot("test-refused")

    page.goto("/w/acme/settings/integrations/")
    row = page.get_by_role("row").filter(has_text="OpenAI production")
    expect(row).to_contain_text("Needs attention")
    page.goto("/w/acme/usage/")
    banner = page.get_by_role("status").filter(has_text="may be incomplete")
    expect(banner).to_contain_text("OpenAI production")
    expect(banner).to_contain_text("Needs attention")
    screenshot("usage-banner")
