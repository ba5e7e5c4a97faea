"""The fake Azure (Entra ID token, ARM listings, Azure Monitor metrics): documented shapes,
quirks (lower-cased dimensions, missing totals, silent top=10), paging, auth and truth."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox import azure_openai as az

PREFIX = "/azure_openai"
TOKEN = f"{PREFIX}/login/{az.TENANT_ID}/oauth2/v2.0/token"
ACCOUNTS = f"{PREFIX}/arm/subscriptions/{az.SUBSCRIPTION_ID}/providers/Microsoft.CognitiveServices/accounts"
EASTUS = az.ACCOUNTS[0]
METRICS = f"{PREFIX}/arm{EASTUS.id}/providers/Microsoft.Insights/metrics"
DAY = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)


def form(**overrides: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": az.CLIENT_ID,
        "client_secret": az.CLIENT_SECRET,
        "scope": az.ARM_SCOPE,
        **overrides,
    }


def arm(sandbox, path: str, params: Any = None, token: str | None = None) -> requests.Response:
    token = az.issue_token(az.CLIENT_ID) if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=5)


def metrics(sandbox, start: datetime = DAY, hours: int = 24, **params: Any) -> requests.Response:
    query = {
        "api-version": "2024-02-01",
        "metricnames": ",".join(az.METRICS),
        "interval": "PT1H",
        "aggregation": "Total",
        "timespan": f"{start:%Y-%m-%dT%H:%M:%SZ}/{start + timedelta(hours=hours):%Y-%m-%dT%H:%M:%SZ}",
        **params,
    }
    return arm(sandbox, METRICS, {k: v for k, v in query.items() if v is not None})


# ---------------------------------------------------------------- token endpoint
def test_token_endpoint_issues_a_bearer_token(sandbox) -> None:
    response = requests.post(sandbox.url + TOKEN, data=form(), timeout=5)
    assert response.status_code == 200 and response.headers["x-ms-request-id"]
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == az.TOKEN_LIFETIME
    assert body["access_token"].startswith("eyJ")
    assert requests.post(
        sandbox.url + f"{PREFIX}/login/{az.TENANT_DOMAIN}/oauth2/v2.0/token", data=form(), timeout=5
    ).ok


@pytest.mark.parametrize(
    ("path", "data", "status", "error", "code"),
    [
        (TOKEN, form(client_secret="wrong"), 401, "invalid_client", 7000215),
        (TOKEN, form(client_secret=az.EXPIRED_CLIENT_SECRET), 401, "invalid_client", 7000222),
        (TOKEN, form(client_id="11111111-2222-4333-8444-555555555555"), 400, "unauthorized_client", 700016),
        (f"{PREFIX}/login/nope/oauth2/v2.0/token", form(), 400, "invalid_tenant", 90002),
        (TOKEN, form(scope="https://graph.microsoft.com/.default"), 400, "invalid_scope", 70011),
        (TOKEN, form(grant_type="password"), 400, "unsupported_grant_type", 70003),
    ],
)
def test_token_errors_follow_entra_shape(sandbox, path, data, status, error, code) -> None:
    response = requests.post(sandbox.url + path, data=data, timeout=5)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ") and "Trace ID:" in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)
    assert az.CLIENT_SECRET not in response.text


# ---------------------------------------------------------------- ARM
@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("", 401, "AuthenticationFailed"),
        ("eyJhbGciOi.forged.token", 401, "InvalidAuthenticationToken"),
        (az.issue_token(az.CLIENT_ID, now=time.time() - 7200), 401, "ExpiredAuthenticationToken"),
        (az.issue_token(az.NO_ROLE_CLIENT_ID), 403, "AuthorizationFailed"),
    ],
)
def test_arm_requires_an_issued_token_and_a_role(sandbox, token, status, code) -> None:
    response = arm(sandbox, ACCOUNTS, {"api-version": "2025-09-01"}, token=token)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_subscription_errors(sandbox) -> None:
    other = ACCOUNTS.replace(az.SUBSCRIPTION_ID, "11111111-2222-4333-8444-555555555555")
    assert arm(sandbox, other, {"api-version": "2025-09-01"}).json()["error"]["code"] == "SubscriptionNotFound"
    malformed = ACCOUNTS.replace(az.SUBSCRIPTION_ID, "my-sub")
    response = arm(sandbox, malformed, {"api-version": "2025-09-01"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidSubscriptionId"
    assert arm(sandbox, ACCOUNTS).json()["error"]["code"] == "MissingApiVersionParameter"


def test_accounts_are_paged_by_next_link(sandbox) -> None:
    names, url, pages = [], sandbox.url + ACCOUNTS + "?api-version=2025-09-01", 0
    while url:
        body = requests.get(url, headers={"Authorization": f"Bearer {az.issue_token(az.CLIENT_ID)}"}, timeout=5).json()
        names += [a["name"] for a in body["value"]]
        url, pages = body.get("nextLink"), pages + 1
    assert pages == 3 and names == [a.name for a in az.ACCOUNTS]
    account = arm(sandbox, f"{PREFIX}/arm{EASTUS.id}", {"api-version": "2025-09-01"}).json()
    assert {"id", "name", "location", "kind", "sku", "properties"} <= set(account) and account["kind"] == "OpenAI"


def test_deployments_are_paged_and_name_their_model(sandbox) -> None:
    first = arm(sandbox, f"{PREFIX}/arm{EASTUS.id}/deployments", {"api-version": "2025-09-01"}).json()
    assert len(first["value"]) == az.DEPLOYMENTS_PAGE_SIZE and first["nextLink"]
    deployment = first["value"][0]
    assert deployment["properties"]["model"] == {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"}
    assert deployment["sku"]["name"] == "GlobalStandard"
    second = requests.get(
        first["nextLink"], headers={"Authorization": f"Bearer {az.issue_token(az.CLIENT_ID)}"}, timeout=5
    ).json()
    assert len(second["value"]) == 2 and "nextLink" not in second


# ---------------------------------------------------------------- metrics
def test_metrics_shape_lower_cased_dimensions_and_missing_totals(sandbox) -> None:
    response = metrics(sandbox, **{"$filter": "ModelDeploymentName eq '*'", "top": 50})
    assert response.status_code == 200 and response.headers["x-ms-request-id"]
    body = response.json()
    assert body["interval"] == "PT1H" and body["resourceregion"] == "eastus"
    assert [v["name"]["value"] for v in body["value"]] == list(az.METRICS)
    series = body["value"][0]["timeseries"]
    assert len(series) == 13, "12 listed deployments and one deleted"
    assert {s["metadatavalues"][0]["name"]["value"] for s in series} == {"modeldeploymentname"}
    points = [p for s in series for p in s["data"]]
    assert all(len(s["data"]) == 24 for s in series)
    assert any("total" not in p for p in points) and any(p.get("total") == 0.0 for p in points)


def test_top_defaults_to_ten_and_drops_the_rest_silently(sandbox) -> None:
    body = metrics(sandbox, **{"$filter": "ModelDeploymentName eq '*'"}).json()
    assert all(len(v["timeseries"]) == 10 for v in body["value"])


def test_served_totals_equal_the_truth(sandbox) -> None:
    body = metrics(sandbox, hours=48, **{"$filter": "ModelDeploymentName eq '*'", "top": 50}).json()
    served: Counter = Counter()
    for value in body["value"]:
        for s in value["timeseries"]:
            for p in s["data"]:
                served[(value["name"]["value"], s["metadatavalues"][0]["value"])] += p.get("total", 0)
    truth: Counter = Counter()
    for r in az.truth_usage(DAY, DAY + timedelta(hours=48)):
        if r.account == EASTUS.name:
            for metric, field in zip(az.METRICS, ("prompt_tokens", "generated_tokens", "all_requests"), strict=True):
                truth[(metric, r.deployment)] += getattr(r, field)
    assert +served == +truth


def test_no_filter_is_one_series_and_a_named_filter_one_deployment(sandbox) -> None:
    (series,) = metrics(sandbox).json()["value"][2]["timeseries"]
    assert series["metadatavalues"] == []
    named = metrics(sandbox, **{"$filter": "ModelDeploymentName eq 'gpt-4o-prod'"}).json()["value"][0]["timeseries"]
    assert [s["metadatavalues"][0]["value"] for s in named] == ["gpt-4o-prod"]


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"metricnames": "TokenTransaction"}, "Failed to find metric configuration"),
        ({"interval": "PT5M"}, "PT1H"),
        ({"aggregation": "Average"}, "Total"),
        ({"timespan": "yesterday"}, "Invalid timespan"),
        ({"$filter": "Region eq 'eastus'"}, "ModelDeploymentName"),
    ],
)
def test_bad_metrics_requests(sandbox, params, text) -> None:
    response = metrics(sandbox, **params)
    assert response.status_code == 400 and text in response.json()["error"]["message"]


def test_metrics_beyond_retention_are_refused(sandbox) -> None:
    response = metrics(sandbox, start=DAY - timedelta(days=95))
    assert response.status_code == 400 and "93-day" in response.json()["error"]["message"]


def test_fault_default_body_is_arm_shaped(sandbox) -> None:
    sandbox.fault(METRICS, 529)
    response = metrics(sandbox)
    assert response.status_code == 529 and response.json()["error"]["code"] == "ServerBusy"
    assert response.headers["x-ms-request-id"]


# ---------------------------------------------------------------- truth
def test_truth_is_deterministic_hourly_and_only_for_elapsed_hours() -> None:
    rows = az.truth_usage(DAY, DAY + timedelta(days=1))
    assert rows and rows == az.truth_usage(DAY, DAY + timedelta(days=1))
    assert {r.hour_start.minute for r in rows} == {0}
    assert len({r.hour_start for r in rows if r.requests}) < 24, "some hours are idle"
    # A provisioned deployment has its PTUs in every hour, idle or not.
    assert {r.hour_start for r in rows if r.provisioned} == {r.hour_start for r in rows}
    assert {r.account for r in rows} == {a.name for a in az.ACCOUNTS if a.serves_openai}
    assert {r.model for r in rows if r.deployment == "gpt-35-legacy"} == {""}
    assert all(r.generated_tokens == 0 for r in rows if "embedding" in r.model)
    now = datetime.now(UTC)
    assert all(
        r.hour_start + timedelta(hours=1) <= now
        for r in az.truth_usage(now - timedelta(hours=3), now + timedelta(hours=3))
    )
