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

Two ways to execute. On PostgreSQL the prepared rows are COPY text: inside the transaction they
are copied into a temporary staging table (no WAL, no index) and moved into usage_usagerecord by
one INSERT … SELECT … ON CONFLICT DO UPDATE, so a chunk of any size costs three statements and
runs near the speed of COPY itself (docs/performance.md, "Ingest"); a restated key whose values
did not change is left as it is there. Elsewhere (SQLite) they are multi-row INSERT … VALUES …
ON CONFLICT statements of BATCH_SIZE rows. Both leave the same rows with the same values.

Rollups. A chunk stored by `usage_store_chunk` or `usage_store_samples` on PostgreSQL keeps the
daily rollups by difference: the one statement that writes it also sums, per rollup slice and
local day, what it changed (+new for a row inserted, −old +new for a row rewritten) into a
temporary delta table, and usage.rollups.apply_delta adds that table to the rollups under the
integration's rollup lock. Whatever that cannot count exactly (a concurrent writer of the same
rows, a zone changed meanwhile, a day already out of step) falls back to recomputing the days
from the base table. The VALUES path, and `usage_store_prepared` (the importer), recompute.

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

import json
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.db.models.expressions import RawSQL
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from usage.attribution import Matcher, load_matcher
from usage.dimensions import ROLLUP_DIMENSIONS
from usage.models import DIMENSION_FIELDS, NATURAL_KEY, UsageRecord
from usage.rollups import DELTA_COLUMNS, apply_delta, day_sql, refresh_moments, workspace_zone, zone_sql_name

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
    "quantity", "unit", "provenance", "stream", "labels", "store_batch", "updated_at", "application", "license", "rule",
)  # fmt: skip
# Answers OR-ed into one SELECT, and ids per DELETE: far inside SQLite's expression depth
# (1000) and variable (32766) limits, so a chunk normally costs one of each.
ANSWERS_PER_QUERY = 200
IDS_PER_DELETE = 2000
IMPORTED = "imported"  # usage.importer.PROVENANCE: rows a sync never removes
# Databases whose chunks go through COPY and a staging table; the others (and these, when it is
# emptied: the tests compare the two paths on PostgreSQL) get multi-row INSERT … VALUES.
COPY_VENDORS = frozenset({"postgresql"})


@dataclass(frozen=True)
class PreparedUsage:
    """A chunk's upsert, attributed and compiled, not yet executed. Every row it writes carries
    `store_batch`: "written by this chunk", without any clock."""

    using: str
    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    rows: int
    store_batch: int
    # The distinct bucket starts of the rows written (what a chunk touches, for whatever is kept
    # in step with the rows, such as rollups of their days).
    bucket_starts: frozenset[datetime] = frozenset()
    # PostgreSQL: the rows as COPY text for the staging table (then `statements` holds the one
    # INSERT … SELECT … ON CONFLICT that moves them); empty elsewhere.
    copy_data: bytes = b""


@dataclass(frozen=True)
class ChunkStored:
    """What storing one chunk did: rows upserted, and the rows removed because a complete
    re-read no longer returned them (as they were just before removal)."""

    written: int
    removed: list[UsageRecord] = field(default_factory=list)


@dataclass(frozen=True)
class _Upkeep:
    """What a stored chunk leaves to its rollups: the bucket starts whose days are to be
    recomputed, or (`delta_zone`: the PostgreSQL path) its differences summed per slice and
    local day in that zone, in the delta table (`wrote`: some row was inserted or rewritten)."""

    changed: frozenset[datetime] = frozenset()
    delta_zone: str | None = None
    wrote: bool = False


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
    if connection.vendor in COPY_VENDORS:
        return _prepare_copy(integration, samples, using)
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
    labels_field = UsageRecord._meta.get_field("labels")
    labels_cache: dict[tuple, Any] = {}

    def labels_adapted(labels: tuple) -> Any:  # a dict is no cache key: adapted here, passed as is
        if labels not in labels_cache:
            labels_cache[labels] = labels_field.get_db_prep_save(dict(labels), connection)
        return labels_cache[labels]

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
            "labels": labels_adapted(s.labels),
            "application_id": attribution.application_id,
            "license_id": attribution.license_id,
            "rule_id": attribution.rule_id,
        }
        row = []
        for name, model_field in zip(upsert.names, upsert.adapted, strict=True):
            value = values[name]
            if model_field is not None:
                key = (name, value)
                if key not in adapted:
                    adapted[key] = model_field.get_db_prep_save(value, connection)
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
        written, upkeep = _store_prepared(prepared, integration)
        removed = _remove_unanswered(integration, answered, prepared)
        _keep_rollups(integration, prepared, upkeep, [r.bucket_start for r in removed])
    return ChunkStored(written=written, removed=removed)


def _keep_rollups(
    integration: Integration, prepared: PreparedUsage, upkeep: _Upkeep, removed: Sequence[datetime] = ()
) -> None:
    """Bring the integration's rollups in step with what the chunk wrote and removed: add its
    differences (PostgreSQL), or recompute the days it changed; the days of removed rows are
    recomputed either way."""
    if upkeep.delta_zone is None:
        refresh_moments(integration, chain(upkeep.changed, removed))
    elif upkeep.wrote or removed:
        apply_delta(integration, _DELTA, upkeep.delta_zone, fallback=prepared.bucket_starts, removed=removed)


def _answer_q(answer: Answered) -> Q | None:
    if any(not values for values in answer.scope.values()):
        return None  # a scope with no values answered nothing
    lookups = {f"{name}__in": sorted(values) for name, values in answer.scope.items()}
    return Q(stream=answer.stream, bucket_start__gte=answer.window.start, bucket_start__lt=answer.window.end, **lookups)


def _remove_unanswered(
    integration: Integration, answered: Sequence[Answered], prepared: PreparedUsage
) -> list[UsageRecord]:
    batch = prepared.store_batch
    conditions = [(a, q) for a in dict.fromkeys(answered) if (q := _answer_q(a)) is not None]
    removed: list[UsageRecord] = []
    if prepared.copy_data and conditions:
        if not connections[prepared.using].in_atomic_block:
            # The staging table went with the store's own transaction: without it, every row
            # the chunk left unchanged would look vanished.
            raise TransactionManagementError("usage_store_chunk must run inside the chunk's transaction")
        # Keyed, so that the anti-join below stays a hash join or index probes whatever the
        # planner guesses: on a new integration it guesses "one candidate row" and, against
        # an unindexed table, a nested loop over both (100k × 100k rows: minutes).
        with connections[prepared.using].cursor() as cursor:
            cursor.execute(_staging(prepared.using).index)
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
        if prepared.copy_data:  # PostgreSQL: an unchanged row was not stamped, but it was staged
            candidates = candidates.filter(_not_staged(prepared.using))
        # FOR UPDATE (PostgreSQL; SQLite has one writer anyway): an import cannot turn a row
        # into an imported one between this SELECT and the DELETE, so what is returned is
        # exactly what was removed.
        found = list(candidates.select_for_update().order_by("pk"))
        for j in range(0, len(found), IDS_PER_DELETE):
            ids = [r.pk for r in found[j : j + IDS_PER_DELETE]]
            # Nothing refers to a row: one DELETE. The bucket range lets PostgreSQL search
            # only the windows' monthly partitions for the ids.
            UsageRecord.objects.filter(bucket_start__gte=start, bucket_start__lt=end, pk__in=ids).delete()
        removed += found
    return removed


def usage_store_prepared(*, prepared: PreparedUsage) -> int:
    """Execute a prepared upsert: a key already stored gets its quantity REPLACED, never added.
    Returns the number of distinct rows written. The rollups are the caller's to refresh
    (refresh_moments over the chunks' bucket starts, as the importer does)."""
    return _store_prepared(prepared)[0]


def _store_prepared(prepared: PreparedUsage, integration: Integration | None = None) -> tuple[int, _Upkeep]:
    """`usage_store_prepared`, and what it leaves to the rollups (`_Upkeep`). On PostgreSQL,
    given the `integration`, its differences (see _execute_copy); without, the bucket starts of
    rows inserted or rewritten (a restated row whose values are all unchanged is not, and its
    day's rollups need no recomputing). On the VALUES path every bucket start of the chunk."""
    if prepared.copy_data:
        zone = None if integration is None else zone_sql_name(workspace_zone(integration.workspace_id))
        return prepared.rows, _execute_copy(prepared, zone)
    if prepared.statements:
        with connections[prepared.using].cursor() as cursor:
            for sql, params in prepared.statements:
                cursor.execute(sql, params)
    return prepared.rows, _Upkeep(changed=prepared.bucket_starts)


def usage_store_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> int:
    """Prepare and store in one go (see the module docstring for when to split the two), and
    refresh the daily rollups of the days written, in the same transaction."""
    prepared = usage_prepare_samples(integration=integration, samples=samples)
    with transaction.atomic(using=prepared.using, savepoint=False):
        written, upkeep = _store_prepared(prepared, integration)
        _keep_rollups(integration, prepared, upkeep)
    return written


# Values of these field types go to the driver as they are (str, int or None).
# JSONField (labels) is adapted before the loop, once per distinct value (a dict is no cache key).
_AS_IS = (models.CharField, models.ForeignKey, models.IntegerField, models.JSONField)


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
    qn: Callable[[Any], str] = connection.ops.quote_name  # a column name is never None here
    return _Upsert(
        names=tuple(f.attname for f in fields),
        adapted=tuple(None if isinstance(f, _AS_IS) else f for f in fields),
        batch=min(BATCH_SIZE, max(connection.ops.bulk_batch_size(fields, [None] * BATCH_SIZE), 1)),
        prefix=f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)})",
        row=f"({', '.join(['%s'] * len(fields))})",
        suffix=connection.ops.on_conflict_suffix_sql(
            fields,
            OnConflict.UPDATE,
            [opts.get_field(name).column for name in UPDATE_FIELDS],  # type: ignore[union-attr]
            [opts.get_field(name).column for name in NATURAL_KEY],  # type: ignore[union-attr]
        ),
    )


# ---------------------------------------------------------------- PostgreSQL: COPY, then one upsert
# The columns a chunk sets once for all its rows (parameters of the INSERT … SELECT), and the
# columns each row brings (the staging table's, in COPY order).
_CHUNK_COLUMNS = ("workspace_id", "integration_id", "provider", "updated_at", "store_batch")
_ROW_COLUMNS = (
    "bucket_start", "bucket_end", *DIMENSION_FIELDS, "metric", "quantity", "unit", "provenance", "stream", "labels",
    "application_id", "license_id", "rule_id",
)  # fmt: skip


def _labels_json(sample: Any) -> str:
    """A sample's labels as the JSON object stored in UsageRecord.labels ("{}" for none)."""
    labels = getattr(sample, "labels", ()) or ()
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":")) if labels else "{}"


_STAGING = "doow_usage_staging"
# The chunk's differences per rollup slice and local day (usage.rollups.apply_delta).
_DELTA = "doow_usage_delta"
# Planner settings of the difference path's two statements, for their transaction until reset.
# The integration's rows in the chunk's window are often not in the table's statistics yet (a
# new integration, a new month): the planner then guesses one row and joins the staging table
# to them by a nested loop, 100k × 100k comparisons. Hash joins are right at every size a
# chunk has; the memory keeps the join and the per-slice sums of 100k rows off the disk.
_BULK_PLAN = "SET LOCAL enable_nestloop = off; SET LOCAL work_mem = '64MB'"
_BULK_PLAN_RESET = "RESET enable_nestloop; RESET work_mem"
# The columns a rewrite may change that place a row in a rollup slice, then its quantity.
_MOVED = ("unit", "application_id", "license_id", "quantity")
# Bookkeeping columns: written with a row's values, never a reason to rewrite it.
_STAMPS = ("store_batch", "updated_at")
# COPY text format: these four characters are the only ones a value must escape.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


@cache
def _not_staged(using: str) -> RawSQL:
    """True for a row whose natural key is not in the staging table (the chunk just stored).
    The table holds one integration's chunk, and the rows asked about are that integration's."""
    qn: Callable[[Any], str] = connections[using].ops.quote_name  # a column name is never None here
    table = qn(UsageRecord._meta.db_table)
    columns = [qn(UsageRecord._meta.get_field(name).column) for name in NATURAL_KEY if name != "integration"]  # type: ignore[union-attr]
    same = " AND ".join(f"s.{c} = {table}.{c}" for c in columns)
    return RawSQL(f"NOT EXISTS (SELECT 1 FROM {_STAGING} s WHERE {same})", (), output_field=models.BooleanField())


class _CopyTexts(dict):
    """value -> its COPY text, computed on first use: a datetime as the database takes it, a
    string escaped."""

    def __init__(self, datetime_field: models.Field, connection: Any) -> None:
        super().__init__()
        self.datetime_field = datetime_field
        self.connection = connection

    def __missing__(self, value: Any) -> str:
        if isinstance(value, datetime):
            text = self.datetime_field.get_db_prep_save(value, self.connection).isoformat()
        else:
            text = value.translate(_COPY_ESCAPES)
        self[value] = text
        return text


@dataclass(frozen=True)
class _Staging:
    create: str
    copy: str
    insert: str
    index: str
    # The rollup-difference path (see _execute_copy): the delta table, and the statement that
    # inserts new keys, rewrites changed rows and sums what it wrote into the delta table.
    create_delta: str
    write_by_difference: str
    write_by_difference_again: str


@cache
def _staging(using: str) -> _Staging:
    """The statements of the PostgreSQL path, built once: a temporary table of the row columns
    (their types taken from the model's fields, so a value is converted exactly as the ORM's
    INSERT would convert it), and the INSERT … SELECT that upserts it with the same ON CONFLICT
    clause as the VALUES path."""
    connection = connections[using]
    opts = UsageRecord._meta
    upsert = _upsert(using)
    assert sorted(upsert.names) == sorted(_CHUNK_COLUMNS + _ROW_COLUMNS), "a UsageRecord column is not staged"
    qn: Callable[[Any], str] = connection.ops.quote_name  # a column name is never None here
    fields = {f.attname: f for f in opts.concrete_fields}
    columns = ", ".join(f"{qn(fields[name].column)} {fields[name].db_type(connection)}" for name in _ROW_COLUMNS)
    rows = ", ".join(qn(fields[name].column) for name in _ROW_COLUMNS)
    chunk = ", ".join(qn(fields[name].column) for name in _CHUNK_COLUMNS)
    placeholders = ", ".join(["%s"] * len(_CHUNK_COLUMNS))
    table = qn(opts.db_table)
    key = set(NATURAL_KEY)
    compared = [qn(opts.get_field(name).column) for name in UPDATE_FIELDS if name not in _STAMPS]  # type: ignore[union-attr]
    # ---- the rollup-difference path (_execute_copy with a zone)
    key_columns = [qn(fields[n].column) for n in _ROW_COLUMNS if n in key]  # the natural key but the integration
    integration = qn(fields["integration_id"].column)
    start, ident, rows_ = qn(fields["bucket_start"].column), qn(opts.pk.column), qn("rows")
    sliced = ", ".join(qn(fields[name].column) for name in (*ROLLUP_DIMENSIONS, "metric"))  # in the key
    moved = [qn(fields[name].column) for name in _MOVED]  # what a rewrite may move between slices
    old = [qn(f"old_{name}") for name in _MOVED]
    new = [qn(f"new_{name}") for name in _MOVED]
    delta_names = [*DELTA_COLUMNS, "quantity", "rows"]
    delta_types = {name: "date" if name == "day" else fields[name].db_type(connection) for name in DELTA_COLUMNS}
    delta_table = ", ".join(
        f"{qn(c)} {delta_types.get(c, {'quantity': 'numeric', 'rows': 'bigint'}.get(c))}" for c in delta_names
    )
    # The local day of a row, its zone a parameter (_execute_copy passes it): TruncDate's own SQL.
    day = connection.ops.datetime_cast_date_sql(start, (), "UTC")[0]
    groups = ", ".join(str(i) for i in range(1, len(DELTA_COLUMNS) + 1))
    summed = f"INSERT INTO {_DELTA} ({', '.join(qn(c) for c in delta_names)}) SELECT {day}, {sliced}, "
    slice_of = ", ".join(moved[:-1])  # unit, application, license: with `sliced`, a rollup slice

    def window(alias: str) -> str:  # the integration's rows in the chunk's bucket range
        return f"{alias}.{integration} = %s AND {alias}.{start} >= %s AND {alias}.{start} <= %s"

    stored = f"{qn('stored_id')}"
    matched = (  # every staged row, beside the stored row of its key if there is one
        f"SELECT s.*, u.{ident} AS {stored}, {', '.join(f'u.{c} AS {o}' for c, o in zip(moved, old, strict=True))}, "
        f"({', '.join(f'u.{c}' for c in compared)}) IS DISTINCT FROM ({', '.join(f's.{c}' for c in compared)}) "
        f"AS {qn('changed')} FROM {_STAGING} s LEFT JOIN {table} u ON {window('u')} AND "
        f"{' AND '.join(f'u.{c} = s.{c}' for c in key_columns)}"
    )
    inserted = (
        f"INSERT INTO {table} ({chunk}, {rows}) SELECT {placeholders}, {rows} FROM matched WHERE {stored} IS NULL "
        f"{{conflict}}RETURNING {start}, {sliced}, {', '.join(moved)}"
    )
    conflict = f"ON CONFLICT ({integration}, {', '.join(key_columns)}) DO NOTHING "
    rewritten = (
        f"UPDATE {table} t SET {', '.join(f'{c} = o.{c}' for c in compared)}, "
        f"{', '.join(f'{qn(fields[name].column)} = %s' for name in _STAMPS)} FROM matched o "
        f"WHERE o.{qn('changed')} AND t.{ident} = o.{stored} AND t.{start} = o.{start} AND {window('t')} "
        f"AND ({', '.join(f't.{c}' for c in moved)}) IS NOT DISTINCT FROM ({', '.join(f'o.{c}' for c in old)}) "
        f"RETURNING t.{start}, {', '.join(f't.{c}' for c in sliced.split(', '))}, "
        f"{', '.join(f'o.{c}' for c in old)}, {', '.join(f't.{c} AS {n}' for c, n in zip(moved, new, strict=True))}"
    )
    differences = (
        f"SELECT {start}, {sliced}, {', '.join(moved)}, 1 FROM inserted UNION ALL "
        f"SELECT {start}, {sliced}, {', '.join(old[:-1])}, -{old[-1]}, -1 FROM written UNION ALL "
        f"SELECT {start}, {sliced}, {', '.join(new)}, 1 FROM written"
    )

    def by_difference(conflict: str) -> str:
        return (
            f"WITH matched AS MATERIALIZED ({matched}), inserted AS ({inserted.format(conflict=conflict)}), "
            f"written AS ({rewritten}), "
            f"summed AS ({summed}{slice_of}, SUM({moved[-1]}), SUM({rows_}) FROM ({differences}) "
            f"AS moved ({start}, {sliced}, {', '.join(moved)}, {rows_}) GROUP BY {groups} "
            f"HAVING SUM({moved[-1]}) <> 0 OR SUM({rows_}) <> 0) "
            f"SELECT (SELECT COUNT(*) FROM matched WHERE {stored} IS NULL), (SELECT COUNT(*) FROM inserted), "
            f"(SELECT COUNT(*) FROM matched WHERE {stored} IS NOT NULL AND {qn('changed')}), "
            f"(SELECT COUNT(*) FROM written)"
        )

    return _Staging(
        # One staging table per transaction at a time: the previous chunk's (an import stores
        # several per transaction) is dropped first; the last one goes at commit.
        create=f"DROP TABLE IF EXISTS {_STAGING}; CREATE TEMPORARY TABLE {_STAGING} ({columns}) ON COMMIT DROP",
        copy=f"COPY {_STAGING} ({rows}) FROM STDIN",
        index=f"CREATE INDEX ON {_STAGING} ({', '.join(qn(fields[n].column) for n in _ROW_COLUMNS if n in key)})",
        # A restated key whose values are all unchanged is not rewritten (a provider re-reads
        # days of buckets every sync, nearly all of them unchanged): no dead row, no new index
        # entries. Its stamps stay as they were, hence the removal's _not_staged.
        insert=(
            f"INSERT INTO {table} ({chunk}, {rows}) SELECT {placeholders}, {rows} FROM {_STAGING} {upsert.suffix} "
            f"WHERE ({', '.join(f'{table}.{c}' for c in compared)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in compared)})"
        ),
        create_delta=f"DROP TABLE IF EXISTS {_DELTA}; CREATE TEMPORARY TABLE {_DELTA} ({delta_table}) ON COMMIT DROP",
        # The chunk by difference, in one statement: the staged rows beside the stored row of
        # their key (one hash join); the new keys inserted (+quantity, +1 row), the changed rows
        # rewritten, each only if it still holds the slice and quantity read (−old, +new), and
        # both summed per slice and local day into the delta table. Returns (new keys, rows
        # inserted, changed keys, rows rewritten): a concurrent writer of one of those keys
        # makes a pair differ (_execute_copy then falls back to recomputing).
        write_by_difference=by_difference(""),
        # The same, its new keys inserted ON CONFLICT DO NOTHING: when another writer stored
        # one of them after the statement above read the table (_write_by_difference).
        write_by_difference_again=by_difference(conflict),
    )


def _prepare_copy(integration: Integration, samples: Iterable[UsageSample], using: str) -> PreparedUsage:
    """The chunk as COPY text (one line per distinct key, last wins) and its INSERT … SELECT."""
    connection = connections[using]
    staging = _staging(using)
    opts = UsageRecord._meta
    quantity_field = opts.get_field("quantity")
    bucket_field = opts.get_field("bucket_start")
    batch = secrets.randbits(62) + 1
    chunk_values = {
        "workspace_id": integration.workspace_id,
        "integration_id": integration.pk,
        "provider": integration.provider,
        "updated_at": opts.get_field("updated_at").get_db_prep_save(timezone.now(), connection),
        "store_batch": batch,
    }
    params = tuple(chunk_values[name] for name in _CHUNK_COLUMNS)
    provider = integration.provider
    matcher: Matcher | None = None
    dimensions_of = attrgetter(*DIMENSION_FIELDS)
    # A chunk repeats few distinct values (bucket times, dimension combinations, units): each
    # is adapted, escaped and attributed once.
    texts = _CopyTexts(bucket_field, connection)
    combinations: dict[tuple[Any, ...], tuple[str, str]] = {}
    lines: dict[tuple, str] = {}
    for s in samples:
        dims = dimensions_of(s)
        if None in dims:
            dims = tuple(d or "" for d in dims)
        labels = s.labels
        combination = combinations.get((dims, labels))
        if combination is None:
            if matcher is None:  # only a chunk with samples costs the rules query
                matcher = load_matcher(workspace_id=integration.workspace_id, provider=provider)
            attribution = matcher.attribute(
                provider, {**dict(zip(DIMENSION_FIELDS, dims, strict=True)), "labels": labels}
            )
            ids = (attribution.application_id, attribution.license_id, attribution.rule_id)
            combination = combinations[(dims, labels)] = (
                "\t".join(texts[d] for d in dims),
                texts[_labels_json(s)] + "\t" + "\t".join(_NULL if i is None else str(i) for i in ids),
            )
        quantity = s.quantity
        if type(quantity) is not Decimal:
            quantity = quantity_field.get_db_prep_save(quantity, connection)
        start, end, metric = s.bucket_start, s.bucket_end, s.metric
        lines[(start, end, dims, metric)] = (
            f"{texts[start]}\t{texts[end]}\t{combination[0]}\t{texts[metric]}\t{quantity}\t"
            f"{texts[s.unit]}\t{texts[s.provenance]}\t{texts[s.stream]}\t{combination[1]}\n"
        )
    return PreparedUsage(
        using=using,
        statements=((staging.insert, params),) if lines else (),
        rows=len(lines),
        store_batch=batch,
        bucket_starts=frozenset(key[0] for key in lines),
        copy_data="".join(lines.values()).encode(),
    )


def _execute_copy(prepared: PreparedUsage, zone_name: str | None = None) -> _Upkeep:
    """COPY the rows into a fresh staging table and upsert them from it, in the caller's
    transaction (or in one of its own when there is none: the temporary table lives only
    inside one). The staging table stays until the next chunk or the commit: the removal of
    vanished rows reads it (see _NOT_STAGED).

    Without `zone_name`: one INSERT … ON CONFLICT DO UPDATE, and the rollups are left to the
    caller: the distinct bucket starts of the rows the upsert inserted or rewrote are returned
    (RETURNING skips a conflict its WHERE left alone), for their days to be recomputed.

    With `zone_name` (the workspace's zone as the database names it): the rollups are kept
    by difference. New keys are inserted (ON CONFLICT DO NOTHING) and summed per slice and
    local day into the temporary delta table; when some keys were already stored, the changed
    ones are rewritten by one UPDATE that sums −old +new into it too (usage.rollups.apply_delta
    adds the table to the rollups). If a concurrent writer changed one of those rows between
    the read of its old values and the UPDATE, the chunk is upserted as without a zone and its
    days recomputed instead (rare; exact either way)."""
    staging = _staging(prepared.using)
    connection = connections[prepared.using]
    column = connection.ops.quote_name("bucket_start")  # UsageRecord.bucket_start has no db_column
    changed: set[datetime] = set()
    with transaction.atomic(using=prepared.using, savepoint=False):
        with connection.cursor() as cursor:
            if zone_name is None:
                cursor.execute(staging.create)
            else:
                cursor.execute(f"{staging.create}; {staging.create_delta}; {_BULK_PLAN}")
            with cursor.cursor.copy(staging.copy) as copy:
                copy.write(prepared.copy_data)
            if zone_name is not None:
                (params,) = (params for _, params in prepared.statements)
                wrote = _write_by_difference(cursor, staging, prepared, params, zone_name)
                # (After an error the transaction is rolled back, and the settings with it.)
                cursor.execute(_BULK_PLAN_RESET)
                if wrote is not None:
                    return _Upkeep(delta_zone=zone_name, wrote=wrote)
                changed.update(prepared.bucket_starts)  # a concurrent writer: recompute every day
            for sql, params in prepared.statements:
                cursor.execute(
                    f"WITH written AS ({sql} RETURNING {column}) SELECT DISTINCT {column} FROM written", params
                )
                changed.update(row[0] for row in cursor.fetchall())
    return _Upkeep(changed=frozenset(changed))


def _write_by_difference(
    cursor: Any, staging: _Staging, prepared: PreparedUsage, params: tuple[Any, ...], zone_name: str
) -> bool | None:
    """The `zone_name` half of _execute_copy: True when a row was inserted or rewritten (the
    delta table holds its differences), False when none was, None when a concurrent writer
    was seen (the differences are incomplete: recompute)."""
    (zone,) = day_sql("bucket_start", zone_name, prepared.using)[1]
    chunk = dict(zip(_CHUNK_COLUMNS, params, strict=True))
    window = (chunk["integration_id"], min(prepared.bucket_starts), max(prepared.bucket_starts))
    stamps = tuple(chunk[name] for name in _STAMPS)
    arguments = (*window, *params, *stamps, *window, zone)
    try:
        # A plain INSERT of the keys not stored (a third faster than ON CONFLICT's speculative
        # insertion); if another writer stored one of them meanwhile, the unique key refuses
        # the row and the statement is run again, its INSERT ON CONFLICT DO NOTHING.
        with transaction.atomic(using=prepared.using):
            cursor.execute(staging.write_by_difference, arguments)
    except IntegrityError:
        cursor.execute(staging.write_by_difference_again, arguments)
    new, inserted, changed, rewritten = cursor.fetchone()
    if (new, changed) != (inserted, rewritten):
        return None
    return inserted + rewritten > 0
