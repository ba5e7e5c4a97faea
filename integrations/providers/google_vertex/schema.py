"""BigQuery's query responses, validated at the boundary, and the pure mapping of billing rows
to UsageSamples.

`jobs.query` and `getQueryResults` share one shape: `jobComplete`, `jobReference`, and when
complete `schema.fields`, `rows[].f[].v` (every value a string, or null), `totalRows` (a
string) and `pageToken`. `rows` is absent when there are none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.providers.base import UsageSample
from integrations.providers.google_vertex.skus import parse_sku
from integrations.providers.toolkit import Shape

DAY = timedelta(days=1)
COLUMNS = ("usage_day", "project_id", "region", "sku_id", "sku_description", "usage_unit", "currency",
           "usage_amount", "cost", "credits")  # fmt: skip
# Columns a result may lack (an older query's): the service (then "", as before services were
# read) and the export's labels (then none). `credits` is either a number (an older query: the
# sum of every credit, untyped) or a JSON list of {"type", "amount"} (credits kept by type).
OPTIONAL_COLUMNS = ("service_id", "service_description", "labels")
# usage.unit values that count tokens: "count" is what Vertex's token SKUs report; a leading
# multiplier ("1k tokens", "1000 count", "1M tokens") is multiplied out. Characters (Gemini 1.x
# text SKUs), seconds, hours, requests, bytes… are not tokens: those rows keep only their cost.
_TOKEN_UNIT = re.compile(r"(?:(?P<n>\d+(?:\.\d+)?)\s*(?P<mult>[km])?\s+)?(?:tokens?|count)")
_MULTIPLIERS = {None: 1, "k": 1_000, "m": 1_000_000}
CREDITS_OPERATION = "credits"
MAX_LABELS = 50  # per row: the export allows 64 per resource; the rest are dropped
MAX_LABEL_TEXT = 200


def credit_operation(credit_type: str) -> str:
    """The operation of a credit row: "credits" untyped, else e.g. "credits: committed usage
    discount" — each credit type its own row, so committed-use and promotional credits are never
    one figure."""
    kind = " ".join(credit_type.strip().lower().replace("_", " ").split())
    return f"{CREDITS_OPERATION}: {kind}" if kind else CREDITS_OPERATION


def is_credit(operation: str) -> bool:
    return operation == CREDITS_OPERATION or operation.startswith(CREDITS_OPERATION + ": ")


@dataclass(frozen=True)
class QueryPage:
    complete: bool
    job_project: str | None
    job_id: str | None
    job_location: str | None
    fields: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]
    total_rows: int | None
    page_token: str | None
    bytes_processed: int | None


@dataclass(frozen=True)
class BillingRow:
    day: date
    project_id: str
    region: str
    sku_id: str
    sku_description: str
    usage_unit: str
    currency: str
    usage_amount: Decimal
    cost: Decimal  # gross, before credits
    credits: Decimal  # the sum of the rows' credits (negative or zero)
    credits_by_type: tuple[tuple[str, Decimal], ...] = ()  # (credits[].type, sum); ("", sum) untyped
    service_id: str = ""
    service_description: str = ""
    labels: tuple[tuple[str, str], ...] = field(default=())  # the export's `labels`, sorted


shape = Shape("BigQuery")


def _opt_int(obj: dict[str, Any], key: str, where: str) -> int | None:
    value = shape.opt_str(obj, key, where)  # int64 values travel as strings
    if value is not None and not value.isdigit():
        raise shape.bad(f"{where}.{key} is not an integer string")
    return int(value) if value is not None else None


def parse_query_response(body: Any) -> QueryPage:
    body = shape.obj(body, "the body")
    complete = body.get("jobComplete")
    if not isinstance(complete, bool):
        raise shape.bad("jobComplete is missing or not a boolean")
    reference = shape.obj(body.get("jobReference") or {}, "jobReference")
    fields: tuple[str, ...] = ()
    rows: list[tuple[str | None, ...]] = []
    if complete and "schema" in body:
        schema = body["schema"]
        if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
            raise shape.bad("schema.fields is not a list")
        if not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in schema["fields"]):
            raise shape.bad("a schema field has no name")
        fields = tuple(f["name"] for f in schema["fields"])
    for i, raw in enumerate(shape.array(body.get("rows") or [], "rows")):
        cells = raw.get("f") if isinstance(raw, dict) else None
        if not isinstance(cells, list) or len(cells) != len(fields):
            raise shape.bad(f"rows[{i}].f does not match the schema")
        values = tuple(c.get("v") if isinstance(c, dict) else c for c in cells)
        if not all(v is None or isinstance(v, str) for v in values):  # scalars only: we select no records
            raise shape.bad(f"rows[{i}] holds a value that is not a string")
        rows.append(values)
    return QueryPage(
        complete=complete,
        job_project=shape.opt_str(reference, "projectId", "jobReference"),
        job_id=shape.opt_str(reference, "jobId", "jobReference"),
        job_location=shape.opt_str(reference, "location", "jobReference"),
        fields=fields,
        rows=tuple(rows),
        total_rows=_opt_int(body, "totalRows", "response"),
        page_token=shape.opt_str(body, "pageToken", "response"),
        bytes_processed=_opt_int(body, "totalBytesProcessed", "response"),
    )


def _decimal(value: str | None, where: str) -> Decimal:
    return Decimal(0) if value is None else shape.number(value, where)


def billing_rows(fields: tuple[str, ...], rows: tuple[tuple[str | None, ...], ...]) -> list[BillingRow]:
    missing = [c for c in COLUMNS if c not in fields]
    if missing and rows:
        raise shape.bad(f"the result lacks the columns {', '.join(missing)}")
    index = {name: fields.index(name) for name in (*COLUMNS, *OPTIONAL_COLUMNS) if name in fields}
    out = []
    for i, row in enumerate(rows):
        value = {name: row[j] for name, j in index.items()}
        try:
            day = date.fromisoformat(value["usage_day"] or "")
        except ValueError:
            raise shape.bad(f"rows[{i}].usage_day is not a date") from None
        if not value["sku_id"] or not value["currency"]:
            raise shape.bad(f"rows[{i}] has no sku_id or currency")
        by_type = _credits(value["credits"], f"rows[{i}].credits")
        out.append(BillingRow(
            day=day,
            project_id=value["project_id"] or "",  # null: charges not tied to a project
            region=value["region"] or "",  # null: global endpoints and multi-region charges
            sku_id=value["sku_id"],
            sku_description=value["sku_description"] or "",
            usage_unit=(value["usage_unit"] or "").strip(),
            currency=value["currency"].strip().upper(),
            usage_amount=_decimal(value["usage_amount"], f"rows[{i}].usage_amount"),
            cost=_decimal(value["cost"], f"rows[{i}].cost"),
            credits=sum((amount for _, amount in by_type), Decimal(0)),
            credits_by_type=by_type,
            service_id=(value.get("service_id") or "").strip(),
            service_description=" ".join((value.get("service_description") or "").split()),
            labels=_labels(value.get("labels"), f"rows[{i}].labels"),
        ))  # fmt: skip
    return out


def _credits(value: str | None, where: str) -> tuple[tuple[str, Decimal], ...]:
    """Credits by type: a JSON list of {"type", "amount"} (amounts summed per type), or a
    plain number (one untyped figure)."""
    if value is None:
        return ()
    text = value.strip()
    if not text.startswith("["):
        amount = _decimal(text, where)
        return (("", amount),) if amount else ()
    try:
        items = json.loads(text)
    except ValueError:
        raise shape.bad(f"{where} is neither a number nor a JSON list") from None
    sums: dict[str, Decimal] = {}
    for j, item in enumerate(shape.array(items, where)):
        if not isinstance(item, dict) or not isinstance(item.get("type") or "", str):
            raise shape.bad(f"{where}[{j}] is not a credit")
        raw = item.get("amount")
        amount = _decimal(raw if isinstance(raw, str) else (None if raw is None else str(raw)), f"{where}[{j}].amount")
        kind = (item.get("type") or "").strip()[:80]
        sums[kind] = sums.get(kind, Decimal(0)) + amount
    return tuple(sorted((k, a) for k, a in sums.items() if a))


def _labels(value: str | None, where: str) -> tuple[tuple[str, str], ...]:
    """The export's labels, a JSON list of {"key", "value"} (as TO_JSON_STRING writes the
    ARRAY<STRUCT<key, value>> column); malformed entries are an error, too many are cut."""
    if not value:
        return ()
    try:
        items = json.loads(value)
    except ValueError:
        raise shape.bad(f"{where} is not JSON") from None
    pairs = {}
    for j, item in enumerate(shape.array(items, where)):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise shape.bad(f"{where}[{j}] is not a label")
        label_value = item.get("value")
        if label_value is not None and not isinstance(label_value, str):
            raise shape.bad(f"{where}[{j}].value is not a string")
        pairs[item["key"][:MAX_LABEL_TEXT]] = (label_value or "")[:MAX_LABEL_TEXT]
    return tuple(sorted(pairs.items()))[:MAX_LABELS]


def token_quantity(amount: Decimal, unit: str) -> Decimal | None:
    """Tokens in `amount` of `unit`, or None when the unit does not count tokens."""
    match = _TOKEN_UNIT.fullmatch(" ".join(unit.lower().split()))
    if match is None:
        return None
    return amount * Decimal(match["n"] or 1) * _MULTIPLIERS[match["mult"]]


def billing_samples(rows: list[BillingRow], *, account: str) -> list[UsageSample]:
    """One gross `cost` sample per SKU row, one negative `cost` sample per credit type with
    operation "credits: <type>" (so a plain sum is the net, invoiced cost, and committed-use
    credits stay apart from promotions), and token samples when the SKU is understood and its
    unit counts tokens. endpoint = the billing service ("Vertex AI", "Generative Language API",
    a partner model's service). Samples sharing a key add up; their labels are the labels every
    row of the key carries (the export groups rows by label set, our key does not)."""
    totals: dict[tuple[Any, ...], Decimal] = {}
    units: dict[tuple[Any, ...], str] = {}
    labels: dict[tuple[Any, ...], set[tuple[str, str]]] = {}

    def add(key: tuple[Any, ...], quantity: Decimal, unit: str, row_labels: tuple[tuple[str, str], ...]) -> None:
        if units.setdefault(key, unit) != unit:
            raise shape.bad(f"one key holds two currencies ({units[key]}, {unit})")
        totals[key] = totals.get(key, Decimal(0)) + quantity
        labels[key] = labels[key] & set(row_labels) if key in labels else set(row_labels)

    for row in rows:
        sku = parse_sku(row.sku_description)
        # Field lengths of the usage store; the SKU id in `resource` keeps truncated ones apart.
        dims = (row.day, row.project_id[:200], row.region[:64], sku.model[:200], row.sku_id[:200],
                row.service_description[:200])  # fmt: skip
        add((*dims, sku.operation[:200] or row.sku_id[:200], "cost"), row.cost, row.currency, row.labels)
        for credit_type, amount in row.credits_by_type or ((("", row.credits),) if row.credits else ()):
            add((*dims, credit_operation(credit_type)[:200], "cost"), amount, row.currency, row.labels)
        tokens = token_quantity(row.usage_amount, row.usage_unit)
        if tokens is not None and sku.understood:
            for metric in sku.token_metrics:
                add((*dims, sku.operation[:200], metric), tokens, "tokens", row.labels)
    samples = []
    for key, quantity in totals.items():
        day, project, region, model, resource, endpoint, operation, metric = key
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        samples.append(UsageSample(
            start, start + DAY, metric, quantity, unit=units[key], account=account, project=project, region=region,
            model=model, resource=resource, endpoint=endpoint, operation=operation, labels=tuple(sorted(labels[key])),
        ))  # fmt: skip
    return sorted(samples, key=lambda s: s.bucket_start)
