"""The fake OpenAI admin API: documented shapes, quirks, pagination and auth."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.openai import (
    ADMIN_KEY,
    ORGANIZATION_ID,
    PROJECT_KEY,
    PROJECTS,
    REVOKED_ADMIN_KEY,
    truth_costs,
    truth_usage,
)
from sandbox.testing import cursor_pages

DAY = datetime(2025, 3, 10, tzinfo=UTC)
T0 = int(DAY.timestamp())
USAGE = "/openai/v1/organization/usage/completions"
COSTS = "/openai/v1/organization/costs"
PROJECTS_PATH = "/openai/v1/organization/projects"


def get(sandbox, path: str, params: Any = None, key: str | None = ADMIN_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=5)


def assert_openai_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def all_pages(sandbox, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return cursor_pages(lambda page: get(sandbox, path, page).json(), params)


# ---------------------------------------------------------------- usage
def test_usage_page_envelope_and_result_shape(sandbox) -> None:
    response = get(
        sandbox,
        USAGE,
        {"start_time": T0, "end_time": T0 + 6 * 3600, "bucket_width": "1h", "group_by": ["model", "project_id"]},
    )
    assert response.status_code == 200
    assert response.headers["openai-organization"] == ORGANIZATION_ID
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert set(body) == {"object", "data", "has_more", "next_page"} and body["object"] == "page"
    assert body["has_more"] is False and body["next_page"] is None
    assert [b["start_time"] for b in body["data"]] == [T0 + i * 3600 for i in range(6)]
    results = [r for b in body["data"] for r in b["results"]]
    assert results
    for bucket in body["data"]:
        assert bucket["object"] == "bucket" and bucket["end_time"] == bucket["start_time"] + 3600
    for result in results:
        assert result["object"] == "organization.usage.completions.result"
        assert {"input_tokens", "output_tokens", "num_model_requests", "input_cached_tokens"} <= set(result)
        assert result["project_id"] in {p.id for p in PROJECTS} and result["model"]
        assert result["user_id"] is None and result["api_key_id"] is None


def test_usage_lists_empty_buckets(sandbox) -> None:
    body = get(
        sandbox, USAGE, {"start_time": T0, "end_time": T0 + 7 * 86400, "bucket_width": "1h", "limit": 168}
    ).json()
    assert len(body["data"]) == 168
    assert any(b["results"] == [] for b in body["data"])


def test_usage_dimensions_are_null_unless_grouped(sandbox) -> None:
    body = get(sandbox, USAGE, {"start_time": T0, "end_time": T0 + 86400, "bucket_width": "1d"}).json()
    (bucket,) = body["data"]
    (result,) = bucket["results"]
    assert result["project_id"] is None and result["model"] is None
    rows = truth_usage(DAY, DAY + timedelta(days=1))
    assert result["input_tokens"] == sum(r.input_tokens for r in rows)
    assert result["num_model_requests"] == sum(r.num_model_requests for r in rows)


def test_usage_group_by_accepts_both_array_forms(sandbox) -> None:
    params = {"start_time": T0, "end_time": T0 + 86400, "bucket_width": "1d"}
    plain = get(sandbox, USAGE, {**params, "group_by": ["model", "project_id"]}).json()["data"]
    brackets = get(sandbox, USAGE, {**params, "group_by[]": ["model", "project_id"]}).json()["data"]
    assert plain == brackets
    assert {(r["project_id"], r["model"]) for r in plain[0]["results"]} == {
        (r.project_id, r.model) for r in truth_usage(DAY, DAY + timedelta(days=1))
    }


def test_usage_first_bucket_starts_at_an_unaligned_start_time(sandbox) -> None:
    start = T0 + 30 * 60
    body = get(sandbox, USAGE, {"start_time": start, "end_time": T0 + 3 * 3600, "bucket_width": "1h"}).json()
    assert [(b["start_time"], b["end_time"]) for b in body["data"]] == [
        (start, T0 + 3600),
        (T0 + 3600, T0 + 7200),
        (T0 + 7200, T0 + 10800),
    ]


def test_usage_defaults_and_limits(sandbox) -> None:
    hourly = get(sandbox, USAGE, {"start_time": T0, "end_time": T0 + 30 * 86400, "bucket_width": "1h"}).json()
    assert len(hourly["data"]) == 24 and hourly["has_more"]
    daily = get(sandbox, USAGE, {"start_time": T0, "end_time": T0 + 30 * 86400}).json()  # bucket_width defaults to 1d
    assert len(daily["data"]) == 7 and daily["data"][0]["end_time"] - daily["data"][0]["start_time"] == 86400
    assert_openai_error(get(sandbox, USAGE, {"start_time": T0, "bucket_width": "1h", "limit": 169}), 400)
    assert_openai_error(get(sandbox, USAGE, {"start_time": T0, "bucket_width": "1d", "limit": 32}), 400)
    assert_openai_error(get(sandbox, USAGE, {"start_time": T0, "limit": 0}), 400)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start_time"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": T0, "bucket_width": "1m"}, "bucket_width"),
        ({"start_time": T0, "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": T0, "group_by": "colour"}, "group_by"),
        ({"start_time": T0, "end_time": T0}, "end_time"),
        ({"start_time": T0, "page": "page_garbage"}, "page"),
    ],
)
def test_usage_rejects_bad_parameters_with_openai_errors(sandbox, params, param) -> None:
    error = assert_openai_error(get(sandbox, USAGE, params), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_usage_pagination_cursor_walks_every_bucket_once(sandbox) -> None:
    end = T0 + 3 * 86400
    pages = all_pages(
        sandbox, USAGE, {"start_time": T0, "end_time": end, "bucket_width": "1h", "limit": 30, "group_by": "model"}
    )
    assert len(pages) == 3  # 72 buckets, 30 per page
    starts = [b["start_time"] for p in pages for b in p["data"]]
    assert starts == list(range(T0, end, 3600))
    totals: Counter = Counter()
    for page in pages:
        for bucket in page["data"]:
            for r in bucket["results"]:
                totals[r["model"]] += r["output_tokens"]
    expected: Counter = Counter()
    for row in truth_usage(DAY, DAY + timedelta(days=3)):
        expected[row.model] += row.output_tokens
    assert totals == expected


def test_usage_project_filter(sandbox) -> None:
    wanted = PROJECTS[1].id
    body = get(
        sandbox,
        USAGE,
        {
            "start_time": T0,
            "end_time": T0 + 86400,
            "bucket_width": "1d",
            "group_by": "project_id",
            "project_ids": wanted,
        },
    ).json()
    assert {r["project_id"] for r in body["data"][0]["results"]} == {wanted}


def test_no_usage_in_the_future(sandbox) -> None:
    now = int(datetime.now(UTC).timestamp())
    hour = now - now % 3600
    body = get(sandbox, USAGE, {"start_time": hour, "end_time": hour + 5 * 3600, "bucket_width": "1h"}).json()
    assert all(b["results"] == [] for b in body["data"])


# ---------------------------------------------------------------- costs
def test_costs_shape_and_amounts_as_number_and_string(sandbox) -> None:
    end = T0 + 14 * 86400
    pages = all_pages(
        sandbox, COSTS, {"start_time": T0, "end_time": end, "group_by": ["line_item", "project_id"], "limit": 14}
    )
    (page,) = pages
    assert len(page["data"]) == 14
    results = [r for b in page["data"] for r in b["results"]]
    assert all(r["object"] == "organization.costs.result" and r["amount"]["currency"] == "usd" for r in results)
    kinds = {type(r["amount"]["value"]) for r in results}
    assert kinds == {float, str}
    assert all(", " in r["line_item"] for r in results)
    total = sum(Decimal(str(r["amount"]["value"])) for r in results)
    assert total == sum(c.amount for c in truth_costs(DAY, DAY + timedelta(days=14)))


def test_costs_limits_and_pagination(sandbox) -> None:
    pages = all_pages(sandbox, COSTS, {"start_time": T0, "end_time": T0 + 10 * 86400})
    assert [len(p["data"]) for p in pages] == [7, 3]  # default limit 7
    assert_openai_error(get(sandbox, COSTS, {"start_time": T0, "limit": 181}), 400)
    assert get(sandbox, COSTS, {"start_time": T0, "end_time": T0 + 86400, "limit": 180}).status_code == 200
    assert_openai_error(get(sandbox, COSTS, {"start_time": T0, "bucket_width": "1h"}), 400)


def test_costs_ungrouped_is_one_result_per_day(sandbox) -> None:
    body = get(sandbox, COSTS, {"start_time": T0, "end_time": T0 + 86400}).json()
    (result,) = body["data"][0]["results"]
    assert result["line_item"] is None and result["project_id"] is None
    assert Decimal(str(result["amount"]["value"])) == sum(c.amount for c in truth_costs(DAY, DAY + timedelta(days=1)))


# ---------------------------------------------------------------- projects
def test_projects_list_and_cursor(sandbox) -> None:
    body = get(sandbox, PROJECTS_PATH).json()
    assert body["object"] == "list" and body["has_more"] is False
    assert [p["id"] for p in body["data"]] == [p.id for p in PROJECTS]
    assert set(body["data"][0]) == {"id", "object", "name", "created_at", "archived_at", "status"}
    first = get(sandbox, PROJECTS_PATH, {"limit": 2}).json()
    assert first["has_more"] is True and first["last_id"] == PROJECTS[1].id
    rest = get(sandbox, PROJECTS_PATH, {"limit": 2, "after": first["last_id"]}).json()
    assert [p["id"] for p in rest["data"]] == [PROJECTS[2].id] and rest["has_more"] is False
    assert get(sandbox, PROJECTS_PATH, {"include_archived": "true"}).json()["data"] == body["data"]


# ---------------------------------------------------------------- auth
def test_missing_key_is_401(sandbox) -> None:
    response = get(sandbox, USAGE, {"start_time": T0}, key=None)
    assert "didn't provide an API key" in assert_openai_error(response, 401)["message"]
    assert response.headers["openai-organization"] == ORGANIZATION_ID


def test_project_key_is_403_missing_scope(sandbox) -> None:
    error = assert_openai_error(get(sandbox, USAGE, {"start_time": T0}, key=PROJECT_KEY), 403)
    assert "Missing scopes: api.usage.read" in error["message"]
    assert PROJECT_KEY not in error["message"]


@pytest.mark.parametrize(
    "key", [REVOKED_ADMIN_KEY, "sk-svcacct-abcdefghijklmnop", "sk-abcdefghijklmnopqrst", "nonsense"]
)
def test_other_keys_are_401_invalid_api_key(sandbox, key) -> None:
    error = assert_openai_error(get(sandbox, COSTS, {"start_time": T0}, key=key), 401)
    assert error["code"] == "invalid_api_key"
    assert key not in error["message"]


def test_unknown_path_and_method(sandbox) -> None:
    assert_openai_error(get(sandbox, "/openai/v1/organization/usage/teleports", {"start_time": T0}), 404)
    response = requests.post(sandbox.url + COSTS, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
    assert_openai_error(response, 405)


# ---------------------------------------------------------------- issue 13: the other usage endpoints
def test_every_usage_endpoint_serves_its_documented_result_object(sandbox) -> None:
    from sandbox.openai import USAGE_KINDS, truth_kind

    for name, kind in USAGE_KINDS.items():
        width = "1d" if name == "vector_stores" else "1h"
        params = {"start_time": T0, "end_time": T0 + 86400, "bucket_width": width, "group_by": list(kind.groups[:1])}
        body = get(sandbox, f"/openai/v1/organization/usage/{name}", params).json()
        results = [r for bucket in body["data"] for r in bucket["results"]]
        assert results and {r["object"] for r in results} == {f"organization.usage.{name}.result"}
        assert all(set(kind.fields) <= set(r) for r in results)
        # The sum over the day equals the truth, field by field.
        for i, field in enumerate(kind.fields):
            assert sum(r[field] for r in results) == sum(
                row.values[i] for row in truth_kind(name, DAY, DAY + timedelta(days=1))
            )


def test_a_denied_usage_endpoint_answers_missing_scopes(sandbox) -> None:
    sandbox.change("openai", "deny_endpoint", endpoint="images")
    error = assert_openai_error(get(sandbox, "/openai/v1/organization/usage/images", {"start_time": T0}), 403)
    assert "Missing scopes" in error["message"]
    assert get(sandbox, USAGE, {"start_time": T0}).status_code == 200  # only that endpoint


def test_completions_split_by_service_tier_and_batch_and_costs_by_api_key(sandbox) -> None:
    params = {"start_time": T0, "end_time": T0 + 86400, "bucket_width": "1d", "group_by": ["service_tier", "batch"]}
    results = get(sandbox, USAGE, params).json()["data"][0]["results"]
    truth: Counter = Counter()
    for row in truth_usage(DAY, DAY + timedelta(days=1)):
        truth[(row.service_tier, row.batch)] += row.input_tokens
    assert {(r["service_tier"], r["batch"]): r["input_tokens"] for r in results} == dict(truth)
    costs = get(sandbox, COSTS, {"start_time": T0, "end_time": T0 + 86400, "group_by": ["api_key_id", "line_item"]})
    rows = costs.json()["data"][0]["results"]
    assert all(
        r["api_key_id"].startswith("key_") and r["quantity_unit"] == "tokens" and r["quantity"] > 0 for r in rows
    )
