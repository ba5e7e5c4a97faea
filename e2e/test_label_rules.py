"""A label rule in a real browser: the rule form offers the Label field (key=value), refuses a
pattern without "=", and the rules list shows the saved label pattern; at 390 px and 1280 px
the pages do not scroll sideways (screenshots saved to look at)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from conftest import PASSWORD
from e2e.conftest import Page, expect, fits_both_sizes, sign_in
from usage.models import AttributionRule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_label_rule_is_made_in_the_browser(page: Page, admin_user: Any, workspace: Any, screenshot: Any) -> None:
    sign_in(page, admin_user.username, PASSWORD)

    page.goto(reverse("usage_settings:rule_add", kwargs={"ws": workspace.slug}))
    page.get_by_label("Provider").select_option("google_vertex")
    page.get_by_label("Label").fill("team research")
    page.get_by_label("New application name").fill("Research ML")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("A label pattern is key=value")).to_be_visible()
    fits_both_sizes(page, screenshot, "label-rule-form")

    page.get_by_label("Label").fill("team=research*")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("team=research*")).to_be_visible()
    assert AttributionRule.objects.get(workspace=workspace).label == "team=research*"
    fits_both_sizes(page, screenshot, "label-rules-list")
