"""Fixtures for the Anthropic connector's tests: an HTTP seam that records its retry sleeps,
and windows in the past (fully elapsed, so the sandbox's data for them is fixed)."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.anthropic import provider as anthropic_provider
from integrations.providers.anthropic.tests.support import base_url, days_ago
from integrations.providers.base import Window
from sandbox import anthropic as fake


@pytest.fixture
def provider():
    return anthropic_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sandbox, sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=[fake.ADMIN_KEY], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def admin_credential() -> dict[str, str]:
    return {"api_key": fake.ADMIN_KEY}


@pytest.fixture
def anthropic_settings(sandbox) -> dict[str, str]:
    return {"base_url": base_url(sandbox)}


@pytest.fixture
def three_days() -> Window:
    return Window(days_ago(4), days_ago(1))
