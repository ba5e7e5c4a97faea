"""Helpers for tests in every app that need an integration without going through a provider
(connecting through the sandbox is `create_integration` in integrations/providers/conftest.py)."""

from __future__ import annotations

from typing import Any

from integrations.models import Integration


def make_integration(workspace: Any, name: str = "OpenAI prod", provider: str = "openai", *,
                     credential: dict[str, str] | None = None, **fields: Any) -> Integration:  # fmt: skip
    """An integration saved in `workspace`, its credential set (kept encrypted), never synced:
    the test writes its rows itself. Other Integration fields by keyword."""
    integration = Integration(workspace=workspace, provider=provider, name=name, **fields)
    integration.set_credential(credential or {"api_key": "sk-admin-tests-0000000000000000"})
    integration.save()
    return integration
