"""The workspace's PriceOverride rows, as the estimator applies them."""

from __future__ import annotations

from decimal import Decimal

from usage.models import PriceOverride
from usage.pricing.prices import MILLION, TOKEN_METRICS, OverrideRule, Overrides


def override_rule(o: PriceOverride) -> OverrideRule:
    unit_price = None
    if o.kind == PriceOverride.Kind.UNIT_PRICE and o.price is not None:
        unit_price = Decimal(o.price) / MILLION if o.metric in TOKEN_METRICS else Decimal(o.price)
    return OverrideRule(
        provider=o.provider,
        model=o.model if o.kind == PriceOverride.Kind.UNIT_PRICE else "",
        metric=o.metric if o.kind == PriceOverride.Kind.UNIT_PRICE else "",
        discount_percent=o.discount_percent if o.kind == PriceOverride.Kind.DISCOUNT else None,
        unit_price=unit_price,
        effective_from=o.effective_from,
        pk=o.pk,
    )


def load_overrides(*, workspace_id: int) -> Overrides:
    return Overrides.of(override_rule(o) for o in PriceOverride.objects.filter(workspace_id=workspace_id))
