"""Fixtures for the OpenRouter connector's tests: an HTTP seam that records its retry sleeps,
the sandbox's keys, and day-aligned windows inside the API's 30-day horizon."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import Window
from integrations.providers.openrouter import provider as openrouter_provider
from integrations.providers.openrouter.tests.support import base_url, days_ago
from sandbox.openrouter import MANAGEMENT_KEY


@pytest.fixture
def provider():
    return openrouter_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=[MANAGEMENT_KEY], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def credential() -> dict[str, str]:
    return {"api_key": MANAGEMENT_KEY}


@pytest.fixture
def settings(sandbox) -> dict[str, str]:
    return {"base_url": base_url(sandbox)}


@pytest.fixture
def day() -> Window:
    return Window(days_ago(2), days_ago(1))


@pytest.fixture
def four_days() -> Window:
    return Window(days_ago(5), days_ago(1))
