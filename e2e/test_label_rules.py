"""A label rule in a real browser: the rule form offers the Label field (key=value), refuses a
pattern without "=", and the rules list shows the saved label pattern; at 390 px and 1280 px
the pages do not scroll sideways (screenshots saved to look at)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from conftest import PASSWORD
from usage.models import AttributionRule

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the `playwright` fixture skips (or, in CI, fails) and says how to install it
    Page = Any  # type: ignore[assignment,misc]
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_label_rule_is_made_in_the_browser(page: Page, admin_user: Any, workspace: Any, screenshot: Any) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(admin_user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    page.goto(reverse("usage_settings:rule_add", kwargs={"ws": workspace.slug}))
    page.get_by_label("Provider").select_option("google_vertex")
    page.get_by_label("Label").fill("team research")
    page.get_by_label("New application name").fill("Research ML")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("A label pattern is key=value")).to_be_visible()
    page.wait_for_load_state("load")  # the text is in the DOM before the stylesheet has applied
    for size, name in (({"width": 390, "height": 844}, "phone"), ({"width": 1280, "height": 800}, "desktop")):
        page.set_viewport_size(size)
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        screenshot(f"label-rule-form-{name}")

    page.get_by_label("Label").fill("team=research*")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("team=research*")).to_be_visible()
    page.wait_for_load_state("load")
    assert AttributionRule.objects.get(workspace=workspace).label == "team=research*"
    for size, name in (({"width": 390, "height": 844}, "phone"), ({"width": 1280, "height": 800}, "desktop")):
        page.set_viewport_size(size)
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        screenshot(f"label-rules-list-{name}")
