"""Company Settings → Pricing through HTTP: admins see the price each model's estimates use and
its source; an override saved there recomputes the estimates in the background (from its
effective date only), and deleting it restores list prices. Members get 403, outsiders 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from conftest import pinned_instant
from integrations import engine
from usage.models import PriceOverride, PricingRecomputeJob, UsageRecord

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
# Recent days (the page lists the models of the last month), whatever DOOW_TEST_CLOCK says.
D0 = datetime.combine(pinned_instant().date() - 4 * DAY, datetime.min.time(), tzinfo=UTC)
D1 = D0 + DAY


def url(name: str, **kwargs) -> str:
    return reverse(f"usage_settings:{name}", kwargs={"ws": "acme", **kwargs})


def estimates_by_day(integration) -> dict:
    out: dict = {}
    for r in UsageRecord.objects.filter(integration=integration, metric="estimated_cost"):
        out[(r.bucket_start.date(), r.project, r.model, r.bucket_start)] = r.quantity
    return out


@pytest.fixture
def synced(openai_integration):
    run = engine.integration_sync(integration_id=openai_integration.pk, since=D0, until=D0 + 2 * DAY, trigger="command")
    assert run.status == "success"
    return openai_integration


def test_the_page_shows_each_models_price_and_its_source(admin_client, synced):
    page = admin_client.get(url("pricing"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "gpt-4o-2024-08-06" in html and "genai-prices openai/gpt-4o" in html
    assert "Reported cost and list-price estimate" in html and f"{D0:%Y-%m}" in html
    assert synced.get_credential()["api_key"] not in html


def test_a_discount_recomputes_estimates_from_its_effective_date(
    admin_client, synced, django_capture_on_commit_callbacks
):
    before = estimates_by_day(synced)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("pricing_override_add"), {
            "kind": "discount", "provider": "openai", "discount_percent": "20", "effective_from": D1.date().isoformat(),
        })  # fmt: skip
    assert response.status_code == 302
    job = PricingRecomputeJob.objects.get()
    assert job.status == "done" and job.total > 0 and job.done == job.total
    after = estimates_by_day(synced)
    assert after.keys() == before.keys()
    for key, value in after.items():
        day = key[0]
        expected = before[key] if day < D1.date() else (before[key] * Decimal("0.8"))
        assert abs(value - expected) <= Decimal("0.000000002"), key
    page = admin_client.get(url("pricing")).content.decode()
    assert "20% off list prices" in page and "Override" in page and "Up to date" in page

    override = PriceOverride.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url("pricing_override_delete", pk=override.pk)).status_code == 302
    assert estimates_by_day(synced) == before


def test_a_unit_price_prices_a_model_and_is_not_discounted(admin_client, synced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for data in (
            {"kind": "discount", "provider": "openai", "discount_percent": "50", "effective_from": "2026-01-01"},
            {"kind": "unit_price", "provider": "openai", "model": "o3-mini-2025-01-31", "metric": "output_tokens",
             "price": "0", "effective_from": "2026-01-01"},
            {"kind": "unit_price", "provider": "openai", "model": "o3-mini-2025-01-31", "metric": "input_tokens",
             "price": "1000000", "effective_from": "2026-01-01"},  # $1 per token: easy to check
        ):  # fmt: skip
            assert admin_client.post(url("pricing_override_add"), data).status_code == 302
    for r in UsageRecord.objects.filter(integration=synced, metric="estimated_cost", model="o3-mini-2025-01-31"):
        usage = {u.metric: u.quantity for u in UsageRecord.objects.filter(
            integration=synced, bucket_start=r.bucket_start, project=r.project, model=r.model)}  # fmt: skip
        # o3-mini lists no cache-write price: cache writes bill as input, here exactly $1/token;
        # cached reads keep their list price, halved by the discount (far below $1 in total).
        uncached = usage["input_tokens"] - usage.get("cached_input_tokens", 0)
        assert uncached > 0
        assert Decimal(uncached) <= r.quantity < Decimal(uncached) + 1


def test_an_invalid_override_is_refused_with_its_reason(admin_client, synced):
    response = admin_client.post(url("pricing_override_add"), {
        "kind": "discount", "provider": "openai", "discount_percent": "150", "effective_from": "2026-11-03",
    })  # fmt: skip
    assert response.status_code == 200  # the page again, with the form's errors
    assert "at most 100" in response.content.decode()
    assert not PriceOverride.objects.exists() and not PricingRecomputeJob.objects.exists()


def test_members_and_outsiders_cannot_see_or_change_prices(member_client, outsider_client, workspace):
    assert member_client.get(url("pricing")).status_code == 403
    assert outsider_client.get(url("pricing")).status_code == 404
    data = {"kind": "discount", "provider": "openai", "discount_percent": "10", "effective_from": "2026-11-01"}
    assert member_client.post(url("pricing_override_add"), data).status_code == 403
    assert not PriceOverride.objects.exists()


def test_another_workspaces_override_cannot_be_deleted(admin_client, other_workspace):
    theirs = PriceOverride.objects.create(workspace=other_workspace, kind="discount", provider="openai",
                                          discount_percent=10, effective_from=D0.date())  # fmt: skip
    assert admin_client.post(url("pricing_override_delete", pk=theirs.pk)).status_code == 404
    assert PriceOverride.objects.filter(pk=theirs.pk).exists()


def test_progress_panel_polls_only_while_a_job_runs(admin_client, workspace):
    PricingRecomputeJob.objects.create(workspace=workspace, status="running", total=10, done=4)
    panel = admin_client.get(url("pricing_progress"), headers={"HX-Request": "true"}).content.decode()
    assert "every 1s" in panel and "4 of 10" in panel
    PricingRecomputeJob.objects.update(status="done", finished_at=D0)
    panel = admin_client.get(url("pricing_progress"), headers={"HX-Request": "true"}).content.decode()
    assert "every 1s" not in panel and "Up to date" in panel


@pytest.mark.clock("2026-12-06T12:00:00Z")
def test_reported_against_estimate_is_per_month_of_the_workspace_zone(admin_client, workspace):
    """The comparison reads the daily rollups: a cost at 20:00 UTC on 30 November is 1 December
    in Auckland (UTC+13), so it counts in December there."""
    from integrations.models import Integration
    from usage import rollups

    workspace.time_zone = "Pacific/Auckland"
    workspace.save()
    integration = Integration.objects.create(workspace=workspace, provider="openai", name="OpenAI")
    at = datetime(2026, 11, 30, 20, tzinfo=UTC)
    for metric, quantity in (("cost", "7.00"), ("estimated_cost", "9.00")):
        UsageRecord.objects.create(
            workspace=workspace, integration=integration, provider="openai", bucket_start=at,
            bucket_end=at + timedelta(hours=1), metric=metric, quantity=Decimal(quantity), unit="USD", model="gpt-4o",
        )  # fmt: skip
    rollups.rebuild_workspace(workspace)
    [row] = admin_client.get(url("pricing")).context["comparison"]
    assert (row.provider, row.month, row.reported, row.estimated) == (
        "openai",
        datetime(2026, 12, 1).date(),
        Decimal("7.00"),
        Decimal("9.00"),
    )
    assert "Pacific/Auckland calendar months" in admin_client.get(url("pricing")).content.decode()


def test_the_price_every_estimate_of_a_day_used_is_shown_for_that_day(
    admin_client, synced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url("pricing_override_add"), {
            "kind": "discount", "provider": "openai", "discount_percent": "20", "effective_from": D1.date().isoformat(),
        })  # fmt: skip
    model = "gpt-4o-2024-08-06"
    for day, source in ((D0, "genai-prices"), (D1, "override")):
        page = admin_client.get(url("pricing"), {"on": day.date().isoformat()})
        lines = [m for m in page.context["models"] if m.model == model]
        # one line for standard traffic, one for batch and flex traffic (half the price)
        standard, half = sorted(lines, key=lambda m: "batch: half price" in m.price.reference)
        assert {standard.source, half.source} == {source} and "batch: half price" in half.price.reference
        # The shown price, applied to each of that day's usage keys, gives its stored estimate.
        estimates = UsageRecord.objects.filter(integration=synced, model=model, metric="estimated_cost",
                                               bucket_start__date=day.date())  # fmt: skip
        assert estimates
        for estimate in estimates:
            usage = {u.metric: u.quantity for u in UsageRecord.objects.filter(
                integration=synced, bucket_start=estimate.bucket_start, project=estimate.project, model=model,
                stream=estimate.stream.removesuffix(":estimate"))}  # fmt: skip
            first = UsageRecord.objects.filter(integration=synced, bucket_start=estimate.bucket_start,
                                               project=estimate.project, model=model, metric="input_tokens").first()  # fmt: skip
            shown = half if first.batch == "true" or first.service_tier == "flex" else standard
            cost = shown.price.cost(usage, hours=Decimal(1))
            assert abs(cost - estimate.quantity) <= Decimal("0.000000001"), estimate.bucket_start
        html = page.content.decode()
        assert f'value="{day.date().isoformat()}"' in html
        assert ("20% discount from" in html) == (source == "override")
    # a malformed or future day shows today's prices
    for raw in ("not-a-day", "2999-01-01", "0001-01-01"):
        page = admin_client.get(url("pricing"), {"on": raw})
        assert page.status_code == 200 and page.context["price_day"] == pinned_instant().date()


@pytest.mark.clock("2026-12-06T12:00:00Z")
def test_a_month_whose_usage_has_no_list_price_shows_no_estimate_never_zero(admin_client, workspace):
    from integrations.testing import make_integration
    from usage import rollups

    integration = make_integration(workspace, "OpenAI", "openai")
    at = datetime(2026, 12, 2, 9, tzinfo=UTC)
    for metric, quantity, unit in (("cost", "4.00", "USD"), ("input_tokens", "1000", "tokens")):
        UsageRecord.objects.create(
            workspace=workspace, integration=integration, provider="openai", bucket_start=at,
            bucket_end=at + timedelta(hours=1), metric=metric, quantity=Decimal(quantity), unit=unit, model="mystery",
        )  # fmt: skip
    rollups.rebuild_workspace(workspace)
    page = admin_client.get(url("pricing"))
    [row] = page.context["comparison"]
    assert (row.reported, row.estimated, row.difference) == (Decimal("4.00"), None, None)
    line = next(tr for tr in page.content.decode().split("<tr>") if "2026-12" in tr and "OpenAI" in tr)
    assert "$4.00" in line and "no priced usage" in line and "$0.00" not in line
