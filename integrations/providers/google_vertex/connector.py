"""Google Vertex AI connector: usage and cost per model, project and region, read from the
customer's Cloud Billing export in BigQuery (the standard usage cost table).

One query per fetch (the engine fetches a 7-day chunk at a time): Vertex AI rows
(`service.id = 'C7E2-9256-1C43'`) grouped by UTC day, project, region, SKU and unit, with gross
cost and credits. Model and token class come from the SKU description (skus.py). See
docs/providers/google_vertex.md for the customer's side of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from integrations.providers import facts
from integrations.providers.base import (
    ConfigurationError,
    FetchJob,
    FormField,
    Identity,
    Provider,
    SetupStep,
    Stream,
    UsageSample,
    Window,
    align_down,
    align_up,
    in_stream,
)
from integrations.providers.google_vertex import auth
from integrations.providers.google_vertex.bigquery import (
    BillingConfig,
    QueryResult,
    billing_config,
    query_request,
    run_query,
)
from integrations.providers.google_vertex.schema import (
    billing_rows,
    billing_samples,
    is_credit,
)

if TYPE_CHECKING:
    from integrations.http import HttpClient

DAY = timedelta(days=1)
GIB = 1024**3
BILLING_EXPORT = Stream("billing_export", "Usage and cost per SKU, project and region, daily (Cloud Billing export)")


class GoogleVertexProvider(Provider):
    slug = "google_vertex"
    keys_version = 2  # issue 13: endpoint = the billing service (partner models), credits by type
    name = "Google Vertex AI"
    category = "cloud"
    vendor = "Google Cloud"
    docs_path = "docs/providers/google_vertex.md"
    credential_help = (
        "Create a service account and a JSON key for it: Google Cloud console → IAM & Admin → Service accounts "
        "→ the account → Keys → Add key → Create new key → JSON. Give it BigQuery Data Viewer on the billing "
        "export dataset and BigQuery Job User on the query project, then paste the whole key file."
    )
    credential_fields = (
        FormField("service_account_json", "Service account key (JSON)", secret=True,
                  help_text="The whole JSON key file of a service account (type service_account).",
                  placeholder='{"type": "service_account", …}'),
    )  # fmt: skip
    setting_fields = (
        FormField("billing_table", "Billing export table",
                  help_text="The standard usage cost export table: project.dataset.gcp_billing_export_v1_<BILLING_ACCOUNT>.",
                  placeholder="my-project.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"),
        FormField("query_project", "Query project", required=False,
                  help_text="Project id that runs (and pays for) the queries; empty: the billing table's project."),
        FormField("location", "Dataset location", required=False, default="US",
                  help_text="The export dataset's location, e.g. EU or europe-west4."),
        FormField("base_url", "BigQuery API URL", required=False, default="https://bigquery.googleapis.com",
                  help_text="Leave empty for https://bigquery.googleapis.com. Change only for a proxy or the sandbox."),
    )  # fmt: skip
    # Rows are exported hours after the usage, and restated for days after that: a day is read
    # from 06:00 UTC the next day, and every sync re-reads the last five days (replace, never add).
    reporting_delay = timedelta(hours=6)
    restatement_window = timedelta(days=5)
    bucket = DAY
    chunk = timedelta(days=7)  # one query per chunk: each scans the partitions since its start
    # One query answers every day it covers for the billing account (every project, region and
    # SKU): a SKU renamed or a credit withdrawn in a restated day leaves no row behind.
    streams = (BILLING_EXPORT,)

    # A query scans the selected columns of every partition since (start - 2 days); this caps
    # what one query may bill (≈ $0.12 at $6.25/TiB on demand). BigQuery refuses, rather than
    # bills, a query above it ("bytesBilledLimitExceeded"), reported as a configuration event.
    max_bytes_billed: ClassVar[int] = 20 * GIB
    page_size: ClassVar[int] = 5_000
    max_polls: ClassVar[int] = 30
    verify_days: ClassVar[int] = 5

    # ------------------------------------------------------------ contract
    def check_credential(self, credential: Mapping[str, str]) -> None:
        auth.parse_service_account(credential.get("service_account_json") or "")

    def secret_values(self, credential: Mapping[str, str]) -> list[str]:
        return auth.secret_parts(str(credential.get("service_account_json") or ""))

    def setup_instructions(
        self, credential: Mapping[str, str] | None = None, settings: Mapping[str, str] | None = None
    ) -> list[SetupStep]:
        try:
            email = auth.parse_service_account((credential or {}).get("service_account_json") or "").email
        except ConfigurationError:  # no usable key yet: the generic instructions
            email = "SERVICE_ACCOUNT_EMAIL"
        project = (settings or {}).get("query_project") or "QUERY_PROJECT"
        return [
            SetupStep("Export billing data to BigQuery",
                      "Billing → Billing export → BigQuery export → Standard usage cost → Edit settings: pick a "
                      "project and dataset. The table gcp_billing_export_v1_<BILLING_ACCOUNT> appears within hours."),
            SetupStep("Let the service account read the export dataset",
                      f"BigQuery → the export dataset → Sharing → Permissions → Add principal {email} with the role "
                      "BigQuery Data Viewer."),
            SetupStep("Let it run queries in the query project",
                      code=f"gcloud projects add-iam-policy-binding {project} \\\n"
                      f"    --member=serviceAccount:{email} --role=roles/bigquery.jobUser"),
        ]  # fmt: skip

    def identity_facts(self, details: Mapping[str, Any]) -> list[tuple[str, str]]:
        shown = [
            ("Billing export table", facts.text(details.get("billing_table"))),
            ("Dataset location", facts.text(details.get("location"))),
            ("Queries run in", details.get("query_project") or "the billing table's project"),
            ("Service account", facts.text(details.get("service_account"))),
            ("Models seen", facts.listing(details.get("models") or [])),
        ]
        if details.get("unparsed_skus"):
            shown.append(("Other Vertex AI charges (cost only, no model)", facts.listing(details["unparsed_skus"])))
        estimate, cap = details.get("estimated_bytes_per_query"), details.get("max_bytes_billed")
        if estimate is not None or cap is not None:
            scanned = f"about {facts.size(estimate)} per sync query" if estimate is not None else "unknown per query"
            shown.append(("Data scanned", scanned + (f" (capped at {facts.size(cap)})" if cap else "")))
        known = ("billing_table", "location", "query_project", "service_account", "projects", "models",
                 "unparsed_skus", "estimated_bytes_per_query", "max_bytes_billed")  # fmt: skip
        return shown + facts.generic({k: v for k, v in details.items() if k not in known})

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        config = self._config(settings)
        account = auth.parse_service_account(credential.get("service_account_json") or "")
        headers = self._headers(http, account)
        end = align_down(datetime.now(UTC), DAY)
        start = end - timedelta(days=self.verify_days)
        # A dry run costs nothing and estimates what a sync query scans; the real query proves the
        # account may read the rows (a dry run only needs the table's metadata).
        estimate = run_query(http, config, headers, self._request(config, start, end, http, dry_run=True),
                             max_polls=self.max_polls).bytes_processed  # fmt: skip
        result = run_query(http, config, headers, self._request(config, start, end, http), max_polls=self.max_polls)
        return self._identity(config, account, result, estimate)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        config = self._config(job.settings)  # a bad table name fails here, before any call
        account = auth.parse_service_account(job.credential.get("service_account_json") or "")
        # Whole UTC days: a bucket's key never depends on where the window happened to start.
        start, end = align_down(job.window.start, DAY), align_up(job.window.end, DAY)
        headers = self._headers(job.http, account)
        result = run_query(
            job.http, config, headers, self._request(config, start, end, job.http), max_polls=self.max_polls
        )
        samples = billing_samples(billing_rows(result.fields, result.rows), account=config.billing_account)
        # run_query returns only once the job is complete and every page is read.
        self.answer(job.answered, BILLING_EXPORT.name, Window(start, job.window.end), account=[config.billing_account])
        yield from in_stream(samples, BILLING_EXPORT.name)

    # ------------------------------------------------------------ internals
    def _config(self, settings: Mapping[str, str]) -> BillingConfig:
        return billing_config(
            table=self.setting(settings, "billing_table"),
            query_project=self.setting(settings, "query_project"),
            location=self.setting(settings, "location"),
            base_url=self.setting(settings, "base_url"),
        )

    def _headers(self, http: HttpClient, account: auth.ServiceAccount) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.access_token(http, account)}", "Accept": "application/json"}

    def _request(self, config: BillingConfig, start: datetime, end: datetime, http: HttpClient, *,
                 dry_run: bool = False) -> dict[str, Any]:  # fmt: skip
        # BigQuery holds the request open up to timeoutMs; stay well inside our HTTP timeout.
        timeout_ms = int(max(1.0, min(10.0, http.timeout / 2)) * 1000)
        return query_request(config, start, end, max_bytes=self.max_bytes_billed, page_size=self.page_size,
                             timeout_ms=timeout_ms, dry_run=dry_run)  # fmt: skip

    def _identity(
        self, config: BillingConfig, account: auth.ServiceAccount, result: QueryResult, estimate: int | None
    ) -> Identity:
        rows = billing_rows(result.fields, result.rows)
        samples = billing_samples(rows, account=config.billing_account)
        costs = [s for s in samples if s.metric == "cost"]
        net: dict[str, Decimal] = {}
        for s in costs:
            net[s.unit] = net.get(s.unit, Decimal(0)) + s.quantity
        models = sorted({s.model for s in samples if s.model})
        unparsed = sorted({s.operation for s in costs if not s.model and not is_credit(s.operation)})
        details: dict[str, Any] = {
            "billing_table": config.table,
            "location": config.location,
            "query_project": config.query_project,
            "service_account": account.email,
            "projects": sorted({r.project_id for r in rows if r.project_id}),
            "models": models,
            "unparsed_skus": unparsed,
            "estimated_bytes_per_query": estimate,
            "max_bytes_billed": self.max_bytes_billed,
        }
        warnings = []
        days = f"the last {self.verify_days} days"
        if not rows:
            warnings.append(f"No Vertex AI rows in {days}: the export may be new (rows arrive within hours), "
                            "or nothing used Vertex AI on this billing account.")  # fmt: skip
        if estimate is not None and estimate > self.max_bytes_billed // 2:
            warnings.append(f"A sync query scans about {estimate / GIB:.1f} GiB, close to the "
                            f"{self.max_bytes_billed / GIB:.0f} GiB cap per query.")  # fmt: skip
        if warnings:
            details["warnings"] = warnings
        if rows:
            spend = ", ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(net.items()))
            seen = (f"{days}: {len(details['projects'])} project(s), {len(models)} model(s), {spend} net"
                    + (f", {len(unparsed)} other SKU(s)" if unparsed else ""))  # fmt: skip
        else:
            seen = f"no Vertex AI rows in {days}"
        summary = f"Billing account {config.billing_account} · {config.table} ({config.location}) · {seen}"
        return Identity(account_id=config.billing_account, account_name=account.email, summary=summary, details=details)
