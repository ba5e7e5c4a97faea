"""`{% usage_health_banner %}`: on a usage page, a warning while any integration the page's
filter covers is failing or stale (integrations.health.integration_health_notices).

It reads the `provider` and `integration` filters from the query string (one value or many),
so the explorer, the overview and any later usage page can place it without passing anything.
"""

from __future__ import annotations

from typing import Any

from django import template

from integrations.health import integration_health_notices

register = template.Library()


def _ids(values: list[str]) -> list[int]:
    # ASCII digits of sane length only, like usage.queries.parse_filters: nothing else is an id.
    return [int(v) for v in (s.strip() for s in values) if v.isascii() and v.isdigit() and len(v) <= 18]


@register.inclusion_tag("integrations/_usage_health_banner.html", takes_context=True)
def usage_health_banner(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    workspace = getattr(request, "workspace", None)
    if workspace is None:
        return {"notices": []}
    params = request.GET  # type: ignore[union-attr]  # a request with a workspace
    providers = [p.strip() for p in params.getlist("provider") if p.strip()]
    ids = _ids(params.getlist("integration"))
    membership = getattr(request, "membership", None)
    return {
        "notices": integration_health_notices(workspace=workspace, providers=providers, integration_ids=ids),
        "workspace": workspace,
        "is_admin": bool(membership and membership.is_admin),
        "filtered": bool(providers or ids),
    }
