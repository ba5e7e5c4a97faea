"""The spend overview at /w/<ws>/ through HTTP: figures from base rows kept in the rollups."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import integrations.testing
from integrations.models import Integration
from usage import rollups
from usage.models import Application, UsageRecord
from usage.testing import new_record

# Written for the default instant (figures of December 2026): pinned there whatever
# DOOW_TEST_CLOCK says (conftest.py: the `clock` marker).
CLOCK = pytest.mark.clock("2026-12-06T12:00:00Z")
pytestmark = CLOCK

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def make_integration(workspace, name, provider, **extra) -> Integration:
    return integrations.testing.make_integration(workspace, name, provider, data_through=timezone.now(), **extra)


@pytest.fixture
def spend_data(workspace):
    openai = make_integration(workspace, "OpenAI prod", "openai")
    groq = make_integration(workspace, "Groq", "groq")
    bot = Application.objects.create(workspace=workspace, name="Support bot")
    rows = []
    for d in range(1, 31):  # November: $2.00 a day reported
        rows.append(new_record(openai, datetime(2026, 11, d, 9, tzinfo=UTC), "cost", "2.00", model="gpt-4o"))
    for d in range(1, 7):  # December 1..6: $3.00 reported + $1.00 estimated a day
        nine = datetime(2026, 12, d, 9, tzinfo=UTC)
        rows += [
            new_record(openai, nine, "cost", "3.00", model="gpt-4o"),
            new_record(groq, nine, "estimated_cost", "1.00", model="llama-3.3-70b", application=bot),
            new_record(groq, nine, "input_tokens", "1000000", unit="tokens", model="llama-3.3-70b", application=bot),
            new_record(groq, nine + timedelta(hours=1), "input_tokens", "250000", unit="tokens", model="mystery-model"),
        ]
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
    return {"openai": openai, "groq": groq, "bot": bot}


def url(workspace, **params) -> str:
    base = reverse("accounts:workspace", kwargs={"ws": workspace.slug})
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_overview_shows_month_to_date_against_last_month_and_forecast(member_client, workspace, spend_data):
    response = member_client.get(url(workspace))
    assert response.status_code == 200
    body = text(response)
    assert 'data-testid="mtd-USD">$24.00<' in body
    assert "$18.00 reported" in body and "$6.00 estimated" in body
    assert "$12.00" in body and "▲ $12.00" in body and "(+100%)" in body  # Nov 1..6 = $12
    # forecast: 24 + (Nov 29, 30 at 2 + Dec 1..5 at 4 = 24) / 7 × 25 days left = 109.71
    assert "$109.71" in body
    # Every total says how much of it is estimated: last month's days were all reported; the
    # forecast's estimated part is 6 + (5 × $1.00) / 7 × 25 = 23.86, the rest reported.
    parts = r'</p> <p class="small spend-parts">'
    assert re.search(r'previous-USD">\$12\.00' + parts + "<span>all reported</span>", body)
    assert re.search(
        r'forecast-USD">\$109\.71' + parts + r"<span>\$85\.86 reported</span> · <span>\$23\.86 estimated", body
    )
    # read-only for members: no Company Settings, integration names not linked
    assert reverse("integrations:list", kwargs={"ws": workspace.slug}) not in body


def test_chart_is_stacked_by_provider_and_switches_split(member_client, workspace, spend_data):
    response = member_client.get(url(workspace))
    payload = json.loads(
        re.search(r'id="overview-chart-data" type="application/json">(.*?)</script>', response.content.decode()).group(
            1
        )
    )
    assert payload["stacked"] is True and payload["labels"][0] == "Dec 1" and len(payload["labels"]) == 6
    assert {d["label"]: sum(d["data"]) for d in payload["datasets"]} == {"OpenAI": 18.0, "Groq": 6.0}

    # every split link is a plain link and an htmx swap of the chart
    for split in ("model", "application", "integration"):
        assert f'href="{url(workspace, by=split)}" hx-get="{url(workspace, by=split)}"' in response.content.decode()

    partial = member_client.get(url(workspace, by="application"), HTTP_HX_REQUEST="true")
    html = partial.content.decode()
    assert html.lstrip().startswith('<section id="overview-chart"')
    assert "<html" not in html
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', html).group(1))
    assert {d["label"]: sum(d["data"]) for d in data["datasets"]} == {"Unattributed": 18.0, "Support bot": 6.0}

    by_integration = member_client.get(url(workspace, by="integration")).content.decode()
    assert "OpenAI prod" in by_integration
    assert member_client.get(url(workspace, by="nonsense")).status_code == 200  # falls back to provider


def test_top_models_and_applications_with_change(member_client, workspace, spend_data):
    body = text(member_client.get(url(workspace)))
    models = body[body.index('id="top-models"') : body.index('id="top-apps"')]
    assert "gpt-4o" in models and "$18.00" in models and "+50%" in models
    assert "llama-3.3-70b" in models and "new" in models
    apps = body[body.index('id="top-apps"') :]
    assert "Support bot" in apps and "$6.00" in apps


def test_a_fall_reads_with_a_minus_sign_like_the_money_beside_it(member_client, workspace, spend_data):
    # $20.00 more on 3 November: same days last month $32.00 against $18.00 now for OpenAI.
    extra = new_record(spend_data["openai"], datetime(2026, 11, 3, 10, tzinfo=UTC), "cost", "20.00", model="gpt-4o")
    UsageRecord.objects.bulk_create([extra])
    rollups.rebuild_workspace(workspace)
    body = text(member_client.get(url(workspace)))
    assert "▼ −$8.00 (−25%)" in body  # $24.00 against $32.00
    models = body[body.index('id="top-models"') : body.index('id="top-apps"')]
    assert '<td class="num delta-down">−44%</td>' in models  # gpt-4o: $18.00 against $32.00
    assert '<td class="num delta-up">new</td>' in models  # llama: nothing on 1–6 November


def test_unpriced_usage_is_listed_with_its_volume_never_zero(member_client, workspace, spend_data):
    body = text(member_client.get(url(workspace)))
    section = body[body.index('id="unpriced-title"') :]
    assert "mystery-model" in section and "1.5M tokens" in section
    assert "<td>Groq</td>" in section and "<td>groq</td>" not in section  # the provider's name, not its slug
    assert "llama-3.3-70b" not in section  # priced by its estimate
    assert "$0.00" not in body


def test_health_strip_links_admins_to_the_fix(admin_client, member_client, workspace, spend_data):
    broken = spend_data["groq"]
    broken.status = Integration.Status.ERROR
    broken.last_error_message = "Invalid API key"
    broken.save()
    paused = make_integration(workspace, "Anthropic", "anthropic", status=Integration.Status.PAUSED)
    admin_body = text(admin_client.get(url(workspace)))
    strip = admin_body[admin_body.index('id="health-title"') : admin_body.index("stat-grid")]
    assert "Needs attention" in strip and "Paused" in strip
    assert reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": broken.pk}) in strip
    assert reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": paused.pk}) in strip
    assert "OpenAI prod" not in strip
    member_body = text(member_client.get(url(workspace)))
    assert "Needs attention" in member_body
    assert reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": broken.pk}) not in member_body


def test_stale_integration_is_in_the_strip(member_client, workspace, spend_data):
    Integration.objects.filter(pk=spend_data["openai"].pk).update(data_through=timezone.now() - timedelta(days=5))
    body = text(member_client.get(url(workspace)))
    assert "Stale" in body[body.index('id="health-title"') :]


def test_duplicate_account_is_counted_once(member_client, workspace, spend_data):
    Integration.objects.filter(pk=spend_data["openai"].pk).update(account_key="openai:org-1")
    twin = make_integration(workspace, "OpenAI again", "openai", account_key="openai:org-1")
    UsageRecord.objects.bulk_create(
        [new_record(twin, datetime(2026, 12, 2, 9, tzinfo=UTC), "cost", "3.00", model="gpt-4o")]
    )
    rollups.rebuild_workspace(workspace)
    assert 'data-testid="mtd-USD">$24.00<' in text(member_client.get(url(workspace)))


def test_currencies_are_never_added(member_client, workspace, spend_data):
    UsageRecord.objects.bulk_create(
        [new_record(spend_data["openai"], datetime(2026, 12, 3, 9, tzinfo=UTC), "cost", "50", unit="EUR")]
    )
    rollups.rebuild_workspace(workspace)
    body = text(member_client.get(url(workspace)))
    assert 'data-testid="mtd-USD">$24.00<' in body and 'data-testid="mtd-EUR">50.00 EUR<' in body


def test_empty_workspace_tells_admins_to_connect(admin_client, workspace):
    body = text(admin_client.get(url(workspace)))
    assert "No spend this month yet" in body
    assert reverse("integrations:list", kwargs={"ws": workspace.slug}) in body


def test_outsider_gets_404_and_anonymous_goes_to_login(outsider_client, client, workspace):
    assert outsider_client.get(url(workspace)).status_code == 404
    assert client.get(url(workspace))["Location"].startswith(reverse("accounts:login"))


def test_query_count_does_not_grow_with_data(member_client, workspace, spend_data):
    member_client.get(url(workspace))  # the first request of a session writes it
    with CaptureQueriesContext(connection) as few:
        member_client.get(url(workspace))
    more = []
    for i in range(4):
        integration = make_integration(workspace, f"More {i}", "openai")
        app = Application.objects.create(workspace=workspace, name=f"App {i}")
        for d in range(1, 7):
            more.append(
                new_record(
                    integration, datetime(2026, 12, d, 9, tzinfo=UTC), "cost", "1", model=f"m-{i}-{d}", application=app
                )
            )
    UsageRecord.objects.bulk_create(more)
    rollups.rebuild_workspace(workspace)
    with CaptureQueriesContext(connection) as many:
        member_client.get(url(workspace))
    assert len(many.captured_queries) == len(few.captured_queries)
    assert not any("usage_usagerecord" in q["sql"] for q in many.captured_queries)  # rollups only
