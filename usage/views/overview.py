"""The spend overview, the workspace home (`/w/<ws>/`, where sign-in lands).

Month-to-date spend (reported and estimated apart) against the same days of last month, the
run-rate forecast, a daily chart stacked by provider (or model, application, team, integration), the
top models, applications and teams with their change, the integrations that need attention, and usage
no price covers. Every figure is usage/spend.py's Definitions over the daily rollups: a fixed
number of queries whatever the volume. Members and admins see the same figures; the page has no
forms, and only admins get the links to fix an integration (members are told who can).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.urls import reverse

from accounts.permissions import WorkspaceRequest, workspace_view
from integrations.health import integration_health_notices
from integrations.providers.registry import PROVIDERS
from usage import spend
from usage.views.common import as_number, payload_table, render_page

TEMPLATE = "usage/overview.html"
SPLITS = {
    "provider": "Provider",
    "model": "Model",
    "application": "Application",
    "team": "Team",
    "integration": "Integration",
}
DEFAULT_SPLIT = "provider"
MAX_CHART_SERIES = 8
TOP = 5
NOT_REPORTED = "(not reported)"
UNATTRIBUTED = "Unattributed"
NO_TEAM = "No team"


def _names(workspace: Any, split: str, keys: set[Any]) -> dict[Any, str]:
    """Display names of a split's keys (application and integration ids: one query each)."""
    if split == "provider":
        return {k: (PROVIDERS[k].name if k in PROVIDERS else k) for k in keys}
    if split == "model":
        return {k: k or NOT_REPORTED for k in keys}
    ids = [k for k in keys if k is not None]
    source = {"application": workspace.applications, "team": workspace.teams}.get(split, workspace.integrations)
    names = dict(source.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    missing = NO_TEAM if split == "team" else UNATTRIBUTED
    return {k: names.get(k, missing if k is None else str(k)) for k in keys}


def _chart(rows: list[spend.SpendRow], periods: spend.Periods, names: dict[Any, str], currency: str) -> dict[str, Any]:
    """Stacked bars of one currency's spend per day of this month, one series per split value
    (the largest MAX_CHART_SERIES − 1, the rest as "Other")."""
    first, last = periods.mtd
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    series: dict[Any, list[Decimal]] = {}
    for r in rows:
        if r.currency != currency:
            continue
        series.setdefault(r.key, [Decimal(0)] * len(days))[index[r.day]] += r.amount
    ranked = sorted(series, key=lambda k: (-sum(series[k]), names.get(k, "")))
    if len(ranked) > MAX_CHART_SERIES:
        keep, rest = ranked[: MAX_CHART_SERIES - 1], ranked[MAX_CHART_SERIES - 1 :]
        other = [sum(series[k][i] for k in rest) for i in range(len(days))]
        datasets = [(names.get(k, str(k)), series[k]) for k in keep] + [(f"Other ({len(rest)})", other)]
    else:
        datasets = [(names.get(k, str(k)), series[k]) for k in ranked]
    payload = {
        "kind": "bar",
        "stacked": True,
        "yTitle": currency,
        "labels": [f"{d:%b} {d.day}" for d in days],
        "datasets": [{"label": label, "data": [as_number(v) for v in values]} for label, values in datasets],
    }
    return {"payload": payload, "currency": currency, **payload_table(payload)}


def _top(workspace: Any, split: str, changes: list[spend.Change]) -> list[dict[str, Any]]:
    names = _names(workspace, split, {c.key for c in changes})
    return [{"name": names[c.key], "change": c, "key": c.key} for c in changes]


def _split_links(base: str, current: str) -> list[dict[str, Any]]:
    return [
        {"value": value, "label": label, "url": f"{base}?{urlencode({'by': value})}", "current": value == current}
        for value, label in SPLITS.items()
    ]


@workspace_view
def overview(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    by = request.GET.get("by") or DEFAULT_SPLIT
    if by not in SPLITS:
        by = DEFAULT_SPLIT
    result = spend.overview(workspace, by=by, top=("model", "application", "team"), top_limit=TOP)
    names = _names(workspace, by, {r.key for r in result.daily})
    currencies = result.currencies
    chart_currency = currencies[0] if currencies else "USD"
    summary = [
        {
            "currency": c,
            "mtd": result.mtd.get(c) or spend.Amount(c),
            "previous": result.previous.get(c) or spend.Amount(c),
            "forecast": result.forecast.get(c) or spend.Amount(c),
            "delta": result.delta(c),
            "percent": result.percent(c),
        }
        for c in currencies
    ]
    base = reverse("accounts:workspace", kwargs={"ws": workspace.slug})
    explorer = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    context = {
        "result": result,
        "periods": result.periods,
        "summary": summary,
        "by": by,
        "by_label": SPLITS[by],
        "split_links": _split_links(base, by),
        "overview_url": base,
        "explorer_url": explorer,
        "chart": _chart(result.daily, result.periods, names, chart_currency) if result.daily else None,
        "other_currencies": currencies[1:],
        "top_models": _top(workspace, "model", result.top["model"]),
        "top_applications": _top(workspace, "application", result.top["application"]),
        # Shown once some spend belongs to a team (a workspace that has not set teams up sees
        # only "No team": nothing to learn from it).
        "top_teams": _top(workspace, "team", result.top["team"])
        if any(c.key is not None for c in result.top["team"])
        else [],
        "notices": integration_health_notices(workspace=workspace),
        "is_admin": request.membership.is_admin,
        "unpriced": [
            {**u, "provider_name": _names(workspace, "provider", {u["provider"]})[u["provider"]]}
            for u in spend.unpriced(workspace, *result.periods.mtd)
        ],
        "has_integrations": workspace.integrations.exists(),
    }
    return render_page(request, TEMPLATE, "chart", context)
