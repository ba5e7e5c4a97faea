"""Fixtures for the usage app's tests (the workspace, users and clients are in the root conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def integration(make_integration):
    """An OpenAI integration in the workspace, never synced: tests store its rows themselves."""
    return make_integration("openai", {"api_key": "sk-admin-usage-tests-0000"})
