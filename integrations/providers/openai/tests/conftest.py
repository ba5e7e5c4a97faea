"""Fixtures for the OpenAI connector's tests: the sandbox's OpenAI organisation. From `hooks`,
integrations/providers/conftest.py makes `provider`, `credential`, `provider_settings` and the HTTP
seam that records its retry sleeps."""

from __future__ import annotations

import pytest

from integrations.providers.openai.tests.support import OpenAISandbox


@pytest.fixture
def hooks() -> OpenAISandbox:
    return OpenAISandbox()
