"""Every integration the demo creates connects to the sandbox (verify passes)."""
from __future__ import annotations

import pytest

from integrations import services
from integrations.models import Integration
from sandbox.demo import demo_integrations


def test_every_demo_integration_verifies_against_the_sandbox(workspace, sandbox):
    specs = demo_integrations(sandbox.url)
    assert len({s["provider"] for s in specs}) == len(specs)
    for spec in specs:
        integration = services.integration_create(
            workspace=workspace,
            provider_slug=spec["provider"],
            name=spec["name"],
            credential=spec["credential"],
            settings=spec["settings"],
        )
        assert integration.verified_at is not None, spec["provider"]
        assert integration.identity, spec["provider"]
    assert Integration.objects.filter(workspace=workspace).count() == len(specs)


@pytest.mark.parametrize("spec", demo_integrations("http://127.0.0.1:1"), ids=lambda s: s["provider"])
def test_demo_credentials_pass_the_offline_key_checks(spec):
    from integrations.providers.registry import get_provider

    get_provider(spec["provider"]).check_credential(spec["credential"])
