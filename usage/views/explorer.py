"""The usage explorer: filters in the query string, totals, one chart and the raw rows.

Every figure comes from an SQL aggregate over the workspace's daily rollups (see
usage/queries.py); Python only shapes results already grouped to (period, group, unit), so the
page costs the same handful of queries for a thousand rows or ten million. Days, weeks and
months are those of the workspace's time zone. Only the page of raw rows reads the base table,
located through the rollups' per-day counts.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import reverse

from accounts.permissions import workspace_view
from integrations.providers.registry import PROVIDERS
from usage import queries
from usage.forms import REVERSED, DateRangeForm
from usage.models import DIMENSION_FIELDS
from usage.rollups import daily_for, zone_of
from usage.views.common import as_number, optional_url, render_page, wants_partial

TEMPLATE = "usage/explorer.html"
PAGE_SIZE = 50
# More series than this make a stacked chart unreadable: the smallest are drawn as "Other".
MAX_CHART_SERIES = 8
NO_SPLIT = "none"
# Split-by choices; the first is the default (an absent `by`).
SPLITS = {
    "provider": "Provider",
    "application": "Application",
    "license": "License",
    "integration": "Integration",
    "model": "Model",
    "project": "Project",
    "region": "Region",
    NO_SPLIT: "Nothing — one total",
}
PERIOD_LABELS = {"day": "Day", "week": "Week", "month": "Month"}
# The chart shows one metric; without a choice, money first, then the most common volume.
PREFERRED_CHART_METRICS = ("cost", "input_tokens")
NOT_REPORTED = "(not reported)"


def _select(label: str) -> forms.CharField:
    # A CharField, not a ChoiceField: a shared link naming a value this workspace no longer
    # holds still filters (to nothing) instead of failing validation.
    return forms.CharField(label=label, required=False, widget=forms.Select)


class ExplorerForm(DateRangeForm):
    """Renders the filters and reports bad dates; filtering itself is `queries.filtered`, which
    skips a date this form refuses (as it skips one that does not parse)."""

    provider = _select("Provider")
    integration = _select("Integration")
    application = _select("Application")
    license = _select("License")
    model = _select("Model")
    project = _select("Project")
    region = _select("Region")
    metric = _select("Metric")
    by = forms.ChoiceField(label="Split by", required=False, choices=list(SPLITS.items()))
    period = forms.ChoiceField(label="Per", required=False, choices=list(PERIOD_LABELS.items()))
    chart = _select("Chart")

    FILTERS = ("date_from", "date_to", "provider", "integration", "application", "license", "model", "project", "region", "metric")
    VIEW = ("by", "period", "chart")

    def __init__(self, data: Mapping[str, Any], *, choices: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__(data)
        for name, options in choices.items():
            current = str(data.get(name) or "")
            if current and current not in {value for value, _ in options}:
                options = [*options, (current, current)]  # keep a shared link's filter visible
            first = ("", "Automatic") if name == "chart" else ("", "All")
            self.fields[name].widget.choices = [first, *options]

    def filter_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.FILTERS]

    def view_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.VIEW]


def _filter_choices(workspace: Any) -> dict[str, list[tuple[str, str]]]:
    integrations = list(workspace.integrations.order_by("name", "pk").values_list("pk", "name", "provider"))
    slugs = sorted({slug for _, _, slug in integrations}, key=lambda s: _provider_name(s).lower())
    values = queries.dimension_values(workspace, ("metric", "model", "project", "region"))
    metrics = values["metric"]
    return {
        "provider": [(slug, _provider_name(slug)) for slug in slugs],
        "integration": [(str(pk), name) for pk, name, _ in integrations],
        "application": [(queries.NONE, "Unattributed"), *((str(pk), name) for pk, name in workspace.applications.values_list("pk", "name"))],
        "license": [(queries.NONE, "No license"), *((str(lic.pk), str(lic)) for lic in workspace.licenses.select_related("application"))],
        "model": [(v, v) for v in values["model"]],
        "project": [(v, v) for v in values["project"]],
        "region": [(v, v) for v in values["region"]],
        "metric": [(v, v) for v in metrics],
        "chart": [(v, v) for v in metrics],
    }


def _provider_name(slug: str) -> str:
    provider = PROVIDERS.get(slug)
    return provider.name if provider else slug


# ---------------------------------------------------------------- groups
def _group_names(workspace: Any, group: str, values: set[Any]) -> dict[Any, str]:
    """Display names for the values of the split-by column: ids become names in one query."""
    ids = [v for v in values if v is not None]
    if group == "provider":
        return {v: _provider_name(v) for v in values}
    if group == "integration":
        return dict(workspace.integrations.filter(pk__in=ids).values_list("pk", "name"))
    if group == "application":
        return {None: "Unattributed", **dict(workspace.applications.filter(pk__in=ids).values_list("pk", "name"))}
    if group == "license":
        return {None: "No license", **{lic.pk: str(lic) for lic in workspace.licenses.select_related("application").filter(pk__in=ids)}}
    return {v: v or NOT_REPORTED for v in values}


def _drill_value(group: str, value: Any) -> str | None:
    """The filter value that narrows to one group, or None when no filter can select it."""
    if group in queries.ID_FILTERS:
        return queries.NONE if value is None else str(value)
    return value or None  # an empty dimension cannot be filtered on


def _query(params: QueryDict, **changes: str) -> str:
    """The current query string with some filters set, back on page 1."""
    query = params.copy()
    query.pop("page", None)
    for key, value in changes.items():
        query[key] = value
    return query.urlencode()


# ---------------------------------------------------------------- chart
@dataclass
class Chart:
    metric: str
    units: list[str]
    columns: list[str]
    rows: list[tuple[str, list[Decimal]]]  # the same figures as a table (no JS, screen readers)
    payload: dict[str, Any]


def period_label(start: date, period: str) -> str:
    # isoformat, not strftime: %Y drops the leading zeros of a year before 1000 on Linux.
    if period == "month":
        return start.isoformat()[:7]
    if period == "week":
        return f"Week of {start.isoformat()}"
    return start.isoformat()


def build_chart(
    points: list[queries.SeriesPoint],
    *,
    names: dict[Any, str],
    metric: str,
    period: str,
    split: bool,
    span: tuple[date | None, date | None] = (None, None),
) -> Chart | None:
    """Stacked bars of one metric per period: one series per (group, unit), the biggest first.
    Empty periods are filled within `span` (the date filter) only: queries.chart_periods."""
    if not points:
        return None
    units = sorted({p.unit for p in points})
    weight: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for p in points:
        weight[(p.group, p.unit)] += abs(p.total)
    ranked = sorted(weight, key=lambda key: (-weight[key], str(names.get(key[0], key[0]))))
    shown, rest = ranked[:MAX_CHART_SERIES], set(ranked[MAX_CHART_SERIES:])
    starts = queries.chart_periods((p.period for p in points), period, first=span[0], last=span[1])
    index = {start: i for i, start in enumerate(starts)}

    def label(group: Any, unit: str) -> str:
        name = names.get(group, str(group)) if split else metric
        return f"{name} ({unit})" if len(units) > 1 else name

    series: dict[tuple[Any, str], list[Decimal]] = {key: [Decimal(0)] * len(starts) for key in shown}
    others: dict[str, list[Decimal]] = {}
    for p in points:
        key = (p.group, p.unit)
        target = others.setdefault(p.unit, [Decimal(0)] * len(starts)) if key in rest else series[key]
        target[index[p.period]] += p.total
    columns = [label(*key) for key in shown] + [f"Other ({unit})" if len(units) > 1 else "Other" for unit in others]
    values = list(series.values()) + list(others.values())
    labels = [period_label(start, period) for start in starts]
    y_title = f"{metric} ({units[0]})" if len(units) == 1 else metric
    return Chart(
        metric=metric,
        units=units,
        columns=columns,
        rows=[(labels[i], [column[i] for column in values]) for i in range(len(starts))],
        payload={
            "kind": "bar",
            "stacked": True,
            "yTitle": y_title,
            "labels": labels,
            "datasets": [{"label": c, "data": [as_number(v) for v in vs]} for c, vs in zip(columns, values, strict=True)],
        },
    )


def _chart_metric(requested: str, filtered_metric: str, present: list[str]) -> str | None:
    for candidate in (requested, filtered_metric, *PREFERRED_CHART_METRICS):
        if candidate and candidate in present:
            return candidate
    return present[0] if present else None


# ---------------------------------------------------------------- rows
def _rows_page(request: HttpRequest, records: Any, days: Any, count: int, per_day: dict | None) -> Any:
    """The raw rows, newest first: located through the rollups (queries.DaySeekPaginator);
    `count` and `per_day` are the rows the totals already summed."""
    paginator = queries.DaySeekPaginator(
        records.select_related("application", "license__application").order_by("-bucket_start", "-pk"),
        PAGE_SIZE,
        days=days,
        zone=zone_of(request.workspace),
        count=count,
        known_days=per_day,
    )
    page = paginator.get_page(request.GET.get("page"))
    integration_names = dict(request.workspace.integrations.values_list("pk", "name")) if page.object_list else {}
    for row in page.object_list:
        row.integration_name = integration_names.get(row.integration_id, "")
        row.provider_name = _provider_name(row.provider)
        row.dimensions = [(name.replace("_", " "), getattr(row, name)) for name in DIMENSION_FIELDS if getattr(row, name)]
    return page


# ---------------------------------------------------------------- view
def results_context(request: HttpRequest) -> dict[str, Any]:
    """Everything the #results section shows, for the current query string."""
    workspace = request.workspace
    params = queries.with_default_window(workspace, request.GET)  # no dates: this month so far
    filters = queries.parse_filters(params)
    by = params.get("by") or next(iter(SPLITS))
    by = by if by in SPLITS else next(iter(SPLITS))
    group = "" if by == NO_SPLIT else by
    period = params.get("period") if params.get("period") in queries.PERIODS else queries.DEFAULT_PERIOD
    days = queries.daily(workspace, filters, group=group)

    totals, series_by_metric, rows_per_day = queries.breakdown(days, group=group, period=period)
    row_count = sum(t.rows for t in totals)
    present = sorted({t.metric for t in totals})
    chart_metric = _chart_metric(params.get("chart", ""), filters.metric, present)
    points = series_by_metric.get(chart_metric, []) if chart_metric else []
    names = _group_names(workspace, group, {t.group for t in totals}) if group else {}
    overall: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for t in totals:
        overall[(t.metric, t.unit)] += t.total
    totals_rows = [
        {
            "total": t,
            "name": names.get(t.group, t.group) if group else "",
            "drill": _query(params, **{group: value}) if group and (value := _drill_value(group, t.group)) else None,
        }
        for t in totals
    ]
    # By name, whatever the column holds (ids, slugs); the unattributed / not reported last.
    totals_rows.sort(key=lambda row: (row["total"].group in (None, ""), str(row["name"]).lower(), row["total"].metric, row["total"].unit))
    export_url = optional_url("usage:export", ws=workspace.slug)
    # "Export what I'm looking at": the same filters (the view settings do not change the rows);
    # the dates as applied, so a refused date shown as an error is not carried into the file.
    export_query = urlencode(
        [(k, getattr(filters, k).isoformat()) for k in ("date_from", "date_to") if getattr(filters, k)]
        + [(k, v) for k in queries.FILTER_PARAMS if k not in ("date_from", "date_to") for v in params.getlist(k) if v]
    )
    return {
        "explorer_url": reverse("usage:explorer", kwargs={"ws": workspace.slug}),
        "export_csv_url": f"{export_url}?{urlencode({'format': 'csv'})}{'&' + export_query if export_query else ''}" if export_url else None,
        "export_focus_url": f"{export_url}?{urlencode({'format': 'focus'})}{'&' + export_query if export_query else ''}" if export_url else None,
        "filters": filters,
        "by": by,
        "group": group,
        "group_label": SPLITS[by],
        "period": period,
        "period_label": PERIOD_LABELS[period].lower(),
        "totals_rows": totals_rows,
        "overall": [{"metric": m, "unit": u, "total": v} for (m, u), v in sorted(overall.items())],
        "row_count": row_count,
        "chart": build_chart(
            points,
            names=names,
            metric=chart_metric or "",
            period=period,
            split=bool(group),
            span=(filters.date_from, filters.date_to),
        ),
        "rows_page": _rows_page(request, queries.filtered(workspace, filters), days, row_count, rows_per_day),
        # Distinguish "no usage at all" (a setup problem) from "no usage matches" (a filter).
        "workspace_has_usage": bool(row_count) or daily_for(workspace, ()).exists(),
    }


def date_errors(form: ExplorerForm) -> list[str]:
    """The date problems, each saying what the page did about it: a backwards range matches
    nothing; a date that does not parse or lies outside the accepted ones is left out."""
    messages = []
    for name in ("date_from", "date_to"):
        for error in form.errors.as_data().get(name, []):
            text = " ".join(error.messages)
            if error.code == REVERSED:
                messages.append(f"{text} No day is in that range, so nothing matches.")
            else:
                messages.append(f"{form.fields[name].label}: {text} That date is not applied.")
    return messages


@workspace_view
def explorer(request: HttpRequest) -> HttpResponse:
    context = results_context(request)
    params = queries.with_default_window(request.workspace, request.GET)
    form = ExplorerForm(params, choices={} if wants_partial(request) else _filter_choices(request.workspace))
    form.is_valid()  # only for the messages: filtering is lenient and already done
    context.update(
        form=form,
        date_errors=date_errors(form),
        integrations_url=optional_url("integrations:list", ws=request.workspace.slug) if request.membership.is_admin else None,
        # Admins can turn unattributed usage into rules (Company Settings, another app's page).
        unattributed_url=optional_url("inventory:unattributed", ws=request.workspace.slug) if request.membership.is_admin else None,
        licenses_url=optional_url("usage:licenses", ws=request.workspace.slug),
    )
    return render_page(request, TEMPLATE, "results", context)

