"""Fixtures for the Groq connector's tests: the sandbox's Groq Enterprise organisation. From
`hooks`, integrations/providers/conftest.py makes `provider`, `credential`, `provider_settings` and
the HTTP seam that records its retry sleeps."""

from __future__ import annotations

import pytest

from integrations.providers.groq.tests.support import GroqSandbox


@pytest.fixture
def hooks() -> GroqSandbox:
    return GroqSandbox()
