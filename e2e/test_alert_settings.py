"""Company Settings → Anomaly rule and → Webhook in a real browser, at 1280×800 and 390×844.

The admin saves a stricter anomaly rule, adds a webhook pointing at a local receiver (the test
settings allow 127.0.0.1), copies the secret shown once, sends a test event, and reads the
delivery log; the receiver got a request signed with that secret. Each page fits a phone
(no sideways scrolling) and is saved as a screenshot (screenshots/e2e-NN-*.png).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from accounts.models import Membership, Workspace
from alerts.models import AnomalyRule, Webhook
from conftest import PASSWORD
from e2e.conftest import DESKTOP, PHONE, Page, expect, page_width, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/doow-alerts", received
    server.shutdown()
    server.server_close()


def test_admin_sets_the_anomaly_rule_and_a_webhook(
    page: Page, admin_user: Any, workspace: Workspace, receiver, screenshot: Any
) -> None:
    url, received = receiver
    assert Membership.objects.filter(user=admin_user, workspace=workspace, role=Membership.Role.ADMIN).exists()
    page.set_viewport_size(DESKTOP)
    sign_in(page, admin_user.username, PASSWORD)

    page.goto(f"/w/{workspace.slug}/settings/anomaly-rule/")
    page.get_by_label("Times the median").fill("2")
    page.get_by_label("Minimum USD above the median").fill("100")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("Saved the anomaly rule")).to_be_visible()
    rule = AnomalyRule.objects.get(workspace=workspace)
    assert (str(rule.ratio), str(rule.min_amount), rule.enabled) == ("2.00", "100.00", True)
    screenshot("1280-anomaly-rule")

    page.goto(f"/w/{workspace.slug}/settings/webhook/")
    screenshot("1280-webhook-empty")
    page.get_by_label("Endpoint URL").fill(url)
    page.get_by_role("button", name="Save webhook").click()
    secret = page.locator("#webhook-secret").inner_text()
    assert secret == Webhook.objects.get(workspace=workspace).secret
    screenshot("1280-webhook-secret-once")

    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("cell", name="ping")).to_be_visible()
    assert len(received) == 1
    signature = "sha256=" + hmac.new(secret.encode(), received[0]["body"], hashlib.sha256).hexdigest()
    assert received[0]["headers"]["X-Doow-Signature"] == signature
    expect(page.get_by_text(secret)).to_have_count(0)  # shown once: not after the redirect
    screenshot("1280-webhook-log")

    page.set_viewport_size(PHONE)
    for name, path in (("anomaly-rule", "anomaly-rule/"), ("webhook-log", "webhook/")):
        page.goto(f"/w/{workspace.slug}/settings/{path}")
        page.wait_for_load_state("networkidle")
        assert page_width(page) <= PHONE["width"], name
        screenshot(f"390-{name}")
