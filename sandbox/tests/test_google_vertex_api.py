"""The fake Google token endpoint and BigQuery: assertions verified for real (RS256 with the
public key of the deterministic service-account key), and BigQuery's documented shapes —
standard SQL only, named parameters, a bytes cap, jobComplete false first, string values,
pageToken paging — with the errors of a missing export, a wrong location, missing roles."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import service_account

from sandbox import google_vertex as fake

TOKEN = "/google_vertex/token"
QUERIES = f"/google_vertex/bigquery/v2/projects/{fake.PROJECT_ID}/queries"
START = datetime(2025, 3, 1, tzinfo=UTC)
END = START + timedelta(days=7)


@pytest.fixture(autouse=True)
def _no_restated_days():
    fake.clear_revisions()
    yield
    fake.clear_revisions()


# ---------------------------------------------------------------- the key and the token endpoint
def test_the_key_file_is_deterministic_and_a_real_rsa_key(sandbox) -> None:
    info = fake.service_account_info(sandbox.url)
    assert info == fake.service_account_info(sandbox.url)
    assert info["type"] == "service_account" and info["token_uri"] == sandbox.url + TOKEN
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert key.key_size == 2048
    forged = fake.service_account_info(sandbox.url, key="forged")
    assert forged["private_key"] != info["private_key"] and forged["private_key_id"] == info["private_key_id"]


def test_google_auth_gets_a_token(sandbox) -> None:
    credentials = service_account.Credentials.from_service_account_info(
        fake.service_account_info(sandbox.url), scopes=[fake.READ_ONLY_SCOPE]
    )
    credentials.refresh(GoogleAuthRequest())
    assert credentials.token.startswith("ya29.sandbox.") and credentials.valid


def assertion(*, seed: str = fake.KEY_SEED, kid: str = fake.KEY_ID, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": fake.SERVICE_ACCOUNT, "aud": fake.TOKEN_AUDIENCE, "iat": now, "exp": now + 3600,
              "scope": fake.READ_ONLY_SCOPE, **overrides}  # fmt: skip
    return jwt.encode(claims, fake._private_key(seed), algorithm="RS256", headers={"kid": kid})


def grant(sandbox, token: str, grant_type: str = "urn:ietf:params:oauth:grant-type:jwt-bearer") -> requests.Response:
    return requests.post(sandbox.url + TOKEN, data={"grant_type": grant_type, "assertion": token}, timeout=5)


def test_a_good_assertion_gets_a_bearer_token(sandbox) -> None:
    body = grant(sandbox, assertion()).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == fake.TOKEN_LIFETIME
    assert fake._token_email(body["access_token"]) == fake.SERVICE_ACCOUNT


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: assertion(seed=fake.FORGED_SEED), "invalid_grant", "Invalid JWT Signature."),
        (lambda: assertion(kid=fake.DELETED_KEY_ID), "invalid_grant", "Invalid JWT Signature."),
        (lambda: assertion(iss=fake.DELETED_ACCOUNT), "invalid_grant", "account not found"),
        (lambda: assertion(aud="https://example.com/token"), "invalid_grant", "short-lived"),
        (lambda: assertion(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "invalid_grant", "short-lived"),
        (lambda: assertion(exp=int(time.time()) + 86400), "invalid_grant", "short-lived"),
        (lambda: assertion(scope="https://www.googleapis.com/auth/drive"), "invalid_scope", "scope"),
        (lambda: "not-a-jwt", "invalid_request", "could not be decoded"),
    ],
)
def test_bad_assertions_are_refused(sandbox, make, error: str, words: str) -> None:
    response = grant(sandbox, make())
    assert response.status_code == 400
    assert response.json()["error"] == error and words in response.json()["error_description"]


def test_other_grant_types_are_refused(sandbox) -> None:
    assert grant(sandbox, assertion(), "client_credentials").json()["error"] == "unsupported_grant_type"


# ---------------------------------------------------------------- BigQuery
def token(email: str = fake.SERVICE_ACCOUNT) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.issue_token(email)}"}


def param(name: str, kind: str, value: str) -> dict[str, Any]:
    return {"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}}


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "query": f"SELECT … FROM `{fake.BILLING_TABLE}` WHERE (service.id = @service_id OR "
        "REGEXP_CONTAINS(service.description, @other_services)) AND usage_start_time >= @start_time AND "
        "usage_start_time < @end_time",
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": [
            param("service_id", "STRING", fake.VERTEX_SERVICE_ID),
            param("other_services", "STRING", r"^(?:Generative Language API)$|^(?i:claude)\b"),
            param("start_time", "TIMESTAMP", "2025-03-01 00:00:00+00:00"),
            param("end_time", "TIMESTAMP", "2025-03-08T00:00:00Z"),
        ],
        "maximumBytesBilled": str(10**10),
        "location": "US",
        **overrides,
    }


def query(sandbox, payload: dict[str, Any], project: str = fake.PROJECT_ID, email: str = fake.SERVICE_ACCOUNT):
    url = f"{sandbox.url}/google_vertex/bigquery/v2/projects/{project}/queries"
    return requests.post(url, json=payload, headers=token(email), timeout=5)


def results(sandbox, job: dict[str, str], **params: Any) -> requests.Response:
    url = f"{sandbox.url}/google_vertex/bigquery/v2/projects/{job['projectId']}/queries/{job['jobId']}"
    return requests.get(url, params={"location": job["location"], **params}, headers=token(), timeout=5)


def test_a_query_is_incomplete_first_then_paged_with_string_values(sandbox) -> None:
    first = query(sandbox, body(maxResults=60)).json()
    assert first["jobComplete"] is False and "rows" not in first and "schema" not in first
    job = first["jobReference"]
    pages, params = [], {}
    while True:
        page = results(sandbox, job, **params).json()
        pages.append(page)
        if "pageToken" not in page:
            break
        params = {"pageToken": page["pageToken"]}
    rows = [r for p in pages for r in p["rows"]]
    truth = fake.truth_rows(START, END)
    assert all(p["jobComplete"] is True and p["totalRows"] == str(len(truth)) for p in pages)
    assert len(pages) == -(-len(truth) // 60) and len(rows) == len(truth)
    assert [f["name"] for f in pages[0]["schema"]["fields"]] == list(fake.COLUMNS)
    assert all(v["v"] is None or isinstance(v["v"], str) for r in rows for v in r["f"])
    assert any(r["f"][2]["v"] is None for r in rows)  # global rows have a null region
    first_row = truth[0]
    assert [v["v"] for v in rows[0]["f"]][:9] == [first_row.day.isoformat(), first_row.project_id, first_row.region,
                                                  first_row.sku.service_id, first_row.sku.service, first_row.sku.id,
                                                  first_row.sku.description, first_row.sku.unit, "USD"]  # fmt: skip
    # The partner model's and the Gemini API's services are answered; Compute Engine never.
    services = {r["f"][4]["v"] for r in rows}
    assert {
        "Vertex AI",
        "Generative Language API",
        "Claude Sonnet 4.5",
    } <= services and "Compute Engine" not in services


def test_pages_are_capped_at_the_sandbox_size(sandbox) -> None:
    job = query(sandbox, body(maxResults=10_000)).json()["jobReference"]
    assert len(results(sandbox, job).json()["rows"]) == fake.PAGE_ROWS


@pytest.mark.parametrize(
    ("payload", "status", "reason", "words"),
    [
        (body(useLegacySql=None), 400, "invalidQuery", "Try using standard SQL"),
        (body(useLegacySql=True), 400, "invalidQuery", "Try using standard SQL"),
        (body(parameterMode="POSITIONAL"), 400, "invalidQuery", "NAMED"),
        (body(queryParameters=[param("start_time", "TIMESTAMP", "2025-03-01 00:00:00+00:00")]), 400, "invalidQuery",
         "'end_time'"),
        (body(query=f"SELECT 1 FROM `{fake.BILLING_TABLE}` WHERE @start_time < @end_time"), 400, "invalidQuery",
         "'service_id' is declared but not used"),
        (body(maximumBytesBilled=None), 400, "invalid", "maximumBytesBilled"),
        (body(maximumBytesBilled="1000"), 400, "bytesBilledLimitExceeded", "or higher required"),
        (body(location="EU"), 404, "notFound", f"Dataset {fake.PROJECT_ID}:{fake.DATASET} was not found in location EU"),
        (body(query=body()["query"].replace(fake.TABLE, "gcp_billing_export_v1_000000_000000_000000")), 404,
         "notFound", "Not found: Table"),
        (body(query=body()["query"].replace(fake.DATASET, "other_dataset")), 404, "notFound", "Not found: Dataset"),
    ],
)  # fmt: skip
def test_documented_errors(sandbox, payload: dict[str, Any], status: int, reason: str, words: str) -> None:
    payload = {k: v for k, v in payload.items() if v is not None}
    response = query(sandbox, payload)
    error = response.json()["error"]
    assert response.status_code == status == error["code"]
    assert error["errors"][0]["reason"] == reason and words in error["message"]


def test_roles_and_projects(sandbox) -> None:
    assert query(sandbox, body(), project=fake.NO_JOBS_PROJECT).status_code == 403
    assert "bigquery.jobs.create" in query(sandbox, body(), project=fake.NO_JOBS_PROJECT).json()["error"]["message"]
    assert query(sandbox, body(), project="elsewhere-123").status_code == 404
    denied = query(sandbox, body(), email=fake.NO_ACCESS_ACCOUNT)
    assert denied.status_code == 403 and denied.json()["error"]["errors"][0]["reason"] == "accessDenied"
    anonymous = requests.post(sandbox.url + QUERIES, json=body(), timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["status"] == "UNAUTHENTICATED"


def test_dry_run_estimates_without_a_job(sandbox) -> None:
    response = query(sandbox, body(dryRun=True)).json()
    assert response["jobComplete"] is True and int(response["totalBytesProcessed"]) > 0
    assert "jobId" not in response["jobReference"] and "rows" not in response


def test_results_need_the_jobs_location(sandbox) -> None:
    job = query(sandbox, body()).json()["jobReference"]
    assert results(sandbox, {**job, "location": "EU"}).status_code == 404
    assert results(sandbox, {**job, "jobId": "job_unknown"}).json()["error"]["message"].startswith("Not found: Job")


def test_another_service_has_no_rows(sandbox) -> None:
    payload = body(queryParameters=[param("service_id", "STRING", "6F81-5844-456A"),
                                    param("other_services", "STRING", "^Cloud Storage$"),
                                    *body()["queryParameters"][2:]])  # fmt: skip
    page = results(sandbox, query(sandbox, payload).json()["jobReference"]).json()
    assert page["totalRows"] == "0" and "rows" not in page and "pageToken" not in page


def test_truth_has_only_elapsed_days_and_restatements_grow_a_day() -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert {r.day for r in fake.truth_rows(today - timedelta(days=2), today + timedelta(days=2))} == {
        (today - timedelta(days=2)).date(), (today - timedelta(days=1)).date()}  # fmt: skip
    day = START.date()
    before = fake.truth_rows(START, START + timedelta(days=1))
    fake.revise(day)
    after = fake.truth_rows(START, START + timedelta(days=1))
    assert [(r.project_id, r.region, r.sku.id) for r in before] == [(r.project_id, r.region, r.sku.id) for r in after]
    assert all(a.usage_amount >= b.usage_amount for a, b in zip(after, before, strict=True))
    assert sum(r.usage_amount for r in after) > sum(r.usage_amount for r in before)
    assert fake.truth_rows(START + timedelta(days=1), END) == fake.truth_rows(START + timedelta(days=1), END)


def test_fault_bodies_are_google_errors() -> None:
    for status in (401, 403, 404, 429, 500, 503):
        error = fake.error_body(status)["error"]
        assert error["code"] == status and error["errors"][0]["reason"] and error["status"]
