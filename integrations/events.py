"""An integration's event log: what the sync engine, the services and the importer record.

Below both the engine and the services (docs/architecture.md), so each records through the
same two functions; messages and hints are redacted of the integration's secrets here.
"""

from __future__ import annotations

from integrations.http import redact
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.errors import ProviderError


def integration_record_event(
    *,
    integration: Integration,
    level: str,
    category: str,
    message: str,
    hint: str = "",
    http_status: int | None = None,
    request_id: str = "",
    sync_run: SyncRun | None = None,
) -> IntegrationEvent:
    secrets: list[str] = []
    try:
        secrets = integration.provider_obj.secret_values(integration.get_credential())
    except Exception:  # an undecryptable credential must not stop the event
        pass
    return IntegrationEvent.objects.create(
        integration=integration,
        sync_run=sync_run,
        level=level,
        category=category,
        message=redact(message, secrets),
        hint=redact(hint, secrets),
        http_status=http_status,
        request_id=request_id,
    )


def integration_record_error(
    integration: Integration, error: ProviderError, *, sync_run: SyncRun | None = None
) -> IntegrationEvent:
    transient = error.category in ("rate_limit", "network") or (error.category == "provider" and not error.permanent)
    return integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.WARNING if transient else IntegrationEvent.Level.ERROR,
        category=error.category,
        message=error.message,
        hint=error.hint,
        http_status=error.http_status,
        request_id=error.request_id,
        sync_run=sync_run,
    )
