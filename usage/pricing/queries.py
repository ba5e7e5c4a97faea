"""Queries for pages: usage without a known price ("unpriced", listed with its volume, never
$0), the provider's reported cost beside the list-price estimate per provider and month, and
the price each model's estimates use. Every query starts from the workspace."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef, Sum
from django.db.models.functions import TruncMonth

from usage.models import DIMENSION_FIELDS, UsageRecord
from usage.pricing.catalog import INCLUDED, Deployments, price_ref
from usage.pricing.estimate import ESTIMATED_COST, price_for
from usage.pricing.prices import PRICED_METRICS, Overrides, Price
from usage.rollups import daily_for

if TYPE_CHECKING:
    from accounts.models import Workspace


@dataclass(frozen=True)
class UnpricedUsage:
    provider: str
    model: str
    metric: str
    unit: str
    quantity: Decimal


def _window(records, since: datetime | None, until: datetime | None):
    if since is not None:
        records = records.filter(bucket_start__gte=since)
    if until is not None:
        records = records.filter(bucket_start__lt=until)
    return records


def pricing_unpriced_usage(
    *, workspace: Workspace, since: datetime | None = None, until: datetime | None = None
) -> list[UnpricedUsage]:
    """Usage rows with no estimated_cost row for their key, summed per provider, model and
    metric, largest first; usage whose money is counted on other rows (tokens of a dedicated
    Fireworks deployment) is not unpriced."""
    estimate = UsageRecord.objects.filter(
        integration=OuterRef("integration"),
        bucket_start=OuterRef("bucket_start"),
        bucket_end=OuterRef("bucket_end"),
        metric=ESTIMATED_COST,
        **{d: OuterRef(d) for d in DIMENSION_FIELDS},
    )
    records = _window(workspace.usage_records.filter(metric__in=PRICED_METRICS), since, until)
    groups = (
        records.filter(~Exists(estimate))
        .values("provider", "stream", "model", "deployment", "resource", "metric", "unit")
        .annotate(total=Sum("quantity"))
        .order_by()
    )
    totals: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for g in groups:
        ref = price_ref(g["provider"], model=g["model"], deployment=g["deployment"], resource=g["resource"],
                        stream=g["stream"], metrics=frozenset({g["metric"]}))  # fmt: skip
        if ref is INCLUDED:
            continue
        totals[(g["provider"], g["model"] or g["deployment"] or g["resource"], g["metric"], g["unit"])] += g["total"]
    rows = [UnpricedUsage(*key, quantity=q) for key, q in totals.items() if q]
    return sorted(rows, key=lambda r: (r.provider, r.model, r.metric))


@dataclass
class ReportedVsEstimated:
    provider: str
    month: date
    currency: str
    reported: Decimal | None = None  # the provider's own cost (None: it reports no money)
    estimated: Decimal | None = None  # the list-price estimate of the same usage (None: no usage has a price)

    @property
    def spend(self) -> Decimal:
        """Spend (docs/architecture.md): cost where the provider reports money, else the estimate."""
        return self.reported if self.reported is not None else self.estimated or Decimal(0)

    @property
    def difference(self) -> Decimal | None:
        """Reported minus estimated; None unless both exist (a month whose usage has no list
        price shows no estimate, never a $0 one)."""
        return None if self.reported is None or self.estimated is None else self.reported - self.estimated

    @property
    def spend_is_estimated(self) -> bool:
        return self.reported is None


def pricing_reported_vs_estimated(*, workspace: Workspace, first_day: date | None = None) -> list[ReportedVsEstimated]:
    """Per provider, month (of the workspace's time zone, from the daily rollups) and currency:
    reported cost beside the estimate, from `first_day` (a local day) on. Amounts in different
    currencies stay apart (never converted); a second reader of one account is not counted."""
    daily = daily_for(workspace, ("provider", "day", "unit", "metric")).filter(metric__in=("cost", ESTIMATED_COST))
    if first_day is not None:
        daily = daily.filter(day__gte=first_day)
    sums = (
        daily.annotate(month=TruncMonth("day"))
        .values("provider", "month", "unit", "metric")
        .annotate(total=Sum("quantity"))
        .order_by()
    )
    out: dict[tuple[str, date, str], ReportedVsEstimated] = {}
    for s in sums:
        month = s["month"].date() if isinstance(s["month"], datetime) else s["month"]
        row = out.setdefault((s["provider"], month, s["unit"].upper()),
                             ReportedVsEstimated(s["provider"], month, s["unit"].upper()))  # fmt: skip
        if s["metric"] == "cost":
            row.reported = (row.reported or Decimal(0)) + s["total"]
        else:
            row.estimated = (row.estimated or Decimal(0)) + s["total"]
    return sorted(out.values(), key=lambda r: (r.month, r.provider, r.currency))


@dataclass
class ModelPrice:
    provider: str
    model: str
    price: Price | None
    unit_prices: dict[str, Decimal] = field(default_factory=dict)  # per 1M tokens / per unit, for display

    @property
    def source(self) -> str:
        return self.price.source if self.price is not None else "unpriced"


def pricing_model_prices(
    *, workspace: Workspace, overrides: Overrides, on: datetime, since: datetime, until: datetime | None = None
) -> list[ModelPrice]:
    """The price each model's estimates use on `on`, for every (provider, model) with usage
    from `since` (until `until`): its source (genai-prices, table, override) and unit prices."""
    from integrations.providers.base import UsageSample  # a plain dataclass

    recent = _window(workspace.usage_records.filter(metric__in=PRICED_METRICS), since, until)
    key_fields = ("provider", "stream", "model", "deployment", "resource", "operation", "service_tier", "batch")
    metrics_of: dict[tuple, set[str]] = defaultdict(set)
    identity_of: dict[tuple, Any] = {}
    for *key, identity, metric in (
        recent.values_list(*key_fields, "integration__identity", "metric").distinct().order_by()
    ):
        metrics_of[tuple(key)].add(metric)
        identity_of.setdefault(tuple(key), identity)
    # One line per model and price: a model whose batch traffic bills at half price shows both.
    seen: dict[tuple[str, str, str], ModelPrice] = {}
    for key in sorted(metrics_of):
        provider, stream, model, deployment, resource, operation, service_tier, batch = key
        name = model or deployment or resource
        if "api_calls" in metrics_of[key] and operation:  # a server tool's calls: a line of their own
            name = f"{name} · {operation.replace('_', ' ')}"
        sample = UsageSample(on, on, "requests", Decimal(0), model=model, deployment=deployment, resource=resource,
                             operation=operation, stream=stream, service_tier=service_tier, batch=batch)  # fmt: skip
        price = price_for(provider, sample, metrics=frozenset(metrics_of[key]),
                          deployments=Deployments.from_identity(identity_of[key]), overrides=overrides)  # fmt: skip
        if price is INCLUDED:
            continue
        price = price if isinstance(price, Price) else None
        line = (provider, name, price.reference if price is not None else "")
        if line in seen:
            continue
        shown = {}
        if price is not None:
            for metric, unit in price.per_unit.items():
                shown[metric] = unit * 1_000_000 if metric.endswith("_tokens") else unit
        seen[line] = ModelPrice(provider, name, price, shown)
    return sorted(seen.values(), key=lambda m: (m.provider, m.model, m.price.reference if m.price else ""))
