"""The idempotent usage store: one bulk upsert per chunk, keyed on the natural key, and the
removal of rows a complete re-read no longer returns.

Rows are attributed as they are stored: the workspace's rules for the provider are loaded
once per chunk and matched in memory (usage/attribution.py), so a chunk costs two queries
(rules + upsert) however many samples it holds.

Ghosts. An upsert alone never forgets a key: when a provider restates a window and a key has
vanished (a SKU renamed, a credit withdrawn, a line item re-labelled), the old row would stay
beside its replacement. `usage_store_chunk` therefore takes the connector's `Answered`
declarations too: every row it upserts is stamped with a fresh `store_batch`, and then the
rows of an answered stream, window and scope that do not carry that stamp — stored earlier,
not returned now — are removed (never imported rows). One SELECT … FOR UPDATE finds them (the
removed rows are returned, for anything kept in step with them) and one DELETE removes them.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone

from usage.attribution import Matcher, load_matcher
from usage.models import DIMENSION_FIELDS, NATURAL_KEY, UsageRecord

if TYPE_CHECKING:
    from integrations.models import Integration
    from integrations.providers.base import Answered, UsageSample

# Rows per INSERT; a chunk of N samples costs 1 + ceil(N / BATCH) queries however large N is
# (per-row attribution happens in memory, against rules loaded once per chunk).
BATCH_SIZE = 2000
# Answers OR-ed into one SELECT, and ids per DELETE: far inside SQLite's expression depth
# (1000) and variable (32766) limits, so a chunk normally costs one of each.
ANSWERS_PER_QUERY = 200
IDS_PER_DELETE = 2000
IMPORTED = "imported"  # usage.importer.PROVENANCE: rows a sync never removes


@dataclass(frozen=True)
class ChunkStored:
    """What storing one chunk did: rows upserted, and the rows removed because a complete
    re-read no longer returned them (as they were just before removal)."""

    written: int
    removed: list[UsageRecord] = field(default_factory=list)


def usage_store_chunk(
    *, integration: Integration, samples: Iterable[UsageSample], answered: Sequence[Answered]
) -> ChunkStored:
    """Store one chunk of a sync: upsert `samples`, then remove the rows of `integration`
    that a sync wrote for an answered stream, inside that answer's window (by bucket_start)
    and scope, and that this chunk did not write again. Imported rows, rows of other streams
    or scopes and rows outside the windows are never touched. Run it inside the chunk's
    transaction (the engine does), so the upsert and the removal commit together."""
    batch = secrets.randbits(62) + 1  # per call: "written by this chunk" without any clock
    written = usage_store_samples(integration=integration, samples=samples, store_batch=batch)
    return ChunkStored(written=written, removed=_remove_unanswered(integration, answered, batch))


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


def usage_store_samples(
    *, integration: Integration, samples: Iterable[UsageSample], store_batch: int | None = None
) -> int:
    """Upsert samples for one integration; a key already stored gets its quantity REPLACED.

    Duplicate keys inside one batch are collapsed (last wins) so the same sample yielded twice
    by a provider is stored once. Returns the number of distinct rows written. A row re-stored
    takes the sample's provenance and stream (an imported figure replacing a synced one becomes
    imported, and is never removed by a re-read); `store_batch` marks the rows of one
    usage_store_chunk call.
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
            stream=s.stream,
            store_batch=store_batch,
            updated_at=now,
            application_id=attribution.application_id,
            license_id=attribution.license_id,
            rule_id=attribution.rule_id,
            **{d: getattr(s, d) or "" for d in DIMENSION_FIELDS},
        )
        rows[(s.bucket_start, s.bucket_end, *(getattr(s, d) or "" for d in DIMENSION_FIELDS), s.metric)] = record
    if not rows:
        return 0
    UsageRecord.objects.bulk_create(
        list(rows.values()),
        batch_size=BATCH_SIZE,
        update_conflicts=True,
        unique_fields=list(NATURAL_KEY),
        # A re-stored row also takes the attribution of the rules as they are now.
        update_fields=[
            "quantity", "unit", "provenance", "stream", "store_batch", "updated_at", "application", "license", "rule",
        ],  # fmt: skip
    )
    return len(rows)
