"""The fake OpenRouter management API: documented shapes, the 30-day horizon, keys, errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.openrouter import (
    DATA_START,
    ENDPOINTS,
    INFERENCE_KEY,
    MANAGEMENT_KEY,
    NOT_MANAGEMENT_MESSAGE,
    REVOKED_KEY,
    error_body,
    history,
    truth_activity,
)

PREFIX = "/openrouter/api/v1"
ROW_FIELDS = {
    "date", "model", "model_permaslug", "endpoint_id", "provider_name", "usage", "byok_usage_inference",
    "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens",
}  # fmt: skip


def get(sandbox, path: str, params: Any = None, key: str | None = MANAGEMENT_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(sandbox.url + PREFIX + path, params=params, headers=headers, timeout=5)


def assert_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status and isinstance(error["message"], str)
    return error["message"]


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_undated_activity_is_the_last_30_completed_days(sandbox) -> None:
    response = get(sandbox, "/activity")
    assert response.status_code == 200 and response.headers["cf-ray"]
    body = response.json()
    assert set(body) == {"data"}, "no pagination fields: the API has none"
    first, last = history()
    days = {row["date"] for row in body["data"]}
    assert days == {(first + timedelta(days=i)).isoformat() for i in range(30)}
    assert datetime.now(UTC).date().isoformat() not in days, "today never appears"
    assert all(set(row) == ROW_FIELDS for row in body["data"])
    assert len(body["data"]) == len(truth_activity(midnight(first), midnight(last) + timedelta(days=1)))


def test_dated_activity_matches_the_truth(sandbox) -> None:
    day = history()[1] - timedelta(days=3)
    rows = get(sandbox, "/activity", {"date": day.isoformat()}).json()["data"]
    truth = truth_activity(midnight(day), midnight(day) + timedelta(days=1))
    assert {row["date"] for row in rows} == {day.isoformat()}
    assert sorted(
        (r["endpoint_id"], r["prompt_tokens"], r["completion_tokens"], r["requests"]) for r in rows
    ) == sorted((t.endpoint_id, t.prompt_tokens, t.completion_tokens, t.requests) for t in truth)
    assert sum(Decimal(str(r["usage"])) for r in rows) == sum(t.usage for t in truth)


@pytest.mark.parametrize("offset", [0, 31, 40], ids=["today", "31 days ago", "40 days ago"])
def test_dates_outside_the_horizon_are_refused(sandbox, offset) -> None:
    day = datetime.now(UTC).date() - timedelta(days=offset)
    assert "30" in assert_error(get(sandbox, "/activity", {"date": day.isoformat()}), 400)


def test_malformed_date_is_refused(sandbox) -> None:
    assert_error(get(sandbox, "/activity", {"date": "24/08/2025"}), 400)


def test_key_describes_either_kind_of_key(sandbox) -> None:
    management = get(sandbox, "/key").json()["data"]
    assert management["is_management_key"] is True and management["label"] == "doow-usage-sync"
    inference = get(sandbox, "/key", key=INFERENCE_KEY).json()["data"]
    assert inference["is_management_key"] is False and inference["limit"] == 100


def test_credits(sandbox) -> None:
    data = get(sandbox, "/credits").json()["data"]
    assert set(data) == {"total_credits", "total_usage"} and data["total_credits"] == 500.0


@pytest.mark.parametrize("path", ["/activity", "/credits"])
def test_inference_key_may_not_use_management_endpoints(sandbox, path) -> None:
    assert assert_error(get(sandbox, path, key=INFERENCE_KEY), 403) == NOT_MANAGEMENT_MESSAGE


@pytest.mark.parametrize("key", [None, REVOKED_KEY, "sk-or-v1-unknown"])
def test_missing_or_unknown_keys_are_401(sandbox, key) -> None:
    assert_error(get(sandbox, "/activity", key=key), 401)


def test_unknown_path_is_404(sandbox) -> None:
    assert_error(get(sandbox, "/generation"), 404)


def test_error_bodies_for_faults() -> None:
    assert error_body(403) == {"error": {"code": 403, "message": NOT_MANAGEMENT_MESSAGE}}
    assert error_body(503)["error"]["code"] == 503 and error_body(429)["error"]["code"] == 429


# ---------------------------------------------------------------- the data itself
START = datetime(2025, 9, 1, tzinfo=UTC)  # inside the horizon at NOW
NOW = datetime(2025, 9, 15, 10, tzinfo=UTC)


def test_truth_is_deterministic_and_daily() -> None:
    rows = truth_activity(START, START + timedelta(days=14), now=NOW)
    assert rows == truth_activity(START, START + timedelta(days=14), now=NOW)
    assert {r.date for r in rows} == {(START + timedelta(days=i)).date() for i in range(14)}


def test_first_endpoint_is_busy_every_day_and_others_sometimes_idle() -> None:
    rows = truth_activity(START, START + timedelta(days=14), now=NOW)
    by_endpoint = {ep.endpoint_id: sum(r.endpoint_id == ep.endpoint_id for r in rows) for ep in ENDPOINTS}
    assert by_endpoint[ENDPOINTS[0].endpoint_id] == 14
    assert any(0 < n < 14 for n in by_endpoint.values())


def test_rows_are_internally_consistent() -> None:
    rows = truth_activity(START, START + timedelta(days=14), now=NOW)
    assert any(r.reasoning_tokens > 0 for r in rows) and any(r.byok_usage_inference > 0 for r in rows)
    for row in rows:
        assert row.requests > 0 and 0 <= row.reasoning_tokens <= row.completion_tokens
        assert row.usage >= 0 and row.byok_usage_inference >= 0
        if row.byok_usage_inference:
            assert row.usage < row.byok_usage_inference, "BYOK: only OpenRouter's fee is charged in credits"


def test_truth_respects_the_horizon_and_the_first_day_of_data() -> None:
    assert truth_activity(NOW - timedelta(days=40), NOW + timedelta(days=2), now=NOW)[0].date == date(2025, 8, 16)
    assert max(r.date for r in truth_activity(NOW - timedelta(days=3), NOW + timedelta(days=2), now=NOW)) == date(
        2025, 9, 14
    )
    start = midnight(DATA_START)
    assert truth_activity(start - timedelta(days=5), start, now=start + timedelta(days=3)) == []


def test_unaligned_start_counts_only_days_starting_after_it() -> None:
    rows = truth_activity(START + timedelta(hours=1), START + timedelta(days=2), now=NOW)
    assert {r.date for r in rows} == {(START + timedelta(days=1)).date()}
