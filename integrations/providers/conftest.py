"""Fixtures shared by every provider's tests. A provider's own conftest.py supplies
`provider` and `credential` (and its settings); these build the rest from them."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import Provider, Window
from integrations.providers.testing import SandboxHooks, days_ago


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the HTTP seam would have slept, in order."""
    return []


@pytest.fixture
def http(provider: Provider, credential: dict[str, str], sleeps: list[float]) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=provider.secret_values(credential), sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def day() -> Window:
    """Yesterday but one: a whole past day, its data settled."""
    return Window(days_ago(2), days_ago(1))


@pytest.fixture
def three_days() -> Window:
    return Window(days_ago(4), days_ago(1))


@pytest.fixture
def create_integration(workspace, admin_user):
    """`create_integration(slug, credential, settings)`: an integration in the workspace, created
    the way the form and `connect` create it (settings vetted, the credential verified against
    the sandbox), by the workspace's admin."""
    from integrations import services

    def create(provider_slug: str, credential: dict[str, str], settings: dict[str, str]):
        return services.integration_create(
            workspace=workspace,
            provider_slug=provider_slug,
            credential=credential,
            settings=settings,
            created_by=admin_user,
        )

    return create


# A provider whose tests' support module has SandboxHooks names them in a `hooks` fixture; these
# three then come from it (the others define `provider` and `credential` themselves).
@pytest.fixture
def provider(hooks: SandboxHooks) -> Provider:
    return hooks.provider


@pytest.fixture
def credential(hooks: SandboxHooks, sandbox) -> dict[str, str]:
    return hooks.credential(sandbox)


@pytest.fixture
def provider_settings(hooks: SandboxHooks, sandbox) -> dict[str, str]:
    """The provider's settings pointing at the sandbox."""
    return hooks.settings(sandbox)
