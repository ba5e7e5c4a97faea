"""How BigQuery's failures are reported: typed errors with the field at fault and a hint,
retries through the seam, unreadable answers, broken paging and polling; never a secret."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    Window,
)
from integrations.providers.google_vertex import GoogleVertexProvider
from integrations.providers.google_vertex.tests import support
from integrations.providers.testing import fetch_raises
from sandbox import google_vertex as fake

QUERIES = support.QUERIES_PATH
JOBS = QUERIES + "/"  # getQueryResults only


def google_error(status: int, reason: str, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": "X",
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}  # fmt: skip


# ---------------------------------------------------------------- access
def test_401_is_a_credential_error(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERIES, 401)
    error = fetch_raises(CredentialError, provider, credential, vertex_settings, day, http)
    assert error.http_status == 401 and "JSON key" in error.hint
    assert len(sandbox.requests(QUERIES)) == 1


def test_no_dataset_role_is_permission_denied_on_the_table(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    sandbox.fault(QUERIES, 403, body=support.load("error_access_denied_table.json"))
    error = fetch_raises(PermissionDenied, provider, credential, vertex_settings, day, http)
    assert error.field == "billing_table" and "roles/bigquery.dataViewer" in error.hint and error.http_status == 403


def test_no_job_user_role_is_permission_denied_on_the_query_project(
    provider, credential, vertex_settings, day, http
) -> None:
    settings = {**vertex_settings, "query_project": fake.NO_JOBS_PROJECT}
    error = fetch_raises(PermissionDenied, provider, credential, settings, day, http)
    assert "bigquery.jobs.create" in error.message and error.field == "query_project"
    assert "roles/bigquery.jobUser" in error.hint


@pytest.mark.parametrize(
    ("reason", "message", "words"),
    [("billingNotEnabled", "Billing has not been enabled for this project.", "billing enabled"),
     ("accessNotConfigured", "BigQuery API has not been used in project 123 before or it is disabled.", "Enable the BigQuery API")],
)  # fmt: skip
def test_query_project_problems_are_configuration(provider, credential, vertex_settings, day, sandbox, http, reason,
                                                  message, words) -> None:  # fmt: skip
    sandbox.fault(QUERIES, 403, body=google_error(403, reason, message))
    error = fetch_raises(ConfigurationError, provider, credential, vertex_settings, day, http)
    assert error.field == "query_project" and words in error.hint


# ---------------------------------------------------------------- the export, the table, the location
def test_export_not_enabled_is_table_not_found(provider, credential, vertex_settings, day, http) -> None:
    table = fake.BILLING_TABLE.replace("01A2B3_C4D5E6_F7A8B9", "0F0F0F_0F0F0F_0F0F0F")
    error = fetch_raises(
        ConfigurationError, provider, credential, {**vertex_settings, "billing_table": table}, day, http
    )
    assert "does not exist (yet)" in error.message and "was not found in location US" in error.message
    assert error.field == "billing_table" and "Billing export → BigQuery export" in error.hint


def test_wrong_location_is_reported_on_location(provider, credential, vertex_settings, day, http) -> None:
    error = fetch_raises(ConfigurationError, provider, credential, {**vertex_settings, "location": "EU"}, day, http)
    assert "not found in location EU" in error.message and error.field == "location" and "US or EU" in error.hint


def test_unknown_query_project(provider, credential, vertex_settings, day, http) -> None:
    error = fetch_raises(
        ConfigurationError, provider, credential, {**vertex_settings, "query_project": "no-such-project"}, day, http
    )
    assert error.field == "query_project" and "Not found: Project no-such-project" in error.message


def test_bytes_billed_cap(provider, credential, vertex_settings, day, sandbox, http) -> None:
    small = GoogleVertexProvider()
    small.max_bytes_billed = 1024
    error = fetch_raises(ConfigurationError, small, credential, vertex_settings, day, http)
    assert "bill more bytes than this app allows" in error.message and "or higher required" in error.message
    sandbox.fault(QUERIES, 400, body=support.load("error_bytes_billed.json"))
    error = fetch_raises(ConfigurationError, provider, credential, vertex_settings, day, http)
    assert "32212254720 or higher required" in error.message and "per-query cap" in error.hint


def test_an_invalid_query_points_at_the_table(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERIES, 400, body=google_error(400, "invalidQuery", "Unrecognized name: _PARTITIONTIME at [17:7]"))
    error = fetch_raises(ConfigurationError, provider, credential, vertex_settings, day, http)
    assert error.field == "billing_table" and "Unrecognized name" in error.message


def test_a_lost_job_is_transient(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(JOBS, 404, body=google_error(404, "notFound", "Not found: Job doow-sandbox-billing:US.job_x"))
    fetch_raises(ProviderUnavailable, provider, credential, vertex_settings, day, http)


# ---------------------------------------------------------------- throttling and outages
def test_403_rate_limit_exceeded_is_rate_limited(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERIES, 403, body=support.load("error_rate_limit_403.json"))
    error = fetch_raises(RateLimited, provider, credential, vertex_settings, day, http)
    assert error.retry_after is None and error.http_status == 403


def test_quota_exceeded_is_rate_limited(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERIES, 403, body=google_error(403, "quotaExceeded", "Quota exceeded: Your project exceeded quota"))
    error = fetch_raises(RateLimited, provider, credential, vertex_settings, day, http)
    assert "quota" in error.hint


def test_429_with_retry_after_is_retried(provider, credential, vertex_settings, day, sandbox, http, sleeps) -> None:
    sandbox.fault(JOBS, 429, times=2, headers={"Retry-After": "1"})
    assert list(provider.fetch(credential, vertex_settings, day, http=http))
    assert sleeps == [1.0, 1.0]


def test_429_without_retry_after_is_rate_limited_at_once(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    sandbox.fault(QUERIES, 429, times=5)
    error = fetch_raises(RateLimited, provider, credential, vertex_settings, day, http)
    assert error.retry_after is None and len(sandbox.requests(QUERIES)) == 1


def test_5xx_is_retried_with_backoff(provider, credential, vertex_settings, day, sandbox, http, sleeps) -> None:
    sandbox.fault(QUERIES, 500, times=2)
    assert list(provider.fetch(credential, vertex_settings, day, http=http))
    assert sleeps == [1.0, 2.0]


def test_5xx_storm_is_provider_unavailable(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERIES, 503, times=50)
    error = fetch_raises(ProviderUnavailable, provider, credential, vertex_settings, day, http)
    assert error.http_status == 503


def test_failure_on_a_later_page_fails_the_fetch(provider, credential, vertex_settings, sandbox, http) -> None:
    sandbox.fault(JOBS, 502, after=2, times=50)  # first poll and page 2 pass, page 3 fails
    fetch_raises(
        ProviderUnavailable,
        provider,
        credential,
        vertex_settings,
        Window(support.days_ago(8), support.days_ago(1)),
        http,
    )


def test_timeout_is_a_network_error(provider, credential, vertex_settings, day, sandbox, sleeps) -> None:
    http = HttpClient(secrets=provider.secret_values(credential), timeout=0.15, max_attempts=2, sleep=sleeps.append)
    sandbox.fault(QUERIES, 200, delay=0.5, times=2)
    error = fetch_raises(NetworkError, provider, credential, vertex_settings, day, http)
    assert "Timed out" in error.message


# ---------------------------------------------------------------- unreadable answers
def test_malformed_json_is_a_response_error(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(JOBS, 200, body='{"kind": "bigquery#getQueryResultsResponse", "rows": [')
    error = fetch_raises(ProviderResponseError, provider, credential, vertex_settings, day, http)
    assert "not JSON" in error.message


def test_wrong_shape_is_a_response_error_with_status(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERIES, 200, body={"kind": "bigquery#queryResponse", "jobReference": {}})
    error = fetch_raises(ProviderResponseError, provider, credential, vertex_settings, day, http)
    assert "jobComplete" in error.message and error.http_status == 200


def test_an_incomplete_job_without_reference_is_a_response_error(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    sandbox.fault(QUERIES, 200, body={"jobComplete": False})
    error = fetch_raises(ProviderResponseError, provider, credential, vertex_settings, day, http)
    assert "jobReference" in error.message


def test_a_repeated_page_token_is_a_response_error(provider, credential, vertex_settings, day, sandbox, http) -> None:
    page = {
        **support.load("query_results_page.json"),
        "pageToken": "BAQAAAAGIAgAA",
        "totalRows": "700",
        "jobReference": {"projectId": fake.PROJECT_ID, "jobId": "job_x", "location": "US"},
    }
    sandbox.fault(JOBS, 200, times=5, body=page)
    error = fetch_raises(ProviderResponseError, provider, credential, vertex_settings, day, http)
    assert "repeated a pageToken" in error.message and len(sandbox.requests(JOBS)) == 2


def test_fewer_rows_than_announced_is_a_response_error(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    sandbox.fault(JOBS, 200, body={**support.load("query_results_page.json"), "totalRows": "99"})
    error = fetch_raises(ProviderResponseError, provider, credential, vertex_settings, day, http)
    assert "announced 99 rows" in error.message


def test_polling_is_bounded(credential, vertex_settings, day, sandbox, http, sleeps) -> None:
    provider = GoogleVertexProvider()
    provider.max_polls = 3
    sandbox.fault(JOBS, 200, times=10, body=support.load("query_incomplete.json")
                  | {"jobReference": {"projectId": fake.PROJECT_ID, "jobId": "job_slow", "location": "US"}})  # fmt: skip
    error = fetch_raises(ProviderUnavailable, provider, credential, vertex_settings, day, http)
    assert "did not finish after 3 polls" in error.message
    assert len(sandbox.requests(JOBS)) == 3 and sleeps == [2.0, 3.0]
