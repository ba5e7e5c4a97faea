"""The FOCUS 1.2 export (usage/export_focus.py) on PostgreSQL: `COPY (SELECT …) TO STDOUT CSV`,
byte for byte what the Python writer (usage_focus_rows → formula_safe_writer) produces.

As the docs/architecture.md CSV (usage/export_copy.py, whose cell rules this follows: times by to_char,
numbers by trim_scale, text through the formula guard in SQL, empty text as NULL, CRLF added in
Python), with what only Python knows staged before the COPY:

- **The row keys' facts** — list unit price (usage/pricing: genai-prices, the price tables, the
  integration's deployments), provider names and categories, the integration's name, the
  charge description, the currency and FOCUS unit, the Tags JSON — depend on a few columns of a
  row only: (integration, provider, stream, model, deployment, resource, operation, service
  tier, batch, metric, unit, application, license) and, for the price, the UTC day. One
  aggregate over the exported rows lists those keys (a few hundred to a few thousand: 40 models
  × 4 metrics × the days, whatever the row count); Python computes each key's cells with the
  very functions the Python writer calls (list_price_of_row, provider_facts, charge_description,
  tags_json, escape_cell) into a temporary table (`doow_focus_keys`, dropped by the next export
  or the session's end), and the COPY select reads them by an index lookup per row (memoized:
  consecutive rows share their key).
- **Project names** from each integration's last Test connection: a temporary table too
  (`doow_focus_projects`, usually empty).
- **Exact list cost**: the staged unit price is the Decimal the Python path uses (12 places,
  normalized); ListCost = unit price × PricingQuantity in numeric, which multiplies exactly, and
  an input_tokens row's PricingQuantity is its uncached part, from the same per-key sibling
  subqueries as the Python path (usage.export_focus._with_cache_siblings).

SQLite has no COPY: it keeps the Python writer.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction

from usage.csv_safety import Writable, escape_cell
from usage.dimensions import ADDED_DIMENSIONS, CSV_DIMENSIONS
from usage.export import AttributionLabels
from usage.export_copy import _TIME, CopyExport, _blocks_of, _guard
from usage.export_focus import (
    DEFAULT_CURRENCY,
    FOCUS_HEADER,
    FOCUS_UNITS,
    NOT_CHARGES,
    IntegrationCache,
    _with_cache_siblings,
    charge_description,
    provider_facts,
    tags_json,
    usage_focus_rows,
)
from usage.models import UsageRecord
from usage.pricing.estimate import ESTIMATED_COST
from usage.pricing.list_prices import list_price_of_row
from usage.pricing.prices import PRICED_METRICS

if TYPE_CHECKING:
    from django.db.models import QuerySet

# The columns a row's staged facts depend on (besides its UTC day). Application and license are
# nullable: they are keyed as coalesce(id, 0).
KEY_COLUMNS: tuple[str, ...] = (
    "integration_id", "provider", "stream", "model", "deployment", "resource", "operation",
    "service_tier", "batch", "metric", "unit", "application_id", "license_id",
)  # fmt: skip
_NULLABLE = ("application_id", "license_id")
ONE_DAY = timedelta(days=1)
_DAY = "(({x}) AT TIME ZONE 'UTC')::date"
# What each key's staged row holds, each cell already as the Python writer writes it
# (formula-guarded, NULL for empty).
_FACTS = (
    "unit_price", "integration_name", "vendor", "service_name", "service_category", "service_subcategory",
    "description", "currency", "consumed_unit", "tags",
)  # fmt: skip


def _key_sql(column: str, alias: str) -> str:
    return f"coalesce({alias}.{column}, 0)" if column in _NULLABLE else f"{alias}.{column}"


def _exported(records: QuerySet[UsageRecord]) -> QuerySet[UsageRecord]:
    """The rows FOCUS lists (as usage_focus_rows): no estimated_cost, billed_quantity, byok_cost."""
    return records.exclude(metric__in=(ESTIMATED_COST, *NOT_CHARGES))


def _text(value: str) -> str | None:
    """A text cell as the writer writes it: guarded; None (COPY's NULL, nothing) when empty."""
    cell = escape_cell(value)
    return cell if cell else None  # type: ignore[return-value]


def _key_facts(key: tuple[Any, ...], integrations: IntegrationCache, labels: AttributionLabels) -> tuple[Any, ...]:
    """The staged text cells of one key: the same functions and rules as usage_focus_rows."""
    (integration_id, slug, _stream, model, _deployment, resource, operation, _tier, _batch, metric, unit,
     application_id, license_id) = key  # fmt: skip
    provider = provider_facts(slug)
    if metric == "cost":
        currency = consumed_unit = unit.upper()
        subject = " ".join(part for part in (model or resource, operation) if part)
    else:
        currency = DEFAULT_CURRENCY
        consumed_unit = FOCUS_UNITS.get(unit, unit.capitalize())
        subject = model or resource or operation
    return (
        _text(integrations[integration_id].name),
        _text(provider.vendor),
        _text(provider.service_name),
        _text(provider.service_category),
        _text(provider.service_subcategory),
        _text(charge_description(provider.service_name, metric, subject)),
        _text(currency),
        _text(consumed_unit),
        _text(tags_json(labels.application(application_id or None), labels.license(license_id or None))),
    )


def _unit_price(key: tuple[Any, ...], day: date, integrations: IntegrationCache) -> Decimal | None:
    """The key's list unit price on `day` (UTC), as list_price_of_row gives it to the Python path."""
    (integration_id, slug, stream, model, deployment, resource, operation, service_tier, batch, metric, *_) = key
    dims = {"model": model, "deployment": deployment, "resource": resource, "operation": operation,
            "service_tier": service_tier, "batch": batch}  # fmt: skip
    listed = list_price_of_row(
        slug, stream=stream, dims=dims, bucket_start=datetime.combine(day, time(12), tzinfo=UTC), metric=metric,
        quantity=Decimal(0), deployments=integrations[integration_id].deployments,
    )  # fmt: skip
    return None if listed is None else listed.unit_price


def _price_ranges(
    key: tuple[Any, ...], first: date, last: date, integrations: IntegrationCache
) -> Iterator[tuple[date, date, Decimal | None]]:
    """(from, until (exclusive), unit price) covering first..last: one range per price in force.
    Prices change rarely, so a key has one or a few ranges however many days it spans."""
    if key[9] not in PRICED_METRICS:  # cost and unpriced metrics: no unit price on any day
        yield first, last + ONE_DAY, None
        return
    since, price = first, _unit_price(key, first, integrations)
    day = first + ONE_DAY
    while day <= last:
        today = _unit_price(key, day, integrations)
        if today != price:
            yield since, day, price
            since, price = day, today
        day += ONE_DAY
    yield since, last + ONE_DAY, price


def _stage(cursor: Any, records: QuerySet[UsageRecord]) -> None:
    """Fill doow_focus_keys and doow_focus_projects for `records` (already without the rows FOCUS
    leaves out): one row per key and price range, however many rows the export holds."""
    inner_sql, params = records.order_by().values_list(*KEY_COLUMNS, "bucket_start").query.sql_with_params()
    keys = ", ".join(_key_sql(c, "r") for c in KEY_COLUMNS)
    day = _DAY.format(x="r.bucket_start")
    cursor.execute(f"SELECT {keys}, min({day}), max({day}) FROM ({inner_sql}) r GROUP BY {keys}", params)
    found = cursor.fetchall()
    integrations, labels = IntegrationCache(), AttributionLabels()
    cursor.execute("DROP TABLE IF EXISTS doow_focus_keys, doow_focus_projects")
    key_columns = ", ".join(f"{c} {'bigint' if c in ('integration_id', *_NULLABLE) else 'text'}" for c in KEY_COLUMNS)
    facts = ", ".join(f"{f} {'numeric' if f == 'unit_price' else 'text'}" for f in _FACTS)
    cursor.execute(f"CREATE TEMPORARY TABLE doow_focus_keys ({key_columns}, day_from date, day_until date, {facts})")
    # Computed before the COPY opens: the facts' own queries (names, labels) need the connection.
    staged = [
        (*key, since, until, price, *_key_facts(tuple(key), integrations, labels))
        for *key, first, last in found
        for since, until, price in _price_ranges(tuple(key), first, last, integrations)
    ]
    with cursor.cursor.copy("COPY doow_focus_keys FROM STDIN") as copy:
        for row in staged:
            copy.write_row(row)
    cursor.execute("CREATE INDEX ON doow_focus_keys (metric, model, integration_id)")
    cursor.execute("CREATE TEMPORARY TABLE doow_focus_projects (integration_id bigint, project text, name text)")
    projects = [
        (pk, project, name)
        for pk in {row[0] for row in found}
        for project, name in integrations[pk].project_names.items()
    ]
    if projects:
        with cursor.cursor.copy("COPY doow_focus_projects FROM STDIN") as copy:
            for row in projects:
                copy.write_row(row)
    cursor.execute("ANALYZE doow_focus_keys")
    cursor.execute("ANALYZE doow_focus_projects")


def usage_focus_copy_query(records: QuerySet[UsageRecord]) -> tuple[str, tuple[object, ...]]:
    """`COPY (SELECT …) TO STDOUT CSV` of the FOCUS rows of `records` (already without the rows
    FOCUS leaves out), reading the staged tables; in the export's order (bucket, then id)."""
    inner = _with_cache_siblings(records).order_by().values_list(
        "id", "provider", "integration_id", "bucket_start", "bucket_end", *CSV_DIMENSIONS, "metric", "quantity", "unit",
        "application_id", "license_id", "provenance", "stream", "sibling_cached", "sibling_cache_write", *ADDED_DIMENSIONS,
    )  # fmt: skip
    inner_sql, params = inner.query.sql_with_params()
    is_cost = "r.metric = 'cost'"
    credit = f"({is_cost} AND r.quantity < 0)"
    amount = "trim_scale(r.quantity)::text"
    priced = (
        "CASE WHEN r.metric = 'input_tokens' THEN GREATEST(r.quantity - coalesce(r.sibling_cached, 0)"
        " - coalesce(r.sibling_cache_write, 0), 0) ELSE r.quantity END"
    )
    cost = f"CASE WHEN {is_cost} THEN {amount} ELSE '0' END"
    consumed_unit = f"CASE WHEN {credit} THEN NULL ELSE k.consumed_unit END"
    consumed = f"CASE WHEN {credit} THEN NULL ELSE {amount} END"
    columns = {
        "BilledCost": cost,
        "BillingAccountId": _guard(
            "CASE WHEN r.account <> '' THEN r.account ELSE 'doow-integration-' || r.integration_id END"
        ),
        "BillingAccountName": "k.integration_name",
        "BillingCurrency": f"CASE WHEN {is_cost} THEN k.currency ELSE '{DEFAULT_CURRENCY}' END",
        "BillingPeriodEnd": "bs.period_end",
        "BillingPeriodStart": "bs.period_start",
        "ChargeCategory": f"CASE WHEN {credit} THEN 'Credit' ELSE 'Usage' END",
        "ChargeClass": "NULL",
        "ChargeDescription": "k.description",
        "ChargeFrequency": "'Usage-Based'",
        "ChargePeriodEnd": "be.text",
        "ChargePeriodStart": "bs.text",
        "ConsumedQuantity": consumed,
        "ConsumedUnit": consumed_unit,
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceIssuerName": "k.vendor",
        "ListCost": (
            f"CASE WHEN {is_cost} THEN {amount} WHEN k.unit_price IS NULL THEN '0'"
            f" ELSE trim_scale(k.unit_price * ({priced}))::text END"
        ),
        "ListUnitPrice": (
            f"CASE WHEN {credit} THEN NULL WHEN {is_cost} THEN '1' ELSE trim_scale(k.unit_price)::text END"
        ),
        "PricingCategory": f"CASE WHEN {credit} THEN NULL ELSE 'Standard' END",
        "PricingQuantity": (
            f"CASE WHEN {is_cost} THEN {consumed} WHEN k.unit_price IS NULL THEN {amount}"
            f" ELSE trim_scale({priced})::text END"
        ),
        "PricingUnit": consumed_unit,
        "ProviderName": "k.vendor",
        "PublisherName": "k.vendor",
        "RegionId": _guard("r.region"),
        "RegionName": _guard("r.region"),
        "ResourceId": _guard("CASE WHEN r.deployment <> '' THEN r.deployment ELSE r.endpoint END"),
        "ResourceName": "NULL",
        "ResourceType": "CASE WHEN r.deployment <> '' THEN 'Deployment' WHEN r.endpoint <> '' THEN 'Endpoint' END",
        "ServiceCategory": "k.service_category",
        "ServiceName": "k.service_name",
        "ServiceSubcategory": "k.service_subcategory",
        "SkuId": _guard("coalesce(nullif(r.model, ''), nullif(r.resource, ''), nullif(r.operation, ''), r.provider)"),
        "SubAccountId": _guard("r.project"),
        "SubAccountName": _guard("CASE WHEN r.project = '' THEN '' ELSE coalesce(nullif(pn.name, ''), r.project) END"),
        "Tags": "k.tags",
        "x_Provider": _guard("r.provider"),
        "x_Integration": "r.integration_id",
        "x_Metric": _guard("r.metric"),
        "x_Model": _guard("r.model"),
        "x_Deployment": _guard("r.deployment"),
        "x_Endpoint": _guard("r.endpoint"),
        "x_Resource": _guard("r.resource"),
        "x_Operation": _guard("r.operation"),
        "x_ApiKey": _guard("r.api_key"),
        "x_Provenance": _guard("r.provenance"),
        **{f"x_{i}": _guard(f"r.{field}") for i, field in enumerate(ADDED_DIMENSIONS)},
    }
    assert len(columns) == len(FOCUS_HEADER), "the COPY select must list every FOCUS column in order"
    select = ",\n  ".join(columns.values())
    day = _DAY.format(x="r.bucket_start")
    key_match = " AND ".join(f"k.{c} = {_key_sql(c, 'r')}" for c in KEY_COLUMNS)
    month = "date_trunc('month', r.bucket_start AT TIME ZONE 'UTC')"
    period = """to_char({x}, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
    next_month = month + " + interval '1 month'"
    sql = (
        f"COPY (SELECT\n  {select}\n"
        f"FROM ({inner_sql}) r\n"
        f"LEFT JOIN LATERAL (SELECT * FROM doow_focus_keys k WHERE {key_match}"
        f" AND {day} >= k.day_from AND {day} < k.day_until OFFSET 0) k ON true\n"
        f"LEFT JOIN LATERAL (SELECT name FROM doow_focus_projects WHERE integration_id = r.integration_id"
        f" AND project = r.project OFFSET 0) pn ON true\n"
        f"LEFT JOIN LATERAL (SELECT {_TIME.format(x='r.bucket_start')} AS text,"
        f" {period.format(x=month)} AS period_start,"
        f" {period.format(x=next_month)} AS period_end OFFSET 0) bs ON true\n"
        f"LEFT JOIN LATERAL (SELECT {_TIME.format(x='r.bucket_end')} AS text OFFSET 0) be ON true\n"
        f"ORDER BY r.bucket_start, r.id) TO STDOUT WITH (FORMAT csv)"
    )
    return sql, params


def _focus_copy_blocks(records: QuerySet[UsageRecord], rows_per_block: int) -> Generator[tuple[bytes, int]]:
    records = _exported(records)
    with transaction.atomic(using=records.db), connections[records.db].cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # as the CSV's COPY (usage/export_copy.py)
        _stage(cursor, records)
        sql, params = usage_focus_copy_query(records)
        with cursor.cursor.copy(sql, params or None) as copy:
            yield from _blocks_of(copy, rows_per_block)


# ---------------------------------------------------------------- entry points
FOCUS_EXPORT = CopyExport(header=FOCUS_HEADER, copy_blocks=_focus_copy_blocks, python_rows=usage_focus_rows)


def usage_focus_stream(records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> Iterator[bytes | str]:
    """The FOCUS export of `records` for StreamingHttpResponse (CopyExport.stream)."""
    return FOCUS_EXPORT.stream(records, use_copy=use_copy)


def usage_focus_write(out: Writable, records: QuerySet[UsageRecord], *, use_copy: bool | None = None) -> int:
    """Write the FOCUS export of `records` to `out`; returns the number of data rows (CopyExport.write)."""
    return FOCUS_EXPORT.write(out, records, use_copy=use_copy)
