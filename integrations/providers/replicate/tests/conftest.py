"""Fixtures for the Replicate connector's tests: the sandbox's Replicate account, and the sandbox
clock put back after every test. From `hooks`, integrations/providers/conftest.py makes `provider`,
`credential`, `provider_settings` and the HTTP seam that records its retry sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.providers.replicate.tests.support import ReplicateSandbox
from sandbox import replicate as fake


@pytest.fixture(autouse=True)
def real_sandbox_clock() -> Iterator[None]:
    # The sandbox runs in this process; a test that moves its clock must not leak the move.
    fake.set_clock(None)
    yield
    fake.set_clock(None)


@pytest.fixture
def hooks() -> ReplicateSandbox:
    return ReplicateSandbox()
