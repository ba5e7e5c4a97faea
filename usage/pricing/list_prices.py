"""List prices per usage row, for the FOCUS export: ListUnitPrice and ListCost.

FOCUS prices a row as ListUnitPrice × PricingQuantity = ListCost, in the provider's billing
terms. Our `input_tokens` counts cached and cache-write tokens too, which providers bill at
their own rates, so an input_tokens row's PricingQuantity is its uncached part (input −
cached − cache write of the same key) at the input price, and the cached_input_tokens and
cache_write_tokens rows carry their own quantity at the cache read and write prices: summing
ListCost over a file counts each token once. List prices only: a workspace's overrides are
its contracted prices, not list prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

from usage.pricing.catalog import INCLUDED, NO_DEPLOYMENTS, Deployments, TableRef, TokenRef, price_ref
from usage.pricing.prices import PRICED_METRICS, day_of, list_price

UNIT_PLACES = Decimal("0.000000000001")  # 12 decimals: a per-token price is ~1e-7
_EXACT = Context(prec=80)  # the product of a 30-digit quantity and a unit price, unrounded
CACHE_METRICS = ("cached_input_tokens", "cache_write_tokens")


@dataclass(frozen=True)
class ListPrice:
    pricing_quantity: Decimal
    unit_price: Decimal
    cost: Decimal


def list_price_of_row(
    provider: str,
    *,
    stream: str,
    dims: dict[str, str],
    bucket_start: datetime,
    metric: str,
    quantity: Decimal,
    cached: Decimal | None = None,
    cache_write: Decimal | None = None,
    deployments: Deployments = NO_DEPLOYMENTS,
) -> ListPrice | None:
    """The row's list price, or None when no unit price applies (unpriced usage, a metric
    its price does not bill, usage priced by the hour such as Azure PTU)."""
    if metric not in PRICED_METRICS:
        return None
    ref = price_ref(
        provider,
        model=dims.get("model", ""),
        deployment=dims.get("deployment", ""),
        resource=dims.get("resource", ""),
        operation=dims.get("operation", ""),
        stream=stream,
        metrics=frozenset({metric}),
        deployments=deployments,
        service_tier=dims.get("service_tier", ""),
        batch=dims.get("batch", ""),
    )
    if ref is INCLUDED or not isinstance(ref, TokenRef | TableRef):
        return None
    price = list_price(ref, day_of(bucket_start))
    if price is None or price.per_hour is not None:
        return None
    unit = price.unit_price(metric)
    if unit is None:
        return None
    unit = unit.quantize(UNIT_PLACES).normalize()
    priced = quantity
    if metric == "input_tokens":
        priced = max(quantity - (cached or 0) - (cache_write or 0), Decimal(0))
    return ListPrice(priced, unit, _EXACT.multiply(unit, priced))
