"""What an attribution rule would match, before it is saved: rows and spend, from the rollups.

The rule form asks (htmx, as the fields change) and shows the answer under the patterns. The
workspace's usage is read once per distinct (provider, dimensions, metric, unit) slice of the
daily rollups (usage.rollups.daily_for: one GROUP BY, never the hourly base table) and every
slice is run through the same matcher that attributes rows (usage.attribution.Matcher), with the
workspace's other rules and the candidate at its priority: so the preview shows what the rule
would really take, and what an earlier rule keeps.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum

from usage.attribution import MATCH_FIELDS, Matcher, labels_of
from usage.rollups import daily_for

# The candidate's id in the matcher: after every real rule of the same priority (ties go to the
# older rule, and a new rule is the newest).
CANDIDATE = 2**62
# Money metrics, shown as spend; the others are counted in rows only, plus a few headline counts.
MONEY_METRICS = ("cost", "estimated_cost")
COUNT_METRICS = ("input_tokens", "output_tokens", "requests", "api_calls")
EXAMPLES = 5


@dataclass
class RulePreview:
    provider: str
    patterns: dict[str, str]
    rows: int = 0  # rows the rule would take
    newly: int = 0  # of those, rows no rule attributes now
    shadowed: int = 0  # rows the patterns match that an earlier rule keeps
    money: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (metric, unit) → total
    counts: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    examples: list[tuple[dict[str, str], int]] = field(default_factory=list)  # dims that differ, rows
    more_examples: int = 0


def rule_preview(*, workspace: Any, data: Any, rule_pk: int | None = None) -> RulePreview:
    """The preview for the form values `data` (provider, patterns, priority); `rule_pk` is the
    rule being edited, which the candidate replaces."""
    provider = str(data.get("provider") or "").strip()
    patterns = {name: str(data.get(name) or "").strip() for name in MATCH_FIELDS}
    label = str(data.get("label") or "").strip()
    try:
        priority = int(data.get("priority") or 100)
    except (TypeError, ValueError):
        priority = 100
    preview = RulePreview(
        provider=provider, patterns={k: v for k, v in patterns.items() if v} | ({"label": label} if label else {})
    )
    if not provider:
        return preview
    others = workspace.attribution_rules.filter(provider=provider)
    if rule_pk is not None:
        others = others.exclude(pk=rule_pk)
    columns = ("id", "provider", "priority", "application_id", "license_id", "label", *MATCH_FIELDS)
    candidate = {
        "id": rule_pk or CANDIDATE,
        "provider": provider,
        "priority": priority,
        "application_id": None,
        "license_id": None,
        "label": label,
        **patterns,
    }
    with_candidate = Matcher([*others.values(*columns), candidate])
    alone = Matcher([candidate])
    if label:
        # Labels live on the stored rows only (the daily rollups leave them out): a rule that
        # reads labels is previewed on the rows of this provider that carry any. (Without a label
        # of its own, the rollups answer, and an earlier label rule is not seen to keep rows.)
        slices = (
            workspace.usage_records.filter(provider=provider)
            .exclude(labels={})
            .values(*MATCH_FIELDS, "labels", "metric", "unit", "application_id")
            .annotate(rows=Count("id"), total=Sum("quantity"))
            .order_by()
        )
    else:
        slices = (
            daily_for(workspace)
            .filter(provider=provider)
            .values(*MATCH_FIELDS, "metric", "unit", "application_id")
            .annotate(rows=Sum("rows"), total=Sum("quantity"))
            .order_by()
        )
    money: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    groups: dict[tuple[str, ...], int] = defaultdict(int)
    candidate_id = candidate["id"]
    for row in slices:
        values = tuple(row[name] or "" for name in MATCH_FIELDS)
        labels = labels_of(row)
        if alone.attribute_values(provider, values, labels).rule_id != candidate_id:
            continue
        rows = row["rows"] or 0
        if with_candidate.attribute_values(provider, values, labels).rule_id != candidate_id:
            preview.shadowed += rows
            continue
        preview.rows += rows
        if row["application_id"] is None:
            preview.newly += rows
        key = (row["metric"], row["unit"])
        if row["metric"] in MONEY_METRICS:
            money[key] += row["total"] or 0
        elif row["metric"] in COUNT_METRICS:
            counts[key] += row["total"] or 0
        groups[values] += rows
    preview.money = dict(sorted(money.items()))
    preview.counts = {k: counts[k] for k in sorted(counts, key=lambda k: (COUNT_METRICS.index(k[0]), k[1]))}
    ordered = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    preview.examples = [
        ({name: value for name, value in zip(MATCH_FIELDS, values, strict=True) if value}, rows)
        for values, rows in ordered[:EXAMPLES]
    ]
    preview.more_examples = max(len(ordered) - EXAMPLES, 0)
    return preview
