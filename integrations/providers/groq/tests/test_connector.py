"""The Groq connector against the running sandbox: true totals, the per-day query split, hour
alignment, metric-name discovery and verify."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from integrations.providers.base import ConfigurationError, Window, align_down, align_up
from integrations.providers.groq import GroqProvider
from integrations.providers.groq.tests.support import days_ago, true_totals
from integrations.providers.testing import (
    assert_adjacent_windows_count_once,
    assert_totals_equal,
    fetch_list,
    first_busy_hour,
    sample_key,
    totals_by,
)
from sandbox import groq as sandbox_groq

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
API = "/groq" + sandbox_groq.PREFIX + "/api/v1"
QUERY_PATH, NAMES_PATH, SERIES_PATH = API + "/query_range", API + "/label/__name__/values", API + "/series"
DOCUMENTED = (sandbox_groq.TOKENS_IN, sandbox_groq.TOKENS_OUT, sandbox_groq.REQUESTS)


def names_body(*names: str) -> dict[str, Any]:
    return {"status": "success", "data": list(names)}


def test_fetch_reproduces_true_totals_per_model_project_hour_and_day(
    provider, credential, provider_settings, http, three_days
) -> None:
    samples = fetch_list(provider, credential, provider_settings, three_days, http)
    start, end = three_days.start, three_days.end
    assert_totals_equal(totals_by(samples, "model"), true_totals(start, end, lambda r: (r.model,)), "per model")
    assert_totals_equal(
        totals_by(samples, "project"), true_totals(start, end, lambda r: (r.project_id,)), "per project"
    )
    assert_totals_equal(
        totals_by(samples, "bucket_start", "project", "model"),
        true_totals(start, end, lambda r: (r.hour_start, r.project_id, r.model)),
        "per hour, project and model",
    )
    per_day: Counter = Counter()
    for s in samples:
        per_day[(s.metric, align_down(s.bucket_start, DAY))] += s.quantity
    assert_totals_equal(per_day, true_totals(start, end, lambda r: (align_down(r.hour_start, DAY),)), "per day")

    assert {s.provenance for s in samples} == {"derived"}
    assert {s.account for s in samples} == {""}
    assert {(s.metric, s.unit) for s in samples} == {
        ("input_tokens", "tokens"), ("output_tokens", "tokens"), ("requests", "requests")
    }  # fmt: skip
    assert all(s.bucket_end - s.bucket_start == HOUR and s.quantity == int(s.quantity) > 0 for s in samples)
    keys = [sample_key(s) for s in samples]
    assert len(keys) == len(set(keys))


def test_a_window_is_read_in_one_query_per_metric_at_a_five_minute_step(
    provider, credential, provider_settings, http, sandbox, three_days
) -> None:
    fetch_list(provider, credential, provider_settings, three_days, http)
    (names,) = sandbox.requests(NAMES_PATH)
    assert names["query"] == {
        "start": [str(int(three_days.start.timestamp()))],
        "end": [str(int(three_days.end.timestamp()))],
    }
    queries = sandbox.requests(QUERY_PATH)
    assert len(queries) == 3  # one per metric: 3 days is far below the 31-day query span
    by_metric: dict[str, list[tuple[int, int]]] = {}
    for q in queries:
        assert q["query"]["step"] == ["300"]
        by_metric.setdefault(q["query"]["query"][0], []).append(
            (int(q["query"]["start"][0]), int(q["query"]["end"][0]))
        )
    assert sorted(by_metric) == sorted(DOCUMENTED)
    day0 = int(three_days.start.timestamp())
    for spans in by_metric.values():
        # points start+300 … end: each hour's 12 points, and no point read twice
        assert spans == [(day0 + 300, day0 + 3 * 86400)]
        assert all((end - start) // 300 + 1 == 3 * 288 for start, end in spans)


def test_a_shorter_query_span_changes_requests_not_totals(credential, provider_settings, http, sandbox) -> None:
    provider = GroqProvider()
    provider.max_query_span = timedelta(hours=5)
    window = Window(days_ago(2), days_ago(1))
    samples = fetch_list(provider, credential, provider_settings, window, http)
    assert len(sandbox.requests(QUERY_PATH)) == 3 * 5  # 24 h in spans of 5, 5, 5, 5, 4 h
    assert_totals_equal(
        totals_by(samples, "bucket_start"), true_totals(window.start, window.end, lambda r: (r.hour_start,))
    )


def test_unaligned_window_is_read_as_whole_hours(provider, credential, provider_settings, http, sandbox) -> None:
    # Starts 37 minutes into an hour with traffic, so that hour must come back whole
    first_hour = first_busy_hour(true_totals, days_ago(3) + timedelta(hours=10), days_ago(2))
    window = Window(first_hour + timedelta(minutes=37, seconds=5), days_ago(2) + timedelta(hours=5, minutes=20))
    samples = fetch_list(provider, credential, provider_settings, window, http)
    start, end = align_down(window.start, HOUR), align_up(window.end, HOUR)
    assert min(s.bucket_start for s in samples) == start and max(s.bucket_start for s in samples) < end
    first = sandbox.requests(QUERY_PATH)[0]["query"]
    assert int(first["start"][0]) == int(start.timestamp()) + 300
    assert_totals_equal(totals_by(samples), true_totals(start, end), "the whole hours touched")


def test_adjacent_unaligned_windows_never_double_count(provider, credential, provider_settings, http) -> None:
    assert_adjacent_windows_count_once(
        lambda window: fetch_list(provider, credential, provider_settings, window, http),
        true_totals,
        lambda start, end: true_totals(align_down(start, HOUR), end),
    )


# ---------------------------------------------------------------- metric-name discovery
def test_renamed_metrics_are_discovered_and_read(provider, credential, provider_settings, http, sandbox) -> None:
    renamed = ("project_id_model:tokens_in:rate5m", "project_id_model:tokens_out:rate5m",
               "project_id_model_status_code:requests:rate5m")  # fmt: skip
    sandbox.fault(NAMES_PATH, 200, body=names_body(*renamed, "le_model_project_id:tokens_in_bucket:rate5m"))
    window = Window(days_ago(2), days_ago(1))
    samples = fetch_list(provider, credential, provider_settings, window, http)
    assert sorted(q["query"]["query"][0] for q in sandbox.requests(QUERY_PATH)) == sorted(renamed)
    assert_totals_equal(totals_by(samples), true_totals(window.start, window.end))


def test_only_listed_metrics_are_read(provider, credential, provider_settings, http, sandbox) -> None:
    sandbox.fault(NAMES_PATH, 200, body=names_body(sandbox_groq.TOKENS_IN, sandbox_groq.TOKENS_OUT))
    samples = fetch_list(provider, credential, provider_settings, Window(days_ago(2), days_ago(1)), http)
    assert {s.metric for s in samples} == {"input_tokens", "output_tokens"}
    assert {q["query"]["query"][0] for q in sandbox.requests(QUERY_PATH)} == {
        sandbox_groq.TOKENS_IN,
        sandbox_groq.TOKENS_OUT,
    }


def test_no_metric_names_means_no_usage_and_no_queries(provider, credential, provider_settings, http, sandbox) -> None:
    sandbox.fault(NAMES_PATH, 200, body=names_body())
    assert fetch_list(provider, credential, provider_settings, Window(days_ago(2), days_ago(1)), http) == []
    assert sandbox.requests(QUERY_PATH) == []


def test_hours_before_any_data_list_no_names(provider, credential, provider_settings, http, sandbox) -> None:
    start = sandbox_groq.DATA_START - timedelta(days=2)
    assert fetch_list(provider, credential, provider_settings, Window(start, start + DAY), http) == []
    assert sandbox.requests(QUERY_PATH) == []


def test_names_listed_but_none_of_ours_is_a_configuration_error(
    provider, credential, provider_settings, http, sandbox
) -> None:
    sandbox.fault(NAMES_PATH, 200, body=names_body("requests:increase1m", "tokens_in:p99:rate5m"))
    with pytest.raises(ConfigurationError, match="lists none of the metrics this app reads") as info:
        fetch_list(provider, credential, provider_settings, Window(days_ago(2), days_ago(1)), http)
    assert "renamed" in info.value.hint
    assert sandbox.requests(QUERY_PATH) == []


def test_ambiguous_names_are_a_configuration_error(provider, credential, provider_settings, http, sandbox) -> None:
    sandbox.fault(NAMES_PATH, 200, body=names_body("model:tokens_in:rate5m", "project_id:tokens_in:rate5m"))
    with pytest.raises(ConfigurationError, match="several candidates"):
        fetch_list(provider, credential, provider_settings, Window(days_ago(2), days_ago(1)), http)


# ---------------------------------------------------------------- verify
def test_verify_shows_metrics_projects_and_models(provider, credential, provider_settings, http, sandbox) -> None:
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.summary == "Groq Enterprise metrics · 3 projects · 3 models in the last 7 days"
    assert identity.account_id == ""
    details = identity.details
    assert details["metrics"] == dict(zip(("input_tokens", "output_tokens", "requests"), DOCUMENTED, strict=True))
    assert details["metric_names"] == list(sandbox_groq.METRIC_NAMES)
    assert details["projects"] == sorted(sandbox_groq.PROJECTS) and details["models"] == sorted(sandbox_groq.MODELS)
    assert details["labels"] == ["model", "project_id"] and "warnings" not in details
    (names,) = sandbox.requests(NAMES_PATH)
    assert int(names["query"]["end"][0]) - int(names["query"]["start"][0]) == 7 * 86400
    (series,) = sandbox.requests(SERIES_PATH)
    assert series["query"]["match[]"] == [sandbox_groq.TOKENS_IN]


def test_verify_fails_with_the_names_found_when_one_is_missing(
    provider, credential, provider_settings, http, sandbox
) -> None:
    sandbox.fault(
        NAMES_PATH, 200, body=names_body(sandbox_groq.TOKENS_IN, "model_project_id_status_code:requests:rate1m")
    )
    with pytest.raises(ConfigurationError) as info:
        provider.verify(credential, provider_settings, http=http)
    assert (
        "does not list model_project_id:tokens_out:rate5m, model_project_id_status_code:requests:rate5m"
        in info.value.message
    )
    assert (
        "Metric names found: model_project_id:tokens_in:rate5m, model_project_id_status_code:requests:rate1m"
        in info.value.message
    )


def test_verify_of_an_organization_without_usage_warns(provider, credential, provider_settings, http, sandbox) -> None:
    sandbox.fault(NAMES_PATH, 200, body=names_body())
    identity = provider.verify(credential, provider_settings, http=http)
    assert "no usage recorded" in identity.summary
    assert identity.details["warnings"] and sandbox.requests(SERIES_PATH) == []


def test_verify_warns_when_series_lack_the_labels_we_read(
    provider, credential, provider_settings, http, sandbox
) -> None:
    sandbox.fault(
        SERIES_PATH, 200, body={"status": "success", "data": [{"__name__": sandbox_groq.TOKENS_IN, "mdl": "x"}]}
    )
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.details["labels"] == ["mdl"]
    assert "no project_id or model label" in identity.details["warnings"][0]
