"""Fixtures for the Authress connector's tests: the sandbox's keys and settings (the HTTP seam
that records its retry sleeps is in integrations/providers/conftest.py)."""

from __future__ import annotations

import pytest

from integrations.providers.authress import provider as authress_provider
from sandbox import authress as fake


@pytest.fixture
def provider():
    return authress_provider


@pytest.fixture
def credential() -> dict[str, str]:
    return {"access_key": fake.ACCESS_KEY}


@pytest.fixture
def authress_settings(sandbox) -> dict[str, str]:
    return {"base_url": f"{sandbox.url}/authress"}
