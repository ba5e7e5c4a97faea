"""Fixtures for the real-browser tests: headless Debian Chromium driven by Playwright.

The browser tests need two things the rest of the suite does not: the `playwright` Python
package (requirements-e2e.txt) and a Chromium binary (Debian's `chromium`, never one that
`playwright install` downloads). Without them the tests skip, so the README's test command
stays runnable on a bare machine; in CI (CI=true) a missing piece fails instead, so a broken
browser setup can never pass unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.models import Membership, Workspace

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the `playwright` fixture skips (or, in CI, fails) and says how to install it
    Page = Any  # type: ignore[assignment,misc]
    expect = None

CHROMIUM = os.environ.get("DOOW_E2E_CHROMIUM", "/usr/bin/chromium")
# The machine may have no network: without the background-networking flags Chromium keeps
# trying (and failing) to reach Google's update, sync and field-trial servers.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Generous for a slow CI machine: the longest step, Sync now of 30 days, takes ~5 s here.
TIMEOUT_MS = 60_000
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Acme's admin who signs in with a password through the form, like a person would (`acme_admin`).
ADMIN_USERNAME = "ada"
ADMIN_PASSWORD = "e2e-correct-horse-battery"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} — CI=true, so the browser tests must run, not skip.", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed: .venv/bin/pip install -r requirements-e2e.txt")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"No Chromium at {CHROMIUM}: apt-get install -y chromium (or set DOOW_E2E_CHROMIUM)")
    expect.set_options(timeout=TIMEOUT_MS)  # the default 5 s is a 30-day sync on a slow machine
    # Playwright's sync API runs its event loop in this thread, so Django's guard against ORM
    # calls from async code would refuse the test's own setup and assertions. They are plain
    # synchronous code; the live server answers the browser from its own thread.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
    yield browser
    browser.close()


@pytest.fixture
def browser_problems() -> list[str]:
    """What the browser reported against the pages: Content-Security-Policy violations and
    uncaught script errors. Any left at the end of a test fail it (see `page`)."""
    return []


def _record_console(problems: list[str], message: Any) -> None:
    # Chromium reports every CSP violation on the console ("Refused to execute inline script
    # because it violates the following Content Security Policy directive: …").
    if message.type == "error" and "Content Security Policy" in message.text:
        problems.append(f"CSP: {message.text}")


@pytest.fixture
def page(browser: Any, live_server: Any, browser_problems: list[str]) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server, downloads allowed; the test
    fails if the pages broke the Content-Security-Policy or threw a script error."""
    context = browser.new_context(
        base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda message: _record_console(browser_problems, message))
    page.on("pageerror", lambda error: browser_problems.append(f"script error: {error}"))
    yield page
    context.close()
    if browser_problems:
        pytest.fail("The browser reported:\n" + "\n".join(browser_problems), pytrace=False)


@pytest.fixture
def screenshot(page: Any) -> Any:
    """screenshot("connected") saves the whole page as screenshots/e2e-NN-connected.png."""
    folder = Path(os.environ.get("DOOW_E2E_SCREENSHOTS", Path(settings.BASE_DIR) / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []

    def take(name: str) -> Path:
        path = folder / f"e2e-{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    return take


@pytest.fixture
def acme_admin(transactional_db: None) -> Workspace:
    """Acme Corp with one admin, ADMIN_USERNAME, who signs in with ADMIN_PASSWORD."""
    workspace = Workspace.objects.create(name="Acme Corp", slug="acme")
    user = get_user_model().objects.create_user(
        username=ADMIN_USERNAME, password=ADMIN_PASSWORD, email=f"{ADMIN_USERNAME}@example.com"
    )
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.ADMIN)
    return workspace


def paris_openai(password: str, *, superuser: bool = False) -> Any:
    """Acme Corp in Europe/Paris, its admin "ada" (a superuser too, for the admin site, if asked)
    and an OpenAI integration, "OpenAI production", that never reaches the network."""
    from integrations.models import Integration

    workspace = Workspace.objects.create(name="Acme Corp", slug="acme", time_zone="Europe/Paris")
    create = get_user_model().objects.create_superuser if superuser else get_user_model().objects.create_user
    ada = create("ada", "ada@example.com", password)
    Membership.objects.create(workspace=workspace, user=ada, role=Membership.Role.ADMIN)
    integration = Integration(
        workspace=workspace, provider="openai", name="OpenAI production", settings={"base_url": "http://127.0.0.1:9/v1"}
    )
    integration.set_credential({"api_key": "sk-admin-e2e-0000000000000000"})
    integration.save()
    return integration


# ---------------------------------------------------------------- steps the tests share
def fill_sign_in(page: Page, username: str, password: str) -> None:
    """Type the credentials into the sign-in form on the page (not submitted yet)."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)


def sign_in(page: Page, username: str, password: str, *, lands_on: str | None = None) -> None:
    """Sign in through the form the signed-out home page shows, and wait for the page it lands
    on: its level-1 heading (named `lands_on` when given) is visible."""
    page.goto("/")
    fill_sign_in(page, username, password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=lands_on, level=1)).to_be_visible()


def page_width(page: Page) -> int:
    """The page's own scroll width, once its stylesheets have applied (text can be in the DOM
    before they have, and the unstyled page is wider)."""
    page.wait_for_load_state("load")
    return int(page.evaluate("document.documentElement.scrollWidth"))


def fits_both_sizes(page: Page, screenshot: Any, name: str) -> None:
    """At 390 px and at 1280 px the page never scrolls sideways; saved at both sizes as
    `<name>-phone` and `<name>-desktop` (the viewport is left at the desktop size)."""
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        assert page_width(page) <= size["width"], f"{name} at {label}"
        screenshot(f"{name}-{label}")
