"""Fixtures for the Anthropic connector's tests: the sandbox's Anthropic organisation. From `hooks`,
integrations/providers/conftest.py makes `provider`, `credential`, `provider_settings` and the HTTP
seam that records its retry sleeps."""

from __future__ import annotations

import pytest

from integrations.providers.anthropic.tests.support import AnthropicSandbox


@pytest.fixture
def hooks() -> AnthropicSandbox:
    return AnthropicSandbox()
