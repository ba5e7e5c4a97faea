"""Issue 13: the usage OpenAI exposes besides completions tokens per model and project —
completions by service tier and batch, the other usage endpoints, costs per API key with their
billed quantities — read from the sandbox's documented shapes and stored through the real
engine; a key that may not read one usage type still syncs the rest and says so once; and the
history re-read after the upgrade replaces the old-key rows instead of adding to them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from integrations import engine
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.base import Window
from integrations.providers.openai.tests.support import days_ago
from integrations.providers.testing import assert_totals_equal, totals_by
from sandbox import openai as fake
from usage.models import UsageRecord

KIND_METRICS = {"input_tokens": "input_tokens", "num_model_requests": "requests", "images": "images",
                "characters": "characters", "seconds": "audio_seconds", "usage_bytes": "storage_byte_days",
                "num_sessions": "sessions"}  # fmt: skip
OPERATIONS = {"embeddings": "embeddings", "moderations": "moderations", "audio_speeches": "audio_speeches",
              "audio_transcriptions": "audio_transcriptions", "vector_stores": "vector_stores",
              "code_interpreter_sessions": "code_interpreter_sessions"}  # fmt: skip
COMPLETION_FIELDS = {"input_tokens": "input_tokens", "cached_input_tokens": "input_cached_tokens",
                     "cache_write_tokens": "input_cache_write_tokens", "output_tokens": "output_tokens",
                     "requests": "num_model_requests"}  # fmt: skip


def fetch(provider, credential, settings, window, http, state=None):
    return list(provider.fetch(credential, settings, window, http=http, state=state))


def kind_truth(start: datetime, end: datetime) -> Counter:
    """(stream, metric, project, model, operation) -> the sandbox's true total."""
    totals: Counter = Counter()
    for name, kind in fake.USAGE_KINDS.items():
        for row in fake.truth_kind(name, start, end):
            operation = row.source or OPERATIONS.get(name, name)
            for field, value in zip(kind.fields, row.values, strict=True):
                totals[(f"usage_{name}", KIND_METRICS[field], row.project_id, row.model or "", operation)] += value
    return totals


def test_completions_are_split_by_service_tier_and_batch(provider, credential, provider_settings, http, three_days):
    samples = [s for s in fetch(provider, credential, provider_settings, three_days, http)
               if s.stream == "usage_completions"]  # fmt: skip
    truth: Counter = Counter()
    for row in fake.truth_usage(three_days.start, three_days.end):
        for metric, field in COMPLETION_FIELDS.items():
            truth[(metric, row.service_tier, "true" if row.batch else "false")] += getattr(row, field)
    assert_totals_equal(totals_by(samples, "service_tier", "batch"), truth, "tokens per service tier and batch")
    # The sandbox serves every tier and both kinds of traffic in three days: the split is real.
    assert {s.service_tier for s in samples} == {"default", "flex", "priority"}
    assert {s.batch for s in samples} == {"true", "false"}


def test_every_other_usage_endpoint_is_read_with_its_own_metrics(
    provider, credential, provider_settings, http, sandbox, three_days
):
    samples = [s for s in fetch(provider, credential, provider_settings, three_days, http)
               if s.stream.startswith("usage_") and s.stream != "usage_completions"]  # fmt: skip
    got: Counter = Counter()
    for s in samples:
        got[(s.stream, s.metric, s.project, s.model, s.operation)] += s.quantity
    assert_totals_equal(got, kind_truth(three_days.start, three_days.end), "usage per endpoint")
    assert {s.operation for s in samples if s.metric == "images"} == {"image.generation", "image.edit"}
    # Stored bytes are a level: read per UTC day, so a day's row is that day's bytes.
    stored = [s for s in samples if s.metric == "storage_byte_days"]
    assert stored and all(s.bucket_end - s.bucket_start == three_days.end - days_ago(2) for s in stored)
    for name in fake.USAGE_KINDS:
        (request,) = sandbox.requests(f"/openai/v1/organization/usage/{name}")
        assert request["query"]["bucket_width"] == ["1d" if name == "vector_stores" else "1h"]


def test_costs_are_kept_per_api_key_with_their_billed_quantity(
    provider, credential, provider_settings, http, sandbox, three_days
):
    samples = fetch(provider, credential, provider_settings, three_days, http)
    costs = [s for s in samples if s.stream == "costs"]
    truth: Counter = Counter()
    for row in fake.truth_costs(three_days.start, three_days.end):
        truth[("cost", row.api_key_id)] += row.amount
        truth[("billed_quantity", row.api_key_id)] += row.quantity
    assert_totals_equal(totals_by(costs, "api_key"), truth, "costs and quantities per API key")
    assert {s.unit for s in costs if s.metric == "billed_quantity"} == {"tokens"}
    (request, *_) = sandbox.requests("/openai/v1/organization/costs")
    assert sorted(request["query"]["group_by"]) == ["api_key_id", "line_item", "project_id"]


@pytest.mark.django_db
def test_a_usage_type_the_key_may_not_read_is_skipped_with_one_warning(openai_integration, admin_client):
    integration = openai_integration
    d2, d1 = days_ago(2), days_ago(1)
    fake.deny_endpoint("images")
    call_command("sync", str(integration.pk), "--since", f"{d2:%Y-%m-%d}", "--until", f"{d2:%Y-%m-%d}")
    run = SyncRun.objects.filter(integration=integration).first()
    assert run.status == SyncRun.Status.SUCCESS
    rows = UsageRecord.objects.filter(integration=integration)
    assert not rows.filter(stream="usage_images").exists()
    assert rows.filter(stream="usage_completions").exists() and rows.filter(stream="usage_embeddings").exists()
    (event,) = IntegrationEvent.objects.filter(integration=integration, category="scope")
    assert event.level == "warning" and event.message.startswith("Images usage was not read")
    assert "scope" in event.message

    # The next sync skips it again without a second warning; the page shows the one warning.
    engine.integration_sync(integration_id=integration.pk, since=d2, until=d1, trigger="command")
    assert IntegrationEvent.objects.filter(integration=integration, category="scope").count() == 1
    page = admin_client.get(
        reverse("integrations:detail", kwargs={"ws": integration.workspace.slug, "pk": integration.pk})
    )
    html = page.content.decode()
    assert "Images usage was not read" in html
    # The rows' service tier and batch are columns of the page's row view, in words.
    rows_view = admin_client.get(
        reverse("integrations:detail", kwargs={"ws": integration.workspace.slug, "pk": integration.pk}),
        {"view": "rows"},
    ).content.decode()
    assert "<th>Service tier</th>" in rows_view and "<th>Batch</th>" in rows_view

    # Readable again: the images are stored and the note is gone.
    fake.clear_changes()
    engine.integration_sync(integration_id=integration.pk, since=d2, until=d1, trigger="command")
    assert rows.filter(stream="usage_images").exists()
    assert "skipped_streams" not in Integration.objects.get(pk=integration.pk).provider_state


@pytest.mark.django_db
def test_history_reread_after_the_upgrade_replaces_old_key_rows(openai_integration):
    """Rows the connector wrote before it split completions by tier and batch (one row per
    project and model, tier and batch empty) are replaced, not added to, when that history is
    re-read: every day equals the sandbox's truth, and no old-key row is left."""
    integration = openai_integration
    d4, d1 = days_ago(4), days_ago(1)
    old: Counter = Counter()
    for row in fake.truth_usage(d4, d1):
        for metric, field in COMPLETION_FIELDS.items():
            old[(row.hour_start, row.project_id, row.model, metric)] += getattr(row, field)
    UsageRecord.objects.bulk_create(
        UsageRecord(
            workspace=integration.workspace,
            integration=integration,
            provider="openai",
            bucket_start=start,
            bucket_end=start + (d1 - days_ago(2)) / 24,
            account=fake.ORGANIZATION_ID,
            project=project,
            model=model,
            metric=metric,
            quantity=Decimal(quantity),
            unit="tokens" if metric != "requests" else "requests",
            stream="usage_completions",
        )
        for (start, project, model, metric), quantity in old.items()
    )
    call_command("sync", str(integration.pk), "--since", f"{d4:%Y-%m-%d}", "--until", f"{days_ago(2):%Y-%m-%d}")
    completions = UsageRecord.objects.filter(integration=integration, stream="usage_completions")
    assert not completions.filter(service_tier="").exists()
    stored: Counter = Counter()
    for metric, quantity in completions.values_list("metric", "quantity"):
        stored[metric] += quantity
    truth: Counter = Counter()
    for (_start, _project, _model, metric), quantity in old.items():
        truth[metric] += quantity
    assert stored == truth  # once, not twice
    run = SyncRun.objects.filter(integration=integration).first()
    assert run.rows_removed >= len(old)


def test_a_window_without_skips_leaves_no_note(provider, credential, provider_settings, http):
    state: dict = {"skipped_streams": {"usage_images": "stale note"}}
    fetch(provider, credential, provider_settings, Window(days_ago(2), days_ago(1)), http, state=state)
    assert "skipped_streams" not in state
