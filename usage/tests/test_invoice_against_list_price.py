"""Invoice against list price (issue 10, item 7), through the Pricing page after real syncs of
the four providers that report money (OpenAI, Anthropic, OpenRouter, Vertex): per provider and
month, the provider's reported cost beside the list-price estimate of the same usage, and the
difference; usage no price covers is listed with its volume (never $0)."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape

import pytest
from django.core.management import call_command
from django.urls import reverse

from doow.templatetags.formats import metric_label, money
from integrations import engine, services
from integrations.models import SyncRun
from integrations.providers.anthropic.tests.support import base_url as anthropic_url
from integrations.providers.google_vertex.tests import support as vertex
from integrations.providers.openrouter.tests.support import MANAGEMENT_KEY
from integrations.providers.openrouter.tests.support import base_url as openrouter_url
from integrations.providers.registry import PROVIDERS
from sandbox import anthropic as fake_anthropic
from usage.models import DIMENSION_FIELDS, UsageRecord
from usage.tests.test_export import parse_csv
from usage.tests.test_export_focus import focus_problems

pytestmark = pytest.mark.django_db
REPORTING = ("openai", "anthropic", "openrouter", "google_vertex")


@pytest.fixture
def four_synced(workspace, admin_user, sandbox):
    connections = {
        "openai": ({"api_key": sandbox.OPENAI_ADMIN_KEY}, {"base_url": sandbox.openai_base_url}),
        "anthropic": ({"api_key": fake_anthropic.ADMIN_KEY}, {"base_url": anthropic_url(sandbox)}),
        "openrouter": ({"api_key": MANAGEMENT_KEY}, {"base_url": openrouter_url(sandbox)}),
        "google_vertex": (vertex.credential(sandbox), vertex.settings(sandbox)),
    }
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for slug, (credential, settings) in connections.items():
        integration = services.integration_create(workspace=workspace, provider_slug=slug, credential=credential,
                                                  settings=settings, created_by=admin_user)  # fmt: skip
        run = engine.integration_sync(integration_id=integration.pk, since=today - timedelta(days=8),
                                      until=today - timedelta(days=1), trigger="command")  # fmt: skip
        assert run.status == SyncRun.Status.SUCCESS, (slug, run.error)
    return workspace


def stored(workspace, metric: str) -> dict[tuple[str, str], Decimal]:
    """Per provider and month (UTC, the workspace's zone here): the stored rows' sum."""
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(workspace=workspace, metric=metric):
        out[(r.provider, f"{r.bucket_start:%Y-%m}")] += r.quantity
    return dict(out)


def test_each_money_reporting_provider_shows_its_invoice_beside_the_list_price_per_month(admin_client, four_synced):
    page = admin_client.get(reverse("usage_settings:pricing", kwargs={"ws": "acme"}))
    assert page.status_code == 200
    html = page.content.decode()
    rows = {(r.provider, f"{r.month:%Y-%m}"): r for r in page.context["comparison"]}
    reported, estimated = stored(four_synced, "cost"), stored(four_synced, "estimated_cost")
    assert {provider for provider, _ in rows} == set(REPORTING)
    assert rows.keys() == reported.keys() == estimated.keys()
    for key, row in rows.items():
        assert row.reported == reported[key] and row.estimated == estimated[key], key
        assert row.reported > 0 and row.estimated > 0, key  # both sides, for every provider
        assert row.difference == row.reported - row.estimated and not row.spend_is_estimated
        # The page shows the month, the provider by name, both amounts and the difference.
        cells = [key[1], escape(PROVIDERS[key[0]].name)] + [
            money(v, "USD") for v in (row.reported, row.estimated, row.difference)
        ]
        line = next(tr for tr in html.split("<tr>") if key[1] in tr and escape(PROVIDERS[key[0]].name) in tr)
        assert all(cell in line for cell in cells), (key, line)


def test_usage_no_price_covers_is_listed_with_its_volume_in_words(admin_client, four_synced):
    page = admin_client.get(reverse("usage_settings:pricing", kwargs={"ws": "acme"}))
    unpriced = page.context["unpriced"]
    # OpenAI's moderation model has no list price; every OpenRouter permaslug finds one
    # ("anthropic/claude-4-sonnet-20250522" is priced as anthropic/claude-sonnet-4).
    moderation = {u.metric: u.quantity for u in unpriced if u.model == "omni-moderation-latest"}
    assert moderation["input_tokens"] > 0
    assert not [u for u in unpriced if u.provider == "openrouter"]
    assert UsageRecord.objects.filter(provider="openrouter", model="anthropic/claude-4-sonnet-20250522",
                                      metric="estimated_cost", quantity__gt=0).exists()  # fmt: skip
    html = page.content.decode()
    section = html[html.index("Unpriced usage") : html.index("Overrides")]
    assert metric_label("input_tokens") in section and "input_tokens" not in section


def test_the_focus_export_lists_every_usage_row_at_list_price(four_synced):
    """FOCUS after the four syncs: ListUnitPrice × PricingQuantity = ListCost on every usage row
    (focus_problems checks each), a usage row without list money either has no published unit
    price (unpriced: null, never a $0 price) or nothing billable, and each provider's ListCost
    adds up to its list-price estimate."""
    out = io.StringIO()
    call_command("export_usage", "--workspace", "acme", "--format", "focus", stdout=out)
    header, rows = parse_csv(out.getvalue())
    assert focus_problems(header, rows) == []
    usage = [r for r in rows if r["ChargeCategory"] == "Usage" and r["x_Metric"] != "cost"]
    assert usage
    listed: dict[str, Decimal] = defaultdict(Decimal)
    for r in usage:
        if Decimal(r["ListCost"]) == 0:
            assert not r["ListUnitPrice"] or Decimal(r["PricingQuantity"]) == 0, r
        listed[r["x_Provider"]] += Decimal(r["ListCost"])
    estimated: dict[str, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(workspace=four_synced, metric="estimated_cost"):
        estimated[r.provider] += r.quantity
    assert listed.keys() == estimated.keys() == set(REPORTING)
    for provider, total in listed.items():
        assert total > 0 and abs(total - estimated[provider]) <= Decimal("0.000001"), provider


def test_anthropic_web_searches_are_estimated_per_search_and_other_tools_listed_unpriced(admin_client, four_synced):
    """Anthropic's server-tool calls: web searches at the list $10 per 1,000, beside the tokens;
    code execution has no list price here: unpriced, with its volume."""
    calls = UsageRecord.objects.filter(workspace=four_synced, provider="anthropic", metric="api_calls")
    searches = calls.filter(operation="web_search", quantity__gt=0)
    assert searches.exists()
    for call in searches:
        same_key = {d: getattr(call, d) for d in DIMENSION_FIELDS}
        estimate = UsageRecord.objects.get(integration=call.integration, bucket_start=call.bucket_start,
                                           bucket_end=call.bucket_end, metric="estimated_cost", **same_key)  # fmt: skip
        assert estimate.quantity == call.quantity * Decimal("0.01")
    assert not UsageRecord.objects.filter(
        workspace=four_synced, metric="estimated_cost", operation="code_execution"
    ).exists()
    executions = sum(calls.filter(operation="code_execution").values_list("quantity", flat=True))
    page = admin_client.get(reverse("usage_settings:pricing", kwargs={"ws": "acme"}))
    unpriced = sum(u.quantity for u in page.context["unpriced"] if (u.provider, u.metric) == ("anthropic", "api_calls"))
    assert executions > 0 and unpriced == executions
    lines = {m.model: m for m in page.context["models"] if m.provider == "anthropic"}
    assert any(name.endswith(" · web search") and line.source == "genai-prices" for name, line in lines.items())
    assert any(name.endswith(" · code execution") and line.price is None for name, line in lines.items())
