"""Integration health as the usage pages show it: which counted integrations a page's numbers
depend on are failing or stale (docs/architecture.md, Definitions: stale). A read-only query, so
usage pages need nothing from the integration services to warn about it."""

from __future__ import annotations

from collections.abc import Collection

from django.utils import timezone

from accounts.models import Workspace
from integrations.models import Health, Integration


def integration_health_notices(
    *, workspace: Workspace, providers: Collection[str] = (), integration_ids: Collection[int] = ()
) -> list[tuple[Integration, Health]]:
    """The counted integrations (of these providers / ids, when given) that are failing or
    stale: what the usage pages warn about, each with its Health. Disconnected integrations
    (no more data is expected) and uncounted duplicates are left out."""
    integrations = workspace.integrations.counted().live()
    if providers:
        integrations = integrations.filter(provider__in=list(providers))
    if integration_ids:
        integrations = integrations.filter(pk__in=list(integration_ids))
    now = timezone.now()
    notices = [(i, i.health_at(now)) for i in integrations.order_by("name", "pk")]
    return [(i, health) for i, health in notices if health.failing or health.stale]
