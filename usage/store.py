"""The idempotent usage store: one bulk upsert per chunk, keyed on the natural key.

Rows are attributed as they are stored: the workspace's rules for the provider are loaded
once per chunk and matched in memory (usage/attribution.py), so a chunk costs two queries
(rules + upsert) however many samples it holds.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.utils import timezone

from usage.attribution import Matcher, load_matcher
from usage.models import DIMENSION_FIELDS, NATURAL_KEY, UsageRecord

if TYPE_CHECKING:
    from integrations.models import Integration
    from integrations.providers.base import UsageSample

# Rows per INSERT; a chunk of N samples costs 1 + ceil(N / BATCH) queries however large N is
# (per-row attribution happens in memory, against rules loaded once per chunk).
BATCH_SIZE = 2000


def usage_store_samples(*, integration: Integration, samples: Iterable[UsageSample]) -> int:
    """Upsert samples for one integration; a key already stored gets its quantity REPLACED.

    Duplicate keys inside one batch are collapsed (last wins) so the same sample yielded twice
    by a provider is stored once. Returns the number of distinct rows written.
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
    if not rows:
        return 0
    UsageRecord.objects.bulk_create(
        list(rows.values()),
        batch_size=BATCH_SIZE,
        update_conflicts=True,
        unique_fields=list(NATURAL_KEY),
        # A re-stored row also takes the attribution of the rules as they are now.
        update_fields=["quantity", "unit", "provenance", "updated_at", "application", "license", "rule"],
    )
    return len(rows)
