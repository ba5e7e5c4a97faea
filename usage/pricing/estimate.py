"""estimated_cost rows for a chunk of usage samples.

`pricing_estimate_samples` returns, for the usage samples a chunk is about to store, one
`estimated_cost` sample per (stream, bucket, dimensions) whose model has a known price: same
bucket and dimensions as the usage (so attribution gives it the same application), metric
`estimated_cost`, unit USD, provenance "estimated", and its own stream "<stream>:estimate".
The caller stores them in the same chunk as the usage. Usage without a known price gets no
row: it is "unpriced" (usage.pricing.queries lists it), never $0.

Restatements. `estimate_answers` turns the chunk's `Answered` declarations into the same
declarations for the estimate streams (metric scope dropped: an estimate row has metric
estimated_cost), so an estimate whose usage a re-read no longer returns is removed with it,
and every estimate the chunk recomputes replaces the stored one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from operator import attrgetter
from typing import TYPE_CHECKING

from integrations.providers.base import DIMENSIONS, Answered, UsageSample
from usage.pricing.catalog import INCLUDED, Deployments, TableRef, TokenRef, price_ref
from usage.pricing.prices import PRICED_METRICS, Overrides, Price, billable, day_of, list_price

if TYPE_CHECKING:
    from integrations.models import Integration

ESTIMATED_COST = "estimated_cost"
PROVENANCE = "estimated"
CURRENCY = "USD"
SUFFIX = ":estimate"
PLACES = Decimal("0.000000001")  # UsageRecord.quantity's 9 decimal places
_dimensions = attrgetter(*DIMENSIONS)  # a sample's dimensions as one tuple, at C speed


def estimate_stream(stream: str) -> str:
    return f"{stream}{SUFFIX}" if stream else SUFFIX.lstrip(":")


def is_estimate_stream(stream: str) -> bool:
    return stream.endswith(SUFFIX) or stream == SUFFIX.lstrip(":")


def estimate_answers(answers: Sequence[Answered]) -> list[Answered]:
    """The chunk's answers, declared for the estimates of the streams they answer."""
    out = []
    for answer in answers:
        scope = {name: values for name, values in answer.scope.items() if name != "metric"}
        out.append(Answered(estimate_stream(answer.stream), answer.window, scope))
    return out


def price_for(
    provider: str,
    sample: UsageSample,
    *,
    metrics: frozenset[str],
    deployments: Deployments,
    overrides: Overrides | None,
) -> Price | object | None:
    """The price of one row key on its bucket's day: list price, then the overrides.
    INCLUDED when its money is counted on other rows."""
    ref = price_ref(
        provider,
        model=sample.model,
        deployment=sample.deployment,
        resource=sample.resource,
        operation=sample.operation,
        stream=sample.stream,
        metrics=metrics,
        deployments=deployments,
        service_tier=sample.service_tier,
        batch=sample.batch,
    )
    if ref is INCLUDED:
        return INCLUDED
    day = day_of(sample.bucket_start)
    price = list_price(ref, day) if isinstance(ref, TokenRef | TableRef) else None
    if overrides is not None:
        price = overrides.apply(price, provider=provider, model=sample.model, day=day)
    return price


def estimate_samples(
    provider: str,
    samples: Iterable[UsageSample],
    *,
    deployments: Deployments,
    overrides: Overrides | None,
) -> list[UsageSample]:
    """The pure computation behind pricing_estimate_samples (no database)."""
    groups: dict[tuple, tuple[UsageSample, dict[str, Decimal]]] = {}
    priced = frozenset(PRICED_METRICS)
    for s in samples:
        metric = s.metric
        if metric not in priced or s.provenance == PROVENANCE:
            continue
        key = (s.stream, s.bucket_start, s.bucket_end, _dimensions(s))
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = (s, {})
        quantities = entry[1]
        quantities[metric] = quantities[metric] + s.quantity if metric in quantities else s.quantity
    out: dict[tuple, UsageSample] = {}
    for first, quantities in groups.values():
        price = price_for(provider, first, metrics=frozenset(quantities), deployments=deployments, overrides=overrides)
        if not isinstance(price, Price) or not _bills_any(price, quantities):
            continue  # unpriced (listed with its volume), never a $0 estimate
        hours = Decimal((first.bucket_end - first.bucket_start).total_seconds()) / Decimal(3600)
        cost = price.cost(quantities, hours=hours)
        sample = replace(
            first,
            metric=ESTIMATED_COST,
            quantity=cost.quantize(PLACES, ROUND_HALF_UP),
            unit=CURRENCY,
            provenance=PROVENANCE,
            stream=estimate_stream(first.stream),
        )
        # Two streams with usage under one key (never seen): one estimate row holds both.
        slot = (sample.bucket_start, sample.bucket_end, _dimensions(sample))
        if slot in out:
            sample = replace(out[slot], quantity=out[slot].quantity + sample.quantity)
        out[slot] = sample
    return list(out.values())


def _bills_any(price: Price, quantities: dict[str, Decimal]) -> bool:
    """Whether the price bills any of the key's metrics (or its hours)."""
    return price.per_hour is not None or any(price.unit_price(m) is not None for m in billable(quantities))


def pricing_estimate_samples(
    *, integration: Integration, samples: Sequence[UsageSample], overrides: Overrides | None = None
) -> list[UsageSample]:
    """estimated_cost samples for a chunk's usage `samples` (see the module docstring); reads
    the workspace's overrides (one query) unless given."""
    if not any(s.metric in PRICED_METRICS for s in samples):
        return []
    if overrides is None:
        from usage.pricing.overrides import load_overrides

        overrides = load_overrides(workspace_id=integration.workspace_id)
    return estimate_samples(
        integration.provider,
        samples,
        deployments=Deployments.from_identity(integration.identity),
        overrides=overrides,
    )
