"""Fixtures for the Replicate connector's tests: settings pointing at the sandbox, and the sandbox
clock put back after every test (the HTTP seam that records its retry sleeps is in
integrations/providers/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.providers.replicate import provider as replicate_provider
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
def credential() -> dict[str, str]:
    return {"api_token": fake.API_TOKEN}


@pytest.fixture
def replicate_settings(sandbox) -> dict[str, str]:
    return {"base_url": sandbox.url + fake.PREFIX + "/v1"}

