"""Read-side summaries the settings and integration pages show, from the daily rollups:
usage per application or license, the unattributed usage groups, and an integration's usage
summary (by model, project and day). Queries, not views: the pages only render what these return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.db import connections, transaction
from django.db.models import Max, Min, Q, Sum

from integrations.providers.registry import PROVIDERS
from usage.attribution import escape_pattern
from usage.dimensions import UNATTRIBUTED_DIMENSIONS
from usage.rollups import daily_for

# What "Unattributed usage" groups by (usage.dimensions): the dimensions that identify who used it.
GROUP_FIELDS = UNATTRIBUTED_DIMENSIONS


def provider_name(slug: str) -> str:
    provider = PROVIDERS.get(slug)
    return provider.name if provider else slug


def attribution_summary(workspace: Any, key: str) -> dict[int, dict[str, Any]]:
    """rows, latest local day with usage and reported cost per application or license id, from
    the daily rollups (one query; no dimension: the total level)."""
    summary: dict[int, dict[str, Any]] = {}
    rows = (
        daily_for(workspace, (key, "day", "metric", "unit"))
        .filter(**{f"{key}__isnull": False})
        .values(key, "metric", "unit")
        .annotate(rows=Sum("rows"), last=Max("day"), total=Sum("quantity"))
        .order_by(key, "metric", "unit")
    )
    for row in rows:
        entry = summary.setdefault(row[key], {"rows": 0, "last": row["last"], "cost": []})
        entry["rows"] += row["rows"]
        entry["last"] = max(entry["last"], row["last"])
        if row["metric"] == "cost":
            entry["cost"].append((row["total"], row["unit"]))
    return summary


def attributed_rows(workspace: Any, **attribution: Any) -> int:
    """Usage rows attributed to something (from the rollups' counts)."""
    columns = tuple(name.split("__")[0] for name in attribution)
    return daily_for(workspace, columns).filter(**attribution).aggregate(n=Sum("rows"))["n"] or 0


# ---------------------------------------------------------------- unattributed usage
@dataclass
class UnattributedGroup:
    provider: str
    values: dict[str, str]
    rows: int = 0
    first: date | None = None  # first and last local day holding such usage
    last: date | None = None
    totals: list[tuple[str, Any, str]] = field(default_factory=list)  # (metric, total, unit)

    @property
    def provider_name(self) -> str:
        return provider_name(self.provider)

    def rule_query(self) -> str:
        """The rule form's query string: these exact values (wildcards escaped) and the provider."""
        values = {name: escape_pattern(value) for name, value in self.values.items() if value}
        return urlencode({"provider": self.provider, **values, "from": "unattributed"})


def unattributed_groups(workspace: Any) -> list[UnattributedGroup]:
    """Usage no rule matched, grouped by provider and GROUP_FIELDS, largest first (one query
    over the daily rollups; first and last are local days of the workspace's time zone)."""
    rows = (
        daily_for(workspace)
        .filter(application__isnull=True)
        .values("provider", *GROUP_FIELDS, "metric", "unit")
        .annotate(n=Sum("rows"), first=Min("day"), last=Max("day"), total=Sum("quantity"))
        .order_by()
    )
    groups: dict[tuple[str, ...], UnattributedGroup] = {}
    for row in _hashed(rows):
        key = (row["provider"], *(row[f] for f in GROUP_FIELDS))
        group = groups.get(key)
        if group is None:
            group = groups[key] = UnattributedGroup(row["provider"], {f: row[f] for f in GROUP_FIELDS})
        group.rows += row["n"]
        group.first = min(filter(None, (group.first, row["first"])))
        group.last = max(filter(None, (group.last, row["last"])))
        group.totals.append((row["metric"], row["total"], row["unit"]))
    for group in groups.values():
        group.totals.sort(key=lambda t: summary_order(t[0], t[2]))  # the money first
    return sorted(groups.values(), key=lambda g: (-g.rows, g.provider, *g.values.values()))


def _hashed(rows: Any) -> list[dict[str, Any]]:
    """The rows of a GROUP BY over many text columns. PostgreSQL guesses far more groups than
    there are (the columns are correlated) and, with the default 4 MB of work_mem, sorts on disk
    instead of hashing — four times slower at ten million usage rows. The few groups fit in
    memory: allow it for this one query (SET LOCAL ends with the transaction)."""
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return list(rows)
    with transaction.atomic(using=rows.db):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '32MB'")
        return list(rows)


# ---------------------------------------------------------------- an integration's usage
# The summary's columns: the money first, then the counts people look at, at most SUMMARY_METRICS.
SUMMARY_PREFERENCE = (
    "cost",
    "estimated_cost",
    "input_tokens",
    "output_tokens",
    "requests",
    "api_calls",
    "compute_seconds",
)
SUMMARY_METRICS = 3
SUMMARY_TOP = 10
SUMMARY_DAYS = 31
_PREFERENCE_ORDER = {metric: i for i, metric in enumerate(SUMMARY_PREFERENCE)}


def summary_order(metric: str, unit: str) -> tuple[int, str, str]:
    """Where a (metric, unit) goes among the summary's totals: money first, then the counts
    people look at, then the rest by name."""
    return (_PREFERENCE_ORDER.get(metric, len(_PREFERENCE_ORDER)), metric, unit)


def integration_usage_summary(
    days_by: Callable[[str], Any], totals: list[dict[str, Any]], names: dict[str, str]
) -> dict[str, Any]:
    """Totals by model, by project and by day for the filtered rollups (a GROUP BY each, never
    over the base table), and a bar per day of the headline metric. `days_by(dimension)` gives
    the filtered rollup rows to group by that dimension: the caller picks the smallest level
    holding it (the narrow rollup by model or day, the project rollup by project)."""
    present = [(t["metric"], t["unit"]) for t in totals]
    metrics = sorted(present, key=lambda mu: summary_order(*mu))[:SUMMARY_METRICS]
    keys = Q()
    for metric, unit in metrics:
        keys |= Q(metric=metric, unit=unit)
    head = metrics[0]

    def grouped(dimension: str, *, limit: int | None, by_head: bool) -> tuple[list[dict[str, Any]], int]:
        cells: dict[Any, dict[tuple[str, str], Any]] = {}
        chosen = days_by(dimension).filter(keys)
        for row in chosen.values(dimension, "metric", "unit").annotate(total=Sum("quantity")).order_by():
            cells.setdefault(row[dimension], {})[(row["metric"], row["unit"])] = row["total"]
        if by_head:
            ordered = sorted(cells, key=lambda key: (-(cells[key].get(head) or 0), str(key)))
        else:
            ordered = sorted(cells, reverse=True)
        shown = ordered[:limit] if limit else ordered
        rows = [
            {
                "key": key,
                "label": (names.get(key) or key) if dimension == "project" else key,
                "values": [(cells[key].get(m), m[1]) for m in metrics],
            }
            for key in shown
        ]
        return rows, len(ordered) - len(shown)

    by_model, more_models = grouped("model", limit=SUMMARY_TOP, by_head=True)
    by_project, more_projects = grouped("project", limit=SUMMARY_TOP, by_head=True)
    by_day, more_days = grouped("day", limit=SUMMARY_DAYS, by_head=False)
    heads = [(row["key"], row["values"][0][0] or 0) for row in reversed(by_day)]
    peak = max((value for _, value in heads), default=0)
    chart = [
        {"day": day, "value": value, "percent": round(100 * value / peak) if peak > 0 else 0} for day, value in heads
    ]
    return {
        "summary_metrics": metrics,
        "summary_by_model": by_model if any(row["key"] for row in by_model) else [],
        "summary_more_models": more_models,
        "summary_by_project": by_project if any(row["key"] for row in by_project) else [],
        "summary_more_projects": more_projects,
        "summary_by_day": by_day,
        "summary_more_days": more_days,
        "summary_chart": chart,
        "summary_head": head,
    }
