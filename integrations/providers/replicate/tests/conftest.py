"""Fixtures for the Replicate connector's tests: an HTTP seam that records its retry sleeps,
settings pointing at the sandbox, and the sandbox clock put back after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.http import HttpClient
from integrations.providers.base import Window
from integrations.providers.replicate import provider as replicate_provider
from integrations.providers.replicate.tests.support import days_ago
from sandbox import replicate as fake


@pytest.fixture(autouse=True)
def real_sandbox_clock() -> Iterator[None]:
    # The sandbox runs in this process; a test that moves its clock must not leak the move.
    fake.set_clock(None)
    yield
    fake.set_clock(None)


@pytest.fixture
def provider():
    return replicate_provider


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sandbox, sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=[fake.API_TOKEN], sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def credential() -> dict[str, str]:
    return {"api_token": fake.API_TOKEN}


@pytest.fixture
def replicate_settings(sandbox) -> dict[str, str]:
    return {"base_url": sandbox.url + fake.PREFIX + "/v1"}


@pytest.fixture
def day() -> Window:
    return Window(days_ago(2), days_ago(1))
