"""The fake Usage and Cost Analytics API (beta): documented shapes, who may read it, its limits,
paging, and that it tells the same truth as the fake legacy reports."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.anthropic import ADMIN_KEY, API_VERSION, ORGANIZATION_ID, truth_costs, truth_usage
from sandbox.anthropic_analytics import ANALYTICS_ADMIN_KEY, BETA, COST_GROUP_FIELDS, GROUP_FIELDS

USAGE = "/anthropic/v1/organizations/analytics/usage"
COST = "/anthropic/v1/organizations/analytics/cost"
GROUPS = ["workspace_id", "model", "service_tier", "context_window", "inference_geo"]


def day() -> datetime:
    """Ten days ago, midnight UTC: inside the analytics reports' range at any test clock."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=10)


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def get(sandbox, path: str, params: Any, key: str = ANALYTICS_ADMIN_KEY, beta: str | None = BETA) -> requests.Response:
    headers = {"x-api-key": key, "anthropic-version": API_VERSION, **({"anthropic-beta": beta} if beta else {})}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=10)


def rows(sandbox, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    out, page = [], None
    for _ in range(1000):
        body = get(sandbox, path, {**params, **({"page": page} if page else {})}).json()
        out += body["data"]
        if not body["has_more"]:
            return out
        page = body["next_page"]
    raise AssertionError("endless paging")


def test_usage_rows_have_the_documented_shape(sandbox) -> None:
    start = day()
    response = get(sandbox, USAGE, {"starting_at": at(start), "ending_at": at(start + timedelta(days=1)),
                                    "time_bucket_width": "1h", "group_by[]": GROUPS})  # fmt: skip
    assert response.status_code == 200 and response.headers["anthropic-organization-id"] == ORGANIZATION_ID
    body = response.json()
    assert set(body) == {"data", "has_more", "next_page"} and body["data"]
    row = body["data"][0]
    assert set(row) == {"starting_at", "ending_at", "group", "usage"}
    assert set(row["group"]) == set(GROUP_FIELDS) and row["group"]["speed"] is None  # not grouped by
    assert set(row["usage"]) == {"uncached_input_tokens", "cache_read_input_tokens", "cache_creation", "output_tokens",
                                 "server_tool_use", "requests", "total_tokens"}  # fmt: skip
    assert set(row["usage"]["cache_creation"]) == {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}


def test_usage_tells_the_legacy_truth(sandbox) -> None:
    start = day()
    found: Counter = Counter()
    for row in rows(sandbox, USAGE, {"starting_at": at(start), "ending_at": at(start + timedelta(days=1)),
                                     "time_bucket_width": "1h", "group_by[]": ["model"]}):  # fmt: skip
        u = row["usage"]
        found[(row["starting_at"], row["group"]["model"])] += (
            u["uncached_input_tokens"] + u["cache_read_input_tokens"] + u["output_tokens"]
            + sum(u["cache_creation"].values())
        )  # fmt: skip
    truth: Counter = Counter()
    for r in truth_usage(start, start + timedelta(days=1)):
        truth[(at(r.hour_start), r.model)] += r.input_tokens + r.output_tokens
    assert found == truth and truth


def test_hourly_costs_add_up_to_the_legacy_days_exactly(sandbox) -> None:
    start = day()
    found: Counter = Counter()
    for row in rows(sandbox, COST, {"starting_at": at(start), "ending_at": at(start + timedelta(days=1)),
                                    "time_bucket_width": "1h", "group_by[]": ["workspace_id", "token_type"]}):  # fmt: skip
        assert set(row["group"]) == set(COST_GROUP_FIELDS) and row["cost"]["currency"] == "USD"
        found[(row["group"]["workspace_id"], row["group"]["token_type"])] += Decimal(row["cost"]["amount"])
    truth: Counter = Counter()
    for c in truth_costs(start, start + timedelta(days=1)):
        truth[(c.workspace_id, c.token_type)] += c.amount_cents
    assert found == truth and truth


def test_only_the_analytics_key_with_the_beta_header_reads_it(sandbox) -> None:
    params = {"starting_at": at(day()), "time_bucket_width": "1d"}
    refused = get(sandbox, USAGE, params, key=ADMIN_KEY)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    no_beta = get(sandbox, COST, params, beta=None)
    assert no_beta.status_code == 400 and BETA in no_beta.json()["error"]["message"]
    assert get(sandbox, USAGE, params).status_code == 200
    sandbox.change("anthropic", "refuse_analytics")
    assert get(sandbox, USAGE, params).status_code == 403
    sandbox.reset()
    assert get(sandbox, USAGE, params).status_code == 200


@pytest.mark.parametrize(
    ("starting_at", "ending_at", "words"),
    [
        (datetime(2025, 12, 31, tzinfo=UTC), None, "2026-01-01"),
        (None, None, "365 days"),  # 366 days ago
        ("day", timedelta(days=32), "31 days"),
    ],
)
def test_ranges_it_refuses(sandbox, starting_at, ending_at, words) -> None:
    start = day() if starting_at == "day" else starting_at or datetime.now(UTC) - timedelta(days=366)
    params = {"starting_at": at(start), "time_bucket_width": "1d"}
    if ending_at:
        params["ending_at"] = at(start + ending_at)
    if start < datetime(2026, 1, 1, tzinfo=UTC):
        words = "2026-01-01"  # checked first (366 days ago is before it at the default test clock)
    response = get(sandbox, USAGE, params)
    assert response.status_code == 400 and words in response.json()["error"]["message"]


def test_each_bucket_holds_at_most_the_cap_largest_groups_without_remainder(sandbox) -> None:
    start = day()
    params = {"starting_at": at(start), "ending_at": at(start + timedelta(days=1)), "time_bucket_width": "1h",
              "group_by[]": GROUPS}  # fmt: skip
    every = rows(sandbox, USAGE, params)
    sandbox.change("anthropic", "cap_analytics_groups", cap="2")
    capped = rows(sandbox, USAGE, params)
    per_hour = Counter(r["starting_at"] for r in capped)
    assert per_hour and max(per_hour.values()) == 2 and len(capped) < len(every)
    for hour in per_hour:
        sizes = sorted((r["usage"]["total_tokens"] for r in every if r["starting_at"] == hour), reverse=True)
        assert (
            sorted((r["usage"]["total_tokens"] for r in capped if r["starting_at"] == hour), reverse=True) == sizes[:2]
        )


def test_paging_walks_every_row_once_and_a_cursor_keeps_to_its_query(sandbox) -> None:
    start = day()
    params = {"starting_at": at(start), "ending_at": at(start + timedelta(days=1)), "time_bucket_width": "1h",
              "group_by[]": GROUPS}  # fmt: skip
    whole = rows(sandbox, USAGE, {**params, "limit": 1000})
    paged = rows(sandbox, USAGE, {**params, "limit": 7})
    assert len(whole) > 7 and paged == whole
    cursor = get(sandbox, USAGE, {**params, "limit": 7}).json()["next_page"]
    other = get(sandbox, USAGE, {**params, "limit": 7, "group_by[]": ["model"], "page": cursor})
    assert other.status_code == 400
