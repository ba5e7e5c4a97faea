"""The usage explorer over HTTP: filters from the query string, group-by sums, the chart payload
and its table, htmx partials, a constant number of queries, and who may see it."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, URLPattern, reverse
from django.utils import timezone

from doow.testing import url_patterns
from integrations.testing import make_integration
from usage import rollups
from usage.models import Application, License, UsageRecord
from usage.testing import make_license, make_record

D = Decimal
DAY = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
# The fixture's usage lies in January 2026 and the explorer opens on this month: look from
# 14 January (whatever DOOW_TEST_CLOCK says; conftest.py's `clock` marker).
pytestmark = pytest.mark.clock("2026-01-14T12:00:00Z")


def explorer_url(workspace, **params) -> str:
    """The explorer over all days (the data is January 2026) unless the test names dates: without
    any, the page shows this month (test_the_default_window_is_this_month)."""
    url = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    if "date_from" not in params and "date_to" not in params:
        params = {"date_from": "", **params}
    return url + "?" + "&".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def usage(workspace):
    openai = make_integration(workspace)
    anthropic = make_integration(workspace, "Anthropic", "anthropic")
    chat = Application.objects.create(workspace=workspace, name="ChatGPT")
    lic = make_license(
        chat, "Scale", License.Kind.COMMITMENT, date(2026, 1, 1), end_date=date(2026, 12, 31), committed_amount=D("500")
    )
    make_record(openai, DAY, "cost", "1.25", model="gpt-4o", application=chat, license=lic)
    make_record(openai, DAY + timedelta(days=1), "cost", "2.75", model="gpt-4o", application=chat, license=lic)
    make_record(openai, DAY, "input_tokens", "1000", "tokens", model="gpt-4o", application=chat, license=lic)
    make_record(anthropic, DAY + timedelta(days=8), "cost", "6", model="claude-sonnet")
    make_record(anthropic, DAY + timedelta(days=8), "input_tokens", "300", "tokens", model="claude-sonnet")
    return {"openai": openai, "anthropic": anthropic, "chat": chat, "license": lic}


def totals_of(response) -> dict:
    return {
        (row["name"], row["total"].metric, row["total"].unit): row["total"].total
        for row in response.context["totals_rows"]
    }


def test_member_sees_totals_split_by_provider_by_default(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace))
    assert response.status_code == 200
    assert response.context["by"] == "provider"
    assert totals_of(response) == {
        ("OpenAI", "cost", "USD"): D("4.00"),
        ("OpenAI", "input_tokens", "tokens"): D("1000"),
        ("Anthropic", "cost", "USD"): D("6"),
        ("Anthropic", "input_tokens", "tokens"): D("300"),
    }
    assert {(t["metric"], t["total"]) for t in response.context["overall"]} == {
        ("cost", D("10.00")),
        ("input_tokens", D("1300")),
    }
    assert response.context["row_count"] == 5


def test_group_by_application_names_the_unattributed(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, by="application"))
    assert totals_of(response) == {
        ("ChatGPT", "cost", "USD"): D("4.00"),
        ("ChatGPT", "input_tokens", "tokens"): D("1000"),
        ("Unattributed", "cost", "USD"): D("6"),
        ("Unattributed", "input_tokens", "tokens"): D("300"),
    }


def test_filters_in_the_query_string_narrow_everything(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, provider="openai", date_to="2026-01-05", by="model"))
    assert totals_of(response) == {
        ("gpt-4o", "cost", "USD"): D("1.25"),
        ("gpt-4o", "input_tokens", "tokens"): D("1000"),
    }
    assert response.context["rows_page"].paginator.count == 2
    assert response.context["form"]["provider"].value() == "openai"  # the select shows what is applied


def test_a_drill_down_link_filters_to_one_group(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, by="license", page=2))
    drills = {row["name"]: row["drill"] for row in response.context["totals_rows"]}
    # The window stays as it is (here: all days) when one group is picked.
    assert drills["ChatGPT – Scale"] == f"date_from=&by=license&license={usage['license'].pk}"
    assert drills["No license"] == "date_from=&by=license&license=none"


def test_the_default_window_is_this_month(member_client, workspace):
    """Without dates the explorer shows this month so far (local days of the workspace's zone),
    says so in its From field, and keeps the window in its links; "All time" is every day."""
    workspace.time_zone = "Pacific/Auckland"  # UTC+12/13: the local month differs from UTC's
    workspace.save()
    openai = make_integration(workspace)
    zone = rollups.zone_of(workspace)
    first = timezone.now().astimezone(zone).date().replace(day=1)
    make_record(openai, rollups.day_start(first, zone), "cost", "7", model="this-month")  # its first local instant
    make_record(openai, rollups.day_start(first, zone) - timedelta(minutes=1), "cost", "5", model="last-month")
    url = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    response = member_client.get(url, {"by": "model"})
    assert totals_of(response) == {("this-month", "cost", "USD"): D(7)}
    assert response.context["filters"].date_from == first
    html = response.content.decode()
    assert re.search(rf'name="date_from"[^>]*value="{first.isoformat()}"', html), "the From field shows the window"
    assert f"date_from={first.isoformat()}" in response.context["export_csv_url"]
    everything = member_client.get(url, {"by": "model", "range": "all"})
    assert totals_of(everything) == {("this-month", "cost", "USD"): D(7), ("last-month", "cost", "USD"): D(5)}


def test_the_chart_is_spend_per_day_by_default_with_gaps_filled(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, by="none"))
    chart = response.context["chart"]
    assert chart.metric == "spend" and chart.payload["yTitle"] == "Spend (USD)"
    assert chart.payload["labels"][0] == "2026-01-05" and chart.payload["labels"][-1] == "2026-01-13"
    assert len(chart.payload["labels"]) == 9
    assert chart.payload["datasets"] == [{"label": "Spend", "data": [1.25, 2.75, 0, 0, 0, 0, 0, 0, 6.0]}]
    assert "Spend per day" in response.content.decode()
    # The payload travels as JSON data, read by static/js/explorer.js.
    payload = re.search(rb'<script id="explorer-chart" type="application/json">(.*?)</script>', response.content, re.S)
    assert json.loads(payload.group(1)) == chart.payload


def test_the_chart_by_week_and_split_sums_per_series(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, period="week", chart="input_tokens"))
    chart = response.context["chart"]
    assert chart.payload["labels"] == ["Week of 2026-01-05", "Week of 2026-01-12"]
    assert {d["label"]: d["data"] for d in chart.payload["datasets"]} == {
        "OpenAI": [1000.0, 0],
        "Anthropic": [0, 300.0],
    }


def test_the_chart_falls_back_to_input_tokens_without_cost(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, metric="input_tokens", period="month"))
    assert response.context["chart"].metric == "input_tokens"
    assert response.context["chart"].payload["labels"] == ["2026-01"]


def test_several_currencies_are_separate_series_never_one(member_client, workspace, usage):
    make_record(usage["anthropic"], DAY, "cost", "9", "EUR", model="eu")
    response = member_client.get(explorer_url(workspace, by="provider"))
    labels = {d["label"] for d in response.context["chart"].payload["datasets"]}
    assert labels == {"OpenAI (USD)", "Anthropic (USD)", "Anthropic (EUR)"}
    assert ("Anthropic", "cost", "EUR") in totals_of(response)


def test_without_javascript_the_chart_figures_are_a_table_and_scripts_are_files(member_client, workspace, usage):
    html = member_client.get(explorer_url(workspace)).content.decode()
    assert '<details class="chart-data" open>' in html
    assert '<td class="num">$1.25</td>' in html
    for tag in re.findall(r"<script[^>]*>", html):  # no inline code: a strict CSP stays possible
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "cdn" not in html.lower()


def test_htmx_gets_only_the_results_section(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, by="model"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html and "explorer-filters" not in html
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(member_client, workspace, usage):
    response = member_client.get(
        explorer_url(workspace), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert b"<html" in response.content


def test_every_hx_get_has_the_same_href(member_client, workspace, usage):
    _populate(workspace, usage["openai"], usage["chat"], usage["license"], days=60)
    html = member_client.get(explorer_url(workspace, by="model", page=2, range="all")).content.decode()
    links = re.findall(r"<a [^>]*hx-get[^>]*>", html)
    assert len(links) == 2  # newer and older pages
    for tag in links:
        assert re.search(r'href="([^"]+)"', tag).group(1) == re.search(r'hx-get="([^"]+)"', tag).group(1)


def test_a_backwards_date_range_is_explained(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, date_from="2026-01-10", date_to="2026-01-01"))
    assert response.status_code == 200
    assert "“To” is before “From”." in response.content.decode()
    assert response.context["row_count"] == 0


def test_empty_states_tell_no_usage_from_no_match(member_client, admin_client, workspace, usage):
    assert "Nothing matches these filters" in member_client.get(explorer_url(workspace, model="nope")).content.decode()
    UsageRecord.objects.all().delete()
    rollups.rebuild_workspace(workspace)  # as deleting usage through the app does
    html = admin_client.get(explorer_url(workspace)).content.decode()
    assert "No usage yet" in html
    assert reverse("integrations:list", kwargs={"ws": workspace.slug}) in html  # admins are shown where to connect


def test_rows_show_attribution_and_never_another_workspaces_usage(member_client, workspace, other_workspace, usage):
    theirs = make_integration(other_workspace, "Globex secret integration")
    make_record(theirs, DAY, "cost", "777", model="globex-model")
    html = member_client.get(explorer_url(workspace)).content.decode()
    assert "ChatGPT" in html and "Scale" in html and "Unattributed" in html
    assert "Globex" not in html and "globex-model" not in html and "777" not in html


def test_export_links_carry_the_filters(member_client, workspace, usage):
    response = member_client.get(explorer_url(workspace, provider="openai", by="model", page=1))
    if response.context["export_csv_url"] is None:
        pytest.skip("no usage:export URL")
    # the dates shown (this month, to today) are part of what is exported
    assert response.context["export_csv_url"].endswith(
        "?format=csv&date_from=2026-01-01&date_to=2026-01-14&provider=openai"
    )
    response = member_client.get(explorer_url(workspace, provider="openai", range="all"))
    assert response.context["export_csv_url"].endswith("?format=csv&provider=openai")


def _populate(workspace, integration, app, lic, days: int) -> None:
    rows = []
    for i in range(days):
        for j, model in enumerate(("a", "b", "c")):
            start = DAY + timedelta(days=i)
            rows.append(
                UsageRecord(
                    workspace=workspace,
                    integration=integration,
                    provider="openai",
                    bucket_start=start,
                    bucket_end=start + timedelta(days=1),
                    model=f"{model}{i % 7}",
                    metric="cost",
                    quantity=D(j + 1),
                    unit="USD",
                    application=app if j else None,
                    license=lic if j == 2 else None,
                )
            )
    UsageRecord.objects.bulk_create(rows)
    rollups.refresh_integration(integration.pk)


@pytest.mark.parametrize("by", ["provider", "application", "license", "integration", "model"])
def test_the_number_of_queries_does_not_grow_with_the_rows(member_client, workspace, usage, by):
    url = explorer_url(workspace, by=by)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert member_client.get(url).status_code == 200
        return len(captured)

    count()  # the first request also saves the session: not what is measured
    few = count()
    _populate(workspace, usage["openai"], usage["chat"], usage["license"], days=60)
    assert UsageRecord.objects.count() > 180
    assert count() == few


# ---------------------------------------------------------------- who may see it
PATTERNS = url_patterns("usage.urls")


def _url(pattern: URLPattern, workspace, license_pk: int) -> str:
    values = {"pk": license_pk}
    names = set(pattern.pattern.converters)
    assert names <= set(values), (
        f"test_explorer does not know how to fill {names - set(values)} of {pattern.name}: teach it"
    )
    assert pattern.name, f"every usage URL needs a name: {pattern.pattern}"
    return reverse(f"usage:{pattern.name}", kwargs={"ws": workspace.slug, **{n: values[n] for n in names}})


def test_the_namespace_has_urls_to_check():
    assert {"explorer", "licenses", "license"} <= {p.name for p in PATTERNS}


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.name for p in PATTERNS])
def test_outsider_gets_404_everywhere(outsider_client, workspace, usage, pattern):
    response = outsider_client.get(_url(pattern, workspace, usage["license"].pk))
    assert response.status_code == 404
    assert b"ChatGPT" not in response.content


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.name for p in PATTERNS])
@pytest.mark.parametrize("client_name", ["member_client", "admin_client"])
def test_members_and_admins_can_read_every_usage_page(request, workspace, usage, pattern, client_name):
    response = request.getfixturevalue(client_name).get(_url(pattern, workspace, usage["license"].pk))
    assert response.status_code == 200


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.name for p in PATTERNS])
def test_anonymous_is_sent_to_login(client, workspace, usage, pattern):
    response = client.get(_url(pattern, workspace, usage["license"].pk))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_the_top_navigation_links_to_usage_for_members(member_client, workspace):
    html = member_client.get(reverse("accounts:workspace", kwargs={"ws": workspace.slug})).content.decode()
    assert f'href="{reverse("usage:explorer", kwargs={"ws": workspace.slug})}"' in html


def test_admins_are_offered_to_attribute_unattributed_usage(admin_client, member_client, workspace, usage):
    try:
        target = reverse("usage_settings:unattributed", kwargs={"ws": workspace.slug})
    except NoReverseMatch:
        pytest.skip("no unattributed page")
    url = explorer_url(workspace, by="application")
    assert f'href="{target}"' in admin_client.get(url).content.decode()
    assert f'href="{target}"' not in member_client.get(url).content.decode()  # it would be a 403 for them
