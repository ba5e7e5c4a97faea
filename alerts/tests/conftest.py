"""Factories for alert tests: usage rows go through the rollup upkeep like every write path."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from integrations.models import Integration
from integrations.testing import make_integration
from usage.models import UsageRecord
from usage.rollups import refresh_integration


def put_spend(
    integration: Integration, amounts: dict[date, str], *, metric: str = "cost", unit: str = "USD", **fields
) -> None:
    """One hourly row per day (at noon UTC) with `amount`, replacing that day's earlier rows of
    the same metric, then the rollups recomputed."""
    for day, amount in amounts.items():
        start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        UsageRecord.objects.update_or_create(
            workspace=integration.workspace,
            integration=integration,
            bucket_start=start,
            bucket_end=start + timedelta(hours=1),
            metric=metric,
            **fields,
            defaults={"provider": integration.provider, "quantity": Decimal(amount), "unit": unit},
        )
    refresh_integration(integration.pk)


def clear_spend(integration: Integration) -> None:
    UsageRecord.objects.filter(integration=integration).delete()
    refresh_integration(integration.pk)


@pytest.fixture
def openai(workspace) -> Integration:
    return make_integration(workspace)


@pytest.fixture
def no_anomalies(workspace):
    """Budget and integration tests look at their own alerts only."""
    from alerts.models import AnomalyRule

    return AnomalyRule.objects.create(workspace=workspace, enabled=False)


@pytest.fixture(autouse=True)
def pinned_clock(request: pytest.FixtureRequest):
    """The alert scenarios are written for December 2026 (budgets of that month, its weekdays):
    every test here runs from 2026-12-06T12:00Z whatever DOOW_TEST_CLOCK says, like a test marked
    `clock` (conftest.py); the ones that need another moment travel there themselves."""
    import time_machine

    moment = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with time_machine.travel(moment, tick=True):
        yield moment


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers the statuses
    of `script` in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[int] = [200]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                turn = min(len(receiver.requests), len(receiver.script)) - 1
                status = receiver.script[turn]
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/doow"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Deliveries are queued when the evaluation's transaction commits: run them."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def verify(secret: str, request: dict) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"]["X-Doow-Signature"])


def create_webhook(admin_client, url: str, ws: str = "acme") -> str:
    """Save the webhook through the page; the secret shown once."""
    response = admin_client.post(reverse("alerts:webhook", kwargs={"ws": ws}), {"url": url})
    assert response.status_code == 200, response.content.decode()
    return response.context["new_secret"]
