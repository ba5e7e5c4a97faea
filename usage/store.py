"""The idempotent usage store: one bulk upsert per chunk, keyed on the natural key."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.utils import timezone

from usage.models import DIMENSION_FIELDS, NATURAL_KEY, UsageRecord

if TYPE_CHECKING:
    from integrations.models import Integration
    from integrations.providers.base import UsageSample

# Rows per INSERT; a chunk of N samples costs ceil(N / BATCH) queries however large N is
# relative to any per-row work (there is none).
BATCH_SIZE = 2000


def usage_store_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> int:
    """Upsert samples for one integration; a key already stored gets its quantity REPLACED.

    Duplicate keys inside one batch are collapsed (last wins) so the same sample yielded twice
    by a provider is stored once. Returns the number of distinct rows written.
    """
    now = timezone.now()
    rows: dict[tuple, UsageRecord] = {}
    for s in samples:
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
        update_fields=["quantity", "unit", "provenance", "updated_at"],
    )
    return len(rows)
