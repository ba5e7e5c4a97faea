"""Fixtures for the Groq connector's tests: an HTTP seam that records its retry sleeps, the
sandbox's Enterprise key and base URL, and windows in the past (their data no longer changes)."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import Window
from integrations.providers.groq import provider as groq_provider
from integrations.providers.groq.tests.support import days_ago
from sandbox import groq as sandbox_groq


@pytest.fixture
def provider():
    return groq_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sandbox, sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=[sandbox_groq.ENTERPRISE_KEY], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def credential() -> dict[str, str]:
    return {"api_key": sandbox_groq.ENTERPRISE_KEY}


@pytest.fixture
def groq_settings(sandbox) -> dict[str, str]:
    return {"base_url": sandbox_groq.base_url(sandbox.url)}


@pytest.fixture
def three_days() -> Window:
    return Window(days_ago(4), days_ago(1))
