"""Fixtures for the Authress connector's tests: the sandbox's keys and an HTTP seam that
records its retry sleeps instead of sleeping."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.authress import provider as authress_provider
from sandbox import authress as fake


@pytest.fixture
def provider():
    return authress_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sandbox, sleeps) -> HttpClient:
    return HttpClient(secrets=[fake.ACCESS_KEY], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def credential() -> dict[str, str]:
    return {"access_key": fake.ACCESS_KEY}


@pytest.fixture
def authress_settings(sandbox) -> dict[str, str]:
    return {"base_url": f"{sandbox.url}/authress"}
