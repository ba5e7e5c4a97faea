"""An Authress integration through the services and the engine: created verified against the
sandbox, a rejected token becomes a credential event, and it is never synced nor dispatched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import engine
from integrations.models import Integration, IntegrationEvent
from integrations.providers.base import ConfigurationError, CredentialError
from integrations.services import (
    SyncNotAllowed,
    integration_create,
    integration_request_sync,
    integration_verify,
)
from integrations.tasks import dispatch_due_syncs, sync_integration
from sandbox import authress as fake


@pytest.fixture
def authress_integration(workspace, admin_user, sandbox) -> Integration:
    return integration_create(
        workspace=workspace,
        provider_slug="authress",
        credential={"access_key": fake.ACCESS_KEY},
        settings={"base_url": f"{sandbox.url}/authress"},
        created_by=admin_user,
    )


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(sync_integration, "apply_async", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(sync_integration, "delay", lambda *a, **k: calls.append((a, k)))
    return calls


def test_create_verifies_and_schedules_nothing(authress_integration) -> None:
    assert authress_integration.identity["account_id"] == fake.ACCOUNT_ID
    assert authress_integration.verified_at is not None
    assert authress_integration.next_sync_at is None
    assert fake.ACCESS_KEY not in str(authress_integration.identity)
    assert authress_integration.credential_hint == f"…{fake.ACCESS_KEY[-4:]}"


def test_create_refuses_a_malformed_key_before_any_call(workspace, sandbox) -> None:
    with pytest.raises(ConfigurationError) as info:
        integration_create(
            workspace=workspace,
            provider_slug="authress",
            credential={"access_key": "sc_1.kid_1.acc_1"},
            settings={"base_url": f"{sandbox.url}/authress"},
        )
    assert info.value.field == "access_key"
    assert sandbox.requests() == [] and not Integration.objects.exists()


def test_a_rejected_token_is_recorded_as_a_credential_event(authress_integration) -> None:
    authress_integration.set_credential({"access_key": fake.REVOKED_ACCESS_KEY})
    authress_integration.save()
    with pytest.raises(CredentialError):
        integration_verify(integration=authress_integration)
    event = authress_integration.events.first()
    assert (event.level, event.category, event.http_status) == ("error", "credential", 401)
    assert "Authress rejected the service client token" in event.message
    assert fake.REVOKED_ACCESS_KEY.split(".")[-1] not in event.message + event.hint


def test_the_engine_and_sync_now_refuse_it(authress_integration, enqueued) -> None:
    with pytest.raises(SyncNotAllowed, match="no usage API"):
        engine.integration_sync(integration_id=authress_integration.pk)
    with pytest.raises(SyncNotAllowed, match="import its usage instead"):
        integration_request_sync(integration=authress_integration)
    assert enqueued == [] and not authress_integration.sync_runs.exists()


def test_the_dispatcher_never_enqueues_it_even_when_it_looks_due(authress_integration, enqueued) -> None:
    Integration.objects.filter(pk=authress_integration.pk).update(
        next_sync_at=timezone.now() - timedelta(hours=2), status=Integration.Status.ERROR
    )
    assert authress_integration.pk not in Integration.objects.due(timezone.now()).values_list("pk", flat=True)
    dispatch_due_syncs.apply()
    assert enqueued == []
    assert not IntegrationEvent.objects.filter(integration=authress_integration, category="sync").exists()
