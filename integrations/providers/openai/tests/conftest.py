"""Fixtures for the OpenAI connector's tests: the provider, its Admin key and settings (the HTTP
seam that records its retry sleeps, and the past windows, are in integrations/providers/conftest.py)."""

from __future__ import annotations

import pytest

from integrations.providers.openai import provider as openai_provider


@pytest.fixture
def provider():
    return openai_provider


@pytest.fixture
def credential(sandbox) -> dict[str, str]:
    return {"api_key": sandbox.OPENAI_ADMIN_KEY}


@pytest.fixture
def openai_settings(sandbox) -> dict[str, str]:
    return {"base_url": sandbox.openai_base_url}

