"""Fixtures for the Anthropic connector's tests: the provider and its Admin key (the HTTP seam
that records its retry sleeps, and the past windows, are in integrations/providers/conftest.py)."""

from __future__ import annotations

import pytest

from integrations.providers.anthropic import provider as anthropic_provider
from integrations.providers.anthropic.tests.support import base_url
from sandbox import anthropic as fake


@pytest.fixture
def provider():
    return anthropic_provider


@pytest.fixture
def credential() -> dict[str, str]:
    return {"api_key": fake.ADMIN_KEY}


@pytest.fixture
def anthropic_settings(sandbox) -> dict[str, str]:
    return {"base_url": base_url(sandbox)}

