"""Fixtures for the usage app's tests (the workspace, users and clients are in the root conftest.py)."""

from __future__ import annotations

import pytest

from integrations.services import integration_create
from integrations.testing import make_integration


@pytest.fixture
def integration(workspace):
    """An OpenAI integration in the workspace, never synced: tests store its rows themselves."""
    return make_integration(workspace, "OpenAI")


@pytest.fixture
def connected_openai(workspace, admin_user, sandbox):
    """OpenAI connected to the sandbox through the service, as the Add page connects it (with the
    vendor's application and its default rule); not yet synced."""
    return integration_create(
        workspace=workspace,
        provider_slug="openai",
        credential={"api_key": sandbox.OPENAI_ADMIN_KEY},
        settings={"base_url": sandbox.openai_base_url},
        created_by=admin_user,
    )
