"""The billing settings and the query request: strict table names (the one value put into the
SQL text), named parameters, standard SQL, the bytes cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from integrations.providers.base import ConfigurationError, Window
from integrations.providers.google_vertex.bigquery import (
    OTHER_SERVICES,
    VERTEX_SERVICE_ID,
    billing_config,
    query_request,
)
from integrations.providers.google_vertex.tests import support

TABLE = "acme-billing-prod.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"


def config(**overrides: str):
    values = {"table": TABLE, "query_project": "", "location": "US", "base_url": "https://bigquery.googleapis.com/"}
    return billing_config(**{**values, **overrides})


def test_a_standard_export_table_is_accepted() -> None:
    c = config()
    assert (c.table, c.billing_account, c.query_project, c.location) == (
        TABLE,
        "01A2B3-C4D5E6-F7A8B9",
        "acme-billing-prod",
        "US",
    )
    assert c.base_url == "https://bigquery.googleapis.com"


@pytest.mark.parametrize(
    "table",
    [
        "acme-billing-prod.billing_export.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9",  # detailed export
        "example.com:acme-billing.billing.gcp_billing_export_v1_01a2b3_c4d5e6_f7a8b9",  # domain-scoped project
        "  acme-billing-prod.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9 \n",  # pasted with blanks
    ],
)
def test_other_valid_table_names(table: str) -> None:
    assert config(table=table).billing_account == "01A2B3-C4D5E6-F7A8B9"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("", "Enter the billing export table"),
        # SQL injection attempts: any character outside the identifier set is refused outright.
        (TABLE + "` WHERE 1=1; DROP TABLE x; --", "may only hold"),
        (TABLE + "`; SELECT * FROM `other.d.t", "may only hold"),
        ("`" + TABLE + "`", "may only hold"),
        (TABLE + "\nUNION ALL SELECT 1", "may only hold"),
        (TABLE + " OR TRUE", "may only hold"),
        ("acme-billing-prod.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9'--", "may only hold"),
        # Well-formed identifiers that are not a billing export table.
        ("acme-billing-prod.billing_export.cloud_pricing_export", "not a billing export table"),
        ("acme-billing-prod.billing_export.my_view", "not a billing export table"),
        ("acme-billing-prod:billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9", "is not of the form"),
        ("billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9", "is not of the form"),
        ("Acme-Billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9", "is not of the form"),
        ("acme-billing-prod.billing-export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9", "is not of the form"),
        ("acme-billing-prod.billing_export.gcp_billing_export_v1_01A2B3", "is not of the form"),
        ("a.b.c.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9", "is not of the form"),
    ],
)
def test_anything_else_is_refused_before_it_reaches_sql(table: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        config(table=table)
    assert words in info.value.message and info.value.field == "billing_table"
    assert "gcp_billing_export_v1_<BILLING_ACCOUNT>" in info.value.hint


@pytest.mark.parametrize("project", ["My Project", "acme", "acme-billing-prod`", "123456789012", "acme_billing"])
def test_bad_query_project_is_refused(project: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        config(query_project=project)
    assert info.value.field == "query_project"


@pytest.mark.parametrize("location", ["US", "EU", "us-central1", "europe-west4", "northamerica-northeast1"])
def test_locations(location: str) -> None:
    assert config(location=location).location == location


@pytest.mark.parametrize("location", ["", "U", "US; DROP", "us central1", "us-central1-"])
def test_bad_locations(location: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        config(location=location)
    assert info.value.field == "location"


def test_query_request_is_standard_sql_with_named_parameters_and_a_cap() -> None:
    start, end = datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 11, 8, tzinfo=UTC)
    body = query_request(config(query_project="acme-queries"), start, end, max_bytes=123, page_size=50, timeout_ms=9000)
    assert body["useLegacySql"] is False  # the REST default is legacy SQL
    assert body["parameterMode"] == "NAMED"
    assert {p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"]) for p in body["queryParameters"]} == {
        "service_id": ("STRING", VERTEX_SERVICE_ID),
        "other_services": ("STRING", OTHER_SERVICES),
        "start_time": ("TIMESTAMP", "2024-11-01 00:00:00+00:00"),
        "end_time": ("TIMESTAMP", "2024-11-08 00:00:00+00:00"),
    }
    assert body["maximumBytesBilled"] == "123" and body["location"] == "US"
    assert body["timeoutMs"] == 9000 and body["maxResults"] == 50 and body["requestId"]
    assert "dryRun" not in body
    query = body["query"]
    assert f"FROM `{TABLE}`" in query and query.count("`") == 2
    for needle in ("service.id = @service_id", "usage_start_time >= @start_time", "usage_start_time < @end_time",
                   "_PARTITIONTIME >= TIMESTAMP_SUB(@start_time, INTERVAL 2 DAY)", 'DATE(usage_start_time, "UTC")',
                   "UNNEST(credits)"):  # fmt: skip
        assert needle in query
    assert "C7E2-9256-1C43" not in query  # a parameter, not text
    assert query_request(config(), start, end, max_bytes=1, page_size=1, timeout_ms=1, dry_run=True)["dryRun"] is True


def test_fetch_with_an_injected_table_makes_no_request(provider, credential, vertex_settings, http, sandbox) -> None:
    settings = {**vertex_settings, "billing_table": support.settings(sandbox)["billing_table"] + "` --"}
    with pytest.raises(ConfigurationError):
        list(provider.fetch(credential, settings, Window(support.days_ago(2), support.days_ago(1)), http=http))
    assert sandbox.requests() == []
