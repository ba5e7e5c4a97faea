"""Fixtures for the Groq connector's tests: the sandbox's Enterprise key and base URL (the HTTP
seam that records its retry sleeps, and the past windows, are in integrations/providers/conftest.py)."""

from __future__ import annotations

import pytest

from integrations.providers.groq import provider as groq_provider
from sandbox import groq as sandbox_groq


@pytest.fixture
def provider():
    return groq_provider


@pytest.fixture
def credential() -> dict[str, str]:
    return {"api_key": sandbox_groq.ENTERPRISE_KEY}


@pytest.fixture
def groq_settings(sandbox) -> dict[str, str]:
    return {"base_url": sandbox_groq.base_url(sandbox.url)}

