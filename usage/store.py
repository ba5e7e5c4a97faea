"""The idempotent usage store: one bulk upsert per chunk, keyed on the natural key, and the
removal of rows a complete re-read no longer returns.

Rows are attributed as they are stored: the workspace's rules for the provider are loaded
once per chunk and matched in memory (usage/attribution.py), so a chunk costs two queries
(rules + upsert) however many samples it holds.

Storing is split in two so that a caller holding a transaction holds it only for the SQL:
`usage_prepare_samples` (rules query, attribution, each value adapted for the database, the
INSERT … ON CONFLICT statements: nearly all of the work) runs before the transaction opens, and
`usage_store_prepared` / `usage_store_chunk` execute the statements inside it. On SQLite the
transaction is the database's single write lock; building the statements inside it made every
other writer (a page, beat, another worker) wait about ten times longer.

Ghosts. An upsert alone never forgets a key: when a provider restates a window and a key has
vanished (a SKU renamed, a credit withdrawn, a line item re-labelled), the old row would stay
beside its replacement. `usage_store_chunk` therefore takes the connector's `Answered`
declarations too: every row a prepared chunk upserts is stamped with a fresh `store_batch`,
and then the rows of an answered stream, window and scope that do not carry that stamp —
stored earlier, not returned now — are removed (never imported rows). One SELECT … FOR UPDATE
finds them (the removed rows are returned, for anything kept in step with them) and one DELETE
removes them.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any

from django.db import connections, models, router, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.utils import timezone

from usage.attribution import Matcher, load_matcher
from usage.models import DIMENSION_FIELDS, NATURAL_KEY, UsageRecord
from usage.rollups import refresh_moments

if TYPE_CHECKING:
    from integrations.models import Integration
    from integrations.providers.base import Answered, UsageSample

# Rows per INSERT; a chunk of N samples costs 1 + ceil(N / BATCH) queries however large N is
# (per-row attribution happens in memory, against rules loaded once per chunk).
BATCH_SIZE = 2000
# A re-stored row also takes the attribution of the rules as they are now, and the sample's
# provenance and stream (an imported figure replacing a synced one becomes imported, and is
# never removed by a re-read).
UPDATE_FIELDS = (
    "quantity", "unit", "provenance", "stream", "store_batch", "updated_at", "application", "license", "rule",
)  # fmt: skip
# Answers OR-ed into one SELECT, and ids per DELETE: far inside SQLite's expression depth
# (1000) and variable (32766) limits, so a chunk normally costs one of each.
ANSWERS_PER_QUERY = 200
IDS_PER_DELETE = 2000
IMPORTED = "imported"  # usage.importer.PROVENANCE: rows a sync never removes


@dataclass(frozen=True)
class PreparedUsage:
    """A chunk's upsert, attributed and compiled, not yet executed. Every row it writes carries
    `store_batch`: "written by this chunk", without any clock."""

    using: str
    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    rows: int
    store_batch: int
    # The distinct bucket_starts written: the days whose rollups the store refreshes.
    bucket_starts: frozenset[datetime] = frozenset()


@dataclass(frozen=True)
class ChunkStored:
    """What storing one chunk did: rows upserted, and the rows removed because a complete
    re-read no longer returned them (as they were just before removal)."""

    written: int
    removed: list[UsageRecord] = field(default_factory=list)


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
    batch = secrets.randbits(62) + 1
    matcher: Matcher | None = None
    fixed = {
        "workspace_id": integration.workspace_id,
        "integration_id": integration.pk,
        "provider": integration.provider,
        "updated_at": now,
        "store_batch": batch,
    }
    adapted: dict[Any, Any] = {}  # a chunk has few distinct bucket times: adapt each once
    starts: set[datetime] = set()
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
            "stream": s.stream,
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
        starts.add(s.bucket_start)
    values_list = list(rows.values())
    statements = tuple(
        (
            f"{upsert.prefix} VALUES {', '.join([upsert.row] * len(batch))} {upsert.suffix}",
            tuple(chain.from_iterable(batch)),
        )
        for batch in (values_list[i : i + upsert.batch] for i in range(0, len(values_list), upsert.batch))
    )
    return PreparedUsage(using, statements, len(values_list), batch, frozenset(starts))


def usage_store_chunk(
    *,
    integration: Integration,
    answered: Sequence[Answered],
    prepared: PreparedUsage | None = None,
    samples: Iterable[UsageSample] = (),
) -> ChunkStored:
    """Store one chunk of a sync (`prepared` before the transaction by usage_prepare_samples, or
    its `samples` prepared here): upsert its rows, then remove the rows of `integration`
    that a sync wrote for an answered stream, inside that answer's window (by bucket_start)
    and scope, and that this chunk did not write again. Imported rows, rows of other streams
    or scopes and rows outside the windows are never touched. Run it inside the chunk's
    transaction (the engine does), so the upsert, the removal and the refresh of the daily
    rollups of every day written or removed (usage.rollups) commit together."""
    if prepared is None:
        prepared = usage_prepare_samples(integration=integration, samples=samples)
    with transaction.atomic(using=prepared.using, savepoint=False):
        written = usage_store_prepared(prepared=prepared)
        removed = _remove_unanswered(integration, answered, prepared.store_batch)
        refresh_moments(integration, chain(prepared.bucket_starts, (r.bucket_start for r in removed)))
    return ChunkStored(written=written, removed=removed)


def _answer_q(answer: Answered) -> Q | None:
    if any(not values for values in answer.scope.values()):
        return None  # a scope with no values answered nothing
    lookups = {f"{name}__in": sorted(values) for name, values in answer.scope.items()}
    return Q(stream=answer.stream, bucket_start__gte=answer.window.start, bucket_start__lt=answer.window.end, **lookups)


def _remove_unanswered(integration: Integration, answered: Sequence[Answered], batch: int) -> list[UsageRecord]:
    conditions = [(a, q) for a in dict.fromkeys(answered) if (q := _answer_q(a)) is not None]
    removed: list[UsageRecord] = []
    for i in range(0, len(conditions), ANSWERS_PER_QUERY):
        part = conditions[i : i + ANSWERS_PER_QUERY]
        where = Q()
        for _, q in part:
            where |= q
        # The windows' hull as a plain range too: without it SQLite's planner uses the
        # (integration, bucket_start) index on the integration alone and reads all its history.
        start, end = min(a.window.start for a, _ in part), max(a.window.end for a, _ in part)
        candidates = (
            UsageRecord.objects.filter(integration=integration, bucket_start__gte=start, bucket_start__lt=end)
            .filter(where)
            .exclude(provenance=IMPORTED)
            .exclude(store_batch=batch)  # NULL (rows stored before streams existed) included
        )
        # FOR UPDATE (PostgreSQL; SQLite has one writer anyway): an import cannot turn a row
        # into an imported one between this SELECT and the DELETE, so what is returned is
        # exactly what was removed.
        found = list(candidates.select_for_update().order_by("pk"))
        for j in range(0, len(found), IDS_PER_DELETE):
            ids = [r.pk for r in found[j : j + IDS_PER_DELETE]]
            UsageRecord.objects.filter(pk__in=ids).delete()  # nothing refers to a row: one DELETE
        removed += found
    return removed


def usage_store_prepared(*, prepared: PreparedUsage) -> int:
    """Execute a prepared upsert: a key already stored gets its quantity REPLACED, never added.
    Returns the number of distinct rows written."""
    if prepared.statements:
        with connections[prepared.using].cursor() as cursor:
            for sql, params in prepared.statements:
                cursor.execute(sql, params)
    return prepared.rows


def usage_store_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> int:
    """Prepare and store in one go (see the module docstring for when to split the two), and
    refresh the daily rollups of the days written, in the same transaction."""
    prepared = usage_prepare_samples(integration=integration, samples=samples)
    with transaction.atomic(using=prepared.using, savepoint=False):
        written = usage_store_prepared(prepared=prepared)
        refresh_moments(integration, prepared.bucket_starts)
    return written


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
