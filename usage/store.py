"""The idempotent usage store: one bulk upsert per chunk, keyed on the natural key.

Rows are attributed as they are stored: the workspace's rules for the provider are loaded
once per chunk and matched in memory (usage/attribution.py), so a chunk costs two queries
(rules + upsert) however many samples it holds.

Storing is split in two so that a caller holding a transaction holds it only for the SQL:
`usage_prepare_samples` (rules query, attribution, each value adapted for the database, the INSERT … ON
CONFLICT statements: nearly all of the work) runs before the transaction opens, and
`usage_store_prepared` executes the statements inside it. On SQLite the transaction is the
database's single write lock; building the statements inside it made every other writer
(a page, beat, another worker) wait about ten times longer.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any

from django.db import connections, models, router
from django.db.models.constants import OnConflict
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
    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    rows: int


@dataclass(frozen=True)
class _Upsert:
    """How one database takes a UsageRecord row: the columns in order, each value's adapter
    (None: passed as is), and the SQL around the VALUES list."""

    names: tuple[str, ...]
    adapted: tuple[models.Field | None, ...]  # the field whose get_db_prep_save adapts the value
    batch: int
    prefix: str
    row: str
    suffix: str


def usage_prepare_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> PreparedUsage:
    """Attribute samples and compile their upsert; reads the rules, writes nothing.

    Duplicate keys are collapsed (last wins) so the same sample yielded twice by a provider
    is stored once.
    """
    using = router.db_for_write(UsageRecord)
    connection = connections[using]
    upsert = _upsert(using)
    now = timezone.now()
    matcher: Matcher | None = None
    fixed = {
        "workspace_id": integration.workspace_id,
        "integration_id": integration.pk,
        "provider": integration.provider,
        "updated_at": now,
    }
    adapted: dict[Any, Any] = {}  # a chunk has few distinct bucket times: adapt each once
    rows: dict[tuple, tuple[Any, ...]] = {}
    for s in samples:
        if matcher is None:  # only a chunk with samples costs the rules query
            matcher = load_matcher(workspace_id=integration.workspace_id, provider=integration.provider)
        attribution = matcher.attribute(integration.provider, s)
        dims = tuple(getattr(s, d) or "" for d in DIMENSION_FIELDS)
        values = {
            **fixed,
            **dict(zip(DIMENSION_FIELDS, dims, strict=True)),
            "bucket_start": s.bucket_start,
            "bucket_end": s.bucket_end,
            "metric": s.metric,
            "quantity": s.quantity,
            "unit": s.unit,
            "provenance": s.provenance,
            "application_id": attribution.application_id,
            "license_id": attribution.license_id,
            "rule_id": attribution.rule_id,
        }
        row = []
        for name, field in zip(upsert.names, upsert.adapted, strict=True):
            value = values[name]
            if field is not None:
                key = (name, value)
                if key not in adapted:
                    adapted[key] = field.get_db_prep_save(value, connection)
                value = adapted[key]
            row.append(value)
        rows[(s.bucket_start, s.bucket_end, *dims, s.metric)] = tuple(row)
    values_list = list(rows.values())
    statements = tuple(
        (
            f"{upsert.prefix} VALUES {', '.join([upsert.row] * len(batch))} {upsert.suffix}",
            tuple(chain.from_iterable(batch)),
        )
        for batch in (values_list[i : i + upsert.batch] for i in range(0, len(values_list), upsert.batch))
    )
    return PreparedUsage(using, statements, len(values_list))


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


# Values of these field types go to the driver as they are (str, int or None).
_AS_IS = (models.CharField, models.ForeignKey, models.IntegerField)


@cache
def _upsert(using: str) -> _Upsert:
    """What `bulk_create(update_conflicts=True, unique_fields=NATURAL_KEY,
    update_fields=UPDATE_FIELDS)` would send, built once per database: the same columns,
    values adapted by each field, one multi-row INSERT … ON CONFLICT DO UPDATE per batch.
    Built here rather than by bulk_create because bulk_create compiles every value through
    the ORM inside its own transaction: five times slower, and it would hold the lock."""
    connection = connections[using]
    opts = UsageRecord._meta
    fields = [f for f in opts.concrete_fields if not f.generated and not isinstance(f, models.AutoField)]
    for f in fields:
        assert not hasattr(f, "get_placeholder"), f"{f.name} needs its own SQL placeholder"
    qn = connection.ops.quote_name
    return _Upsert(
        names=tuple(f.attname for f in fields),
        adapted=tuple(None if isinstance(f, _AS_IS) else f for f in fields),
        batch=min(BATCH_SIZE, max(connection.ops.bulk_batch_size(fields, [None] * BATCH_SIZE), 1)),
        prefix=f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)})",
        row=f"({', '.join(['%s'] * len(fields))})",
        suffix=connection.ops.on_conflict_suffix_sql(
            fields,
            OnConflict.UPDATE,
            [opts.get_field(name).column for name in UPDATE_FIELDS],
            [opts.get_field(name).column for name in NATURAL_KEY],
        ),
    )
