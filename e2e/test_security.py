"""The Content-Security-Policy in a real browser: our pages (htmx, Chart.js) and Django admin
work under it, and Chromium reports no violation (the `page` fixture fails the test on any).

A final control proves the watch works: an inline style injected into the page is refused
and reported.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Membership, Workspace
from e2e.conftest import Page, expect, fill_sign_in
from integrations.models import Integration

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

USERNAME = "root"
PASSWORD = "e2e-csp-correct-horse-battery"


@pytest.fixture
def synced_workspace(transactional_db: None, sandbox: Any) -> Integration:
    """Acme Corp with a staff admin and an OpenAI integration synced from the sandbox."""
    workspace = Workspace.objects.create(name="Acme Corp", slug="acme")
    user = get_user_model().objects.create_superuser(USERNAME, "root@example.com", PASSWORD)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.ADMIN)
    integration = Integration(
        workspace=workspace, provider="openai", name="OpenAI", settings={"base_url": sandbox.openai_base_url}
    )
    integration.set_credential({"api_key": sandbox.OPENAI_ADMIN_KEY})
    integration.save()
    day = (timezone.now() - timedelta(days=2)).date().isoformat()
    call_command("sync", str(integration.pk), "--since", day, "--until", day, stdout=io.StringIO())
    return integration


def test_pages_and_admin_work_under_the_policy(
    page: Page, synced_workspace: Integration, browser_problems: list[str]
) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    response = page.goto("/login/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    fill_sign_in(page, USERNAME, PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The overview (where sign-in lands) draws its chart and swaps the split under the policy.
    expect(page.get_by_role("heading", name="Spend overview", level=1)).to_be_visible()
    expect(page.locator("#overview-chart canvas[data-chart]")).to_be_visible()
    page.get_by_role("navigation", name="Split by").get_by_role("link", name="Model").click()
    expect(page).to_have_url(re.compile(r"by=model"))
    expect(page.locator("#overview-chart canvas[data-chart]")).to_be_visible()

    # The usage explorer: Chart.js draws (the chart box is shown by explorer.js), and an htmx
    # swap on a filter change redraws it.
    page.goto("/w/acme/usage/")
    chart = page.locator(".chart-box canvas[data-chart]")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["height"] > 50
    page.get_by_label("Split by").select_option(label="Model")
    expect(page).to_have_url(re.compile(r"by=model"))
    expect(page.locator(".chart-box canvas[data-chart]")).to_be_visible()

    # The integration page's htmx panels (usage, runs, events) load and Sync now answers.
    page.goto(f"/w/acme/settings/integrations/{synced_workspace.pk}/")
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_role("status").filter(has_text="Sync finished")).to_be_visible()

    # Django admin: the index, a change form with its widgets, and the periodic-task form,
    # whose crontab help comes from our static replacement of django-celery-beat's inline script.
    crontab = CrontabSchedule.objects.create(minute="0", hour="*/2")
    task = PeriodicTask.objects.create(
        name="every two hours", task="integrations.tasks.dispatch_due_syncs", crontab=crontab
    )
    page.goto("/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"/admin/integrations/integration/{synced_workspace.pk}/change/")
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_visible()
    page.goto(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    expect(page.locator(".field-crontab .help")).to_contain_text("Translation:")
    expect(page.locator(".field-crontab_translation")).to_be_hidden()
    page.goto("/admin/auth/user/add/")
    expect(page.get_by_role("heading", name="Add user")).to_be_visible()
    assert browser_problems == []

    # Control: something inline the policy forbids is refused, and the watch sees it.
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p id=\"probe\" style=\"color: red\">x</p>')")
    assert any("inline style" in problem for problem in browser_problems), browser_problems
    assert page.locator("#probe").evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
    browser_problems.clear()
