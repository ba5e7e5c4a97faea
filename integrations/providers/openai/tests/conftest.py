"""Fixtures for the OpenAI connector's tests: an HTTP seam that records its retry sleeps,
and windows in the past (fully elapsed, so the sandbox's data for them is fixed)."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import Window
from integrations.providers.openai import provider as openai_provider
from integrations.providers.openai.tests.support import days_ago


@pytest.fixture
def provider():
    return openai_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sandbox, sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=[sandbox.OPENAI_ADMIN_KEY], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def admin_credential(sandbox) -> dict[str, str]:
    return {"api_key": sandbox.OPENAI_ADMIN_KEY}


@pytest.fixture
def openai_settings(sandbox) -> dict[str, str]:
    return {"base_url": sandbox.openai_base_url}


@pytest.fixture
def three_days() -> Window:
    return Window(days_ago(4), days_ago(1))
