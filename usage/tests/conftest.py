"""Fixtures for the usage app's tests (the workspace, users and clients are in the root conftest.py)."""

from __future__ import annotations

import pytest

from integrations.testing import make_integration


@pytest.fixture
def integration(workspace):
    """An OpenAI integration in the workspace, never synced: tests store its rows themselves."""
    return make_integration(workspace, "OpenAI")
