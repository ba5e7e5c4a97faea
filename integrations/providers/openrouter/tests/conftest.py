"""Fixtures for the OpenRouter connector's tests: the sandbox's OpenRouter account, its settings
under this provider's name `settings`, and day-aligned windows inside the API's 30-day horizon. From
`hooks`, integrations/providers/conftest.py makes `provider`, `credential`, `provider_settings` and
the HTTP seam that records its retry sleeps."""

from __future__ import annotations

import pytest

from integrations.providers.base import Window
from integrations.providers.openrouter.tests.support import OpenRouterSandbox, days_ago


@pytest.fixture
def settings(provider_settings) -> dict[str, str]:  # this provider's tests call them `settings`
    return provider_settings


@pytest.fixture
def four_days() -> Window:
    return Window(days_ago(5), days_ago(1))


@pytest.fixture
def hooks() -> OpenRouterSandbox:
    return OpenRouterSandbox()
