"""BigQuery: the billing settings, the one query the connector runs, and running it.

The table name cannot be a query parameter, so `billing_table` is validated strictly (only
letters, digits, `_`, `-`, `.`, `:` in the exact shape of a billing export table) before it
is put between backticks; everything else travels as NAMED parameters. `useLegacySql` is
always sent as false: the REST API's default is legacy SQL, which rejects this query.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
)
from integrations.providers.google_vertex.schema import QueryPage, parse_query_response
from integrations.providers.toolkit import paginate

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient

MAX_PAGES = 10_000  # result pages of one query: a pageToken loop that never ends is a bug, not a big export
VERTEX_SERVICE_ID = "C7E2-9256-1C43"  # service.id of "Vertex AI" in the billing catalogue
_PROJECT = r"(?:[a-z0-9](?:[a-z0-9.\-]{0,61}[a-z0-9])?:)?[a-z][a-z0-9\-]{4,28}[a-z0-9]"  # incl. domain:project
PROJECT_RE = re.compile(_PROJECT)
TABLE_RE = re.compile(
    rf"(?P<project>{_PROJECT})\.(?P<dataset>[A-Za-z0-9_]{{1,1024}})\."
    r"(?P<table>gcp_billing_export(?:_resource)?_v1_(?P<account>[0-9A-Za-z]{6}_[0-9A-Za-z]{6}_[0-9A-Za-z]{6}))"
)
LOCATION_RE = re.compile(r"[A-Za-z]{2,20}(?:-[A-Za-z0-9]{1,20}){0,3}")
JOB_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,1024}")
TABLE_HINT = (
    "Enter the standard usage cost export table as project.dataset.gcp_billing_export_v1_<BILLING_ACCOUNT> "
    "(BigQuery → the export dataset → the table → Details → Table ID, without backticks). It exists once "
    "Billing → Billing export → BigQuery export → Standard usage cost is enabled."
)
EXPORT_HINT = (
    "Enable Billing → Billing export → BigQuery export → Standard usage cost (the first rows arrive after a "
    "few hours), then check billing_table against the table's ID and location against the dataset's location."
)
LOCATION_HINT = "Set location to the export dataset's data location (BigQuery → the dataset → Details), e.g. US or EU."
DATA_VIEWER_HINT = (
    "Grant the service account BigQuery Data Viewer (roles/bigquery.dataViewer) on the billing export dataset: "
    "BigQuery → the dataset → Sharing → Permissions → Add principal."
)
JOB_USER_HINT = (
    "Grant the service account BigQuery Job User (roles/bigquery.jobUser) on the query project: IAM & Admin → "
    "IAM → Grant access, in that project."
)
QUERY = """\
WITH base AS (
  SELECT
    DATE(usage_start_time, "UTC") AS usage_day,
    IFNULL(project.id, "") AS project_id,
    IFNULL(location.region, "") AS region,
    service.id AS service_id,
    service.description AS service_description,
    sku.id AS sku_id,
    sku.description AS sku_description,
    IFNULL(usage.unit, "") AS usage_unit,
    currency,
    TO_JSON_STRING(ARRAY(SELECT AS STRUCT l.key, l.value FROM UNNEST(labels) AS l ORDER BY l.key, l.value)) AS labels,
    CAST(usage.amount AS NUMERIC) AS usage_amount,
    CAST(cost AS NUMERIC) AS cost,
    credits
  FROM `{table}`
  WHERE (service.id = @service_id OR REGEXP_CONTAINS(service.description, @other_services))
    AND usage_start_time >= @start_time
    AND usage_start_time < @end_time
    AND _PARTITIONTIME >= TIMESTAMP_SUB(@start_time, INTERVAL 2 DAY)
),
totals AS (
  SELECT usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels, SUM(usage_amount) AS usage_amount, SUM(cost) AS cost
  FROM base
  GROUP BY usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels
),
credit_sums AS (
  SELECT usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels, c.type AS credit_type, SUM(CAST(c.amount AS NUMERIC)) AS amount
  FROM base, UNNEST(credits) AS c
  GROUP BY usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels, credit_type
),
credit_lists AS (
  SELECT usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels,
    TO_JSON_STRING(ARRAY_AGG(STRUCT(credit_type AS type, CAST(amount AS STRING) AS amount) ORDER BY credit_type)) AS credits
  FROM credit_sums
  GROUP BY usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels
)
SELECT t.usage_day, t.project_id, t.region, t.service_id, t.service_description, t.sku_id, t.sku_description,
  t.usage_unit, t.currency, t.labels, t.usage_amount, t.cost, IFNULL(c.credits, "[]") AS credits
FROM totals AS t
LEFT JOIN credit_lists AS c
  USING (usage_day, project_id, region, service_id, service_description, sku_id, sku_description, usage_unit,
    currency, labels)
ORDER BY usage_day, project_id, region, sku_id, usage_unit, currency, labels
"""
# Which services: Vertex AI by its id; the Gemini API (billed as "Generative Language API")
# and partner models sold through Vertex AI's Model Garden (each billed under its own service,
# named after the model, e.g. "Claude Sonnet 4.5") by their service description.
OTHER_SERVICES = (
    r"^(?:Generative Language API|Gemini API)$"
    r"|^(?i:claude|anthropic|llama|meta llama|mistral|codestral|ministral|jamba|ai21|deepseek|qwen|gpt-oss"
    r"|kimi|minimax|glm)\b"
)
# Why the partition filter: the export is partitioned by day (_PARTITIONTIME) and a row lands
# in a partition at or after its usage, never more than a day before its UTC day starts; the
# lower bound prunes the history without losing late (restated) rows, which land later.


@dataclass(frozen=True)
class BillingConfig:
    table: str  # project.dataset.table, validated: safe between backticks
    billing_account: str  # "01A2B3-C4D5E6-F7A8B9", from the table's name
    query_project: str
    location: str
    base_url: str


def billing_config(*, table: str, query_project: str, location: str, base_url: str) -> BillingConfig:
    table = table.strip()
    if not table:
        raise ConfigurationError(
            "Enter the billing export table (billing_table).", hint=TABLE_HINT, field="billing_table"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.:\-]+", table):
        raise ConfigurationError(
            "billing_table may only hold letters, digits, '_', '-', '.' and ':' (no spaces, quotes or backticks).",
            hint=TABLE_HINT, field="billing_table",
        )  # fmt: skip
    match = TABLE_RE.fullmatch(table)
    if match is None:
        last = table.rsplit(".", 1)[-1]
        problem = (
            f"{table!r} is not a billing export table: its name must be gcp_billing_export_v1_<BILLING_ACCOUNT>."
            if not last.startswith("gcp_billing_export")
            else f"{table!r} is not of the form project.dataset.gcp_billing_export_v1_<BILLING_ACCOUNT>."
        )
        raise ConfigurationError(problem, hint=TABLE_HINT, field="billing_table")
    query_project = query_project.strip() or match["project"]
    if not PROJECT_RE.fullmatch(query_project):
        raise ConfigurationError(
            f"{query_project!r} is not a Google Cloud project id.",
            hint="Enter the id (not the name or number) of the project that runs the queries, e.g. my-project-123.",
            field="query_project",
        )
    location = location.strip()
    if not LOCATION_RE.fullmatch(location):
        raise ConfigurationError(f"{location[:50]!r} is not a BigQuery location.", hint=LOCATION_HINT, field="location")
    account = match["account"].replace("_", "-").upper()
    return BillingConfig(table, account, query_project, location, base_url.rstrip("/"))


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00:00")


def query_request(
    config: BillingConfig, start: datetime, end: datetime, *, max_bytes: int, page_size: int, timeout_ms: int,
    dry_run: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The jobs.query body for Vertex AI rows with usage in [start, end) (UTC instants)."""
    params = [("service_id", "STRING", VERTEX_SERVICE_ID), ("other_services", "STRING", OTHER_SERVICES),
              ("start_time", "TIMESTAMP", _timestamp(start)), ("end_time", "TIMESTAMP", _timestamp(end))]  # fmt: skip
    body: dict[str, Any] = {
        "query": QUERY.format(table=config.table),
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": [
            {"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}}
            for name, kind, value in params
        ],
        "maximumBytesBilled": str(max_bytes),  # int64 travels as a string
        "location": config.location,
        "timeoutMs": timeout_ms,
        "maxResults": page_size,
        "requestId": str(uuid.uuid4()),  # a retried POST joins its job instead of starting another
        "labels": {"application": "doow-usage-sync"},
    }
    if dry_run:
        body["dryRun"] = True
    return body


@dataclass(frozen=True)
class QueryResult:
    fields: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]
    bytes_processed: int | None


def run_query(
    http: HttpClient, config: BillingConfig, headers: dict[str, str], body: dict[str, Any], *, max_polls: int,
) -> QueryResult:  # fmt: skip
    """jobs.query, then getQueryResults until the job is complete and every page is read."""
    url = f"{config.base_url}/bigquery/v2/projects/{config.query_project}/queries"
    page = _parse(http, http.request("POST", url, headers=headers, json_body=body, classify=classify_error))
    if body.get("dryRun"):
        return QueryResult((), (), page.bytes_processed)
    polls = 0
    while not page.complete:
        polls += 1
        if polls > max_polls:
            raise ProviderUnavailable(f"The BigQuery job did not finish after {max_polls} polls.",
                                      hint="The next sync runs the query again.")  # fmt: skip
        if polls > 1:  # getQueryResults waits up to timeoutMs itself; sleep only if it answered early
            http.sleep(min(5.0, float(polls)))
        page = _results(http, config, headers, page, body, None)
    fields, total, bytes_processed = page.fields, page.total_rows, page.bytes_processed
    last = page

    def get(token: str | None) -> QueryPage:
        nonlocal last
        if token is None:
            return last
        last = _results(http, config, headers, last, body, token)
        if not last.complete or last.fields != fields:
            raise ProviderResponseError("A later BigQuery result page is incomplete or has other columns.")
        return last

    pages = paginate(get, lambda p: p.page_token, source="BigQuery", max_pages=MAX_PAGES,
                     repeated="BigQuery repeated a pageToken.")  # fmt: skip
    rows = [row for p in pages for row in p.rows]
    if total is not None and total != len(rows):
        raise ProviderResponseError(f"BigQuery announced {total} rows but its pages held {len(rows)}.")
    return QueryResult(fields, tuple(rows), bytes_processed)


def _results(
    http: HttpClient, config: BillingConfig, headers: dict[str, str], page: QueryPage, body: dict[str, Any],
    token: str | None,
) -> QueryPage:  # fmt: skip
    project, job_id = page.job_project or config.query_project, page.job_id or ""
    if not JOB_ID_RE.fullmatch(job_id) or not PROJECT_RE.fullmatch(project):
        raise ProviderResponseError("BigQuery's answer lacks a usable jobReference to poll.")
    params: dict[str, Any] = {"location": page.job_location or config.location, "maxResults": body["maxResults"],
                              "timeoutMs": body["timeoutMs"]}  # fmt: skip
    if token:
        params["pageToken"] = token
    url = f"{config.base_url}/bigquery/v2/projects/{project}/queries/{job_id}"
    return _parse(http, http.request("GET", url, headers=headers, params=params, classify=classify_error))


def _parse(http: HttpClient, response: requests.Response) -> QueryPage:
    return http.parse_json(response, parse_query_response)


# ---------------------------------------------------------------- errors
def _reason(response: requests.Response) -> str:
    try:
        errors = response.json()["error"]["errors"]
        return str(errors[0].get("reason") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def classify_error(status: int, message: str, response: requests.Response) -> ProviderError | None:
    """BigQuery's errors (`error.errors[0].reason`); None leaves the seam's mapping (429, 5xx).
    `message` is already redacted."""
    reason, lower = _reason(response), message.lower()
    if status == 401:
        return CredentialError(f"BigQuery rejected the service account's access token: {message}",
                               hint="Add a new JSON key for the service account and rotate the credential.")  # fmt: skip
    if reason == "rateLimitExceeded":  # BigQuery throttles with 403 as well as 429
        return RateLimited(f"BigQuery is throttling requests: {message}")
    if reason == "quotaExceeded":
        return RateLimited(f"A BigQuery quota of the query project is used up: {message}",
                           hint="Syncs resume when the quota resets; raise the project's custom query quota if this repeats.")  # fmt: skip
    if status == 403:
        if reason == "billingNotEnabled" or "billing has not been enabled" in lower:
            return ConfigurationError(f"The query project cannot run queries: {message}", field="query_project",
                                      hint="Use a query project with billing enabled (queries are billed to it).")  # fmt: skip
        if reason == "accessNotConfigured" or "has not been used in project" in lower:
            return ConfigurationError(f"The BigQuery API is off in the query project: {message}", field="query_project",
                                      hint="Enable the BigQuery API in the query project (APIs & Services → Enable APIs).")  # fmt: skip
        if "jobs.create" in lower:
            return PermissionDenied(f"The service account may not run queries in the query project: {message}",
                                    hint=JOB_USER_HINT, field="query_project")  # fmt: skip
        return PermissionDenied(f"The service account may not read the billing export: {message}",
                                hint=DATA_VIEWER_HINT, field="billing_table")  # fmt: skip
    if status == 404:
        if "not found: job" in lower:
            return ProviderUnavailable(
                f"BigQuery lost the query job: {message}", hint="The next sync runs the query again."
            )
        if "not found: project" in lower:
            return ConfigurationError(f"BigQuery does not know the query project: {message}", field="query_project",
                                      hint="Enter the query project's id; the service account must be able to see it.")  # fmt: skip
        if "not found: table" in lower:
            return ConfigurationError(f"The billing export table does not exist (yet): {message}", hint=EXPORT_HINT,
                                      field="billing_table")  # fmt: skip
        if "not found: dataset" in lower:
            return ConfigurationError(f"BigQuery found no such dataset in this location: {message}",
                                      hint=f"{LOCATION_HINT} Also check the dataset part of billing_table.", field="location")  # fmt: skip
        return ConfigurationError(f"BigQuery could not find what the query reads: {message}", hint=EXPORT_HINT)
    if status == 400:
        if reason == "bytesBilledLimitExceeded":
            return ConfigurationError(f"The billing query would bill more bytes than this app allows: {message}",
                                      hint="The export is larger than the per-query cap (see the Google Vertex AI docs "
                                      "page); ask your operator to raise it, or shorten the backfill.")  # fmt: skip
        if reason == "invalidQuery":
            return ConfigurationError(f"BigQuery could not run the billing query on this table: {message}",
                                      hint=TABLE_HINT, field="billing_table")  # fmt: skip
        if "location" in lower:
            return ConfigurationError(f"BigQuery refused the location: {message}", hint=LOCATION_HINT, field="location")
    return None
