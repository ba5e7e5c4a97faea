"""Fixtures shared by every app's tests, named for roles."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from accounts.models import Membership, Workspace

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def workspace(db) -> Workspace:
    return Workspace.objects.create(name="Acme Corp", slug="acme")


@pytest.fixture
def other_workspace(db) -> Workspace:
    return Workspace.objects.create(name="Globex", slug="globex")


def _user(username: str, workspace: Workspace, role: str):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com")
    Membership.objects.create(user=user, workspace=workspace, role=role)
    return user


@pytest.fixture
def admin_user(workspace):
    return _user("ada", workspace, Membership.Role.ADMIN)


@pytest.fixture
def member_user(workspace):
    return _user("max", workspace, Membership.Role.MEMBER)


@pytest.fixture
def outsider_user(other_workspace):
    """An admin of another workspace: sees nothing of `workspace`."""
    return _user("olga", other_workspace, Membership.Role.ADMIN)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user) -> Client:  # noqa: F811 - overrides pytest-django's superuser client on purpose
    return _client(admin_user)


@pytest.fixture
def member_client(member_user) -> Client:
    return _client(member_user)


@pytest.fixture
def outsider_client(outsider_user) -> Client:
    return _client(outsider_user)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator:
    from sandbox.testing import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server):
    """The local fake provider APIs, with faults cleared before and after each test."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def openai_integration(workspace, admin_user, sandbox):
    """An OpenAI integration pointed at the sandbox, not yet synced."""
    from integrations.models import Integration

    integration = Integration(
        workspace=workspace,
        provider="openai",
        name="OpenAI (sandbox)",
        settings={"base_url": sandbox.openai_base_url},
        created_by=admin_user,
    )
    integration.set_credential({"api_key": sandbox.OPENAI_ADMIN_KEY})
    integration.save()
    return integration
