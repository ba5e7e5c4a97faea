"""Fixtures for the OpenRouter connector's tests: the sandbox's keys, and day-aligned windows
inside the API's 30-day horizon (the HTTP seam that records its retry sleeps is in
integrations/providers/conftest.py)."""

from __future__ import annotations

import pytest

from integrations.providers.base import Window
from integrations.providers.openrouter import provider as openrouter_provider
from integrations.providers.openrouter.tests.support import base_url, days_ago
from sandbox.openrouter import MANAGEMENT_KEY


@pytest.fixture
def provider():
    return openrouter_provider


@pytest.fixture
def credential() -> dict[str, str]:
    return {"api_key": MANAGEMENT_KEY}


@pytest.fixture
def settings(sandbox) -> dict[str, str]:
    return {"base_url": base_url(sandbox)}


@pytest.fixture
def four_days() -> Window:
    return Window(days_ago(5), days_ago(1))
