"""The pure parsing, discovery and mapping functions, on recorded fixtures and broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import (
    ConfigurationError,
    ProviderResponseError,
    ProviderUnavailable,
)
from integrations.providers.groq.schema import (
    Series,
    hourly_samples,
    parse_label_values,
    parse_matrix,
    parse_series_list,
    resolve_metric_names,
    step_hour,
)
from integrations.providers.groq.tests import support

T = int(support.SPAN[0].timestamp())
DOCUMENTED = {
    "input_tokens": "model_project_id:tokens_in:rate5m",
    "output_tokens": "model_project_id:tokens_out:rate5m",
    "requests": "model_project_id_status_code:requests:rate5m",
}


def test_fixtures_map_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_fixture_samples()) == Counter(support.EXPECTED)
    assert all(s.provenance == "derived" and s.account == "" for s in support.parsed_fixture_samples())


def test_samples_are_sorted_by_hour_then_metric() -> None:
    samples = support.parsed_fixture_samples()
    keys = [(s.bucket_start, ["input_tokens", "output_tokens", "requests"].index(s.metric)) for s in samples]
    assert keys == sorted(keys)


def test_matrix_parsing_keeps_finite_non_negative_points_only() -> None:
    first, second, empty = parse_matrix(support.load("query_range_tokens_in.json"))
    assert first.labels["model"] == support.BIG
    assert [ts - T for ts, _ in first.points] == [300, 900, 1200, 3600, 5400, 7200, 7500]  # NaN, +Inf gone
    assert first.points[3][1] == Decimal("0.001")  # "1.0e-03"
    assert second.points == ((T + 300, Decimal(1)), (T + 300, Decimal(1)))  # floats rounded; -Inf, -0.5 gone
    assert empty.points == ()


@pytest.mark.parametrize(
    ("ts", "hour"),
    [(T + 300, T), (T + 3600, T), (T + 3900, T + 3600), (T + 7200, T + 3600), (T + 1, T - 3600)],
)
def test_a_point_belongs_to_the_hour_its_five_minutes_start_in(ts, hour) -> None:
    assert step_hour(ts) == hour


def test_the_hourly_sum_is_rounded_once_and_half_up() -> None:
    # 0.0015 × 300 = 0.45 per point: one hour of two points is 0.9 → 1; a single one 0.45 → nothing.
    series = Series({"model": "m", "project_id": "p"}, ((T + 300, Decimal("0.0015")), (T + 600, Decimal("0.0015"))))
    (sample,) = hourly_samples({"input_tokens": [series]}, *support.SPAN)
    assert sample.quantity == 1
    half = Series({}, ((T + 300, Decimal("0.005")),))  # exactly 1.5 → 2
    (sample,) = hourly_samples({"requests": [half]}, *support.SPAN)
    assert sample.quantity == 2 and sample.model == "" and sample.project == ""
    assert hourly_samples({"input_tokens": [Series({}, ((T + 300, Decimal("0.0015")),))]}, *support.SPAN) == []


def test_series_differing_only_in_other_labels_add_up() -> None:
    a = Series({"model": "m", "project_id": "p", "status_code": "200"}, ((T + 300, Decimal(1)),))
    b = Series({"model": "m", "project_id": "p", "status_code": "500"}, ((T + 300, Decimal(1)),))
    (sample,) = hourly_samples({"requests": [a, b]}, *support.SPAN)
    assert sample.quantity == 600


def test_label_values_and_series_fixtures() -> None:
    names = parse_label_values(support.load("label_values.json"))
    assert "model_project_id:tokens_in:rate5m" in names and len(names) == 10
    series = parse_series_list(support.load("series.json"))
    assert {s["project_id"] for s in series} == {support.ABC, support.DEF}


# ---------------------------------------------------------------- discovery
def test_documented_names_are_found_among_the_others() -> None:
    resolved = resolve_metric_names(parse_label_values(support.load("label_values.json")))
    assert dict(resolved.found) == DOCUMENTED and resolved.missing == ()


def test_a_single_renamed_candidate_is_used_and_histograms_are_not_candidates() -> None:
    names = [
        "project_id_model:tokens_in:rate5m",
        "le_model_project_id:tokens_in_bucket:rate5m",
        "model_project_id:tokens_out:rate5m",
        "model_project_id:tokens_out:rate1m",
        "requests:increase1m",
    ]
    resolved = resolve_metric_names(names)
    assert dict(resolved.found) == {
        "input_tokens": "project_id_model:tokens_in:rate5m",
        "output_tokens": "model_project_id:tokens_out:rate5m",
    }
    assert resolved.missing == ("requests",)


def test_the_documented_name_wins_over_other_candidates() -> None:
    resolved = resolve_metric_names([*DOCUMENTED.values(), "model:tokens_in:rate5m"])
    assert resolved.found["input_tokens"] == DOCUMENTED["input_tokens"]


def test_several_candidates_are_ambiguous() -> None:
    with pytest.raises(ConfigurationError, match="several candidates for input_tokens"):
        resolve_metric_names(["model:tokens_in:rate5m", "project_id:tokens_in:rate5m"])


def test_nothing_listed_resolves_nothing() -> None:
    resolved = resolve_metric_names([])
    assert resolved.found == {} and resolved.missing == ("input_tokens", "output_tokens", "requests")


# ---------------------------------------------------------------- broken shapes
def _matrix(mutate) -> Any:
    body = copy.deepcopy(support.load("query_range_tokens_in.json"))
    mutate(body)
    return body


BROKEN_MATRICES = {
    "data a list": lambda b: b.update(data=[]),
    "status missing": lambda b: b.pop("status"),
    "data missing": lambda b: b.pop("data"),
    "vector instead of matrix": lambda b: b["data"].update(resultType="vector"),
    "result not a list": lambda b: b["data"].update(result={}),
    "series not an object": lambda b: b["data"]["result"].append("oops"),
    "values missing": lambda b: b["data"]["result"][0].pop("values"),
    "point not a pair": lambda b: b["data"]["result"][0]["values"].append([T, "1", "2"]),
    "timestamp a string": lambda b: b["data"]["result"][0]["values"].append(["1730419500", "1"]),
    "timestamp a bool": lambda b: b["data"]["result"][0]["values"].append([True, "1"]),
    "value not numeric": lambda b: b["data"]["result"][0]["values"].append([T, "lots"]),
    "value null": lambda b: b["data"]["result"][0]["values"].append([T, None]),
    "label not a string": lambda b: b["data"]["result"][0]["metric"].update(status_code=200),
}


@pytest.mark.parametrize("mutate", BROKEN_MATRICES.values(), ids=BROKEN_MATRICES.keys())
def test_broken_matrices_raise_response_error(mutate) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_matrix(_matrix(mutate))


@pytest.mark.parametrize(
    "body", [None, [], "ok", {"status": "success", "data": "names"}, {"status": "success", "data": [1]}]
)
def test_broken_label_values_raise_response_error(body) -> None:
    with pytest.raises(ProviderResponseError):
        parse_label_values(body)


def test_an_error_envelope_is_a_response_error_naming_its_type() -> None:
    with pytest.raises(ProviderResponseError, match=r"reported an error \(bad_data\): invalid parameter"):
        parse_matrix(support.load("error_bad_data.json"))


def test_a_partial_answer_is_never_stored() -> None:
    body = support.load("query_range_tokens_in.json")
    body["isPartial"] = True
    with pytest.raises(ProviderUnavailable, match="partial"):
        parse_matrix(body)
    body["isPartial"] = False
    assert parse_matrix(body)


def test_numbers_as_json_numbers_are_accepted() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[T + 300, 2]]}]}}
    (series,) = parse_matrix(body)
    assert series.points == ((T + 300, Decimal(2)),)
    assert datetime.fromtimestamp(series.points[0][0], UTC).minute == 5
