"""FOCUS 1.2 export: one FinOps Open Cost and Usage Specification row per UsageRecord.

The mapping, column by column, and the reasons behind it are in docs/export.md. In short:
- every row is a charge of ChargeCategory "Usage" (a negative provider cost is a "Credit");
- a quantity row (tokens, requests, seconds, calls) carries ConsumedQuantity/ConsumedUnit and
  0 in BilledCost, EffectiveCost and ContractedCost: the provider reports the money on its own
  `cost` rows, so summing BilledCost over the file counts each dollar exactly once; its
  ListCost is its list price, ListUnitPrice × PricingQuantity (usage/pricing/list_prices.py),
  and `estimated_cost` rows are left out (their money is that ListCost);
- a `cost` row carries the amount in BilledCost, EffectiveCost, ListCost and ContractedCost,
  in BillingCurrency = its unit. FOCUS requires a ConsumedQuantity on every Usage row, and a
  cost line has no count of its own: it is stated in its currency (ConsumedUnit "USD").

Streaming as in usage/export.py: tuples from `.values_list().iterator()`, and the per-provider
and per-integration facts (names, project names) looked up once each and cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from django.db.models import Case, OuterRef, Subquery, When

from integrations.models import Integration
from integrations.providers.registry import get_provider
from usage.csv_safety import Number
from usage.dimensions import ADDED_DIMENSIONS
from usage.export import (
    CHUNK_SIZE,
    RECORD_VALUES,
    ZERO,
    AttributionLabels,
    TimeFormatter,
    Writable,
    format_quantity,
    format_time,
    write_rows_closing,
)
from usage.models import DIMENSION_FIELDS, UsageRecord
from usage.pricing.catalog import NO_DEPLOYMENTS, Deployments
from usage.pricing.estimate import ESTIMATED_COST
from usage.pricing.list_prices import list_price_of_row

if TYPE_CHECKING:
    from django.db.models import QuerySet

FOCUS_VERSION = "1.2"

# FOCUS columns first, in the specification's alphabetical order; then our custom columns
# (ColumnHandling: custom columns carry the `x_` prefix and come after all FOCUS columns).
FOCUS_COLUMNS: tuple[str, ...] = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
CUSTOM_COLUMNS: tuple[str, ...] = (
    "x_Provider",
    "x_Integration",
    "x_Metric",
    "x_Model",
    "x_Deployment",
    "x_Endpoint",
    "x_Resource",
    "x_Operation",
    "x_ApiKey",
    "x_Provenance",
    # Added dimensions (usage/dimensions.py ADDED_DIMENSIONS), appended in their order.
    "x_ServiceTier",
    "x_Batch",
    "x_ContextWindow",
    "x_InferenceGeo",
    "x_Speed",
)
FOCUS_HEADER: tuple[str, ...] = (*FOCUS_COLUMNS, *CUSTOM_COLUMNS)

# Quantity rows have no currency of their own; their cost columns are 0 in the currency the
# AI providers bill in.
DEFAULT_CURRENCY = "USD"
# A provider class may declare its own FOCUS categories (e.g. an identity API); the rest are AI.
DEFAULT_SERVICE_CATEGORY = "AI and Machine Learning"
DEFAULT_SERVICE_SUBCATEGORY = "Generative AI"
# Our units → FOCUS UnitFormat (plural, capitalised: "Tokens", "Requests", "Seconds").
FOCUS_UNITS = {"tokens": "Tokens", "requests": "Requests", "seconds": "Seconds", "calls": "Calls", "hours": "Hours"}
METRIC_LABELS = {
    "input_tokens": "input tokens",
    "cached_input_tokens": "cached input tokens",
    "cache_write_tokens": "cache write tokens",
    "output_tokens": "output tokens",
    "requests": "requests",
    "throttled_requests": "throttled requests",
    "failed_requests": "failed requests",
    "compute_seconds": "compute seconds",
    "provisioned_hours": "provisioned PTU hours",
    "training_tokens": "training tokens",
    "api_calls": "API calls",
    "images": "images",
    "characters": "characters",
    "audio_seconds": "audio seconds",
    "sessions": "sessions",
    "storage_byte_days": "storage byte-days",
    "billed_quantity": "billed quantity",
    "byok_cost": "BYOK spend",
    "cost": "cost",
}
ONE = Number("1")
NOT_CHARGES = ("billed_quantity", "byok_cost")  # kept in the docs/architecture.md CSV, left out of FOCUS

_VALUES: tuple[str, ...] = (
    *RECORD_VALUES,
    "provenance",
    "application_id",
    "license_id",
    "stream",
    "sibling_cached",
    "sibling_cache_write",
    *ADDED_DIMENSIONS,
)


@dataclass(frozen=True)
class ProviderFacts:
    service_name: str
    vendor: str
    service_category: str
    service_subcategory: str


@lru_cache(maxsize=256)
def provider_facts(slug: str) -> ProviderFacts:
    """The registry's names for a provider slug, looked up once per slug (not per row)."""
    try:
        provider = get_provider(slug)
    except LookupError:  # a provider since removed from the registry: its slug is all we know
        return ProviderFacts(slug, slug, DEFAULT_SERVICE_CATEGORY, DEFAULT_SERVICE_SUBCATEGORY)
    return ProviderFacts(
        service_name=provider.name,
        vendor=provider.vendor or provider.name,
        service_category=getattr(provider, "focus_service_category", DEFAULT_SERVICE_CATEGORY),
        service_subcategory=getattr(provider, "focus_service_subcategory", DEFAULT_SERVICE_SUBCATEGORY),
    )


@dataclass(frozen=True)
class IntegrationFacts:
    name: str
    project_names: dict[str, str]
    deployments: Deployments = NO_DEPLOYMENTS


class IntegrationCache:
    """Integration name and project names (from its last Test connection), one query each."""

    def __init__(self) -> None:
        self._facts: dict[int, IntegrationFacts] = {}

    def __getitem__(self, pk: int) -> IntegrationFacts:
        facts = self._facts.get(pk)
        if facts is None:
            found = Integration.objects.filter(pk=pk).values_list("name", "identity").first()
            name, identity = found if found else ("", None)
            facts = self._facts[pk] = IntegrationFacts(
                name, _project_names(identity), Deployments.from_identity(identity)
            )
        return facts


def _project_names(identity: object) -> dict[str, str]:
    details = identity.get("details") if isinstance(identity, dict) else None
    projects = details.get("projects") if isinstance(details, dict) else None
    names: dict[str, str] = {}
    for project in projects if isinstance(projects, list) else []:
        if isinstance(project, dict) and project.get("id") and project.get("name"):
            names[str(project["id"])] = str(project["name"])
    return names


class BillingPeriods:
    """The calendar month (UTC) holding a charge: how the AI providers invoice. Memoised on the
    month, which consecutive rows share."""

    def __init__(self) -> None:
        self._month: tuple[int, int] | None = None
        self._bounds = ("", "")

    def __call__(self, moment: datetime) -> tuple[str, str]:
        utc = moment.astimezone(UTC)
        if (utc.year, utc.month) != self._month:
            self._month = (utc.year, utc.month)
            start = datetime(utc.year, utc.month, 1, tzinfo=UTC)
            end = datetime(utc.year + utc.month // 12, utc.month % 12 + 1, 1, tzinfo=UTC)
            self._bounds = (format_time(start), format_time(end))
        return self._bounds


@lru_cache(maxsize=4096)
def charge_description(service: str, metric: str, subject: str) -> str:
    """e.g. "OpenAI input tokens — gpt-4o", "OpenAI cost — gpt-4o input"."""
    label = METRIC_LABELS.get(metric, metric.replace("_", " "))
    return f"{service} {label} — {subject}" if subject else f"{service} {label}"


@lru_cache(maxsize=1024)  # a workspace has few (application, license) pairs
def tags_json(application: str, license_: str) -> str:
    """Tags: a JSON object with the attribution's keys that are set; null (empty) without any."""
    tags = {key: value for key, value in (("application", application), ("license", license_)) if value}
    return json.dumps(tags, ensure_ascii=False, separators=(",", ":")) if tags else ""


def usage_focus_rows(records: QuerySet[UsageRecord]) -> Iterator[list[str]]:
    """The FOCUS header, then one row of strings per record ("" is null), streamed in chunks.
    The amounts and quantities are `Number`s (a credit stays -1.5); every other cell is text
    that the writer guards against formulas."""
    yield list(FOCUS_HEADER)
    labels = AttributionLabels()
    integrations = IntegrationCache()
    periods = BillingPeriods()
    starts, ends = TimeFormatter(), TimeFormatter()
    # A row's estimated_cost is the ListCost of its usage rows: listing it too would count it twice.
    # A cost line's billed_quantity repeats usage the usage rows already consume, and byok_cost
    # is billed by another provider (not this row's issuer): neither is a FOCUS charge here.
    records = _with_cache_siblings(records.exclude(metric__in=(ESTIMATED_COST, *NOT_CHARGES)))
    for row in records.values_list(*_VALUES).iterator(chunk_size=CHUNK_SIZE):
        (slug, integration_id, start, end, account, project, region, model, deployment, endpoint, resource,
         operation, api_key, metric, quantity, unit, provenance, application_id, license_id, stream,
         cached, cache_write, *added) = row  # fmt: skip
        provider = provider_facts(slug)
        integration = integrations[integration_id]
        amount = format_quantity(quantity)
        if metric == "cost":
            category = "Credit" if quantity < 0 else "Usage"
            currency, cost = unit.upper(), amount
            # FOCUS: a Usage row needs a consumed and a pricing quantity; a Credit must have none.
            consumed = priced = amount if category == "Usage" else ""
            consumed_unit = currency if category == "Usage" else ""
            subject = " ".join(part for part in (model or resource, operation) if part)
            list_cost, list_unit_price = cost, (ONE if category == "Usage" else "")  # one dollar per dollar
        else:
            category, currency, cost = "Usage", DEFAULT_CURRENCY, ZERO
            consumed = priced = amount
            consumed_unit = FOCUS_UNITS.get(unit, unit.capitalize())
            subject = model or resource or operation
            dims = {"model": model, "deployment": deployment, "resource": resource, "operation": operation,
                    **dict(zip(ADDED_DIMENSIONS, added, strict=True))}  # fmt: skip
            listed = list_price_of_row(
                slug, stream=stream, dims=dims, bucket_start=start, metric=metric, quantity=quantity,
                cached=cached, cache_write=cache_write, deployments=integration.deployments,
            )  # fmt: skip
            if listed is None:  # unpriced (or priced by the hour): no published unit price applies
                list_cost, list_unit_price = ZERO, ""
            else:
                priced = format_quantity(listed.pricing_quantity)
                list_cost, list_unit_price = format_quantity(listed.cost), format_quantity(listed.unit_price)
        resource_id = deployment or endpoint
        period_start, period_end = periods(start)
        yield [
            cost,  # BilledCost
            account or f"doow-integration-{integration_id}",  # BillingAccountId
            integration.name,  # BillingAccountName
            currency,  # BillingCurrency
            period_end,  # BillingPeriodEnd
            period_start,  # BillingPeriodStart
            category,  # ChargeCategory
            "",  # ChargeClass: no row corrects an invoiced period
            charge_description(provider.service_name, metric, subject),  # ChargeDescription
            "Usage-Based",  # ChargeFrequency
            ends(end),  # ChargePeriodEnd
            starts(start),  # ChargePeriodStart
            consumed,  # ConsumedQuantity
            consumed_unit,  # ConsumedUnit
            cost,  # ContractedCost
            cost,  # EffectiveCost
            provider.vendor,  # InvoiceIssuerName
            list_cost,  # ListCost
            list_unit_price,  # ListUnitPrice
            "Standard" if category == "Usage" else "",  # PricingCategory
            priced,  # PricingQuantity
            consumed_unit,  # PricingUnit
            provider.vendor,  # ProviderName
            provider.vendor,  # PublisherName
            region,  # RegionId
            region,  # RegionName: no display names are known, the id is the name
            resource_id,  # ResourceId
            "",  # ResourceName: one identifier per deployment is known, and it is ResourceId
            ("Deployment" if deployment else "Endpoint") if resource_id else "",  # ResourceType
            provider.service_category,  # ServiceCategory
            provider.service_name,  # ServiceName
            provider.service_subcategory,  # ServiceSubcategory
            model or resource or operation or slug,  # SkuId
            project,  # SubAccountId
            (integration.project_names.get(project) or project) if project else "",  # SubAccountName
            tags_json(labels.application(application_id), labels.license(license_id)),  # Tags
            slug,  # x_Provider
            Number(integration_id),  # x_Integration
            metric,  # x_Metric
            model,  # x_Model
            deployment,  # x_Deployment
            endpoint,  # x_Endpoint
            resource,  # x_Resource
            operation,  # x_Operation
            api_key,  # x_ApiKey
            provenance,  # x_Provenance
            *added,  # x_ServiceTier, x_Batch, x_ContextWindow, x_InferenceGeo, x_Speed
        ]


def _with_cache_siblings(records: QuerySet[UsageRecord]) -> QuerySet[UsageRecord]:
    """An input_tokens row with the cached and cache-write quantities of its key (one
    unique-index lookup each), so its PricingQuantity can be the uncached part."""
    key = {"integration": OuterRef("integration"), "bucket_start": OuterRef("bucket_start"),
           "bucket_end": OuterRef("bucket_end"), **{d: OuterRef(d) for d in DIMENSION_FIELDS}}  # fmt: skip

    def sibling(metric: str) -> Case:
        found = UsageRecord.objects.filter(metric=metric, **key).values("quantity")[:1]
        return Case(When(metric="input_tokens", then=Subquery(found)), default=None)

    return records.annotate(
        sibling_cached=sibling("cached_input_tokens"), sibling_cache_write=sibling("cache_write_tokens")
    )


def usage_write_focus(out: Writable, records: QuerySet[UsageRecord]) -> int:
    """Write the FOCUS 1.2 CSV of `records` to `out`; returns the number of data rows."""
    return write_rows_closing(out, usage_focus_rows(records))
