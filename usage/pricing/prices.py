"""Unit prices: a price reference (catalog.py) resolved for a day, from genai-prices or the
dated compute table, with the workspace's overrides applied on top.

A `Price` holds USD per ONE unit of each metric it bills, in billing terms: `input_tokens`
is the price of an uncached input token (our `input_tokens` counts cached and cache-write
tokens too, so `billable()` takes them out), `cached_input_tokens` a cache read,
`cache_write_tokens` a cache write. A metric without its own price bills at the input price
(cache reads or writes of a model that has no cache prices) or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from importlib import metadata

from usage.pricing.catalog import PRICED_TOOLS, TABLE_PATH, TableRef, TokenRef, compute_table

MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1000)
HOUR_SECONDS = Decimal(3600)
TOKEN_METRICS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
# provisioned_hours has no unit price: it makes an hour of a PTU deployment with no traffic a
# row key of its own, so the PTU's per-hour price covers every provisioned hour. api_calls are
# priced only for server tools with a list price (catalog.PRICED_TOOLS: web searches).
PRICED_METRICS = (*TOKEN_METRICS, "requests", "compute_seconds", "provisioned_hours", "api_calls")
SOURCE_GENAI = "genai-prices"
SOURCE_TABLE = "table"
SOURCE_OVERRIDE = "override"


@dataclass(frozen=True)
class Price:
    source: str  # SOURCE_GENAI | SOURCE_TABLE | SOURCE_OVERRIDE
    reference: str  # what was used, for people: "genai-prices openai/gpt-4o", a source URL…
    per_unit: Mapping[str, Decimal] = field(default_factory=dict)
    per_hour: Decimal | None = None  # a price per bucket hour, whatever the volume (Azure PTU)

    def unit_price(self, metric: str) -> Decimal | None:
        price = self.per_unit.get(metric)
        if price is None and metric in ("cached_input_tokens", "cache_write_tokens"):
            return self.per_unit.get("input_tokens")
        return price

    def cost(self, quantities: Mapping[str, Decimal], *, hours: Decimal) -> Decimal:
        if self.per_hour is not None:
            return self.per_hour * hours
        total = Decimal(0)
        for metric, quantity in billable(quantities).items():
            price = self.unit_price(metric)
            if price is not None:
                total += price * quantity
        return total


def billable(quantities: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The quantities a provider bills, from our metrics: uncached input apart from cache reads
    and writes (our input_tokens includes both)."""
    out = {m: q for m, q in quantities.items() if m in PRICED_METRICS}
    if "input_tokens" in out:
        cached = out.get("cached_input_tokens", Decimal(0)) + out.get("cache_write_tokens", Decimal(0))
        out["input_tokens"] = max(out["input_tokens"] - cached, Decimal(0))
    return out


# The estimate rules' own version, bumped by hand: BUMP IT in any change that alters what an
# estimate comes to for stored usage — the catalog and its mapping table (provider model ids →
# price entries, usage/pricing/catalog.py), PRICED_METRICS, billable(), Price.cost, the estimate
# streams (usage/pricing/estimate.py). Beat then recomputes every workspace's estimates, as
# after a genai-prices upgrade (docs/pricing.md).
PRICING_RULES_VERSION = 1


@cache
def price_data_version() -> str:
    """What estimates are computed from: the rules' version (PRICING_RULES_VERSION), the
    installed genai-prices (its bundled data) and a digest of the dated compute table. A change
    to any of them changes it, and beat then recomputes every workspace's estimates
    (usage.pricing.services)."""
    table = hashlib.sha256(TABLE_PATH.read_bytes()).hexdigest()[:16]
    return f"rules {PRICING_RULES_VERSION}; genai-prices {metadata.version('genai-prices')}; table {table}"


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@lru_cache(maxsize=4096)
def list_price(ref: TokenRef | TableRef, day: date) -> Price | None:
    """The list price of `ref` on `day` (UTC), or None when no source knows it."""
    if isinstance(ref, TableRef):
        return _table_price(ref, day)
    return _genai_price(ref, day)


def _genai_price(ref: TokenRef, day: date) -> Price | None:
    from genai_prices import data_snapshot  # its price data (1.6 MB) loads on first use only

    try:
        provider, model = data_snapshot.get_snapshot().find_provider_model(ref.model, None, ref.provider, None)
    except LookupError:
        return None
    prices = model.get_prices(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
    if ref.tool:  # a server tool's calls: their own price per call, nothing else
        per_thousand = getattr(prices, PRICED_TOOLS[ref.tool], None)
        if per_thousand is None:
            return None
        reference = f"genai-prices {provider.id}/{model.id} {ref.tool.replace('_', ' ')} calls"
        return Price(SOURCE_GENAI, reference, {"api_calls": Decimal(per_thousand) / THOUSAND * ref.multiplier})
    per_unit: dict[str, Decimal] = {}
    for metric, key, per in (
        ("input_tokens", "input_mtok", MILLION),
        ("cached_input_tokens", "cache_read_mtok", MILLION),
        ("cache_write_tokens", "cache_write_mtok", MILLION),
        ("output_tokens", "output_mtok", MILLION),
        ("requests", "requests_kcount", THOUSAND),
    ):
        value = getattr(prices, key, None)
        if value is None:
            continue
        base = getattr(value, "base", value)  # tiered (long-context) prices: the base tier
        per_unit[metric] = Decimal(base) / per * ref.multiplier
    if not per_unit:
        return None
    note = f" ({ref.note})" if ref.note else ""
    return Price(SOURCE_GENAI, f"genai-prices {provider.id}/{model.id}{note}", per_unit)


def _table_price(ref: TableRef, day: date) -> Price | None:
    entry = compute_table().find(ref, day)
    if entry is None:
        return None
    reference = (
        f"{entry.kind} {entry.key} ${entry.price_usd}/{entry.per} from {entry.effective_date} ({entry.source_url})"
    )
    if ref.kind == "ptu":
        return Price(SOURCE_TABLE, f"{ref.units} PTU × {reference}", per_hour=entry.price_usd * ref.units)
    if entry.per == "request":
        return Price(SOURCE_TABLE, reference, {"requests": entry.price_usd})
    per_second = entry.price_usd / HOUR_SECONDS if entry.per == "hour" else entry.price_usd
    return Price(SOURCE_TABLE, reference, {"compute_seconds": per_second})


# ------------------------------------------------------------------ overrides
@dataclass(frozen=True)
class OverrideRule:
    """One PriceOverride as the estimator needs it (usage.models.PriceOverride)."""

    provider: str
    model: str  # "" for a provider-wide discount
    metric: str
    discount_percent: Decimal | None
    unit_price: Decimal | None  # USD per unit of `metric` (tokens: per token)
    effective_from: date
    pk: int = 0


@dataclass(frozen=True)
class Overrides:
    """A workspace's price overrides; for each (provider) discount and (provider, model,
    metric) unit price, the one with the latest effective date not after the usage's day wins."""

    rules: tuple[OverrideRule, ...] = ()

    @classmethod
    def of(cls, rules: Iterable[OverrideRule]) -> Overrides:
        return cls(tuple(sorted(rules, key=lambda r: (r.effective_from, r.pk))))

    def apply(self, price: Price | None, *, provider: str, model: str, day: date) -> Price | None:
        if not self.rules:
            return price
        discount: OverrideRule | None = None
        units: dict[str, OverrideRule] = {}
        for rule in self.rules:  # in effective order: a later one replaces an earlier one
            if rule.provider != provider or rule.effective_from > day:
                continue
            if rule.discount_percent is not None and not rule.model:
                discount = rule
            elif rule.unit_price is not None and rule.model == model and rule.metric:
                units[rule.metric] = rule
        if discount is None and not units:
            return price
        notes = []
        per_unit = dict(price.per_unit) if price is not None else {}
        per_hour = price.per_hour if price is not None else None
        if discount is not None and (per_unit or per_hour is not None):
            factor = (Decimal(100) - discount.discount_percent) / Decimal(100)  # type: ignore[operator]  # set on a discount
            per_unit = {m: p * factor for m, p in per_unit.items()}
            per_hour = per_hour * factor if per_hour is not None else None
            percent = format(discount.discount_percent.normalize(), "f")  # type: ignore[union-attr]  # set on a discount
            notes.append(f"{percent}% discount from {discount.effective_from}")
        for metric, rule in units.items():  # a negotiated unit price is final: no discount on it
            per_unit[metric] = rule.unit_price  # type: ignore[assignment]  # only rules with a unit price are in `units`
            notes.append(f"{metric} at ${rule.unit_price}/unit from {rule.effective_from}")
        if not per_unit and per_hour is None:
            return price
        base = f" on {price.reference}" if price is not None else ""
        return replace(
            price or Price(SOURCE_OVERRIDE, ""),
            source=SOURCE_OVERRIDE,
            reference="override: " + "; ".join(notes) + base,
            per_unit=per_unit,
            per_hour=per_hour,
        )
