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
    # Added by issue 13 (how a provider priced or served the traffic); appended, so the first
    # nine keep their positions. docs/dimensions.md says what each holds per provider.
    "service_tier",
    "batch",
    "context_window",
    "inference_geo",
    "speed",
)
# The dimension columns of docs/architecture.md's CSV, in its order (between bucket_end and metric);
# dimensions added later are appended at the END of the export, after the earlier additions.
CSV_DIMENSIONS: tuple[str, ...] = DIMENSIONS[:9]
ADDED_DIMENSIONS: tuple[str, ...] = DIMENSIONS[9:]

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
    "service_tier": "Service tier",
    "batch": "Batch",
    "context_window": "Context window",
    "inference_geo": "Inference geo",
    "speed": "Speed",
}

# The dimensions the explorer splits and filters by.
EXPLORER_DIMENSIONS: tuple[str, ...] = ("model", "project", "region")
# The dimension columns of an integration's raw-row view (the key is shown per row elsewhere).
ROW_VIEW_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d != "api_key")

# What "Unattributed usage" groups by: the dimensions that identify who used it. Region and
# api_key stay out (a rule made from a group matches any of them), so groups stay few. Also the
# key order of UsageDaily's partial index for that page (usage.models), so keep them together.
UNATTRIBUTED_DIMENSIONS: tuple[str, ...] = (
    "account",
    "project",
    "model",
    "deployment",
    "endpoint",
    "resource",
    "operation",
)

# Every dimension is kept in the daily rollups (usage.models.UsageDaily), so any page may group
# or filter by any of them without reading the hourly base table.
ROLLUP_DIMENSIONS: tuple[str, ...] = DIMENSIONS

assert set(LABELS) == set(DIMENSIONS)


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())
