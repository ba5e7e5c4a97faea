"""The OpenAI connector against the running sandbox: true totals, pagination, alignment,
the project filter and verify."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import chain

from integrations.providers.base import UsageSample, Window, align_down
from integrations.providers.openai import OpenAIProvider
from integrations.providers.openai.schema import split_line_item
from integrations.providers.openai.tests.support import days_ago, load
from integrations.providers.testing import (
    BucketReportTests,
    assert_adjacent_windows_count_once,
    assert_totals_equal,
    fetch_list,
    sample_key,
    totals_by,
)
from sandbox.openai import ORGANIZATION_ID, PROJECTS, truth_costs, truth_usage

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
USAGE_PATH = "/openai/v1/organization/usage/completions"
COSTS_PATH = "/openai/v1/organization/costs"
FIELDS = {
    "input_tokens": "input_tokens",
    "cached_input_tokens": "input_cached_tokens",
    "cache_write_tokens": "input_cache_write_tokens",
    "output_tokens": "output_tokens",
    "requests": "num_model_requests",
}


def usage_truth(start: datetime, end: datetime, key=lambda r: (), project_ids=None) -> Counter:
    totals: Counter = Counter()
    for row in truth_usage(start, end):
        if project_ids and row.project_id not in project_ids:
            continue
        for metric, field in FIELDS.items():
            totals[(metric, *key(row))] += Decimal(getattr(row, field))
    return totals


def cost_truth(start: datetime, end: datetime, key=lambda r: ()) -> Counter:
    totals: Counter = Counter()
    for row in truth_costs(start, end):
        totals[("cost", *key(row))] += row.amount
    return totals


def split(samples: list[UsageSample]) -> tuple[list[UsageSample], list[UsageSample]]:
    """(completions usage, costs): the other usage endpoints and the billed quantities apart."""
    return [s for s in samples if s.stream == "usage_completions"], [s for s in samples if s.metric == "cost"]


def test_fetch_reproduces_true_totals_per_model_project_and_day(
    provider, credential, provider_settings, http, three_days
) -> None:
    usage, costs = split(fetch_list(provider, credential, provider_settings, three_days, http))
    start, end = three_days.start, three_days.end

    assert_totals_equal(totals_by(usage, "model"), usage_truth(start, end, lambda r: (r.model,)), "tokens per model")
    assert_totals_equal(
        totals_by(usage, "project"), usage_truth(start, end, lambda r: (r.project_id,)), "tokens per project"
    )
    per_day: Counter = Counter()
    for s in usage:
        per_day[(s.metric, align_down(s.bucket_start, DAY))] += s.quantity
    assert_totals_equal(per_day, usage_truth(start, end, lambda r: (align_down(r.hour_start, DAY),)), "tokens per day")

    assert_totals_equal(
        totals_by(costs, "model"),
        cost_truth(start, end, lambda r: (split_line_item(r.line_item)[0],)),
        "cost per model",
    )
    assert_totals_equal(
        totals_by(costs, "project"), cost_truth(start, end, lambda r: (r.project_id,)), "cost per project"
    )
    assert_totals_equal(totals_by(costs, "bucket_start"), cost_truth(start, end, lambda r: (r.day,)), "cost per day")
    assert_totals_equal(
        totals_by(costs, "operation"),
        cost_truth(start, end, lambda r: (split_line_item(r.line_item)[1],)),
        "cost per kind",
    )

    assert {s.account for s in usage + costs} == {ORGANIZATION_ID}
    assert {s.unit for s in costs} == {"USD"}
    assert {(s.metric, s.unit) for s in usage} == {(m, "requests" if m == "requests" else "tokens") for m in FIELDS}


def test_empty_hours_yield_no_samples_and_every_hour_is_keyed_once(
    provider, credential, provider_settings, http, three_days
) -> None:
    usage, _ = split(fetch_list(provider, credential, provider_settings, three_days, http))
    busy_hours = {r.hour_start for r in truth_usage(three_days.start, three_days.end)}
    assert {s.bucket_start for s in usage} == busy_hours
    assert len(busy_hours) < 72, "the sandbox should have idle hours in three days"
    keys = [sample_key(s) for s in usage]
    assert len(keys) == len(set(keys))
    assert all(s.bucket_end - s.bucket_start == HOUR for s in usage)


def unix_text(moment: datetime) -> str:
    return str(int(moment.timestamp()))


class TestOpenAIReports(BucketReportTests):
    usage_path, costs_path, span_names = USAGE_PATH, COSTS_PATH, ("start_time", "end_time")
    usage_truth, cost_truth, split = usage_truth, cost_truth, split
    span_value = unix_text


def test_usage_pages_ask_for_hourly_buckets_grouped_by_tier_and_batch(
    provider, credential, provider_settings, http, sandbox
) -> None:
    fetch_list(provider, credential, provider_settings, Window(days_ago(10), days_ago(1)), http)
    pages = sandbox.requests(USAGE_PATH)
    assert len(pages) == 2
    for page in pages:
        assert page["query"]["bucket_width"] == ["1h"] and page["query"]["limit"] == ["168"]
        assert sorted(page["query"]["group_by"]) == ["batch", "model", "project_id", "service_tier"]


def test_adjacent_unaligned_windows_never_double_count(provider, credential, provider_settings, http) -> None:
    assert_adjacent_windows_count_once(
        lambda window: list(chain(*split(fetch_list(provider, credential, provider_settings, window, http)))),
        usage_truth,
        lambda start, end: usage_truth(align_down(start, HOUR), end) + cost_truth(align_down(start, DAY), end),
    )


def test_project_ids_setting_filters_both_endpoints(
    provider, credential, provider_settings, http, sandbox, three_days
) -> None:
    wanted = [PROJECTS[0].id, PROJECTS[2].id]
    settings = {**provider_settings, "project_ids": f" {wanted[0]} ,{wanted[1]}, "}
    samples = fetch_list(provider, credential, settings, three_days, http)
    assert {s.project for s in samples} == set(wanted)
    assert_totals_equal(
        totals_by(split(samples)[0]),
        usage_truth(three_days.start, three_days.end, project_ids=wanted),
    )
    for request in sandbox.requests("/openai/v1/organization/"):
        assert request["query"]["project_ids"] == wanted


def test_verify_shows_organization_and_projects(provider, credential, provider_settings, http, sandbox) -> None:
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.account_id == ORGANIZATION_ID
    assert identity.summary == f"Organization {ORGANIZATION_ID} · 3 projects"
    assert identity.details["projects"] == [{"id": p.id, "name": p.name, "status": p.status} for p in PROJECTS]
    assert "warnings" not in identity.details
    (projects_request,) = sandbox.requests("/openai/v1/organization/projects")
    assert projects_request["query"]["include_archived"] == ["true"]
    # verify also proves the key can read usage, not only list projects.
    assert len(sandbox.requests(USAGE_PATH)) == 1


def test_verify_paginates_projects(credential, provider_settings, http, sandbox) -> None:
    provider = OpenAIProvider()
    provider.projects_page_size = 2
    identity = provider.verify(credential, provider_settings, http=http)
    assert [p["id"] for p in identity.details["projects"]] == [p.id for p in PROJECTS]
    first, second = sandbox.requests("/openai/v1/organization/projects")
    assert "after" not in first["query"] and second["query"]["after"] == [PROJECTS[1].id]


def test_verify_warns_about_project_ids_from_another_organization(
    provider, credential, provider_settings, http
) -> None:
    settings = {**provider_settings, "project_ids": f"{PROJECTS[0].id},proj_elsewhere"}
    identity = provider.verify(credential, settings, http=http)
    assert identity.details["warnings"] == ["Project ids not found in this organization: proj_elsewhere."]


def test_verify_without_organization_header(provider, credential, provider_settings, http, sandbox) -> None:
    sandbox.fault(
        "/openai/v1/organization/projects", 200, body=load("projects_page.json"), headers={"openai-organization": ""}
    )
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.account_id == ""
    assert identity.summary == "OpenAI organization · 2 projects"
