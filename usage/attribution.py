"""Attribution: which application (and license) a usage row belongs to, and by which rule.

The matcher is pure: compiled once from a workspace's rules (one query), then asked about any
number of samples or records without touching the database. Rules are tried by ascending
`priority`, then id; the first whose provider is equal and whose every non-empty pattern
matches wins. A pattern is an exact value, or a shell-style wildcard (`*`, `?`, `[ab]`)
matched with `fnmatch.fnmatchcase`; an empty pattern matches anything.

`reattribute` walks existing rows in pk order and updates, per batch, only the rows whose
attribution changed, one UPDATE per distinct result: its cost grows with the number of
batches (and rules), never with the number of rows.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from usage.models import AttributionRule

MATCH_FIELDS: tuple[str, ...] = AttributionRule.MATCH_FIELDS
WILDCARDS = frozenset("*?[")
# Rows read per re-attribution batch; each batch costs one SELECT plus one UPDATE per distinct
# outcome. 900 keeps `pk IN (…)` under SQLite's oldest parameter limit (999).
BATCH_SIZE = 900
# A sync rarely sees more than a few hundred dimension combinations; bound the memo anyway.
_CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Attribution:
    application_id: int | None = None
    license_id: int | None = None
    rule_id: int | None = None


UNATTRIBUTED = Attribution()


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name)


def is_wildcard(pattern: str) -> bool:
    return not WILDCARDS.isdisjoint(pattern)


def escape_pattern(value: str) -> str:
    """A pattern that matches exactly `value`, even if it holds `*`, `?` or `[`."""
    return "".join(f"[{c}]" if c in WILDCARDS else c for c in value)


def _test(pattern: str) -> Callable[[str], bool]:
    if is_wildcard(pattern):
        return lambda value: fnmatchcase(value, pattern)
    return pattern.__eq__  # exact: no regex needed


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: int
    priority: int
    tests: tuple[tuple[int, Callable[[str], bool]], ...]  # (index into MATCH_FIELDS, test)
    attribution: Attribution

    def matches(self, values: tuple[str, ...]) -> bool:
        return all(test(values[i]) for i, test in self.tests)


def compile_rule(rule: Any) -> tuple[str, CompiledRule]:
    """(provider, compiled rule) from an AttributionRule, a historical model row or a dict."""
    rule_id = _get(rule, "id") if isinstance(rule, Mapping) else rule.pk
    tests = tuple((i, _test(pattern)) for i, field in enumerate(MATCH_FIELDS) if (pattern := _get(rule, field) or ""))
    attribution = Attribution(_get(rule, "application_id"), _get(rule, "license_id"), rule_id)
    return _get(rule, "provider"), CompiledRule(rule_id, _get(rule, "priority"), tests, attribution)


def dimension_values(obj: Any) -> tuple[str, ...]:
    """The values a rule is matched against, in MATCH_FIELDS order, from a sample, record or dict."""
    return tuple(_get(obj, field) or "" for field in MATCH_FIELDS)


class Matcher:
    """A workspace's rules, compiled and ordered by precedence, grouped by provider."""

    def __init__(self, rules: Iterable[Any]) -> None:
        by_provider: dict[str, list[CompiledRule]] = defaultdict(list)
        for rule in rules:
            provider, compiled = compile_rule(rule)
            by_provider[provider].append(compiled)
        self._rules = {p: sorted(rs, key=lambda r: (r.priority, r.rule_id)) for p, rs in by_provider.items()}
        # Many rows share one dimension combination (every hour of the same model and project).
        self._memo: dict[tuple[str, tuple[str, ...]], Attribution] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def attribute_values(self, provider: str, values: tuple[str, ...]) -> Attribution:
        key = (provider, values)
        found = self._memo.get(key)
        if found is None:
            found = next((r.attribution for r in self._rules.get(provider, ()) if r.matches(values)), UNATTRIBUTED)
            if len(self._memo) < _CACHE_LIMIT:
                self._memo[key] = found
        return found

    def attribute(self, provider: str, obj: Any) -> Attribution:
        """The attribution of one sample, record or dict of dimension values."""
        return self.attribute_values(provider, dimension_values(obj))


def attribute(rules: Iterable[Any], provider: str, obj: Any) -> Attribution:
    """Pure: (application_id, license_id, rule_id) of one sample or record under `rules`."""
    return Matcher(rules).attribute(provider, obj)


def load_matcher(*, workspace_id: int, provider: str | None = None, rules: QuerySet | None = None) -> Matcher:
    """The workspace's rules (optionally of one provider), compiled: one query.

    `rules` lets a data migration pass its historical model's manager.
    """
    queryset = rules if rules is not None else AttributionRule.objects.all()
    queryset = queryset.filter(workspace_id=workspace_id)
    if provider is not None:
        queryset = queryset.filter(provider=provider)
    columns = ("id", "provider", "priority", "application_id", "license_id", *MATCH_FIELDS)
    return Matcher(queryset.values(*columns))


def reattribute(
    records: QuerySet,
    matcher: Matcher,
    *,
    batch_size: int | None = None,
    on_batch: Callable[[int], bool] | None = None,
    rollups: bool = True,
) -> int:
    """Bring every row of `records` in line with `matcher`; returns the number of rows changed.

    Walks by pk with no upper bound, so rows inserted meanwhile are visited too. Each batch's
    UPDATEs and the matching moves in the daily rollups (usage.rollups.move_rows; `rollups`
    False only for migrations that run before the rollup table exists) commit together. After
    each batch `on_batch(rows_seen_in_batch)` is called; returning False stops the walk.
    """
    from usage import rollups as daily

    extra = ("workspace_id", "integration_id", "bucket_start", "metric", "unit", "quantity")
    columns = ("pk", "provider", *MATCH_FIELDS, *extra, "application_id", "license_id", "rule_id")
    dims_at = [2 + MATCH_FIELDS.index(d) for d in daily.ROLLUP_DIMENSIONS]
    extra_at = 2 + len(MATCH_FIELDS)
    model = records.model
    batch_size = batch_size or BATCH_SIZE
    zones: dict[int, Any] = {}
    changed = 0
    cursor = 0
    while True:
        # One transaction per batch: its rows are read FOR UPDATE (a sync cannot restate one
        # between this read and the UPDATE, so the rollup moves carry the quantities updated),
        # then updated, then the rollups moved.
        with transaction.atomic(using=records.db):
            query = records.filter(pk__gt=cursor).order_by("pk")
            if rollups:
                query = query.select_for_update()
            batch = list(query.values_list(*columns)[:batch_size])
            if not batch:
                return changed
            outcomes: dict[Attribution, list[int]] = defaultdict(list)
            moves: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
            for row in batch:
                wanted = matcher.attribute_values(row[1], row[2 : 2 + len(MATCH_FIELDS)])
                current = Attribution(*row[-3:])
                if wanted == current:
                    continue
                outcomes[wanted].append(row[0])
                if rollups and (wanted.application_id, wanted.license_id) != (current.application_id, current.license_id):
                    workspace_id, integration_id, start, metric, unit, quantity = row[extra_at : extra_at + len(extra)]
                    if workspace_id not in zones:
                        zones[workspace_id] = daily.workspace_zone(workspace_id)
                    slice_ = (workspace_id, integration_id, row[1], daily.local_day(start, zones[workspace_id]),
                              *(row[i] for i in dims_at), metric, unit)  # fmt: skip
                    for attribution, sign in ((current, -1), (wanted, 1)):
                        move = moves[(*slice_, attribution.application_id, attribution.license_id)]
                        move[0] += sign * quantity
                        move[1] += sign
            for wanted, pks in outcomes.items():
                model._base_manager.filter(pk__in=pks).update(
                    application_id=wanted.application_id, license_id=wanted.license_id, rule_id=wanted.rule_id
                )
                changed += len(pks)
            if moves:
                daily.move_rows({key: (q, n) for key, (q, n) in moves.items()}, using=records.db)
        cursor = batch[-1][0]
        if on_batch is not None and on_batch(len(batch)) is False:
            return changed
