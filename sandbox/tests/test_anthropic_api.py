"""The fake Anthropic Admin API: documented shapes, snapping, pagination, auth and its truth."""

from __future__ import annotations

import base64
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.anthropic import (
    ADMIN_KEY,
    API_KEY,
    API_VERSION,
    ORGANIZATION_ID,
    PRICES,
    REPORTING_DELAY,
    REVOKED_ADMIN_KEY,
    WORKSPACES,
    error_body,
    truth_costs,
    truth_usage,
)
from sandbox.testing import cursor_pages

DAY = datetime(2025, 3, 10, tzinfo=UTC)
NEXT = DAY + timedelta(days=1)
USAGE = "/anthropic/v1/organizations/usage_report/messages"
COSTS = "/anthropic/v1/organizations/cost_report"
ME = "/anthropic/v1/organizations/me"
WORKSPACES_PATH = "/anthropic/v1/organizations/workspaces"


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def get(sandbox, path: str, params: Any = None, key: str | None = ADMIN_KEY, version: str | None = API_VERSION):
    headers = {k: v for k, v in {"x-api-key": key, "anthropic-version": version}.items() if v}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=5)


def assert_error(response: requests.Response, status: int, type_: str) -> str:
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == type_
    assert response.headers["request-id"].startswith("req_")
    return body["error"]["message"]


def all_pages(sandbox, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return cursor_pages(lambda page: get(sandbox, path, page).json(), params)


# ---------------------------------------------------------------- usage report
def test_usage_envelope_and_row_shape(sandbox) -> None:
    params = {"starting_at": at(DAY), "ending_at": at(DAY + timedelta(hours=6)), "bucket_width": "1h",
              "group_by[]": ["model", "workspace_id"]}  # fmt: skip
    response = get(sandbox, USAGE, params)
    assert response.status_code == 200
    assert response.headers["anthropic-organization-id"] == ORGANIZATION_ID
    body = response.json()
    assert set(body) == {"data", "has_more", "next_page"} and body["has_more"] is False and body["next_page"] is None
    assert [b["starting_at"] for b in body["data"]] == [at(DAY + timedelta(hours=i)) for i in range(6)]
    rows = [r for b in body["data"] for r in b["results"]]
    assert rows
    for row in rows:
        assert set(row["cache_creation"]) == {"ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"}
        assert "cache_creation_input_tokens" not in row, "the usage report has no flat cache-creation field"
        assert set(row["server_tool_use"]) == {"web_search_requests", "code_execution_requests"}
        assert row["model"] in PRICES and row["api_key_id"] is None and row["service_tier"] is None
    assert None in {r["workspace_id"] for r in rows}, "the default workspace is reported as null"


def test_usage_totals_match_the_truth_and_include_every_cache_field(sandbox) -> None:
    body = get(sandbox, USAGE, {"starting_at": at(DAY), "ending_at": at(NEXT), "bucket_width": "1d"}).json()
    (bucket,) = body["data"]
    (row,) = bucket["results"]  # ungrouped: one row, dimensions null
    assert row["workspace_id"] is None and row["model"] is None
    truth = truth_usage(DAY, NEXT)
    assert row["uncached_input_tokens"] == sum(r.uncached_input_tokens for r in truth)
    assert row["cache_read_input_tokens"] == sum(r.cache_read_input_tokens for r in truth)
    assert row["cache_creation"]["ephemeral_5m_input_tokens"] == sum(r.cache_creation_5m for r in truth)
    assert row["cache_creation"]["ephemeral_1h_input_tokens"] == sum(r.cache_creation_1h for r in truth)
    assert row["output_tokens"] == sum(r.output_tokens for r in truth)
    assert row["server_tool_use"]["web_search_requests"] == sum(r.web_search_requests for r in truth)
    assert all(row[k] > 0 for k in ("uncached_input_tokens", "cache_read_input_tokens", "output_tokens"))
    assert all(v > 0 for v in row["cache_creation"].values())


def test_usage_buckets_snap_to_the_hour_and_list_empty_ones(sandbox) -> None:
    body = get(sandbox, USAGE, {"starting_at": at(DAY + timedelta(minutes=37)), "ending_at": at(NEXT + timedelta(days=6)),
                                "bucket_width": "1h", "limit": 168}).json()  # fmt: skip
    assert body["data"][0]["starting_at"] == at(DAY) and len(body["data"]) == 168
    assert any(b["results"] == [] for b in body["data"])


def test_usage_cursor_walks_every_bucket_once(sandbox) -> None:
    end = DAY + timedelta(days=3)
    pages = all_pages(sandbox, USAGE, {"starting_at": at(DAY), "ending_at": at(end), "bucket_width": "1h",
                                       "limit": 30, "group_by[]": "model"})  # fmt: skip
    assert len(pages) == 3  # 72 buckets, 30 per page
    assert pages[0]["next_page"] == "page_" + base64.b64encode(at(DAY + timedelta(hours=30)).encode()).decode()
    starts = [b["starting_at"] for p in pages for b in p["data"]]
    assert starts == [at(DAY + timedelta(hours=i)) for i in range(72)]
    got: Counter = Counter()
    for page in pages:
        for bucket in page["data"]:
            for r in bucket["results"]:
                got[r["model"]] += r["output_tokens"]
    expected: Counter = Counter()
    for row in truth_usage(DAY, end):
        expected[row.model] += row.output_tokens
    assert got == expected


def test_usage_defaults_and_limits(sandbox) -> None:
    hourly = get(
        sandbox, USAGE, {"starting_at": at(DAY), "ending_at": at(DAY + timedelta(days=30)), "bucket_width": "1h"}
    )
    assert len(hourly.json()["data"]) == 24 and hourly.json()["has_more"]
    daily = get(sandbox, USAGE, {"starting_at": at(DAY), "ending_at": at(DAY + timedelta(days=30))}).json()
    assert len(daily["data"]) == 7  # bucket_width defaults to 1d
    assert_error(
        get(sandbox, USAGE, {"starting_at": at(DAY), "bucket_width": "1h", "limit": 169}), 400, "invalid_request_error"
    )
    assert_error(get(sandbox, USAGE, {"starting_at": at(DAY), "limit": 32}), 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "starting_at"),
        ({"starting_at": "yesterday"}, "starting_at"),
        ({"starting_at": "2025-03-10T00:00:00"}, "Timezone"),
        ({"starting_at": at(DAY), "ending_at": at(DAY)}, "ending_at"),
        ({"starting_at": at(DAY), "bucket_width": "1w"}, "bucket_width"),
        ({"starting_at": at(DAY), "group_by[]": "colour"}, "group_by[]"),
        ({"starting_at": at(DAY), "group_by": "model"}, "bracket form"),
        ({"starting_at": at(DAY), "page": "page_garbage!"}, "page"),
    ],
)
def test_usage_rejects_bad_parameters(sandbox, params, words) -> None:
    assert words in assert_error(get(sandbox, USAGE, params), 400, "invalid_request_error")


def test_usage_filters_by_workspace(sandbox) -> None:
    wanted = WORKSPACES[0].id
    params = {"starting_at": at(DAY), "ending_at": at(NEXT), "group_by[]": "workspace_id", "workspace_ids[]": wanted}
    (bucket,) = get(sandbox, USAGE, params).json()["data"]
    assert {r["workspace_id"] for r in bucket["results"]} == {wanted}


def test_usage_appears_only_after_the_reporting_delay(sandbox) -> None:
    hour = next(r.hour_start for r in truth_usage(DAY, NEXT))
    ends = hour + timedelta(hours=1)
    assert truth_usage(hour, ends, now=ends + timedelta(seconds=REPORTING_DELAY - 1)) == []
    assert truth_usage(hour, ends, now=ends + timedelta(seconds=REPORTING_DELAY)) == truth_usage(hour, ends) != []
    current = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    params = {"starting_at": at(current), "ending_at": at(current + timedelta(hours=3)), "bucket_width": "1h"}
    assert all(b["results"] == [] for b in get(sandbox, USAGE, params).json()["data"])


# ---------------------------------------------------------------- cost report
def test_costs_are_cent_strings_grouped_by_workspace_and_description(sandbox) -> None:
    params = {"starting_at": at(DAY), "ending_at": at(NEXT), "group_by[]": ["workspace_id", "description"]}
    (bucket,) = get(sandbox, COSTS, params).json()["data"]
    results = bucket["results"]
    assert all(isinstance(r["amount"], str) and r["currency"] == "USD" for r in results)
    tokens = [r for r in results if r["cost_type"] == "tokens"]
    assert tokens and all(r["model"] in PRICES and r["token_type"] for r in tokens)
    assert {r["token_type"] for r in tokens} >= {"uncached_input_tokens", "output_tokens", "cache_read_input_tokens",
                                                 "cache_creation.ephemeral_5m_input_tokens"}  # fmt: skip
    assert {r["service_tier"] for r in tokens} == {"standard", "batch"}
    searches = [r for r in results if r["cost_type"] == "web_search"]
    assert searches and all(r["model"] is None and r["token_type"] is None for r in searches)
    total_cents = sum(Decimal(r["amount"]) for r in results)
    assert total_cents / 100 == sum(c.amount for c in truth_costs(DAY, NEXT))


def test_costs_ungrouped_have_null_dimensions(sandbox) -> None:
    (bucket,) = get(sandbox, COSTS, {"starting_at": at(DAY), "ending_at": at(NEXT)}).json()["data"]
    (result,) = bucket["results"]
    assert result["description"] is None and result["model"] is None and result["workspace_id"] is None
    assert Decimal(result["amount"]) == sum(c.amount_cents for c in truth_costs(DAY, NEXT))


def test_costs_limits_and_pagination(sandbox) -> None:
    pages = all_pages(sandbox, COSTS, {"starting_at": at(DAY), "ending_at": at(DAY + timedelta(days=10))})
    assert [len(p["data"]) for p in pages] == [7, 3]  # default limit 7
    assert_error(get(sandbox, COSTS, {"starting_at": at(DAY), "limit": 32}), 400, "invalid_request_error")
    assert get(sandbox, COSTS, {"starting_at": at(DAY), "ending_at": at(NEXT), "limit": 31}).status_code == 200
    assert_error(get(sandbox, COSTS, {"starting_at": at(DAY), "bucket_width": "1h"}), 400, "invalid_request_error")
    assert_error(get(sandbox, COSTS, {"starting_at": at(DAY), "group_by[]": "model"}), 400, "invalid_request_error")


def test_truth_costs_are_tokens_times_prices() -> None:
    rows = truth_usage(DAY, NEXT)
    costs = truth_costs(DAY, NEXT)
    # One cost line per workspace, model, tier, context window and geo (long context costs double).
    dims = lambda x: (x.workspace_id, x.model, x.service_tier, x.context_window, x.inference_geo)  # noqa: E731
    output = {dims(c): c.amount_cents for c in costs if c.token_type == "output_tokens"}
    for key, cents in output.items():
        tokens = sum(r.output_tokens for r in rows if dims(r) == key)
        factor = (Decimal("0.5") if key[2] == "batch" else Decimal(1)) * (2 if key[3] == "200k-1M" else 1)
        assert abs(cents - Decimal(tokens) * PRICES[key[1]].output * factor / 10_000) <= Decimal("0.000005")
    searches = sum(r.web_search_requests for r in rows)
    assert sum(c.amount_cents for c in costs if c.cost_type == "web_search") == searches > 0
    executions = sum(r.code_execution_requests for r in rows)
    assert sum(c.amount_cents for c in costs if c.cost_type == "code_execution") == executions * 5 > 0


def test_todays_costs_grow_with_the_reported_hours() -> None:
    morning, evening = DAY + timedelta(hours=6), DAY + timedelta(hours=20)
    assert sum(c.amount for c in truth_costs(DAY, NEXT, now=morning)) < sum(
        c.amount for c in truth_costs(DAY, NEXT, now=evening)
    )
    assert truth_costs(DAY, NEXT, now=DAY + timedelta(seconds=REPORTING_DELAY)) == []


# ---------------------------------------------------------------- organization and workspaces
def test_me_describes_the_organization(sandbox) -> None:
    assert get(sandbox, ME).json() == {"id": ORGANIZATION_ID, "name": "Doow Sandbox Org", "type": "organization"}


def test_workspaces_list_archived_and_cursor(sandbox) -> None:
    active = get(sandbox, WORKSPACES_PATH).json()
    assert [w["id"] for w in active["data"]] == [w.id for w in WORKSPACES if w.archived_at is None]
    everything = get(sandbox, WORKSPACES_PATH, {"include_archived": "true", "limit": 2}).json()
    assert everything["has_more"] is True and everything["last_id"] == WORKSPACES[1].id
    assert set(everything["data"][0]) == {"id", "type", "name", "created_at", "archived_at", "display_color"}
    rest = get(sandbox, WORKSPACES_PATH, {"include_archived": "true", "after_id": everything["last_id"]}).json()
    assert [w["id"] for w in rest["data"]] == [WORKSPACES[2].id] and rest["data"][0]["archived_at"]


# ---------------------------------------------------------------- auth, errors, faults
def test_missing_key_is_401(sandbox) -> None:
    assert "x-api-key" in assert_error(get(sandbox, ME, key=None), 401, "authentication_error")


@pytest.mark.parametrize("key", [API_KEY, REVOKED_ADMIN_KEY, "sk-admin-openai-0123456789", "nonsense"])
def test_regular_revoked_and_foreign_keys_are_401(sandbox, key) -> None:
    message = assert_error(get(sandbox, USAGE, {"starting_at": at(DAY)}, key=key), 401, "authentication_error")
    assert message == "invalid x-api-key"


def test_missing_anthropic_version_is_400(sandbox) -> None:
    assert "anthropic-version" in assert_error(get(sandbox, ME, version=None), 400, "invalid_request_error")


def test_unknown_path_and_method(sandbox) -> None:
    assert_error(get(sandbox, "/anthropic/v1/organizations/teleports"), 404, "not_found_error")
    response = requests.post(
        sandbox.url + ME, headers={"x-api-key": ADMIN_KEY, "anthropic-version": API_VERSION}, timeout=5
    )
    assert_error(response, 405, "invalid_request_error")


@pytest.mark.parametrize(
    ("status", "type_"),
    [(401, "authentication_error"), (403, "permission_error"), (429, "rate_limit_error"), (500, "api_error"),
     (503, "api_error"), (529, "overloaded_error"), (418, "invalid_request_error")],
)  # fmt: skip
def test_faults_use_anthropic_error_bodies(sandbox, status, type_) -> None:
    assert error_body(status)["error"]["type"] == type_
    sandbox.fault(ME, status, headers={"retry-after": "3"})
    response = get(sandbox, ME)
    assert_error(response, status, type_)
    assert response.headers["retry-after"] == "3"
