"""When the list prices change (genai-prices upgraded, usage/pricing/compute_prices.json edited),
beat's hourly task recomputes every workspace's estimates in the background, once, and the
Pricing page shows the job's progress. Driven through the Celery task and the page, after a
real Replicate sync; the price change is a real edit of a copy of the compute table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from integrations import engine, services
from integrations.models import SyncRun
from sandbox import replicate as fake_replicate
from usage import tasks
from usage.models import DIMENSION_FIELDS, PricingRecomputeJob, UsageRecord
from usage.pricing import catalog, prices

pytestmark = pytest.mark.django_db
SDXL = "stability-ai/sdxl"  # runs on an L40S, priced per second from the compute table


@pytest.fixture
def replicate_synced(workspace, admin_user, sandbox):
    integration = services.integration_create(
        workspace=workspace, provider_slug="replicate", credential={"api_token": fake_replicate.API_TOKEN},
        settings={"base_url": sandbox.url + fake_replicate.PREFIX + "/v1"}, created_by=admin_user,
    )  # fmt: skip
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    run = engine.integration_sync(integration_id=integration.pk, since=now - timedelta(days=2), until=now,
                                  trigger="command")  # fmt: skip
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return integration


def _forget_prices() -> None:
    for cached in (catalog.compute_table, prices.list_price, prices.price_data_version):
        cached.cache_clear()


@pytest.fixture
def edited_table(tmp_path, monkeypatch):
    """A way to edit the compute table as a release would: a copy with the L40S at a new price."""

    def edit(price: str) -> None:
        data = json.loads(catalog.TABLE_PATH.read_text())
        for entry in data["prices"]:
            if (entry["provider"], entry["key"]) == ("replicate", "gpu-l40s"):
                entry["price_usd"] = price
        path = tmp_path / "compute_prices.json"
        path.write_text(json.dumps(data))
        monkeypatch.setattr(catalog, "TABLE_PATH", path)
        monkeypatch.setattr(prices, "TABLE_PATH", path)
        _forget_prices()

    yield edit
    _forget_prices()  # the real table again (monkeypatch restores the paths first)


def sdxl(integration, metric: str) -> dict:
    """SDXL's rows of one metric by bucket and dimensions (an estimate has its usage's key)."""
    keys = ("bucket_start", "bucket_end", *DIMENSION_FIELDS)
    rows = UsageRecord.objects.filter(integration=integration, metric=metric, model=SDXL).values_list(*keys, "quantity")
    return {tuple(row[:-1]): row[-1] for row in rows}


def sdxl_estimates(integration) -> dict:
    return sdxl(integration, "estimated_cost")


def sdxl_seconds(integration) -> dict:
    """Prediction seconds (trainings run on hardware the table does not name: unpriced)."""
    return {k: q for k, q in sdxl(integration, "compute_seconds").items() if "training" not in k}


def test_changed_list_prices_recompute_every_estimate_in_the_background_once(
    admin_client, replicate_synced, edited_table, django_capture_on_commit_callbacks
):
    seconds = sdxl_seconds(replicate_synced)
    assert seconds and sdxl_estimates(replicate_synced) == {
        k: (s * Decimal("0.000975")).quantize(Decimal("0.000000001")) for k, s in seconds.items()
    }
    # The first run after deploying: the workspace was never recomputed, so it is, with the
    # installed data; a second run finds nothing to do.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    first = PricingRecomputeJob.objects.get()
    assert first.status == "done" and first.price_data == prices.price_data_version()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    assert PricingRecomputeJob.objects.count() == 1

    edited_table("0.002000")  # the L40S now lists at $0.002/s
    assert prices.price_data_version() != first.price_data
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    job = PricingRecomputeJob.objects.exclude(pk=first.pk).get()
    assert job.status == "done" and job.total > 0 and job.done == job.total
    assert sdxl_estimates(replicate_synced) == {k: s * Decimal("0.002") for k, s in seconds.items()}

    page = admin_client.get(reverse("usage_settings:pricing", kwargs={"ws": "acme"})).content.decode()
    assert "Up to date" in page and "$0.002000/second" in page  # the price each estimate now uses
    assert f'data-testid="price-data">{prices.price_data_version()}<' in page
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    assert PricingRecomputeJob.objects.count() == 2


def test_a_queued_recompute_is_left_to_start_and_workspaces_without_usage_are_skipped(
    workspace, other_workspace, replicate_synced, django_capture_on_commit_callbacks
):
    queued = PricingRecomputeJob.objects.create(workspace=workspace, price_data="genai-prices 0.0.1; table old")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.recompute_prices_if_changed()
    assert not callbacks and list(PricingRecomputeJob.objects.all()) == [queued]
    assert not other_workspace.pricing_jobs.exists()  # no priced usage there: nothing to recompute
