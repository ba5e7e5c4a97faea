"""The fake Groq metrics API: Prometheus shapes, discovery endpoints, parameters, auth, and
data consistent with the truth functions the connector's tests use."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import requests

from sandbox import groq
from sandbox.groq import ENTERPRISE_KEY, METRIC_NAMES, MODELS, PROJECTS, REQUESTS, TOKENS_IN, TOKENS_OUT

DAY = datetime(2026, 3, 10, tzinfo=UTC)
T0 = int(DAY.timestamp())
API = "/groq/v1/metrics/prometheus/api/v1"


def get(sandbox, path: str, params: Any = None, key: str | None = ENTERPRISE_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(sandbox.url + API + path, params=params, headers=headers, timeout=5)


def matrix(sandbox, query: str, start: int, end: int, step: Any = 300) -> list[dict[str, Any]]:
    response = get(sandbox, "/query_range", {"query": query, "start": start, "end": end, "step": step})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    return body["data"]["result"]


def bad_data(response: requests.Response) -> str:
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    return body["error"]


# ---------------------------------------------------------------- query_range
def test_query_range_serves_every_series_with_string_values(sandbox) -> None:
    result = matrix(sandbox, TOKENS_IN, T0 + 300, T0 + 86400)
    assert {(s["metric"]["project_id"], s["metric"]["model"]) for s in result} == {
        (p, m) for p in PROJECTS for m in MODELS
    }
    for series in result:
        assert set(series["metric"]) == {"__name__", "model", "project_id"}
        assert all(isinstance(t, int) and t % 300 == 0 and isinstance(v, str) for t, v in series["values"])
    values = {v for s in result for _, v in s["values"]}
    assert "0" in values and values & {"NaN", "+Inf", "-Inf"}, "quiet and broken points occur in a day"


def test_served_rates_add_up_to_the_truth(sandbox) -> None:
    served: dict[tuple[str, ...], Decimal] = Counter()
    for metric, query in (("input_tokens", TOKENS_IN), ("output_tokens", TOKENS_OUT), ("requests", REQUESTS)):
        for series in matrix(sandbox, query, T0 + 300, T0 + 86400):
            labels = series["metric"]
            for t, value in series["values"]:
                if value not in ("NaN", "+Inf", "-Inf"):
                    hour = datetime.fromtimestamp((t - 300) // 3600 * 3600, UTC)
                    served[(metric, hour, labels["project_id"], labels["model"])] += Decimal(value) * 300
    truth: Counter = Counter()
    for row in groq.truth_hourly(DAY, DAY + timedelta(days=1)):
        for metric in ("input_tokens", "output_tokens", "requests"):
            truth[(metric, row.hour_start, row.project_id, row.model)] = getattr(row, metric)
    rounded = {k: int(v.quantize(Decimal(1), ROUND_HALF_UP)) for k, v in served.items()}
    assert {k: v for k, v in rounded.items() if v} == {k: v for k, v in truth.items() if v}


def test_requests_are_broken_out_by_status_code(sandbox) -> None:
    result = matrix(sandbox, REQUESTS, T0 + 300, T0 + 86400)
    assert {s["metric"]["status_code"] for s in result} == set(groq.STATUS_CODES)


def test_start_is_aligned_down_to_the_step_and_end_is_inclusive(sandbox) -> None:
    result = matrix(sandbox, f'{TOKENS_IN}{{project_id="{PROJECTS[0]}"}}', T0 + 310, T0 + 3600, "5m")
    stamps = sorted({t for s in result for t, _ in s["values"]})
    assert stamps[0] >= T0 + 300 and stamps[-1] == T0 + 3600


def test_rfc3339_times_and_a_post_form_body_are_accepted(sandbox) -> None:
    response = requests.post(
        sandbox.url + API + "/query_range",
        data={"query": TOKENS_OUT, "start": "2026-03-10T00:05:00Z", "end": "2026-03-10T01:00:00Z", "step": "300s"},
        headers={"Authorization": f"Bearer {ENTERPRISE_KEY}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["data"]["result"] == matrix(sandbox, TOKENS_OUT, T0 + 300, T0 + 3600)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (f'{TOKENS_IN}{{model="{MODELS[0]}"}}', {MODELS[0]}),
        (f'{TOKENS_IN}{{model!="{MODELS[0]}"}}', set(MODELS[1:])),
        (f'{{__name__="{TOKENS_IN}", model=~"llama-.*"}}', {m for m in MODELS if m.startswith("llama-")}),
        (f'{TOKENS_IN}{{model!~"llama-.*"}}', {"openai/gpt-oss-120b"}),
    ],
)
def test_label_matchers(sandbox, selector, expected) -> None:
    assert {s["metric"]["model"] for s in matrix(sandbox, selector, T0 + 300, T0 + 86400)} == expected


def test_any_recording_rule_prefix_serves_the_data_but_other_metrics_are_empty(sandbox) -> None:
    renamed = matrix(sandbox, "project_id_model:tokens_in:rate5m", T0 + 300, T0 + 3600)
    original = matrix(sandbox, TOKENS_IN, T0 + 300, T0 + 3600)
    assert [s["values"] for s in renamed] == [s["values"] for s in original]
    assert renamed[0]["metric"]["__name__"] == "project_id_model:tokens_in:rate5m"
    assert matrix(sandbox, "le_model_project_id:tokens_in_bucket:rate5m", T0 + 300, T0 + 3600) == []
    assert matrix(sandbox, "no_such_metric", T0 + 300, T0 + 3600) == []


def test_no_points_in_the_future_or_before_the_data_starts(sandbox) -> None:
    now = int(datetime.now(UTC).timestamp())
    future = matrix(sandbox, TOKENS_IN, now - now % 300 + 300, now + 86400)
    assert future == []
    start = int(groq.DATA_START.timestamp())
    assert matrix(sandbox, TOKENS_IN, start - 86400, start) == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start": T0, "end": T0 + 300, "step": 300}, 'invalid parameter "query"'),
        ({"query": TOKENS_IN, "end": T0, "step": 300}, 'invalid parameter "start"'),
        ({"query": TOKENS_IN, "start": "yesterday", "end": T0, "step": 300}, "cannot parse"),
        ({"query": TOKENS_IN, "start": T0, "end": T0 - 300, "step": 300}, "end timestamp must not be before start"),
        ({"query": TOKENS_IN, "start": T0, "end": T0 + 300, "step": 0}, "zero or negative"),
        ({"query": TOKENS_IN, "start": T0, "end": T0 + 300, "step": "soon"}, 'invalid parameter "step"'),
        ({"query": TOKENS_IN, "start": T0, "end": T0 + 11_000 * 300, "step": 300}, "exceeded maximum resolution"),
        ({"query": TOKENS_IN, "start": T0, "end": T0 + 300, "step": 60}, "multiples of 300"),
        ({"query": f"sum by (model) ({TOKENS_IN})", "start": T0, "end": T0 + 300, "step": 300}, "parse error"),
        ({"query": '{model="x"}', "start": T0, "end": T0 + 300, "step": 300}, "must contain a metric name"),
    ],
)
def test_query_range_rejects_bad_parameters_with_bad_data(sandbox, params, words) -> None:
    assert words in bad_data(get(sandbox, "/query_range", params))


def test_10999_points_are_fine(sandbox) -> None:
    assert get(sandbox, "/query_range", {"query": "x", "start": T0, "end": T0 + 10_999 * 300, "step": 300}).ok


# ---------------------------------------------------------------- discovery endpoints
def test_metric_names_for_a_range_and_by_default_the_last_day(sandbox) -> None:
    assert get(sandbox, "/label/__name__/values", {"start": T0, "end": T0 + 86400}).json() == {
        "status": "success",
        "data": list(METRIC_NAMES),
    }
    assert get(sandbox, "/label/__name__/values").json()["data"] == list(METRIC_NAMES)
    start = int(groq.DATA_START.timestamp())
    assert get(sandbox, "/label/__name__/values", {"start": start - 86400, "end": start}).json()["data"] == []


def test_label_values_of_other_labels(sandbox) -> None:
    projects = get(sandbox, "/label/project_id/values", {"start": T0, "end": T0 + 86400}).json()["data"]
    assert projects == sorted(PROJECTS)
    codes = get(sandbox, "/label/status_code/values", {"match[]": REQUESTS, "start": T0, "end": T0 + 86400})
    assert codes.json()["data"] == sorted(groq.STATUS_CODES)
    assert get(sandbox, "/label/nonesuch/values").json() == {"status": "success", "data": []}


def test_labels_and_series(sandbox) -> None:
    assert "project_id" in get(sandbox, "/labels").json()["data"]
    series = get(sandbox, "/series", {"match[]": TOKENS_IN, "start": T0, "end": T0 + 86400}).json()["data"]
    assert len(series) == len(PROJECTS) * len(MODELS)
    assert all(s["__name__"] == TOKENS_IN for s in series)
    assert "no match[]" in bad_data(get(sandbox, "/series"))


# ---------------------------------------------------------------- auth and errors
@pytest.mark.parametrize("key", [None, groq.REVOKED_KEY, "gsk_someoneElsesKey0123456789"])
def test_missing_or_unknown_keys_are_401_from_the_gateway(sandbox, key) -> None:
    response = get(sandbox, "/labels", key=key)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("path", ["/query_range", "/labels", "/label/__name__/values", "/series"])
def test_a_non_enterprise_key_gets_404_everywhere(sandbox, path) -> None:
    response = get(sandbox, path, {"query": TOKENS_IN}, key=groq.DEVELOPER_KEY)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
    assert groq.DEVELOPER_KEY not in response.text


def test_unknown_path_and_method(sandbox) -> None:
    assert get(sandbox, "/status/teleport").status_code == 404
    response = requests.delete(
        sandbox.url + API + "/labels", headers={"Authorization": f"Bearer {ENTERPRISE_KEY}"}, timeout=5
    )
    assert response.status_code == 405


def test_fault_bodies_follow_the_two_error_shapes(sandbox) -> None:
    sandbox.fault(API + "/query_range", 422)
    assert get(sandbox, "/query_range").json()["errorType"] == "execution"
    sandbox.fault(API + "/labels", 429, headers={"Retry-After": "2"})
    response = get(sandbox, "/labels")
    assert response.json()["error"]["code"] == "rate_limit_exceeded" and response.headers["Retry-After"] == "2"
    assert groq.error_body(503)["errorType"] == "unavailable" and groq.error_body(500)["error"]["type"]


# ---------------------------------------------------------------- truth
def test_truth_is_deterministic_hourly_and_counts_only_ended_steps() -> None:
    rows = groq.truth_hourly(DAY, DAY + timedelta(days=1))
    assert rows == groq.truth_hourly(DAY, DAY + timedelta(days=1))
    assert all(r.hour_start.minute == 0 and DAY <= r.hour_start < DAY + timedelta(days=1) for r in rows)
    assert 0 < len({r.hour_start for r in rows}) < 24, "some hours are idle"
    hours = sorted({r.hour_start for r in rows})
    busy = hours[len(hours) // 2]
    partial = groq.truth_hourly(DAY, DAY + timedelta(days=1), now=busy + timedelta(minutes=30))
    assert max(r.hour_start for r in partial) == busy  # half of `busy` has ended, later hours not
    assert [r for r in partial if r.hour_start < busy] == [r for r in rows if r.hour_start < busy]
    assert sum(r.input_tokens for r in partial if r.hour_start == busy) < sum(
        r.input_tokens for r in rows if r.hour_start == busy
    )
    unaligned = groq.truth_hourly(DAY + timedelta(minutes=1), DAY + timedelta(days=1))
    assert unaligned == [r for r in rows if r.hour_start >= DAY + timedelta(hours=1)]  # hours starting after it
