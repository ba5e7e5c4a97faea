"""Azure AI Foundry / AI Services additions: other vendors' models through the "Models – Usage"
metrics, request counts split by StatusCode (requests = successful ones; throttled and failed
kept as their own metrics), and provisioned (PTU) deployments as provisioned hours — against a
recorded response of the documented shape and against the sandbox, through the sync engine."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integrations import engine, services
from integrations.models import SyncRun
from integrations.providers.azure_openai.schema import (
    Deployment,
    metrics_samples,
    parse_metrics,
    provisioned_samples,
    request_metric,
)
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import Window
from sandbox import azure_openai as sandbox_azure
from usage.models import UsageRecord

SWEDEN = next(a for a in sandbox_azure.ACCOUNTS if a.name == "doow-sbx-sweden")
EASTUS = sandbox_azure.ACCOUNTS[0]


def at(hour: int) -> datetime:
    return datetime(2024, 11, 1, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "metric"),
    [("200", "requests"), ("201", "requests"), ("", "requests"), ("429", "throttled_requests"),
     ("400", "failed_requests"), ("500", "failed_requests"), ("503", "failed_requests")],
)  # fmt: skip
def test_status_codes_map_to_request_metrics(status, metric) -> None:
    assert request_metric(status) == metric


def test_recorded_requests_by_status_and_models_usage_for_another_vendor() -> None:
    series = parse_metrics(support.load("metrics_requests_by_status.json"))
    samples = metrics_samples(
        series,
        account=support.RECORDED_ACCOUNT,
        models={"gpt-4o-prod": "gpt-4o-2024-08-06", "claude-sonnet": "claude-sonnet-4-5-20250929"},
        formats={"gpt-4o-prod": "OpenAI", "claude-sonnet": "Anthropic"},
        start=at(0),
        end=at(3),
    )
    got = {(s.bucket_start.hour, s.deployment, s.metric): s.quantity for s in samples}
    assert got == {
        # gpt-4o-prod: the Azure OpenAI family only (ModelRequests and InputTokens repeat it).
        (0, "gpt-4o-prod", "requests"): 4,
        (0, "gpt-4o-prod", "throttled_requests"): 7,
        (0, "gpt-4o-prod", "failed_requests"): 1,
        (2, "gpt-4o-prod", "requests"): 1,
        # claude-sonnet: only the Models – Usage metrics know it.
        (1, "claude-sonnet", "requests"): 3,
        (1, "claude-sonnet", "failed_requests"): 2,
        (1, "claude-sonnet", "input_tokens"): 5100,
    }
    assert {s.model for s in samples if s.deployment == "claude-sonnet"} == {"claude-sonnet-4-5-20250929"}


def test_provisioned_hours_cover_every_hour_from_creation() -> None:
    ptu = Deployment("gpt-4o-ptu", "gpt-4o-2024-08-06", "ProvisionedManaged", 15, "OpenAI", at(1))
    standard = Deployment("chat", "gpt-4o-mini-2024-07-18", "Standard", 200, "OpenAI", None)
    samples = provisioned_samples((ptu, standard), account=support.RECORDED_ACCOUNT, start=at(0), end=at(4))
    assert [(s.bucket_start.hour, s.metric, s.quantity, s.unit) for s in samples] == [
        (1, "provisioned_hours", 15, "hours"), (2, "provisioned_hours", 15, "hours"), (3, "provisioned_hours", 15, "hours"),
    ]  # fmt: skip


def test_fetch_reads_other_vendors_and_never_counts_a_request_twice(provider, credential, azure_settings, http) -> None:
    window = Window(support.days_ago(3), support.days_ago(1))
    samples = list(provider.fetch(credential, azure_settings, window, http=http))
    got: Counter = Counter()
    for s in samples:
        got[(s.metric, s.resource, s.deployment)] += s.quantity
    truth = support.truth(window, lambda r: (r.account, r.deployment))
    assert +got == +truth
    # The Anthropic and Meta deployments are there, with their models from the deployment list.
    claude = {(s.metric, s.model) for s in samples if s.deployment == "claude-sonnet"}
    assert ("input_tokens", "claude-sonnet-4-5-20250929") in claude and (
        "requests",
        "claude-sonnet-4-5-20250929",
    ) in claude
    assert any(s.deployment == "llama-maas" for s in samples)
    # Successful requests only: the throttled ones are not in `requests`.
    rows = sandbox_azure.truth_usage(window.start, window.end)
    assert sum(r.throttled for r in rows) > 0 and sum(r.failed for r in rows) > 0
    requests = sum(s.quantity for s in samples if s.metric == "requests")
    assert requests == sum(r.requests for r in rows) < sum(r.all_requests for r in rows)


@pytest.mark.django_db
def test_sync_prices_every_provisioned_hour_even_without_traffic(workspace, admin_user, sandbox) -> None:
    integration = services.integration_create(
        workspace=workspace, provider_slug="azure_openai", credential=support.credential(),
        settings=support.settings(sandbox), created_by=admin_user,
    )  # fmt: skip
    window = Window(support.days_ago(2), support.days_ago(1))
    run = engine.integration_sync(
        integration_id=integration.pk, since=window.start, until=window.end, trigger="command"
    )
    assert run.status == SyncRun.Status.SUCCESS, run.error

    ptu = UsageRecord.objects.filter(integration=integration, deployment="gpt-4o-ptu")
    hours = ptu.filter(metric="provisioned_hours")
    assert hours.count() == 24 and {r.quantity for r in hours} == {Decimal(15)}
    idle = [
        r.hour_start
        for r in sandbox_azure.truth_usage(window.start, window.end)
        if r.deployment == "gpt-4o-ptu" and not r.requests
    ]
    assert idle, "the sandbox has PTU hours without traffic"
    estimates = {r.bucket_start: r.quantity for r in ptu.filter(metric="estimated_cost")}
    # 15 PTUs × $2.00 per PTU-hour (compute_prices.json, ProvisionedManaged), every hour, idle or not.
    assert len(estimates) == 24 and set(estimates.values()) == {Decimal("30.00")}
    assert all(moment in estimates for moment in idle)


def test_an_account_without_the_models_usage_metrics_is_read_with_the_azure_openai_ones(
    provider, credential, azure_settings, http, sandbox
) -> None:
    metrics_path = "/azure_openai/arm" + EASTUS.id + support.METRICS_SUFFIX
    unknown = {
        "error": {
            "code": "BadRequest",
            "message": "Failed to find metric configuration for provider: Microsoft.CognitiveServices, "
            "resource Type: accounts, metric: InputTokens, Valid metrics: ProcessedPromptTokens,GeneratedTokens",
        }
    }
    sandbox.fault(metrics_path, 400, body=unknown)
    window = Window(support.days_ago(2), support.days_ago(1))
    samples = list(provider.fetch(credential, azure_settings, window, http=http))
    asked = [r["query"]["metricnames"][0] for r in sandbox.requests(metrics_path)]
    assert asked[:3] == [
        "ProcessedPromptTokens,GeneratedTokens,InputTokens,OutputTokens,"
        "cacheReadInputTokens,ephemeral5mInputTokens,ephemeral1hInputTokens",
        "ProcessedPromptTokens,GeneratedTokens",  # InputTokens refused: straight to the Azure OpenAI ones
        "AzureOpenAIRequests,ModelRequests",
    ]
    got: Counter = Counter()
    for s in samples:
        if s.resource == EASTUS.name:
            got[(s.metric, s.deployment)] += s.quantity
    truth = support.truth(window, lambda r: (r.deployment,) if r.account == EASTUS.name else ("-",))
    assert +got == +Counter({k: v for k, v in truth.items() if k[1] != "-"})
