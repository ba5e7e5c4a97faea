"""Fixtures for the Azure OpenAI connector's tests: an HTTP seam that records its retry sleeps,
the sandbox's app credential and settings, and a window in the past."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.azure_openai import provider as azure_provider
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import Window
from sandbox import azure_openai as sandbox_azure


@pytest.fixture
def provider():
    return azure_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=[sandbox_azure.CLIENT_SECRET], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def credential() -> dict[str, str]:
    return support.credential()


@pytest.fixture
def azure_settings(sandbox) -> dict[str, str]:
    return support.settings(sandbox)


@pytest.fixture
def three_days() -> Window:
    return Window(support.days_ago(4), support.days_ago(1))
