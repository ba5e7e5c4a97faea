"""The idempotent usage store: one bulk upsert per chunk, keyed on the natural key.

Rows are attributed as they are stored: the workspace's rules for the provider are loaded
once per chunk and matched in memory (usage/attribution.py), so a chunk costs two queries
(rules + upsert) however many samples it holds.

Storing is split in two so that a caller holding a transaction holds it only for the SQL:
`usage_prepare_samples` (rules query, attribution, model rows and the compiled INSERT … ON
CONFLICT statements: nearly all of the work) runs before the transaction opens, and
`usage_store_prepared` executes the statements inside it. On SQLite the transaction is the
database's single write lock; building the statements inside it made every other writer
(a page, beat, another worker) wait about ten times longer.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.db.models import AutoField
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery
from django.utils import timezone

from usage.attribution import Matcher, load_matcher
from usage.models import DIMENSION_FIELDS, NATURAL_KEY, UsageRecord

if TYPE_CHECKING:
    from integrations.models import Integration
    from integrations.providers.base import UsageSample

# Rows per INSERT; a chunk of N samples costs 1 + ceil(N / BATCH) queries however large N is
# (per-row attribution happens in memory, against rules loaded once per chunk).
BATCH_SIZE = 2000
# A re-stored row also takes the attribution of the rules as they are now.
UPDATE_FIELDS = ("quantity", "unit", "provenance", "updated_at", "application", "license", "rule")


@dataclass(frozen=True)
class PreparedUsage:
    """A chunk's upsert, attributed and compiled, not yet executed."""

    using: str
    statements: tuple[tuple[str, Any], ...]
    rows: int


def usage_prepare_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> PreparedUsage:
    """Attribute samples and compile their upsert; reads the rules, writes nothing.

    Duplicate keys are collapsed (last wins) so the same sample yielded twice by a provider
    is stored once.
    """
    now = timezone.now()
    matcher: Matcher | None = None
    rows: dict[tuple, UsageRecord] = {}
    for s in samples:
        if matcher is None:  # only a chunk with samples costs the rules query
            matcher = load_matcher(workspace_id=integration.workspace_id, provider=integration.provider)
        attribution = matcher.attribute(integration.provider, s)
        record = UsageRecord(
            workspace_id=integration.workspace_id,
            integration_id=integration.pk,
            provider=integration.provider,
            bucket_start=s.bucket_start,
            bucket_end=s.bucket_end,
            metric=s.metric,
            quantity=s.quantity,
            unit=s.unit,
            provenance=s.provenance,
            updated_at=now,
            application_id=attribution.application_id,
            license_id=attribution.license_id,
            rule_id=attribution.rule_id,
            **{d: getattr(s, d) or "" for d in DIMENSION_FIELDS},
        )
        rows[(s.bucket_start, s.bucket_end, *(getattr(s, d) or "" for d in DIMENSION_FIELDS), s.metric)] = record
    using = router.db_for_write(UsageRecord)
    return PreparedUsage(using, _upsert_statements(list(rows.values()), using), len(rows))


def usage_store_prepared(*, prepared: PreparedUsage) -> int:
    """Execute a prepared upsert: a key already stored gets its quantity REPLACED, never added.
    Returns the number of distinct rows written."""
    if prepared.statements:
        with connections[prepared.using].cursor() as cursor:
            for sql, params in prepared.statements:
                cursor.execute(sql, params)
    return prepared.rows


def usage_store_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> int:
    """Prepare and store in one go (see the module docstring for when to split the two)."""
    return usage_store_prepared(prepared=usage_prepare_samples(integration=integration, samples=samples))


def _upsert_statements(records: list[UsageRecord], using: str) -> tuple[tuple[str, Any], ...]:
    """The SQL `bulk_create(update_conflicts=True, unique_fields=NATURAL_KEY,
    update_fields=UPDATE_FIELDS)` would run for these new rows, compiled without running it
    (bulk_create compiles inside its own transaction)."""
    if not records:
        return ()
    opts = UsageRecord._meta
    connection = connections[using]
    fields = [f for f in opts.concrete_fields if not f.generated and not isinstance(f, AutoField)]
    unique_fields = [opts.get_field(name) for name in NATURAL_KEY]
    update_fields = [opts.get_field(name) for name in UPDATE_FIELDS]
    batch = min(BATCH_SIZE, max(connection.ops.bulk_batch_size(fields, records), 1))
    statements: list[tuple[str, Any]] = []
    for start in range(0, len(records), batch):
        query = InsertQuery(UsageRecord, on_conflict=OnConflict.UPDATE, update_fields=update_fields, unique_fields=unique_fields)
        query.insert_values(fields, records[start : start + batch])
        statements.extend(query.get_compiler(using=using).as_sql())
    return tuple(statements)
