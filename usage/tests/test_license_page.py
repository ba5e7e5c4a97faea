"""License pages over HTTP: terms, consumption within the period against the commitment, the
burn-down payload, seats and pay-as-you-go figures, empty states, and tenant scoping."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from integrations.testing import make_integration
from usage.models import Application, License
from usage.testing import make_license, make_record

D = Decimal


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def license_url(lic: License) -> str:
    return reverse("usage:license", kwargs={"ws": lic.workspace.slug, "pk": lic.pk})


@pytest.fixture
def today() -> date:
    return timezone.now().date()


@pytest.fixture
def app(workspace):
    return Application.objects.create(workspace=workspace, name="ChatGPT", vendor="OpenAI", owner="Platform team")


@pytest.fixture
def integration(workspace):
    return make_integration(workspace)


@pytest.fixture
def commitment(workspace, app, today):
    """Started 9 days ago (10 days elapsed, today included), ends in 20 days; 1,000 USD committed."""
    return make_license(
        app,
        "Scale tier",
        License.Kind.COMMITMENT,
        today - timedelta(days=9),
        end_date=today + timedelta(days=20),
        committed_amount=D("1000"),
    )


def test_commitment_page_shows_spend_against_the_commitment_and_the_projection(
    member_client, commitment, integration, app, today
):
    start = commitment.start_date
    make_record(
        integration, midnight(start - timedelta(days=1)), "cost", "900", license=commitment, application=app
    )  # before: out
    make_record(integration, midnight(start), "cost", "100", license=commitment, application=app)
    make_record(integration, midnight(today), "cost", "150", license=commitment, application=app, model="gpt-4o")
    make_record(
        integration, midnight(today), "cost", "40", "EUR", license=commitment, application=app, model="billed-in-eur"
    )
    make_record(integration, midnight(today), "input_tokens", "12345", "tokens", license=commitment, application=app)

    response = member_client.get(license_url(commitment))
    assert response.status_code == 200
    c = response.context["c"]
    assert c.spent == D("250")
    assert c.percent_used == pytest.approx(25.0)
    assert c.daily_rate == D("25")  # 250 over 10 days
    assert c.projected == D("250") + D("25") * 20 == D("750")
    html = response.content.decode()
    assert "250.00" in html and "$1,000.00" in html and "<strong>25%</strong> used" in html and 'value="25"' in html
    assert "$750.00" in html and "75% of the commitment" in html
    assert "Scale tier" in html and "Platform team" in html
    assert "40.00 EUR" in html and "not counted in the USD spend" in html  # shown apart, never added
    assert "12,345" in html  # tokens per month, in their own column


def test_burn_down_payload_has_cumulative_spend_commitment_and_projection(
    member_client, commitment, integration, today
):
    make_record(integration, midnight(commitment.start_date), "cost", "100", license=commitment)
    make_record(integration, midnight(today), "cost", "150", license=commitment)
    response = member_client.get(license_url(commitment))
    chart = json.loads(
        re.search(rb'<script id="license-chart" type="application/json">(.*?)</script>', response.content, re.S).group(
            1
        )
    )
    assert chart["kind"] == "line"
    assert len(chart["labels"]) == 30  # the whole period, day by day
    spent, projected, limit = (d["data"] for d in chart["datasets"])
    assert spent[0] == 100.0 and spent[9] == 250.0 and spent[10] is None  # nothing drawn after today
    assert projected[9] == 250.0 and projected[-1] == 750.0 and projected[0] is None
    assert set(limit) == {1000.0}
    assert '<details class="chart-data" open>' in response.content.decode()  # the no-JS table


def test_over_the_commitment_says_by_how_much(member_client, commitment, integration, today):
    make_record(integration, midnight(today), "cost", "1200.5", license=commitment)
    html = member_client.get(license_url(commitment)).content.decode()
    assert "Over by $200.50" in html
    assert "On course to exceed it" in html


def test_seats_page_shows_usage_per_month_and_the_seat_count(member_client, workspace, app, integration, today):
    seats = make_license(app, "Team", License.Kind.SEATS, today.replace(day=1) - timedelta(days=40), seat_count=25)
    make_record(integration, midnight(today), "requests", "70", "requests", license=seats)
    make_record(integration, midnight(today), "cost", "50", license=seats)
    response = member_client.get(license_url(seats))
    html = response.content.decode()
    assert "Seats" in html and "<strong>25</strong>" in html
    assert response.context["months"]["rows"] == [(today.replace(day=1), [(D("50"), "USD"), (D("70"), None)])]
    assert "$2.00 spent per seat" in html
    assert response.context["chart"] is None
    # The month table: metrics by their names, money in the money format, counts compact.
    table = html[html.index('id="months-title"') :]
    assert "Reported cost" in table and "Requests" in table and "<code>cost</code>" not in table
    assert '<td class="num">$50.00</td><td class="num">70</td>' in table


def test_an_upcoming_license_says_in_how_many_days_it_starts(member_client, app, today):
    upcoming = make_license(app, "Next year", License.Kind.SEATS, today + timedelta(days=23), seat_count=5)
    html = " ".join(member_client.get(license_url(upcoming)).content.decode().split())
    assert "Upcoming" in html and "starts in 23 days" in html
    start = today + timedelta(days=23)
    assert f"{start.day} {start:%b %Y} → open-ended" in html  # dates as on every page: 29 Dec 2026


def test_pay_as_you_go_page_charts_spend_per_month(member_client, workspace, app, integration, today):
    payg = make_license(app, "On demand", License.Kind.PAY_AS_YOU_GO, date(2025, 1, 1))
    make_record(integration, datetime(2025, 1, 31, 23, tzinfo=UTC), "cost", "10", license=payg)
    make_record(integration, datetime(2025, 2, 1, tzinfo=UTC), "cost", "20", license=payg)
    chart = member_client.get(license_url(payg)).context["chart"]
    assert chart["labels"] == ["2025-01", "2025-02"]
    assert chart["datasets"][0]["data"] == [10.0, 20.0]


def test_nothing_attributed_is_a_clear_empty_state(member_client, admin_client, commitment):
    html = member_client.get(license_url(commitment)).content.decode()
    assert "Nothing is attributed to this license" in html
    assert "A workspace admin sets the rules" in html
    try:
        rules = reverse("usage_settings:rules", kwargs={"ws": commitment.workspace.slug})
    except NoReverseMatch:  # the rules page is another app's; without it the page still renders
        rules = None
    admin_html = admin_client.get(license_url(commitment)).content.decode()
    if rules:
        assert f'href="{rules}"' in admin_html and f'href="{rules}"' not in html


def test_another_workspaces_license_is_not_found_under_my_slug(member_client, workspace, other_workspace):
    theirs_app = Application.objects.create(workspace=other_workspace, name="Globex app")
    theirs = License.objects.create(
        workspace=other_workspace, application=theirs_app, plan_name="Globex plan", start_date=date(2026, 1, 1)
    )
    response = member_client.get(reverse("usage:license", kwargs={"ws": workspace.slug, "pk": theirs.pk}))
    assert response.status_code == 404
    assert b"Globex" not in response.content


def test_license_list_summarises_consumption(member_client, workspace, commitment, integration, app, today):
    make_record(integration, midnight(today), "cost", "250", license=commitment)
    make_license(app, "Next year", License.Kind.COMMITMENT, today + timedelta(days=30), committed_amount=D("5000"))
    response = member_client.get(reverse("usage:licenses", kwargs={"ws": workspace.slug}))
    html = response.content.decode()
    assert "Scale tier" in html and "$250.00" in html and "25%" in html
    assert "Next year" in html and "Upcoming" in html and "nothing attributed" in html


def test_license_list_queries_do_not_grow_with_licenses(member_client, workspace, app, integration, today):
    url = reverse("usage:licenses", kwargs={"ws": workspace.slug})

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert member_client.get(url).status_code == 200
        return len(captured)

    License.objects.create(workspace=workspace, application=app, plan_name="One", start_date=today)
    count()
    few = count()
    for i in range(5):
        lic = License.objects.create(workspace=workspace, application=app, plan_name=f"Plan {i}", start_date=today)
        make_record(integration, midnight(today), "cost", "1", license=lic, model=f"m{i}")
    assert count() == few


def test_empty_license_list_explains_what_a_license_is(member_client, workspace):
    html = member_client.get(reverse("usage:licenses", kwargs={"ws": workspace.slug})).content.decode()
    assert "No licenses yet" in html


# ---------------------------------------------------------------- one Licenses page
def test_one_licenses_page_members_read_it_and_admins_edit_there(member_client, admin_client, workspace, commitment):
    page = reverse("usage:licenses", kwargs={"ws": workspace.slug})
    edit = reverse("usage_settings:license_edit", kwargs={"ws": workspace.slug, "pk": commitment.pk})
    delete = reverse("usage_settings:license_delete", kwargs={"ws": workspace.slug, "pk": commitment.pk})
    add = reverse("usage_settings:license_add", kwargs={"ws": workspace.slug})

    member_html = member_client.get(page).content.decode()
    assert "Scale tier" in member_html
    assert edit not in member_html and delete not in member_html and add not in member_html

    admin_html = admin_client.get(page).content.decode()
    assert "Scale tier" in admin_html and "25%" not in admin_html  # nothing spent yet
    assert f'href="{edit}"' in admin_html and f'href="{delete}"' in admin_html and f'href="{add}"' in admin_html
    # Company Settings → Licenses is this page, not a second one.
    settings_page = admin_client.get(
        reverse("usage_settings:applications", kwargs={"ws": workspace.slug})
    ).content.decode()
    assert f'href="{page}"' in settings_page


def test_the_old_company_settings_licenses_url_redirects_to_the_one_page(admin_client, member_client, workspace):
    old = reverse("usage_settings:licenses", kwargs={"ws": workspace.slug})
    response = admin_client.get(old)
    assert response.status_code == 302
    assert response["Location"] == reverse("usage:licenses", kwargs={"ws": workspace.slug})
    assert member_client.get(old).status_code == 403  # Company Settings URLs stay admin-only


def test_an_admin_without_applications_is_told_to_add_one_first(admin_client, workspace):
    html = admin_client.get(reverse("usage:licenses", kwargs={"ws": workspace.slug})).content.decode()
    assert "No licenses yet" in html
    assert reverse("usage_settings:application_add", kwargs={"ws": workspace.slug}) in html
    assert reverse("usage_settings:license_add", kwargs={"ws": workspace.slug}) not in html
