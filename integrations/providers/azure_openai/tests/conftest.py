"""Fixtures for the Azure OpenAI connector's tests: the sandbox's app credential and settings
(the HTTP seam that records its retry sleeps, and the past windows, are in
integrations/providers/conftest.py)."""

from __future__ import annotations

import pytest

from integrations.providers.azure_openai import provider as azure_provider
from integrations.providers.azure_openai.tests import support


@pytest.fixture
def provider():
    return azure_provider


@pytest.fixture
def credential() -> dict[str, str]:
    return support.credential()


@pytest.fixture
def azure_settings(sandbox) -> dict[str, str]:
    return support.settings(sandbox)
