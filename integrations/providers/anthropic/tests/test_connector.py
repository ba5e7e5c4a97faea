"""The Anthropic connector against the running sandbox: true totals, the request it sends,
pagination, alignment, the default workspace, the decoy field and verify."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from integrations.providers.anthropic import AnthropicProvider
from integrations.providers.anthropic.tests.support import (
    COSTS_PATH,
    EXPECTED_USAGE,
    TOKEN_METRICS,
    USAGE_PATH,
    cost_operation_of,
    cost_truth,
    load,
    usage_truth,
)
from integrations.providers.base import UsageSample, Window, align_down
from integrations.providers.testing import (
    BucketReportTests,
    assert_adjacent_windows_count_once,
    assert_totals_equal,
    fetch_list,
    totals_by,
)
from sandbox import anthropic as fake

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def split(samples: list[UsageSample]) -> tuple[list[UsageSample], list[UsageSample]]:
    return [s for s in samples if s.metric != "cost"], [s for s in samples if s.metric == "cost"]


def project(row: Any) -> str:
    return row.workspace_id or "default"


def test_fetch_reproduces_true_totals_per_model_workspace_and_day(
    provider, credential, provider_settings, http, three_days
) -> None:
    usage, costs = split(fetch_list(provider, credential, provider_settings, three_days, http))
    start, end = three_days.start, three_days.end

    assert_totals_equal(totals_by(usage, "model"), usage_truth(start, end, lambda r: (r.model,)), "usage per model")
    assert_totals_equal(totals_by(usage, "project"), usage_truth(start, end, lambda r: (project(r),)), "per workspace")
    per_day: Counter = Counter()
    for s in usage:
        per_day[(s.metric, align_down(s.bucket_start, DAY))] += s.quantity
    assert_totals_equal(per_day, usage_truth(start, end, lambda r: (align_down(r.hour_start, DAY),)), "usage per day")

    assert_totals_equal(totals_by(costs, "model"), cost_truth(start, end, lambda r: (r.model or "",)), "cost per model")
    assert_totals_equal(totals_by(costs, "project"), cost_truth(start, end, lambda r: (project(r),)), "cost/workspace")
    assert_totals_equal(totals_by(costs, "bucket_start"), cost_truth(start, end, lambda r: (r.day,)), "cost per day")
    assert_totals_equal(totals_by(costs, "operation"), cost_truth(start, end, lambda r: (cost_operation_of(r),)))

    assert {s.account for s in usage + costs} == {fake.ORGANIZATION_ID}
    assert {s.unit for s in costs} == {"USD"}
    assert {(s.metric, s.unit) for s in usage} == {(m, "tokens") for m in TOKEN_METRICS} | {("api_calls", "calls")}
    assert {s.operation for s in usage if s.metric == "api_calls"} == {"web_search", "code_execution"}


def test_input_tokens_include_cache_reads_and_both_cache_writes(
    provider, credential, provider_settings, http, three_days
) -> None:
    usage, _ = split(fetch_list(provider, credential, provider_settings, three_days, http))
    totals = totals_by(usage)
    rows = fake.truth_usage(three_days.start, three_days.end)
    uncached = sum(r.uncached_input_tokens for r in rows)
    reads = sum(r.cache_read_input_tokens for r in rows)
    writes_5m, writes_1h = sum(r.cache_creation_5m for r in rows), sum(r.cache_creation_1h for r in rows)
    assert reads and writes_5m and writes_1h, "the sandbox should exercise every cache field"
    assert totals[("input_tokens",)] == uncached + reads + writes_5m + writes_1h
    assert totals[("cached_input_tokens",)] == reads
    assert totals[("cache_write_tokens",)] == writes_5m + writes_1h
    assert totals[("input_tokens",)] > 3 * uncached, "cache reads dominate: reading one field only under-counts"


def test_default_workspace_is_stored_as_project_default(
    provider, credential, provider_settings, http, three_days
) -> None:
    samples = fetch_list(provider, credential, provider_settings, three_days, http)
    live = {w.id for w in fake.WORKSPACES if w.archived_at is None}
    assert {s.project for s in samples} == {"default"} | live
    legacy = fake.WORKSPACES[2]
    assert legacy.archived_at is not None and all(s.project != legacy.id for s in samples)


def test_requests_use_documented_parameters_in_bracket_form(
    provider, credential, provider_settings, http, sandbox, three_days
) -> None:
    fetch_list(provider, credential, provider_settings, three_days, http)
    (usage,) = sandbox.requests(USAGE_PATH)
    assert (
        usage["query"]["group_by[]"] == ["model", "workspace_id", "service_tier", "context_window", "inference_geo"]
        and "group_by" not in usage["query"]
    )
    assert usage["query"]["bucket_width"] == ["1h"] and usage["query"]["limit"] == ["168"]
    assert usage["query"]["starting_at"] == [three_days.start.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert usage["query"]["ending_at"] == [three_days.end.strftime("%Y-%m-%dT%H:%M:%SZ")]
    (costs,) = sandbox.requests(COSTS_PATH)
    assert costs["query"]["group_by[]"] == ["workspace_id", "description"]
    assert costs["query"]["bucket_width"] == ["1d"] and costs["query"]["limit"] == ["31"]


def rfc3339_text(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


class TestAnthropicReports(BucketReportTests):
    usage_path, costs_path, span_names = USAGE_PATH, COSTS_PATH, ("starting_at", "ending_at")
    usage_truth, cost_truth, split = usage_truth, cost_truth, split
    span_value = rfc3339_text


def test_adjacent_unaligned_windows_never_double_count(provider, credential, provider_settings, http) -> None:
    assert_adjacent_windows_count_once(
        lambda window: fetch_list(provider, credential, provider_settings, window, http),
        usage_truth,
        lambda start, end: usage_truth(align_down(start, HOUR), end) + cost_truth(align_down(start, DAY), end),
    )


def test_recorded_usage_served_by_the_sandbox_ignores_the_decoy_field(
    provider, credential, provider_settings, http, sandbox
) -> None:
    # The recorded page carries `cache_creation_input_tokens` (3 and 0) beside the real nested
    # cache_creation object; the connector must take the nested one (and the 2025 window keeps
    # the fixture's buckets inside it).
    body = load("usage_page.json")
    body["has_more"], body["next_page"] = False, None
    sandbox.fault(USAGE_PATH, 200, body=body)
    sandbox.fault(COSTS_PATH, 200, body={"data": [], "has_more": False, "next_page": None})
    window = Window(EXPECTED_USAGE[0].bucket_start, EXPECTED_USAGE[-1].bucket_end)
    samples = fetch_list(provider, credential, provider_settings, window, http)
    assert Counter(samples) == Counter(
        replace(s, account=fake.ORGANIZATION_ID, stream="usage_report") for s in EXPECTED_USAGE
    )
    first_input = next(s for s in samples if s.metric == "input_tokens" and s.project == "default")
    assert first_input.quantity == 1500 + 12000 + 800 + 400


def test_verify_shows_organization_and_workspaces(provider, credential, provider_settings, http, sandbox) -> None:
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.account_id == fake.ORGANIZATION_ID and identity.account_name == fake.ORGANIZATION_NAME
    assert identity.summary == (
        f"Organization {fake.ORGANIZATION_NAME} · 3 workspaces + the default workspace · 3 with usage in the last 7 days"
    )
    assert identity.details["workspaces"] == [{"id": "default", "name": "Default workspace", "archived": False}] + [
        {"id": w.id, "name": w.name, "archived": w.archived_at is not None} for w in fake.WORKSPACES
    ]
    live = sorted(["default", *(w.id for w in fake.WORKSPACES if w.archived_at is None)])
    assert identity.details["workspaces_with_usage_last_7_days"] == live
    (workspaces_request,) = sandbox.requests("/anthropic/v1/organizations/workspaces")
    assert workspaces_request["query"]["include_archived"] == ["true"]
    # verify also proves the key can read usage, not only describe the organization.
    (probe,) = sandbox.requests(USAGE_PATH)
    assert probe["query"]["group_by[]"] == ["workspace_id"]


def test_verify_paginates_workspaces(credential, provider_settings, http, sandbox) -> None:
    provider = AnthropicProvider()
    provider.workspaces_page_size = 2
    identity = provider.verify(credential, provider_settings, http=http)
    assert [w["id"] for w in identity.details["workspaces"][1:]] == [w.id for w in fake.WORKSPACES]
    first, second = sandbox.requests("/anthropic/v1/organizations/workspaces")
    assert "after_id" not in first["query"] and second["query"]["after_id"] == [fake.WORKSPACES[1].id]


def test_verify_with_recorded_organization_and_workspaces(
    provider, credential, provider_settings, http, sandbox
) -> None:
    sandbox.fault("/anthropic/v1/organizations/me", 200, body=load("organization.json"))
    sandbox.fault("/anthropic/v1/organizations/workspaces", 200, body=load("workspaces_page.json"))
    sandbox.fault(USAGE_PATH, 200, body={"data": [], "has_more": False, "next_page": None})
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.account_id == "12345678-1234-5678-1234-567812345678"
    assert (
        identity.summary
        == "Organization Organization Name · 2 workspaces + the default workspace · 0 with usage in the last 7 days"
    )
    assert [w["archived"] for w in identity.details["workspaces"]] == [False, False, True]
