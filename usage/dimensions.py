"""The one definition of usage dimensions: what a usage row is broken down by.

Read by the connectors (integrations.providers.base), the store, attribution rules, the daily
rollups, the pages and the exports, so adding or renaming a dimension is one edit here (plus a
migration for the columns). Plain Python: providers/base.py imports it and must not load Django
models.
"""
from __future__ import annotations

# Order matters: it is the column order of the natural key, of exports and of imports.
DIMENSIONS: tuple[str, ...] = (
    "account",
    "project",
    "region",
    "model",
    "deployment",
    "endpoint",
    "resource",
    "operation",
    "api_key",
)

# Words for the pages (form labels, column headers).
LABELS: dict[str, str] = {
    "account": "Account",
    "project": "Project",
    "region": "Region",
    "model": "Model",
    "deployment": "Deployment",
    "endpoint": "Endpoint",
    "resource": "Resource",
    "operation": "Operation",
    "api_key": "API key",
}

# The dimensions the explorer splits and filters by.
EXPLORER_DIMENSIONS: tuple[str, ...] = ("model", "project", "region")
# The dimension columns of an integration's raw-row view (the key is shown per row elsewhere).
ROW_VIEW_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d != "api_key")

# Every dimension is kept in the daily rollups (usage.models.UsageDaily), so any page may group
# or filter by any of them without reading the hourly base table.
ROLLUP_DIMENSIONS: tuple[str, ...] = DIMENSIONS

assert set(LABELS) == set(DIMENSIONS)


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())
