"""Issue 13: Anthropic's service tier, context window and inference geo stay apart (usage and
cost), code execution is counted, and re-reading history after the upgrade replaces the rows
the connector wrote before it split them instead of adding to them."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import call_command

from integrations import services
from integrations.models import SyncRun
from integrations.providers.anthropic.tests.support import base_url, days_ago, usage_fields
from integrations.providers.testing import assert_totals_equal, totals_by
from sandbox import anthropic as fake
from usage.models import UsageRecord


def fetch(provider, credential, settings, window, http):
    return list(provider.fetch(credential, settings, window, http=http))


def test_usage_and_cost_keep_tier_context_window_and_geo_apart(
    provider, credential, provider_settings, http, three_days
):
    samples = fetch(provider, credential, provider_settings, three_days, http)
    usage = [s for s in samples if s.stream == "usage_report"]
    truth: Counter = Counter()
    for row in fake.truth_usage(three_days.start, three_days.end):
        for metric, value in usage_fields(row).items():
            truth[(metric, row.service_tier, row.context_window, row.inference_geo)] += value
    assert_totals_equal(totals_by(usage, "service_tier", "context_window", "inference_geo"), truth, "usage per tier")
    assert {s.service_tier for s in usage} == {"standard", "batch"}
    assert {s.context_window for s in usage} == {"0-200k", "200k-1M"}

    costs = [s for s in samples if s.metric == "cost"]
    cost_truth: Counter = Counter()
    for row in fake.truth_costs(three_days.start, three_days.end):
        cost_truth[("cost", row.service_tier or "", row.context_window or "")] += row.amount_cents / 100
    assert_totals_equal(totals_by(costs, "service_tier", "context_window"), cost_truth, "cost per tier")


def test_code_execution_is_counted(provider, credential, provider_settings, http, three_days):
    samples = fetch(provider, credential, provider_settings, three_days, http)
    calls = sum(s.quantity for s in samples if s.metric == "api_calls" and s.operation == "code_execution")
    expected = sum(r.code_execution_requests for r in fake.truth_usage(three_days.start, three_days.end))
    assert expected > 0 and calls == expected
    spent = sum(s.quantity for s in samples if s.metric == "cost" and s.operation == "code_execution")
    assert spent == sum(r.amount_cents for r in fake.truth_costs(three_days.start, three_days.end)
                        if r.cost_type == "code_execution") / 100  # fmt: skip


@pytest.mark.django_db
def test_history_reread_after_the_upgrade_replaces_old_key_rows(workspace, admin_user, sandbox):
    integration = services.integration_create(
        workspace=workspace, provider_slug="anthropic", credential={"api_key": fake.ADMIN_KEY},
        settings={"base_url": base_url(sandbox)}, created_by=admin_user,
    )  # fmt: skip
    d3, d1 = days_ago(3), days_ago(1)
    # What the connector stored before: tiers merged (empty dimensions), per workspace and model.
    old: Counter = Counter()
    for row in fake.truth_usage(d3, d1):
        for metric in ("input_tokens", "output_tokens"):
            old[(row.hour_start, row.workspace_id or "default", row.model, metric)] += usage_fields(row)[metric]
    UsageRecord.objects.bulk_create(
        UsageRecord(workspace=workspace, integration=integration, provider="anthropic", bucket_start=start,
                    bucket_end=start + (d1 - days_ago(2)) / 24, account=fake.ORGANIZATION_ID, project=project,
                    model=model, metric=metric, quantity=Decimal(quantity), unit="tokens", stream="usage_report")
        for (start, project, model, metric), quantity in old.items()
    )  # fmt: skip
    call_command("sync", str(integration.pk), "--since", f"{d3:%Y-%m-%d}", "--until", f"{days_ago(2):%Y-%m-%d}")
    assert SyncRun.objects.filter(integration=integration).first().status == SyncRun.Status.SUCCESS
    rows = UsageRecord.objects.filter(
        integration=integration, stream="usage_report", metric__in=["input_tokens", "output_tokens"]
    )
    assert not rows.filter(service_tier="").exists()
    stored: Counter = Counter()
    for metric, quantity in rows.values_list("metric", "quantity"):
        stored[metric] += quantity
    expected: Counter = Counter()
    for (_start, _project, _model, metric), quantity in old.items():
        expected[metric] += quantity
    assert stored == expected  # each token once, under its tier's key
