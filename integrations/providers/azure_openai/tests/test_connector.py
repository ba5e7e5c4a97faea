"""The Azure OpenAI connector against the running sandbox: true totals per deployment, the
`top` trap, retention, discovery, resource_ids, alignment and verify."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.providers.azure_openai import AzureOpenAIProvider
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import (
    ConfigurationError,
    ProviderResponseError,
    Window,
    align_down,
    align_up,
)
from integrations.providers.testing import (
    assert_totals_equal,
    fetch_list,
    first_busy_hour,
    read_twice,
    stored_totals,
    totals_by,
)
from sandbox import azure_openai as sandbox_azure

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
EASTUS = sandbox_azure.ACCOUNTS[0]
METRICS_PATH = "/azure_openai/arm" + EASTUS.id + support.METRICS_SUFFIX


def metrics_requests(sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("/azure_openai/arm/") if r["path"].endswith(support.METRICS_SUFFIX)]


def test_fetch_reproduces_true_totals_per_deployment_model_region_and_day(
    provider, credential, azure_settings, http, three_days
) -> None:
    samples = fetch_list(provider, credential, azure_settings, three_days, http)
    by = lambda *dims: totals_by(samples, *dims)  # noqa: E731
    assert_totals_equal(by("resource", "deployment"), support.truth(three_days, lambda r: (r.account, r.deployment)))
    assert_totals_equal(by("model"), support.truth(three_days, lambda r: (r.model,)), "per model")
    assert_totals_equal(by("region"), support.truth(three_days, lambda r: (r.location,)), "per region")
    assert_totals_equal(by("project"), support.truth(three_days, lambda r: (r.resource_group,)), "per resource group")
    per_day: Counter = Counter()
    for s in samples:
        per_day[(s.metric, align_down(s.bucket_start, DAY))] += s.quantity
    assert_totals_equal(per_day, support.truth(three_days, lambda r: (align_down(r.hour_start, DAY),)), "per day")
    assert {s.account for s in samples} == {sandbox_azure.SUBSCRIPTION_ID}
    assert {(s.metric, s.unit) for s in samples} == {
        ("input_tokens", "tokens"),
        ("cached_input_tokens", "tokens"),
        ("cache_write_tokens", "tokens"),
        ("output_tokens", "tokens"),
        ("requests", "requests"),
        ("throttled_requests", "requests"),
        ("failed_requests", "requests"),
        ("provisioned_hours", "hours"),
    }
    assert all(s.bucket_end - s.bucket_start == HOUR and s.provenance == "reported" for s in samples)


def test_models_come_from_the_deployment_list(provider, credential, azure_settings, http, three_days) -> None:
    samples = fetch_list(provider, credential, azure_settings, three_days, http)
    models = {(s.resource, s.deployment): s.model for s in samples}
    assert models[(EASTUS.name, "gpt-4o-prod")] == "gpt-4o-2024-08-06"
    assert models[(EASTUS.name, "embeddings-large")] == "text-embedding-3-large-1"
    assert models[(EASTUS.name, "gpt-35-legacy")] == "", "a deleted deployment keeps its history, without a model"
    assert not any(s.resource in ("doow-sbx-speech", "doow-sbx-language") for s in samples), "only OpenAI/AIServices"


def test_more_than_ten_deployments_are_all_read(
    provider, credential, azure_settings, http, sandbox, three_days
) -> None:
    samples = fetch_list(provider, credential, azure_settings, three_days, http)
    listed = {d.name for d in EASTUS.deployments} | set(EASTUS.deleted)
    assert len(listed) == 13
    assert {s.deployment for s in samples if s.resource == EASTUS.name} == listed
    tokens, requests = [r for r in metrics_requests(sandbox) if r["path"] == METRICS_PATH]
    assert int(tokens["query"]["top"][0]) > len(listed)
    assert tokens["query"]["$filter"] == ["ModelDeploymentName eq '*'"]
    assert tokens["query"]["metricnames"] == [
        "ProcessedPromptTokens,GeneratedTokens,InputTokens,OutputTokens,"
        "cacheReadInputTokens,ephemeral5mInputTokens,ephemeral1hInputTokens"
    ]
    assert (tokens["query"]["interval"], tokens["query"]["aggregation"]) == (["PT1H"], ["Total"])
    # The request counts, split by status code (a dimension the token metrics lack).
    assert requests["query"]["$filter"] == ["ModelDeploymentName eq '*' and StatusCode eq '*'"]
    assert requests["query"]["metricnames"] == ["AzureOpenAIRequests,ModelRequests"]
    assert int(requests["query"]["top"][0]) > 3 * len(listed)


def test_a_metric_filling_top_is_read_again_with_a_larger_top(
    provider, credential, azure_settings, http, sandbox, three_days
) -> None:
    series = [
        {"metadatavalues": [{"name": {"value": "modeldeploymentname"}, "value": f"d{i}"}], "data": []}
        for i in range(50)
    ]
    full = {"interval": "PT1H", "value": [{"name": {"value": "ProcessedPromptTokens"}, "timeseries": series}]}
    sandbox.fault(METRICS_PATH, 200, body=full)
    samples = fetch_list(provider, credential, azure_settings, three_days, http)
    tops = [int(r["query"]["top"][0]) for r in metrics_requests(sandbox) if r["path"] == METRICS_PATH]
    assert tops == [50, 200, 96]  # tokens: filled 50, read again; then the request counts (8 × 12 deployments)
    assert_totals_equal(totals_by(samples), support.truth(three_days))


def test_metrics_that_always_fill_top_are_refused(credential, azure_settings, http, sandbox, three_days) -> None:
    provider = AzureOpenAIProvider()
    provider.min_top = 1
    one = {"metadatavalues": [], "data": []}
    sandbox.fault(
        METRICS_PATH,
        200,
        times=10,
        body={"value": [{"name": {"value": "GeneratedTokens"}, "timeseries": [one] * 2000}]},
    )
    with pytest.raises(ProviderResponseError, match="possibly truncated"):
        fetch_list(provider, credential, azure_settings, three_days, http)


@pytest.fixture
def frozen_now(monkeypatch) -> datetime:
    """The connector's clock, fixed: the retention floor cannot move an hour while a test runs."""
    now = datetime.now(UTC)
    monkeypatch.setattr("integrations.providers.azure_openai.connector._utcnow", lambda: now)
    return now


def test_a_backfill_beyond_retention_reads_what_exists(
    provider, credential, azure_settings, http, sandbox, frozen_now
) -> None:
    window = Window(support.days_ago(120), support.days_ago(85))
    samples = fetch_list(
        provider, credential, azure_settings, window, http
    )  # the sandbox refuses > 93 days: no error here
    floor = align_down(frozen_now) - timedelta(days=93) + HOUR
    assert min(s.bucket_start for s in samples) >= floor
    for request in metrics_requests(sandbox):
        start = datetime.fromisoformat(request["query"]["timespan"][0].split("/")[0].replace("Z", "+00:00"))
        assert start >= floor
    assert_totals_equal(totals_by(samples), support.truth(Window(floor, window.end)), "totals inside retention")


def test_a_window_wholly_beyond_retention_makes_no_request(provider, credential, azure_settings, http, sandbox) -> None:
    assert (
        fetch_list(provider, credential, azure_settings, Window(support.days_ago(200), support.days_ago(100)), http)
        == []
    )
    assert sandbox.requests() == []


def test_unaligned_window_is_read_as_whole_hours(provider, credential, azure_settings, http, sandbox) -> None:
    # Starts 37 minutes into an hour with traffic, so that hour must come back whole
    first_hour = first_busy_hour(
        lambda a, b: support.truth(Window(a, b)), support.days_ago(3) + timedelta(hours=10), support.days_ago(2)
    )
    window = Window(first_hour + timedelta(minutes=37, seconds=5), support.days_ago(2) + timedelta(hours=5, minutes=20))
    samples = fetch_list(provider, credential, azure_settings, window, http)
    assert all(s.bucket_start == align_down(s.bucket_start) for s in samples)
    assert min(s.bucket_start for s in samples) == align_down(window.start)
    assert max(s.bucket_start for s in samples) < window.end
    for request in metrics_requests(sandbox):
        assert request["query"]["timespan"] == [
            f"{align_down(window.start):%Y-%m-%dT%H:%M:%SZ}/{align_up(window.end):%Y-%m-%dT%H:%M:%SZ}"
        ]
    assert_totals_equal(totals_by(samples), support.truth(Window(align_down(window.start), align_up(window.end))))


def test_adjacent_unaligned_windows_never_double_count(provider, credential, azure_settings, http) -> None:
    start, middle, end = (
        support.days_ago(3) + timedelta(minutes=20),
        support.days_ago(2) + timedelta(hours=13, minutes=45),
        support.days_ago(1),
    )
    first = fetch_list(provider, credential, azure_settings, Window(start, middle), http)
    second = fetch_list(provider, credential, azure_settings, Window(middle, end), http)
    stored = stored_totals(first, second)  # the usage store's semantics: same key → replace, never add
    assert align_down(middle) in read_twice(first, second), "the hour around `middle` is read by both windows"
    assert_totals_equal(stored, support.truth(Window(align_down(start), end)), "stored totals")


def test_discovery_runs_once_per_sync(provider, credential, azure_settings, http, sandbox) -> None:
    for day in (4, 3, 2):
        fetch_list(provider, credential, azure_settings, Window(support.days_ago(day), support.days_ago(day - 1)), http)
    assert len(sandbox.requests(support.ACCOUNTS_PATH)) == 3, "three pages, read once"
    deployments = [r for r in sandbox.requests("/azure_openai/arm/") if r["path"].endswith("/deployments")]
    assert len(deployments) == 4  # eastus has 12 deployments: two pages; two more accounts
    assert len(metrics_requests(sandbox)) == 18  # 3 chunks x 3 accounts x (tokens, requests)


def test_resource_ids_limit_the_accounts_and_skip_the_listing(provider, credential, sandbox, http, three_days) -> None:
    west = sandbox_azure.ACCOUNTS[3]
    settings = support.settings(sandbox, resource_ids=f" {west.id} ,")
    samples = fetch_list(provider, credential, settings, three_days, http)
    assert {s.resource for s in samples} == {west.name}
    assert sandbox.requests(support.ACCOUNTS_PATH) == []
    per_account = support.truth(three_days, lambda r: (r.account,))
    assert_totals_equal(
        totals_by(samples, "resource"), Counter({k: v for k, v in per_account.items() if k[1] == west.name})
    )


@pytest.mark.parametrize(
    ("resource_ids", "text"),
    [
        (sandbox_azure.ACCOUNTS[1].id, "SpeechServices account"),
        (
            EASTUS.id.replace(sandbox_azure.SUBSCRIPTION_ID, "11111111-2222-4333-8444-555555555555"),
            "not an account id in subscription",
        ),
        ("doow-sbx-eastus", "not an account id"),
        (EASTUS.id.replace("doow-sbx-eastus", "doow-sbx-gone"), "was not found"),
    ],
)
def test_bad_resource_ids_are_configuration_errors(
    provider, credential, sandbox, http, three_days, resource_ids, text
) -> None:
    with pytest.raises(ConfigurationError, match=text) as info:
        fetch_list(provider, credential, support.settings(sandbox, resource_ids=resource_ids), three_days, http)
    assert info.value.field == "resource_ids"


def test_malformed_subscription_id_fails_before_any_call(provider, credential, sandbox, http, three_days) -> None:
    with pytest.raises(ConfigurationError) as info:
        fetch_list(provider, credential, support.settings(sandbox, subscription_id="my-subscription"), three_days, http)
    assert info.value.field == "subscription_id" and sandbox.requests() == []


def test_next_link_on_the_public_arm_host_is_rebased_onto_base_url(
    provider, credential, azure_settings, http, sandbox, three_days
) -> None:
    first = {
        "value": [sandbox_azure._account_json(a) for a in sandbox_azure.ACCOUNTS[:2]],
        "nextLink": f"https://management.azure.com/subscriptions/{sandbox_azure.SUBSCRIPTION_ID}/providers/"
        "Microsoft.CognitiveServices/accounts?api-version=2025-09-01&%24skiptoken=Mg%3D%3D",
    }
    sandbox.fault(support.ACCOUNTS_PATH, 200, body=first)
    samples = fetch_list(provider, credential, azure_settings, three_days, http)
    assert len(sandbox.requests(support.ACCOUNTS_PATH)) == 3
    assert_totals_equal(totals_by(samples), support.truth(three_days))


def test_next_link_to_another_host_is_not_followed(
    provider, credential, azure_settings, http, sandbox, three_days
) -> None:
    sandbox.fault(support.ACCOUNTS_PATH, 200, body={"value": [], "nextLink": "https://attacker.example/steal?token=1"})
    with pytest.raises(ProviderResponseError, match="another host"):
        fetch_list(provider, credential, azure_settings, three_days, http)


def test_verify_shows_subscription_accounts_and_deployments(
    provider, credential, azure_settings, http, sandbox
) -> None:
    identity = provider.verify(credential, azure_settings, http=http)
    assert identity.account_id == sandbox_azure.SUBSCRIPTION_ID
    assert (
        identity.summary == f"Subscription {sandbox_azure.SUBSCRIPTION_ID} · 3 Azure OpenAI accounts · 19 deployments"
    )
    accounts = identity.details["accounts"]
    assert [(a["name"], a["kind"], a["location"], a["resource_group"]) for a in accounts] == [
        ("doow-sbx-eastus", "OpenAI", "eastus", "rg-ai-prod"),
        ("doow-sbx-sweden", "AIServices", "swedencentral", "rg-ai-research"),
        ("doow-sbx-westeurope", "OpenAI", "westeurope", "rg-ai-prod"),
    ]
    assert accounts[0]["deployments"][0] == {
        "name": "gpt-4o-prod",
        "model": "gpt-4o-2024-08-06",
        "sku": "GlobalStandard",
        "capacity": 450,  # PTUs for a provisioned deployment: what pricing by the hour needs
    }
    assert "warnings" not in identity.details
    assert len(metrics_requests(sandbox)) == 2, "verify proves the metrics can be read (tokens, requests)"


def test_verify_warns_when_no_account_is_visible(provider, credential, azure_settings, http, sandbox) -> None:
    sandbox.fault(support.ACCOUNTS_PATH, 200, body={"value": []})
    identity = provider.verify(credential, azure_settings, http=http)
    assert identity.summary.endswith("· 0 Azure OpenAI accounts · 0 deployments")
    assert "role assignment" in identity.details["warnings"][0]
    assert metrics_requests(sandbox) == []
