"""License consumption: the list of a workspace's licenses and one license against its terms."""

from __future__ import annotations

from collections import OrderedDict
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from accounts.permissions import WorkspaceRequest, workspace_view
from usage import queries
from usage.dates import LICENSE_YEARS_AHEAD, latest_day
from usage.models import License
from usage.views.common import as_number, optional_url, payload_table


def _status(license: License, today: date) -> str:
    if today < license.start_date:
        return "upcoming"
    if license.end_date and today > license.end_date:
        return "ended"
    return "active"


@workspace_view
def license_list(request: WorkspaceRequest) -> HttpResponse:
    """The one Licenses page (Usage → Licenses; Company Settings → Licenses links here): every
    member reads the licenses and their consumption, admins also add, edit and delete them."""
    today = queries.local_today(request.workspace)
    licenses = queries.licenses_with_consumption(request.workspace)
    for lic in licenses:
        # Read by the template beside the model's fields (`spent` from licenses_with_consumption).
        lic.status = _status(lic, today)  # type: ignore[attr-defined]
        spent = lic.spent or Decimal(0)  # type: ignore[attr-defined]
        lic.percent_used = queries.percent(spent, lic.committed_amount) if lic.kind == License.Kind.COMMITMENT else None  # type: ignore[attr-defined]
    can_edit = request.membership.is_admin
    return render(
        request,
        "usage/license_list.html",
        {
            "licenses": licenses,
            "can_edit": can_edit,
            # A license belongs to an application: without one there is nothing to add it to yet.
            "has_applications": can_edit and request.workspace.applications.exists(),
        },
    )


@workspace_view
def license_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    license = get_object_or_404(request.workspace.licenses.select_related("application"), pk=pk)
    consumption = queries.license_consumption(license)
    chart = _chart(consumption)
    explore_query = {"license": license.pk, "date_from": license.start_date.isoformat(), "by": "model"}
    if license.end_date:
        explore_query["date_to"] = license.end_date.isoformat()
    return render(
        request,
        "usage/license_detail.html",
        {
            "license": license,
            "c": consumption,
            "chart": chart,
            "chart_table": payload_table(chart) if chart else None,
            "over_by": -consumption.remaining
            if consumption.remaining is not None and consumption.remaining < 0
            else None,
            "per_seat": consumption.spent / license.seat_count if license.seat_count and consumption.spent else None,
            "months": _month_table(consumption),
            "days_to_start": (consumption.period_start - consumption.today).days,
            "explore_url": reverse("usage:explorer", kwargs={"ws": request.workspace.slug})
            + "?"
            + urlencode(explore_query),
            "rules_url": _settings_url(request, "usage_settings:rules"),
            "edit_url": _settings_url(request, "usage_settings:license_edit", pk=license.pk),
        },
    )


def _settings_url(request: WorkspaceRequest, name: str, **kwargs: Any) -> str | None:
    if not request.membership.is_admin:
        return None  # members would only meet a 403 there
    return optional_url(name, ws=request.workspace.slug, **kwargs)


def _month_table(c: queries.LicenseConsumption) -> dict[str, Any]:
    """Months down, (metric, unit) across: every unit in its own column, never summed together."""
    columns = sorted({(m.metric, m.unit) for m in c.monthly}, key=lambda mu: (mu[0] != "cost", mu))
    rows: OrderedDict[date, dict[tuple[str, str], Decimal]] = OrderedDict()
    for m in c.monthly:
        rows.setdefault(m.month, {})[(m.metric, m.unit)] = m.total
    return {
        "columns": columns,
        # Each cell with its currency when it is money (formatted by the money filter), else None.
        "rows": [
            (month, [(cells.get(col), col[1] if col[0] == "cost" else None) for col in columns])
            for month, cells in rows.items()
        ],
    }


def _chart(c: queries.LicenseConsumption) -> dict[str, Any] | None:
    """Commitment: cumulative spend, the commitment line and the projection to the period's end.
    Pay-as-you-go: spend per month. Seats: no money to chart (the month table says it all)."""
    kind = c.license.kind
    if kind == License.Kind.COMMITMENT and c.daily:
        return _burn_chart(c)
    if kind == License.Kind.PAY_AS_YOU_GO:
        months = [m for m in c.monthly if m.metric == "cost" and m.unit == c.currency]
        if months:
            return {
                "kind": "bar",
                "stacked": False,
                "yTitle": f"cost ({c.currency})",
                "labels": [f"{m.month:%Y-%m}" for m in months],
                "datasets": [{"label": f"Spend ({c.currency})", "data": [as_number(m.total) for m in months]}],
            }
    return None


def _burn_chart(c: queries.LicenseConsumption) -> dict[str, Any]:
    cumulative = c.cumulative()
    end = c.period_end or cumulative[-1][0]
    # One point a day up to the period's end — never past the furthest day a license may end
    # (a license saved before dates were bounded may say 9999-12-31).
    last = min(max(end, cumulative[-1][0]), latest_day(years=LICENSE_YEARS_AHEAD))
    days = queries.period_starts(c.period_start, last, "day")
    spent = {day: total for day, total in cumulative}
    actual = [as_number(spent[d]) if d in spent and d <= c.as_of else None for d in days]
    datasets: list[dict[str, Any]] = [{"label": f"Spent ({c.currency}, cumulative)", "data": actual, "style": "area"}]
    if c.projected is not None and c.daily_rate is not None and c.status == "active":
        base = spent.get(c.as_of, c.spent)
        projection = [as_number(base + c.daily_rate * (d - c.as_of).days) if d >= c.as_of else None for d in days]
        datasets.append({"label": "Projected at the current daily rate", "data": projection, "style": "projection"})
    if c.committed is not None:
        datasets.append(
            {"label": f"Commitment ({c.currency})", "data": [as_number(c.committed)] * len(days), "style": "limit"}
        )
    return {
        "kind": "line",
        "stacked": False,
        "yTitle": c.currency,
        "labels": [f"{d:%Y-%m-%d}" for d in days],
        "datasets": datasets,
    }
