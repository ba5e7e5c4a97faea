"""The fake Fireworks API: documented shapes and quirks, auth, the 31-day limit, the metrics
exposition and its 6-a-minute rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox import fireworks as fw

DAY = datetime(2025, 3, 10, tzinfo=UTC)
BILLING = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/billingUsage"
METRICS = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/metrics"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch) -> Iterator[Clock]:
    fake = Clock(datetime(2025, 3, 12, 9, 30, 15, tzinfo=UTC))
    monkeypatch.setattr(fw, "clock", fake)
    fw.reset_metrics_limits()
    yield fake
    fw.reset_metrics_limits()


def get(sandbox, path: str, params: Any = None, key: str | None = fw.API_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=5)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_grpc_error(response: requests.Response, status: int, code: int) -> str:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code
    return body["message"]


# ---------------------------------------------------------------- billingUsage
def test_serverless_rows_are_daily_with_int64_strings(sandbox, clock) -> None:
    params = {"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=2)), "usageType": "SERVERLESS",
              "groupBy": "model_name", "timezone": "UTC"}  # fmt: skip
    response = get(sandbox, BILLING, params)
    assert response.status_code == 200 and len(response.headers["x-request-id"]) == 32
    body = response.json()
    assert set(body) == {"serverlessCosts"}, "an empty dedicatedCosts is left out (proto3 JSON)"
    rows = body["serverlessCosts"]
    assert {r["startTime"] for r in rows} == {iso(DAY), iso(DAY + timedelta(days=1))}
    for row in rows:
        assert isinstance(row["promptTokens"], str) and row["promptTokens"].isdigit()
        assert row["group"] == {"model_name": row["modelName"]}
        assert row["endTime"] == iso(datetime.fromisoformat(row["startTime"]) + timedelta(days=1))
    embedding = [r for r in rows if r["modelName"] in fw.EMBEDDING_MODELS]
    assert embedding and all("completionTokens" not in r for r in embedding), "a zero count is omitted"
    expected = {(iso(r.day), r.model): str(r.prompt_tokens) for r in fw.truth_serverless(DAY, DAY + timedelta(days=2))}
    assert {(r["startTime"], r["modelName"]): r["promptTokens"] for r in rows} == expected


def test_dedicated_rows_name_deployment_accelerator_and_placement(sandbox, clock) -> None:
    params = {"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=1)), "usageType": "DEDICATED_DEPLOYMENT",
              "groupBy": ["deployment_name", "accelerator_type"]}  # fmt: skip
    rows = get(sandbox, BILLING, params).json()["dedicatedCosts"]
    by_id = {d.id: d for d in fw.DEPLOYMENTS}
    assert rows and {r["deploymentId"] for r in rows} <= set(by_id)
    for row in rows:
        deployment = by_id[row["deploymentId"]]
        assert (row["baseModel"], row["acceleratorType"], row["placement"]) == (
            deployment.base_model, deployment.accelerator_type, deployment.placement,
        )  # fmt: skip
        assert row["group"]["deployment_name"] == f"accounts/{fw.ACCOUNT_ID}/deployments/{deployment.id}"
        assert int(row["acceleratorSeconds"]) % 3600 == 0


def test_all_usage_types_by_default(sandbox, clock) -> None:
    body = get(sandbox, BILLING, {"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=1))}).json()
    assert set(body) == {"serverlessCosts", "dedicatedCosts", "trainingCosts"}


def test_an_unaligned_range_clips_its_first_and_last_row(sandbox, clock) -> None:
    start, end = DAY + timedelta(hours=6), DAY + timedelta(days=1, hours=3)
    rows = get(sandbox, BILLING, {"startTime": iso(start), "endTime": iso(end), "usageType": "SERVERLESS"}).json()
    spans = {(r["startTime"], r["endTime"]) for r in rows["serverlessCosts"]}
    assert spans == {(iso(start), iso(DAY + timedelta(days=1))), (iso(DAY + timedelta(days=1)), iso(end))}


def test_no_usage_for_hours_that_have_not_ended(sandbox, clock) -> None:
    today = clock().replace(hour=0, minute=0, second=0)
    rows = get(sandbox, BILLING, {"startTime": iso(today), "endTime": iso(today + timedelta(days=1))}).json()
    truth = {r.model: str(r.prompt_tokens) for r in fw.truth_serverless(today, today + timedelta(days=1))}
    assert {r["modelName"]: r["promptTokens"] for r in rows["serverlessCosts"]} == truth
    assert fw.truth_serverless(clock(), clock() + timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"endTime": iso(DAY)}, "startTime is required"),
        ({"startTime": "yesterday", "endTime": iso(DAY)}, "RFC 3339"),
        ({"startTime": iso(DAY), "endTime": iso(DAY)}, "before end_time"),
        ({"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=31, seconds=1))}, "31 days"),
        ({"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=1)), "usageType": "GPU"}, "usage_type"),
        (
            {
                "startTime": iso(DAY),
                "endTime": iso(DAY + timedelta(days=1)),
                "usageType": "SERVERLESS",
                "groupBy": "deployment_name",
            },
            "cannot group",
        ),
        ({"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=1)), "timezone": "Europe/Paris"}, "UTC only"),
    ],
)
def test_bad_arguments_are_400_invalid_argument(sandbox, clock, params, words) -> None:
    assert words in assert_grpc_error(get(sandbox, BILLING, params), 400, 3)


def test_a_31_day_range_is_accepted(sandbox, clock) -> None:
    params = {"startTime": iso(DAY - timedelta(days=31)), "endTime": iso(DAY)}
    assert get(sandbox, BILLING, params).status_code == 200


# ---------------------------------------------------------------- auth and accounts
@pytest.mark.parametrize("key", [None, fw.REVOKED_KEY, "fw_unknown0123456789"])
def test_missing_or_unknown_key_is_401(sandbox, clock, key) -> None:
    assert_grpc_error(get(sandbox, BILLING, {"startTime": iso(DAY), "endTime": iso(DAY)}, key=key), 401, 16)


def test_key_of_another_account_is_403(sandbox, clock) -> None:
    message = assert_grpc_error(get(sandbox, METRICS, key=fw.OTHER_ACCOUNT_KEY), 403, 7)
    assert fw.ACCOUNT_ID in message


def test_unknown_account_and_path_are_404(sandbox, clock) -> None:
    assert_grpc_error(get(sandbox, "/fireworks/v1/accounts/nobody/metrics"), 404, 5)
    assert_grpc_error(get(sandbox, f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/usage"), 404, 5)


# ---------------------------------------------------------------- metrics
def test_metrics_are_prometheus_text_matching_the_truth(sandbox, clock) -> None:
    response = get(sandbox, METRICS)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert set(fw.SERIES) <= set(families)
    truth = fw.truth_rates(clock())
    for i, series in enumerate(fw.SERIES):
        samples = families[series].samples
        assert {s.labels["deployment_id"] for s in samples} == {d.id for d in fw.DEPLOYMENTS}
        for s in samples:
            assert set(s.labels) == {"base_model", "deployment", "deployment_account", "deployment_id"}
            assert s.labels["deployment"] == f"accounts/{fw.ACCOUNT_ID}/deployments/{s.labels['deployment_id']}"
            assert Decimal(str(s.value)) == truth[s.labels["deployment_id"]][i]


def test_metrics_change_every_30_seconds(sandbox, clock) -> None:
    slot_start = clock().replace(second=0)
    assert fw.metrics_text(fw.ACCOUNT_ID, slot_start) == fw.metrics_text(
        fw.ACCOUNT_ID, slot_start + timedelta(seconds=29)
    )
    texts = {fw.metrics_text(fw.ACCOUNT_ID, slot_start + timedelta(seconds=30 * i)) for i in range(10)}
    assert len(texts) > 1


def test_metrics_allow_six_requests_a_minute_per_account(sandbox, clock) -> None:
    assert [get(sandbox, METRICS).status_code for _ in range(fw.METRICS_LIMIT)] == [200] * fw.METRICS_LIMIT
    limited = get(sandbox, METRICS)
    assert "6 metrics requests per minute" in assert_grpc_error(limited, 429, 8)
    assert limited.headers["Retry-After"] == "60"
    clock.at += timedelta(seconds=45)
    assert get(sandbox, METRICS).status_code == 429
    assert get(sandbox, METRICS).headers["Retry-After"] == "15"
    clock.at += timedelta(seconds=15)
    assert get(sandbox, METRICS).status_code == 200
    # The billing endpoint is not limited this way.
    assert get(sandbox, BILLING, {"startTime": iso(DAY), "endTime": iso(DAY + timedelta(days=1))}).status_code == 200
