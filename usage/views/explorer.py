"""The usage explorer: filters in the query string; spend first (reported, estimated, unpriced
volume: usage/spend.py's Definitions over the filtered rollups), then volumes, one chart, the
totals and the raw rows.

The window is a date preset in the workspace's calendar (this month by default, to today; last
month, last 30 days, this quarter, all time: usage.dates.PRESETS) or custom From / To dates;
`compare` adds the previous period (usage.dates.previous_range) and the change. A team split is
the application split folded through each application's team (no team column in the rollups,
so reassigning a team needs no rebuild).

Every figure comes from an SQL aggregate over the workspace's daily rollups (see
usage/queries.py); Python only shapes results already grouped to (period, group, unit), so the
page costs the same handful of queries for a thousand rows or ten million. Days, weeks and
months are those of the workspace's time zone. Only the page of raw rows reads the base table,
located through the rollups' per-day counts. A wide split (more than eleven values) shows ten
of them at a time, largest first, the rest folded into lines that keep every total whole
(usage/views/explorer_groups.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse, QueryDict
from django.template.defaultfilters import floatformat
from django.urls import reverse

from accounts.permissions import WorkspaceRequest, workspace_view
from doow.templatetags.formats import metric_label, money
from doow.templatetags.page_helpers import quantity
from integrations.providers.registry import PROVIDERS
from usage import queries, spend
from usage.dates import CUSTOM, DEFAULT_PRESET, PRESETS, preset_range, previous_range
from usage.forms import REVERSED, DateRangeForm
from usage.models import DIMENSION_FIELDS
from usage.rollups import daily_for, zone_of
from usage.views import explorer_groups as groups
from usage.views.common import as_number, optional_url, render_page, wants_partial

TEMPLATE = "usage/explorer.html"
PAGE_SIZE = 50
NO_SPLIT = "none"
# Split-by choices; the first is the default (an absent `by`).
SPLITS = {
    "provider": "Provider",
    "application": "Application",
    "team": "Team",
    "license": "License",
    "integration": "Integration",
    "model": "Model",
    "project": "Project",
    "region": "Region",
    NO_SPLIT: "Nothing — one total",
}
# What the groups of a split are called in a fold's line ("Top 10 models").
GROUP_NOUNS = {
    "provider": "providers",
    "application": "applications",
    "team": "teams",
    "license": "licenses",
    "integration": "integrations",
    "model": "models",
    "project": "projects",
    "region": "regions",
}
PERIOD_LABELS = {"day": "Day", "week": "Week", "month": "Month"}
# The chart shows spend (docs/architecture.md's Spend: reported cost, else the estimate) unless a metric is
# chosen; without spend in view, the most common volume.
SPEND = "spend"
SPEND_LABEL = "Spend"
PREFERRED_CHART_METRICS = ("cost", "input_tokens")
NOT_REPORTED = "(not reported)"
NO_TEAM = "No team"
# A team is the team of the usage's application: the explorer groups by application and folds.
TEAM = "team"


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
    team = _select("Team")
    license = _select("License")
    model = _select("Model")
    project = _select("Project")
    region = _select("Region")
    metric = _select("Metric")
    by = forms.ChoiceField(label="Split by", required=False, choices=list(SPLITS.items()))
    period = forms.ChoiceField(label="Per", required=False, choices=list(PERIOD_LABELS.items()))
    chart = _select("Chart")
    compare = forms.BooleanField(label="Compare with the previous period", required=False)
    # The date preset the From / To fields hold (explorer_window): kept while they are unchanged.
    range = forms.CharField(required=False, widget=forms.HiddenInput)

    FILTERS = (
        "date_from",
        "date_to",
        "provider",
        "integration",
        "application",
        "team",
        "license",
        "model",
        "project",
        "region",
        "metric",
    )
    VIEW = ("by", "period", "chart")

    def __init__(self, data: Mapping[str, Any], *, choices: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__(data)
        for name, options in choices.items():
            current = str(data.get(name) or "")
            if current and current not in {value for value, _ in options}:
                options = [*options, (current, current)]  # keep a shared link's filter visible
            first = ("", "Spend") if name == "chart" else ("", "All")
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
        "application": [
            (queries.NONE, "Unattributed"),
            *((str(pk), name) for pk, name in workspace.applications.values_list("pk", "name")),
        ],
        "team": [(queries.NONE, NO_TEAM), *((str(pk), name) for pk, name in workspace.teams.values_list("pk", "name"))],
        "license": [
            (queries.NONE, "No license"),
            *((str(lic.pk), str(lic)) for lic in workspace.licenses.select_related("application")),
        ],
        "model": [(v, v) for v in values["model"]],
        "project": [(v, v) for v in values["project"]],
        "region": [(v, v) for v in values["region"]],
        "metric": [(v, metric_label(v)) for v in metrics],
        "chart": [(v, metric_label(v)) for v in metrics],
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
        return {
            None: "No license",
            **{lic.pk: str(lic) for lic in workspace.licenses.select_related("application").filter(pk__in=ids)},
        }
    if group == TEAM:
        return {None: NO_TEAM, **dict(workspace.teams.filter(pk__in=ids).values_list("pk", "name"))}
    return {v: v or NOT_REPORTED for v in values}


def _drill_value(group: str, value: Any) -> str | None:
    """The filter value that narrows to one group, or None when no filter can select it."""
    if group in (*queries.ID_FILTERS, TEAM):
        return queries.NONE if value is None else str(value)
    return value or None  # an empty dimension cannot be filtered on


def _query(params: QueryDict, **changes: str) -> str:
    """The current query string with some filters set, back on the first page of rows and of
    groups. A shallow copy, in the same key order (QueryDict.copy() deep-copies)."""
    query = QueryDict(mutable=True, encoding=params.encoding)
    for key, values in params.lists():
        if key not in ("page", groups.PARAM):
            query.setlist(key, values)
    for key, value in changes.items():
        query[key] = value
    return query.urlencode()


# ---------------------------------------------------------------- chart
@dataclass
class Chart:
    metric: str  # a metric name, or SPEND
    units: list[str]
    columns: list[str]
    rows: list[tuple[str, list[str]]]  # the same figures as a table (no JS, screen readers), formatted
    payload: dict[str, Any]
    label: str = ""

    @property
    def money(self) -> bool:
        return self.metric in (SPEND, *spend.MONEY_METRICS)


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
    page: groups.GroupPage | None,
    span: tuple[date | None, date | None] = (None, None),
    label: str | None = None,
) -> Chart | None:
    """Stacked bars of one metric per period: one series per (group, unit) of the page of
    groups (`page`; None: no split, one series per unit), in its order, and one per fold ("Top
    10 …", "Other (k more)"), so the bars still add up to the whole. Empty periods are filled
    within `span` (the date filter) only: queries.chart_periods."""
    if not points:
        return None
    units = sorted({p.unit for p in points})
    starts = queries.chart_periods((p.period for p in points), period, first=span[0], last=span[1])
    index = {start: i for i, start in enumerate(starts)}
    key_of = page.key if page else lambda value: None
    series: dict[tuple[Any, str], list[Decimal]] = {}
    for p in points:
        key = (key_of(p.group), p.unit)
        column = series.get(key)
        if column is None:
            column = series[key] = [Decimal(0)] * len(starts)
        column[index[p.period]] += p.total
    keys = sorted(series, key=lambda k: (page.order(k[0]) if page else 0, k[1]))
    title = label or metric

    def series_label(group: Any, unit: str) -> str:
        if page is None:
            name = title
        elif isinstance(group, groups.Fold):
            name = group.label
        else:
            name = names.get(group, str(group))
        return f"{name} ({unit})" if len(units) > 1 else name

    columns = [series_label(*key) for key in keys]
    values = [series[key] for key in keys]
    labels = [period_label(start, period) for start in starts]
    # Formatted here, not by a template filter per cell: periods × series cells (330 for a month by model).
    shown = _cell_format(metric, units)
    cells = [[shown(v) for v in column] for column in values]
    y_title = f"{title} ({units[0]})" if len(units) == 1 else title
    return Chart(
        metric=metric,
        label=title,
        units=units,
        columns=columns,
        rows=[(labels[i], [column[i] for column in cells]) for i in range(len(starts))],
        payload={
            "kind": "bar",
            "stacked": True,
            "yTitle": y_title,
            "labels": labels,
            "datasets": [
                {"label": c, "data": [as_number(v) for v in vs], **_fold_mark(key[0])}
                for key, c, vs in zip(keys, columns, values, strict=True)
            ],
        },
    )


def _cell_format(metric: str, units: list[str]) -> Callable[[Decimal], str]:
    """How the chart's table writes a figure: money in its currency, several currencies as bare
    amounts (the column names the currency), volumes as quantities."""
    if metric in (SPEND, *spend.MONEY_METRICS):
        if len(units) == 1:
            return partial(money, currency=units[0])
        return partial(floatformat, arg="2g")
    return quantity


def _fold_mark(key: Any) -> dict[str, str]:
    """How explorer.js tells a fold's series from a group's (it draws folds grey)."""
    if isinstance(key, groups.Fold):
        return {"fold": "before" if key.before else "after"}
    return {}


def _chart_metric(requested: str, filtered_metric: str, present: list[str], has_spend: bool) -> str | None:
    """The chosen metric if present, else spend when there is any, else the filtered metric,
    else the most common volume."""
    if requested and requested in present:
        return requested
    if has_spend and filtered_metric in ("", *spend.MONEY_METRICS):
        return SPEND
    for candidate in (filtered_metric, *PREFERRED_CHART_METRICS):
        if candidate and candidate in present:
            return candidate
    return present[0] if present else None


# ---------------------------------------------------------------- rows
def _rows_page(request: WorkspaceRequest, records: Any, days: Any, count: int, per_day: dict | None) -> Any:
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
        row.dimensions = [
            (name.replace("_", " "), getattr(row, name)) for name in DIMENSION_FIELDS if getattr(row, name)
        ]
    return page


# ---------------------------------------------------------------- the window
@dataclass(frozen=True)
class Window:
    """The dates the explorer looks at: a preset (this month by default) or the custom From / To."""

    preset: str  # a key of usage.dates.PRESETS, or CUSTOM
    first: date | None
    last: date | None

    @property
    def previous(self) -> tuple[date, date] | None:
        """The period compared with (usage.dates.previous_range); None for an open range."""
        return previous_range(self.first, self.last) if self.first and self.last and self.first <= self.last else None


def explorer_window(params: QueryDict, filters: queries.UsageFilters, today: date) -> Window:
    """A preset named in `range` holds unless the From / To sent differ from its days (the
    person typed a date: that is a custom range). Without `range`, any date sent makes a custom
    range (a shared link); with no date at all, the default preset."""
    requested = params.get("range", "")
    sent = params.get("date_from") or params.get("date_to")
    if requested in PRESETS:
        first, last = preset_range(requested, today)
        if not sent or (filters.date_from, filters.date_to) == (first, last):
            return Window(requested, first, last)
    elif requested != CUSTOM and not sent:
        return Window(DEFAULT_PRESET, *preset_range(DEFAULT_PRESET, today))
    return Window(CUSTOM, filters.date_from, filters.date_to)


def _preset_links(params: QueryDict, window: Window, base: str) -> list[dict[str, Any]]:
    links = []
    for key, label in PRESETS.items():
        query = params.copy()
        for name in ("page", "date_from", "date_to"):
            query.pop(name, None)
        query["range"] = key
        links.append({"label": label, "url": f"{base}?{query.urlencode()}", "current": key == window.preset})
    return links


# ---------------------------------------------------------------- spend
def _as_team_totals(totals: list[queries.Total], teams: dict[Any, int | None]) -> list[queries.Total]:
    sums: dict[tuple[Any, str, str], list] = {}
    for t in totals:
        entry = sums.setdefault((teams.get(t.group), t.metric, t.unit), [Decimal(0), 0])
        entry[0] += t.total
        entry[1] += t.rows
    return [queries.Total(group=g, metric=m, unit=u, total=v, rows=n) for (g, m, u), (v, n) in sums.items()]


def _as_team_points(points: list[queries.SeriesPoint], teams: dict[Any, int | None]) -> list[queries.SeriesPoint]:
    sums: dict[tuple[date, Any, str], Decimal] = defaultdict(Decimal)
    for p in points:
        sums[(p.period, teams.get(p.group), p.unit)] += p.total
    return [
        queries.SeriesPoint(period=d, group=g, unit=u, total=v)
        for (d, g, u), v in sorted(sums.items(), key=lambda i: (i[0][0], i[0][1] is None, str(i[0][1]), i[0][2]))
    ]


def _spend_points(rows: list[spend.SpendRow], period: str) -> list[queries.SeriesPoint]:
    """Spend rows as chart points per (period, group, currency)."""
    sums: dict[tuple[date, Any, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        sums[(queries.period_floor(r.day, period), r.key, r.currency)] += r.amount
    return [queries.SeriesPoint(period=d, group=g, unit=u, total=v) for (d, g, u), v in sums.items()]


def _delta(current: Decimal, previous: Decimal | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    change = current - previous
    return {"previous": previous, "delta": change, "percent": (change / abs(previous) * 100) if previous else None}


def _group_line(value: Any, *, group: str, names: dict[Any, str], params: QueryDict) -> dict[str, Any]:
    """The name and link of one line of a table: a group value (its link narrows to it), a fold
    (its link opens the page of groups listing what it holds), or the whole (no split)."""
    if not group:
        return {"name": "", "drill": None, "fold": False}
    if isinstance(value, groups.Fold):
        changes = {groups.PARAM: str(value.page)} if value.page > 1 else {}
        return {"name": value.label, "drill": _query(params, **changes), "fold": True}
    drill = _drill_value(group, value)
    return {
        "name": names.get(value, str(value)),
        "drill": _query(params, **{group: drill}) if drill else None,
        "fold": False,
    }


def _spend_table(
    rows: list[spend.SpendRow],
    previous: list[spend.SpendRow] | None,
    *,
    page: groups.GroupPage | None,
    line: Any,
) -> list[dict[str, Any]]:
    """Spend per (group value of the page of groups, currency) in the page's order, the groups
    off the page as their folds; one line per currency without a split. With a comparison, each
    line carries the previous period and the change. `line(key)` names and links a key."""
    key_of = page.key if page else lambda value: None
    now: dict[tuple[Any, str], spend.Amount] = {}
    for r in rows:
        key = (key_of(r.key), r.currency)
        amount = now.get(key)
        if amount is None:
            amount = now[key] = spend.Amount(r.currency)
        amount.add(r.amount, estimated=r.estimated)
    before: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for r in previous or []:
        key = (key_of(r.key), r.currency)
        before[key] += r.amount
        now.setdefault(key, spend.Amount(r.currency))
    ordered = sorted(now, key=lambda k: (k[1] != "USD", k[1], page.order(k[0]) if page else 0))
    return [
        {
            **line(key[0]),
            "amount": now[key],
            "change": _delta(now[key].total, before.get(key, Decimal(0))) if previous is not None else None,
        }
        for key in ordered
    ]


# ---------------------------------------------------------------- view
def results_context(request: WorkspaceRequest) -> dict[str, Any]:
    """Everything the #results section shows, for the current query string."""
    params = request.GET
    workspace = request.workspace
    window = explorer_window(params, queries.parse_filters(params), queries.local_today(workspace))
    filters = replace(queries.parse_filters(params), date_from=window.first, date_to=window.last)
    by = params.get("by") or next(iter(SPLITS))
    by = by if by in SPLITS else next(iter(SPLITS))
    group = "" if by == NO_SPLIT else by
    # A team is read through its application (the rollups have no team column).
    query_group = "application" if group == TEAM else group
    period = params.get("period", "")
    period = period if period in queries.PERIODS else queries.DEFAULT_PERIOD
    compare = params.get("compare") in ("1", "on", "true")
    previous_span = window.previous if compare else None
    days = queries.daily(workspace, filters, group=query_group)

    # Sums per (group, metric, unit): a few hundred rows at most, whatever the days and periods.
    # The series of one metric is read below only when the chart shows it (not spend).
    totals = queries.totals(days, group=query_group)
    # The row pager's per-day counts, from the smallest level (usage.rollups.level_for).
    totals_days = queries.daily(workspace, filters, group="")
    rows_per_day = queries.rows_per_day(totals_days)
    row_count = sum(rows_per_day.values())
    teams = spend.team_keys(workspace) if group == TEAM else {}
    if group == TEAM:
        totals = _as_team_totals(totals, teams)

    # Spend (docs/architecture.md): one read of the money rollups over the previous period and this one.
    spend_days = (
        queries.daily(workspace, replace(filters, date_from=previous_span[0]), group=query_group)
        if previous_span
        else days
    )
    spend_all = spend.spend_rows(spend_days, query_group or None)
    if group == TEAM:
        spend_all = [replace(r, key=teams.get(r.key)) for r in spend_all]
    spend_now = [r for r in spend_all if not previous_span or window.first is None or r.day >= window.first]
    spend_before = [r for r in spend_all if previous_span[0] <= r.day <= previous_span[1]] if previous_span else None
    spent = spend.total(spend_now)
    spent_before = spend.total(spend_before) if spend_before is not None else None

    present = sorted({t.metric for t in totals})
    chart_metric = _chart_metric(params.get("chart", ""), filters.metric, present, bool(spend_now))
    if chart_metric == SPEND:
        points = _spend_points(spend_now, period)
    elif chart_metric:
        points = queries.series(days, metric=chart_metric, period=period, group=query_group)
        if group == TEAM:
            points = _as_team_points(points, teams)
    else:
        points = []

    previous_totals: dict[tuple[Any, str, str], Decimal] | None = None
    if previous_span:
        before_days = queries.daily(
            workspace, replace(filters, date_from=previous_span[0], date_to=previous_span[1]), group=query_group
        )
        before = queries.totals(before_days, group=query_group)
        if group == TEAM:
            before = _as_team_totals(before, teams)
        previous_totals = defaultdict(Decimal)
        for t in before:
            previous_totals[(t.group, t.metric, t.unit)] += t.total

    # A wide split shows one page of groups, the largest first (explorer_groups).
    page: groups.GroupPage | None = None
    names: dict[Any, str] = {}
    if group:
        values = {t.group for t in totals} | {r.key for r in spend_all} | {v for v, _, _ in previous_totals or ()}
        names = _group_names(workspace, group, values)
        volume: dict[Any, Decimal] = defaultdict(Decimal)
        for p in points:
            volume[p.group] += abs(p.total)
        ranked = groups.rank(
            values,
            spend_now=groups.spend_by_group(spend_now),
            spend_before=groups.spend_by_group(spend_before),
            volume=volume,
            names=names,
        )
        page = groups.page_of(ranked, params.get(groups.PARAM), noun=GROUP_NOUNS[group])
    key_of = page.key if page else lambda value: None
    lines: dict[Any, dict[str, Any]] = {}  # one name and link per key, whatever its number of metrics

    def line(key: Any) -> dict[str, Any]:
        if key not in lines:
            lines[key] = _group_line(key, group=group, names=names, params=params)
        return lines[key]

    # Totals per (key, metric, unit): a group of the page, or the fold holding it.
    sums: dict[tuple[Any, ...], list] = {}
    overall: dict[tuple[Any, ...], list] = {}
    for t in totals:
        for table, key in ((sums, (key_of(t.group), t.metric, t.unit)), (overall, (t.metric, t.unit))):
            entry = table.get(key)
            if entry is None:
                entry = table[key] = [Decimal(0), 0, Decimal(0)]
            entry[0] += t.total
            entry[1] += t.rows
    for (value, metric, unit), amount in (previous_totals or {}).items():
        if (key := (key_of(value), metric, unit)) in sums:
            sums[key][2] += amount
        if (metric, unit) in overall:
            overall[(metric, unit)][2] += amount
    totals_rows: list[dict[str, Any]] = [
        {
            **line(key),
            "total": queries.Total(group=key, metric=metric, unit=unit, total=total, rows=rows),
            "change": _delta(total, before_total) if previous_totals is not None else None,
        }
        for (key, metric, unit), (total, rows, before_total) in sorted(
            sums.items(), key=lambda item: (page.order(item[0][0]) if page else 0, item[0][1], item[0][2])
        )
    ]
    export_url = optional_url("usage:export", ws=workspace.slug)
    # "Export what I'm looking at": the same filters (the view settings do not change the rows);
    # the dates as applied, so a refused date shown as an error is not carried into the file.
    export_query = urlencode(
        [(k, getattr(filters, k).isoformat()) for k in ("date_from", "date_to") if getattr(filters, k)]
        + [(k, v) for k in queries.FILTER_PARAMS if k not in ("date_from", "date_to") for v in params.getlist(k) if v]
    )
    explorer_url = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    return {
        "explorer_url": explorer_url,
        "export_csv_url": f"{export_url}?{urlencode({'format': 'csv'})}{'&' + export_query if export_query else ''}"
        if export_url
        else None,
        "export_focus_url": f"{export_url}?{urlencode({'format': 'focus'})}{'&' + export_query if export_query else ''}"
        if export_url
        else None,
        "filters": filters,
        "window": window,
        "window_label": PRESETS.get(window.preset, "Custom dates"),
        "preset_links": _preset_links(params, window, explorer_url),
        "compare": compare,
        "previous_span": previous_span,
        "by": by,
        "group": group,
        "group_label": SPLITS[by],
        "period": period,
        "period_label": PERIOD_LABELS[period].lower(),
        "spend": [
            {
                "amount": amount,
                "change": _delta(amount.total, spent_before.get_total(amount.currency))
                if spent_before is not None
                else None,
            }
            for amount in spend.Spend({**{c: spend.Amount(c) for c in (spent_before or {})}, **spent}).ordered()
        ],
        "spend_rows": _spend_table(spend_now, spend_before, page=page, line=line),
        "group_page": page,
        "group_links": {
            side: line(fold)["drill"] for side, fold in (("before", page.before), ("after", page.after)) if fold
        }
        if page
        else {},
        "group_noun": GROUP_NOUNS.get(group, ""),
        # What the groups are ranked by (explorer_groups.rank): spend, else the charted volume.
        "ranked_by": "spend"
        if spend_all
        else (metric_label(chart_metric).lower() if chart_metric and points else "name"),
        # Unpriced usage is listed per model whatever the split: its own level (the narrow rollup
        # unless a filter needs another dimension).
        "unpriced": spend.unpriced_in(
            queries.daily(workspace, filters, group="", reads=spend.UNPRICED_COLUMNS), totals=totals_days
        ),
        "volumes": [
            {
                "metric": m,
                "unit": u,
                "total": v,
                "change": _delta(v, before_total) if previous_totals is not None else None,
            }
            for (m, u), (v, _, before_total) in sorted(overall.items())
            if m not in spend.MONEY_METRICS
        ],
        "totals_rows": totals_rows,
        "overall": [
            {
                "metric": m,
                "unit": u,
                "total": v,
                "rows": n,
                "change": _delta(v, before_total) if previous_totals is not None else None,
            }
            for (m, u), (v, n, before_total) in sorted(overall.items())
        ],
        "row_count": row_count,
        "chart": build_chart(
            points,
            names=names,
            metric=chart_metric or "",
            period=period,
            page=page,
            span=(filters.date_from, filters.date_to),
            label=SPEND_LABEL if chart_metric == SPEND else metric_label(chart_metric or ""),
        ),
        "rows_page": _rows_page(request, queries.filtered(workspace, filters), totals_days, row_count, rows_per_day),
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
def explorer(request: WorkspaceRequest) -> HttpResponse:
    context = results_context(request)
    data = request.GET.copy()
    window = context["window"]
    if window.preset != CUSTOM:
        # The From / To fields show the preset's days; `range` keeps the preset while they do.
        data.setlist("date_from", [window.first.isoformat()] if window.first else [])
        data.setlist("date_to", [window.last.isoformat()] if window.last else [])
        data["range"] = window.preset
    else:
        # Custom stays custom: clearing both dates then means every day, not the default preset.
        data["range"] = CUSTOM
    form = ExplorerForm(data, choices={} if wants_partial(request) else _filter_choices(request.workspace))
    form.is_valid()  # only for the messages: filtering is lenient and already done
    context.update(
        form=form,
        date_errors=date_errors(form),
        integrations_url=optional_url("integrations:list", ws=request.workspace.slug)
        if request.membership.is_admin
        else None,
        # Admins can turn unattributed usage into rules (Company Settings, another app's page).
        unattributed_url=optional_url("usage_settings:unattributed", ws=request.workspace.slug)
        if request.membership.is_admin
        else None,
        licenses_url=optional_url("usage:licenses", ws=request.workspace.slug),
    )
    return render_page(request, TEMPLATE, "results", context)
