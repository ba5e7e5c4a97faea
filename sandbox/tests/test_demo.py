"""Every integration the demo creates connects to the sandbox (verify passes)."""

from __future__ import annotations

import pytest

from doow.demo import connect
from integrations.models import Integration
from sandbox.demo import demo_integrations


def test_every_demo_integration_verifies_against_the_sandbox(workspace, sandbox):
    specs = demo_integrations(sandbox.url)
    assert len({s["provider"] for s in specs}) == len(specs)
    for spec in specs:
        integration = connect(workspace, spec)
        assert integration.verified_at is not None, spec["provider"]
        assert integration.identity, spec["provider"]
    assert Integration.objects.filter(workspace=workspace).count() == len(specs)


@pytest.mark.parametrize("spec", demo_integrations("http://127.0.0.1:1"), ids=lambda s: s["provider"])
def test_demo_credentials_pass_the_offline_key_checks(spec):
    from integrations.providers.registry import get_provider

    get_provider(spec["provider"]).check_credential(spec["credential"])


def test_python_m_sandbox_describes_the_running_sandbox_instead_of_starting_another(sandbox, monkeypatch, capsys):
    """`python -m sandbox` with the demo's sandbox already up (DEMO_SANDBOX_PORT) prints the
    running sandbox's URLs and returns, rather than binding a second server."""
    from sandbox.__main__ import main

    port = sandbox.url.rsplit(":", 1)[1]
    monkeypatch.setenv("DEMO_SANDBOX_PORT", port)
    main([])  # returns: serve_forever would never return
    out = capsys.readouterr().out
    assert f"already serving on {sandbox.url}" in out
    assert f"{sandbox.url}/openai/" in out
    assert ":8765" not in out
