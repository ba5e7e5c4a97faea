"""Attribution: which application (and license) a usage row belongs to, and by which rule.

The matcher is pure: compiled once from a workspace's rules (one query), then asked about any
number of samples or records without touching the database. Rules are tried by ascending
`priority`, then id; the first whose provider is equal and whose every non-empty pattern
matches wins. A pattern is an exact value, or a shell-style wildcard (`*`, `?`, `[ab]`)
matched with `fnmatch.fnmatchcase`; an empty pattern matches anything. A rule's `label`
("team=search", "team=search-*") matches a row carrying that label key with a value matching
the pattern: rows keep the provider's labels (UsageRecord.labels, outside the natural key).

`reattribute` walks existing rows in (bucket_start, id) order and updates, per batch, only the
rows whose attribution changed, one UPDATE per distinct result: its cost grows with the number
of batches (and rules), never with the number of rows. Walking by the partition key keeps each
batch, and its UPDATEs, inside one or two monthly partitions on PostgreSQL (usage/partitions.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

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


Labels = tuple[tuple[str, str], ...]  # sorted (key, value) pairs


def parse_label_pattern(text: str) -> tuple[str, str] | None:
    """("team", "search*") of "team=search*"; None for an empty pattern. Raises ValueError for
    one without a key or without "=" (forms validate before saving)."""
    text = (text or "").strip()
    if not text:
        return None
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError("A label pattern is key=value, e.g. team=search.")
    return key.strip(), value.strip()


def _label_test(pattern: str) -> Callable[[Labels], bool] | None:
    try:
        parsed = parse_label_pattern(pattern)
    except ValueError:
        return lambda labels: False  # a malformed stored pattern matches nothing, never everything
    if parsed is None:
        return None
    key, value_pattern = parsed
    test = _test(value_pattern)
    return lambda labels: any(k == key and test(v) for k, v in labels)


def labels_of(obj: Any) -> Labels:
    """A sample's, record's or dict's labels as sorted (key, value) pairs."""
    raw = obj.get("labels") if isinstance(obj, Mapping) else getattr(obj, "labels", None)
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, Mapping) else raw
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: int
    priority: int
    tests: tuple[tuple[int, Callable[[str], bool]], ...]  # (index into MATCH_FIELDS, test)
    attribution: Attribution
    label_test: Callable[[Labels], bool] | None = None

    def matches(self, values: tuple[str, ...], labels: Labels = ()) -> bool:
        if self.label_test is not None and not self.label_test(labels):
            return False
        return all(test(values[i]) for i, test in self.tests)


def compile_rule(rule: Any) -> tuple[str, CompiledRule]:
    """(provider, compiled rule) from an AttributionRule, a historical model row or a dict."""
    rule_id = _get(rule, "id") if isinstance(rule, Mapping) else rule.pk
    tests = tuple((i, _test(pattern)) for i, field in enumerate(MATCH_FIELDS) if (pattern := _get(rule, field) or ""))
    attribution = Attribution(_get(rule, "application_id"), _get(rule, "license_id"), rule_id)
    label = (rule.get("label") if isinstance(rule, Mapping) else getattr(rule, "label", "")) or ""
    return _get(rule, "provider"), CompiledRule(rule_id, _get(rule, "priority"), tests, attribution, _label_test(label))


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
        self._memo: dict[tuple[str, tuple[str, ...], Labels], Attribution] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def attribute_values(self, provider: str, values: tuple[str, ...], labels: Labels = ()) -> Attribution:
        key = (provider, values, labels)
        found = self._memo.get(key)
        if found is None:
            found = next(
                (r.attribution for r in self._rules.get(provider, ()) if r.matches(values, labels)), UNATTRIBUTED
            )
            if len(self._memo) < _CACHE_LIMIT:
                self._memo[key] = found
        return found

    def attribute(self, provider: str, obj: Any) -> Attribution:
        """The attribution of one sample, record or dict of dimension values (and labels)."""
        return self.attribute_values(provider, dimension_values(obj), labels_of(obj))


def attribute(rules: Iterable[Any], provider: str, obj: Any) -> Attribution:
    """Pure: (application_id, license_id, rule_id) of one sample or record under `rules`."""
    return Matcher(rules).attribute(provider, obj)


def _has_field(model: Any, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def load_matcher(*, workspace_id: int, provider: str | None = None, rules: QuerySet | None = None) -> Matcher:
    """The workspace's rules (optionally of one provider), compiled: one query.

    `rules` lets a data migration pass its historical model's manager.
    """
    queryset = rules if rules is not None else AttributionRule.objects.all()
    queryset = queryset.filter(workspace_id=workspace_id)
    if provider is not None:
        queryset = queryset.filter(provider=provider)
    columns = ("id", "provider", "priority", "application_id", "license_id", *MATCH_FIELDS)
    if _has_field(queryset.model, "label"):  # a data migration's historical model may predate it
        columns = (*columns, "label")
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

    Walks by (bucket_start, id) with no upper bound, so rows inserted meanwhile at later
    buckets are visited too (rows stored meanwhile at earlier buckets were attributed by the
    store, with the rules as they were then: re-check them by `updated_at`, as
    services.reattribution_run does). Each batch's UPDATEs (bounded by the batch's bucket range,
    so on PostgreSQL only its partitions are searched) and the matching moves in the daily
    rollups (usage.rollups.move_rows; `rollups` False only for migrations that run before the
    rollup table exists) commit together. After each batch `on_batch(rows_seen_in_batch)` is
    called; returning False stops the walk.
    """
    from usage import rollups as daily

    # A data migration's historical model may predate `labels`: then every row has none.
    extra = ("workspace_id", "integration_id", "metric", "unit", "quantity",
             "labels" if _has_field(records.model, "labels") else "metric")  # fmt: skip
    columns = ("bucket_start", "pk", "provider", *MATCH_FIELDS, *extra, "application_id", "license_id", "rule_id")
    dims_at = [3 + MATCH_FIELDS.index(d) for d in daily.ROLLUP_DIMENSIONS]
    extra_at = 3 + len(MATCH_FIELDS)
    model = records.model
    batch_size = batch_size or BATCH_SIZE
    zones: dict[int, Any] = {}
    changed = 0
    after: tuple | None = None
    while True:
        # One transaction per batch: its rows are read FOR UPDATE (a sync cannot restate one
        # between this read and the UPDATE, so the rollup moves carry the quantities updated),
        # then updated (bounded by the batch's bucket range: on PostgreSQL only its partitions
        # are searched), then the rollups moved.
        with transaction.atomic(using=records.db):
            page = records
            if after is not None:
                # `bucket_start >= …` alone is what an index range scan (and partition pruning) uses.
                page = page.filter(bucket_start__gte=after[0]).filter(
                    Q(bucket_start__gt=after[0]) | Q(bucket_start=after[0], pk__gt=after[1])
                )
            query = page.order_by("bucket_start", "pk")
            if rollups:
                query = query.select_for_update()
            batch = list(query.values_list(*columns)[:batch_size])
            if not batch:
                return changed
            outcomes: dict[Attribution, list[int]] = defaultdict(list)
            moves: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
            for row in batch:
                raw_labels = row[extra_at + len(extra) - 1] if extra[-1] == "labels" else None
                wanted = matcher.attribute_values(
                    row[2], row[3 : 3 + len(MATCH_FIELDS)], labels_of({"labels": raw_labels})
                )
                current = Attribution(*row[-3:])
                if wanted == current:
                    continue
                outcomes[wanted].append(row[1])
                if rollups and (wanted.application_id, wanted.license_id) != (
                    current.application_id,
                    current.license_id,
                ):
                    workspace_id, integration_id, metric, unit, quantity, _ = row[extra_at : extra_at + len(extra)]
                    if workspace_id not in zones:
                        zones[workspace_id] = daily.workspace_zone(workspace_id)
                    slice_ = (workspace_id, integration_id, row[2], daily.local_day(row[0], zones[workspace_id]),
                              *(row[i] for i in dims_at), metric, unit)  # fmt: skip
                    for attribution, sign in ((current, -1), (wanted, 1)):
                        move = moves[(*slice_, attribution.application_id, attribution.license_id)]
                        move[0] += sign * quantity
                        move[1] += sign
            in_batch = model._base_manager.filter(bucket_start__gte=batch[0][0], bucket_start__lte=batch[-1][0])
            for wanted, pks in outcomes.items():
                in_batch.filter(pk__in=pks).update(
                    application_id=wanted.application_id, license_id=wanted.license_id, rule_id=wanted.rule_id
                )
                changed += len(pks)
            if moves:
                daily.move_rows({key: (q, n) for key, (q, n) in moves.items()}, using=records.db)
        after = batch[-1][:2]
        if on_batch is not None and on_batch(len(batch)) is False:
            return changed
