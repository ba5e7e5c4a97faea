"""Fixtures for the Fireworks connector's tests: the sandbox's Fireworks account, a fresh metrics
rate-limit budget for every test, and a clock shared by the connector and the (in-process) sandbox.
From `hooks`, integrations/providers/conftest.py makes `provider`, `credential`, `provider_settings`
and the HTTP seam that records its retry sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from integrations.providers.fireworks.tests.support import FakeClock, FireworksSandbox
from sandbox import fireworks as fw


@pytest.fixture(autouse=True)
def fresh_metrics_budget() -> Iterator[None]:
    # One sandbox serves the whole session; its 6-a-minute metrics budget must not leak between tests.
    fw.reset_metrics_limits()
    yield
    fw.reset_metrics_limits()


@pytest.fixture
def clock(monkeypatch, provider) -> FakeClock:
    """Freeze "now" (whole seconds) for the connector and the sandbox alike; tests advance it."""
    fake = FakeClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(provider, "clock", fake)
    monkeypatch.setattr(fw, "clock", fake)
    return fake


@pytest.fixture
def hooks() -> FireworksSandbox:
    return FireworksSandbox()


@pytest.fixture
def integration(create_integration, sandbox):
    """The sandbox's Fireworks account connected as a user would (its account id in full form)."""
    return create_integration(
        "fireworks",
        {"api_key": fw.API_KEY},
        {"base_url": sandbox.url + "/fireworks", "account_id": f"accounts/{fw.ACCOUNT_ID}"},
    )
