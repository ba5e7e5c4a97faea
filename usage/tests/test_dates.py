"""Dates out of range: every entry point takes days from 2000-01-01 to one year after today
(usage.dates, on the pinned test clock) and answers a day outside with a clear error — a form
error on pages, a 400 from the export, a line-numbered problem in imports, a CommandError from
commands — never a 500; and a chart never fills more periods than its filter spans."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from integrations.models import Integration, SyncRun
from sandbox import authress as fake
from usage import queries, rollups
from usage.dates import EARLIEST_DAY, bounds_text, day_problem, latest_day, preset_range, previous_range, years_after
from usage.importer import UsageImportError, usage_import_csv, usage_import_file
from usage.models import Application, License, UsageRecord
from usage.tests.test_export import make_integration, make_record

HX = {"HTTP_HX_REQUEST": "true"}
DAY = datetime(2026, 1, 5, tzinfo=UTC)
HOSTILE_DAYS = ["9999-12-31", "0001-01-01", "1999-12-31"]


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def outside(day: str) -> str:
    return f"{day} is outside the dates Doow accepts ({bounds_text()})"


@pytest.fixture
def usage(workspace):
    openai = make_integration(workspace)
    make_record(openai, DAY, "cost", "1.25", "USD", model="gpt-4o")
    make_record(openai, DAY + timedelta(days=8), "cost", "6", "USD", model="gpt-4o")
    return openai


# ---------------------------------------------------------------- the one definition
def test_the_bounds_follow_the_pinned_clock():
    assert latest_day() == years_after(today(), 1) > today()
    assert bounds_text() == f"from 2000-01-01 to {latest_day().isoformat()}"
    assert day_problem(EARLIEST_DAY) is None and day_problem(latest_day()) is None
    assert day_problem(EARLIEST_DAY - timedelta(days=1)) == outside("1999-12-31")
    assert day_problem(latest_day() + timedelta(days=1)) is not None
    assert years_after(date(2028, 2, 29), 1) == date(2029, 2, 28)


def test_a_query_string_date_outside_is_no_filter():
    filters = queries.parse_filters({"date_from": "0001-01-01", "date_to": "9999-12-31"})
    assert (filters.date_from, filters.date_to, filters.bounds(UTC)) == (None, None, (None, None))
    edge = queries.parse_filters({"date_from": "2000-01-01", "date_to": latest_day().isoformat()})
    assert (edge.date_from, edge.date_to) == (EARLIEST_DAY, latest_day())


# ---------------------------------------------------------------- the explorer
@pytest.mark.parametrize("day", HOSTILE_DAYS)
@pytest.mark.parametrize("param", ["date_from", "date_to"])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_explorer_shows_a_date_outside_as_an_error_and_leaves_it_out(
    member_client, workspace, usage, param, day, htmx
):
    response = member_client.get(reverse("usage:explorer", kwargs={"ws": "acme"}), {param: day}, **(HX if htmx else {}))
    assert response.status_code == 200
    html = response.content.decode()
    label = "From" if param == "date_from" else "To"
    assert f"{label}: {outside(day)}. That date is not applied." in html
    assert ('id="explorer-filters"' in html) is not htmx  # the partial for htmx, the page otherwise
    assert "2 rows, newest first" in html  # every row, as without that date
    downloads = re.findall(r'href="(/w/acme/usage/export/[^"]*)"', html)
    assert len(downloads) == 2 and not any(day in link for link in downloads)  # the file is what the page shows


def test_the_explorer_date_inputs_offer_only_accepted_days(member_client, workspace, usage):
    html = member_client.get(reverse("usage:explorer", kwargs={"ws": "acme"}), {"range": "all"}).content.decode()
    assert f'type="date" name="date_to" min="2000-01-01" max="{latest_day().isoformat()}"' in html


def test_the_explorer_takes_both_ends_of_the_range(member_client, workspace, usage):
    response = member_client.get(
        reverse("usage:explorer", kwargs={"ws": "acme"}),
        {"date_from": "2000-01-01", "date_to": latest_day().isoformat()},
    )
    assert response.context["date_errors"] == [] and response.context["row_count"] == 2


def test_a_stray_row_in_year_1_or_9999_adds_one_period_not_millions(member_client, workspace, usage):
    # Stored before imports were bounded (or by a provider): the chart shows them, unfilled.
    make_record(usage, datetime(1, 1, 1, tzinfo=UTC), "cost", "1", "USD", model="ancient")
    make_record(usage, datetime(9999, 12, 30, tzinfo=UTC), "cost", "1", "USD", model="far")
    response = member_client.get(reverse("usage:explorer", kwargs={"ws": "acme"}), {"period": "day", "range": "all"})
    assert response.status_code == 200
    labels = response.context["chart"].payload["labels"]
    assert labels == ["0001-01-01", *[f"{DAY.date() + timedelta(days=i)}" for i in range(9)], "9999-12-30"]
    assert len(response.content) < 200_000


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_the_gap_fill_never_spans_more_than_the_filter(period):
    held = [date(1, 1, 1), date(2026, 1, 5), date(2026, 3, 2), date(9999, 12, 1)]
    held = [queries.period_floor(day, period) for day in held]
    periods = queries.chart_periods(held, period, first=date(2026, 1, 1), last=date(2026, 3, 31))
    inside = queries.period_starts(date(2026, 1, 5), date(2026, 3, 2), period)
    assert periods == [held[0], *inside, held[-1]]
    assert len(queries.chart_periods(held, period)) == len(inside) + 2  # no filter: the accepted dates bound it
    assert queries.chart_periods([], period) == []


# ---------------------------------------------------------------- an integration's usage tab
@pytest.mark.parametrize("day", HOSTILE_DAYS)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_integration_usage_tab_shows_a_field_error(admin_client, workspace, usage, day, htmx):
    name = "usage" if htmx else "detail"
    url = reverse(f"integrations:{name}", kwargs={"ws": "acme", "pk": usage.pk})
    response = admin_client.get(url, {"date_to": day}, **(HX if htmx else {}))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<span class="field-error">{outside(day)}.</span>' in html
    assert re.search(r'<span class="muted small">2 rows</span>', html)  # that date filters nothing
    download = html[html.index("Download CSV") - 300 : html.index("Download CSV")]
    assert "format=csv" in download and day not in download


def test_a_member_never_reaches_the_integration_usage_tab(member_client, usage):
    url = reverse("integrations:usage", kwargs={"ws": "acme", "pk": usage.pk})
    assert member_client.get(url, {"date_to": "9999-12-31"}, **HX).status_code == 403


# ---------------------------------------------------------------- the export
@pytest.mark.parametrize("day", HOSTILE_DAYS)
@pytest.mark.parametrize("fmt", ["csv", "focus"])
def test_the_export_refuses_a_date_outside_with_a_400(member_client, usage, day, fmt):
    for params, headers in (({"date_to": day}, {}), ({"date_from": day}, HX)):
        response = member_client.get(
            reverse("usage:export", kwargs={"ws": "acme"}), {"format": fmt, **params}, **headers
        )
        assert response.status_code == 400
        name = next(iter(params))
        assert response.content.decode() == f"No export: {name}: {outside(day)}."


def test_the_export_refuses_a_date_that_does_not_parse_or_a_backwards_range(member_client, usage):
    url = reverse("usage:export", kwargs={"ws": "acme"})
    assert member_client.get(url, {"date_from": "yesterday"}).content == b"No export: date_from: Enter a valid date."
    backwards = member_client.get(url, {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert (backwards.status_code, backwards.content) == (400, "No export: date_to: “To” is before “From”.".encode())


def test_the_export_takes_both_ends_of_the_range(member_client, usage):
    response = member_client.get(
        reverse("usage:export", kwargs={"ws": "acme"}), {"date_from": "2000-01-01", "date_to": latest_day().isoformat()}
    )
    assert response.status_code == 200
    assert len(b"".join(response.streaming_content).decode().splitlines()) == 3


# ---------------------------------------------------------------- commands
@pytest.mark.parametrize("day", HOSTILE_DAYS)
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_export_usage_refuses_a_date_outside(usage, option, day):
    with pytest.raises(CommandError) as info:
        call_command("export_usage", "--workspace", "acme", option, day, stdout=io.StringIO())
    assert str(info.value) == f"{option} {outside(day)}."


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_sync_refuses_a_date_outside_before_reading_anything(usage, day):
    with pytest.raises(CommandError, match=f"--until {day} is outside the dates Doow accepts"):
        call_command("sync", str(usage.pk), "--until", day, stdout=io.StringIO())
    assert not SyncRun.objects.exists()


def test_export_usage_takes_both_ends_of_the_range(usage):
    out = io.StringIO()
    call_command(
        "export_usage", "--workspace", "acme", "--since", "2000-01-01", "--until", latest_day().isoformat(), stdout=out
    )
    assert len(out.getvalue().splitlines()) == 3


# ---------------------------------------------------------------- imports
HEADER = "provider,integration,bucket_start,bucket_end,account,project,region,model,deployment,endpoint,resource,operation,api_key,metric,quantity,unit,application,license"


def doow_row(start: str, end: str) -> str:
    return f"authress,,{start},{end},,,,,,,/v1/records,GET,,api_calls,5,calls,,"


@pytest.fixture
def authress(workspace) -> Integration:
    integration = Integration(
        workspace=workspace, provider="authress", name="Authress", settings={"base_url": "http://127.0.0.1:9"}
    )
    integration.set_credential({"access_key": fake.ACCESS_KEY})
    integration.save()
    return integration


def hostile_doow_file() -> str:
    after = (latest_day() + timedelta(days=1)).isoformat()
    return "\n".join([
        HEADER,
        doow_row("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),  # line 2: fine
        doow_row("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),  # line 3
        doow_row("2026-01-01T00:00:00Z", "9999-12-31T00:00:00Z"),  # line 4
        doow_row("9999-12-30T00:00:00Z", "9999-12-31T00:00:00Z"),  # line 5
        doow_row("0001-01-01T00:30:00+01:00", "2026-01-01T00:00:00Z"),  # line 6: no UTC equivalent
        doow_row("1999-12-31T00:00:00Z", "2000-01-01T00:00:00Z"),  # line 7
        doow_row("2026-01-01T00:00:00Z", f"{after}T00:00:01Z"),  # line 8
    ]) + "\n"  # fmt: skip


def expected_doow_problems() -> list[str]:
    after = (latest_day() + timedelta(days=1)).isoformat()
    return [
        f"line 3: bucket_start '0001-01-01T00:00:00Z' {outside_text()}",
        f"line 3: bucket_end '0001-01-02T00:00:00Z' {outside_text()}",
        f"line 4: bucket_end '9999-12-31T00:00:00Z' {outside_text()}",
        "line 5: bucket_start is in the future",
        f"line 5: bucket_end '9999-12-31T00:00:00Z' {outside_text()}",
        f"line 6: bucket_start '0001-01-01T00:30:00+01:00' {outside_text()}",
        f"line 7: bucket_start '1999-12-31T00:00:00Z' {outside_text()}",
        f"line 7: bucket_end '2000-01-01T00:00:00Z' {outside_text()}",  # the bucket is 1999-12-31
        f"line 8: bucket_end '{after}T00:00:01Z' {outside_text()}",
    ]


def outside_text() -> str:
    return f"is outside the dates Doow accepts ({bounds_text()})"


def test_the_import_page_refuses_rows_outside_with_line_numbers(
    admin_client, authress, django_capture_on_commit_callbacks
):
    upload = io.BytesIO(hostile_doow_file().encode())
    upload.name = "hostile.csv"
    with django_capture_on_commit_callbacks(execute=True):  # the import job runs on commit
        response = admin_client.post(
            reverse("integrations:import_usage", kwargs={"ws": "acme", "pk": authress.pk}),
            {"file": upload, "format": "auto"},
            **HX,
        )
    assert response.status_code == 200
    job = authress.usage_imports.get()
    status = admin_client.get(
        reverse("integrations:import_status", kwargs={"ws": "acme", "pk": authress.pk, "job": job.pk}),
        {"watching": "1"},
        **HX,
    )
    page = html.unescape(status.content.decode())
    for problem in expected_doow_problems():
        assert problem in page
    assert not UsageRecord.objects.exists()


def test_import_usage_refuses_rows_outside_with_line_numbers(authress, tmp_path):
    path = tmp_path / "hostile.csv"
    path.write_text(hostile_doow_file())
    with pytest.raises(CommandError) as info:
        call_command("import_usage", str(authress.pk), str(path), stdout=io.StringIO())
    assert str(info.value).splitlines()[1:] == [f"  {p}" for p in expected_doow_problems()]
    assert not UsageRecord.objects.exists()


def test_an_authress_file_dated_year_1_or_9999_is_refused(authress):
    text = "date,resource,operation,calls\n2026-01-01,/v1/a,GET,1\n0001-01-01,/v1/a,GET,1\n9999-12-31,/v1/a,GET,1\n"
    with pytest.raises(UsageImportError) as info:
        usage_import_file(integration=authress, stream=io.BytesIO(text.encode()), source="portal.csv")
    assert [str(p) for p in info.value.problems] == [
        f"line 3: date '0001-01-01' {outside_text()}",
        "line 4: date is in the future",
    ]
    assert not UsageRecord.objects.exists()


def test_an_import_within_the_range_is_stored(authress):
    text = HEADER + "\n" + doow_row("2000-01-01T00:00:00Z", "2000-01-02T00:00:00Z") + "\n"
    assert usage_import_csv(integration=authress, data=text.encode()).stored == 1


# ---------------------------------------------------------------- license dates
LICENSE = {"plan_name": "Enterprise", "kind": "pay_as_you_go", "start_date": "2026-01-01", "end_date": "", "committed_amount": "",
           "currency": "", "seat_count": ""}  # fmt: skip


@pytest.fixture
def app(workspace) -> Application:
    return Application.objects.create(workspace=workspace, name="Chatbot")


@pytest.mark.parametrize(
    ("field", "day"), [("start_date", "0001-01-01"), ("end_date", "9999-12-31"), ("start_date", "1999-12-31")]
)
def test_a_license_dated_outside_is_a_form_error(admin_client, workspace, app, field, day):
    url = reverse("usage_settings:license_add", kwargs={"ws": "acme"})
    response = admin_client.post(url, {**LICENSE, "application": app.pk, field: day})
    assert response.status_code == 200
    expected = f"{day} is outside the dates Doow accepts ({bounds_text(years=10)})."
    assert response.context["form"].errors[field] == [expected]
    assert not License.objects.exists()


def test_a_license_may_end_years_ahead(admin_client, workspace, app):
    end = years_after(today(), 10)
    url = reverse("usage_settings:license_add", kwargs={"ws": "acme"})
    assert admin_client.post(url, {**LICENSE, "application": app.pk, "end_date": end.isoformat()}).status_code == 302
    lic = License.objects.get()
    assert lic.end_date == end
    # Its page fills the days of its period only up to today.
    page = admin_client.get(reverse("usage:license", kwargs={"ws": "acme", "pk": lic.pk}))
    assert page.status_code == 200


def test_the_admin_refuses_license_dates_outside_too(superuser_client, workspace, app):
    data = {"application": app.pk, "plan_name": "Enterprise", "kind": "pay_as_you_go", "start_date": "0001-01-01",
            "end_date": "9999-12-31", "currency": "USD"}  # fmt: skip
    response = superuser_client.post(reverse("admin:usage_license_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"start_date", "end_date"}
    assert not License.objects.exists()


def test_an_inline_license_on_its_application_is_bounded_too(superuser_client, workspace, app):
    data = {
        "workspace": workspace.pk, "name": app.name, "vendor": "", "owner": "", "category": "",
        "licenses-TOTAL_FORMS": "1", "licenses-INITIAL_FORMS": "0", "licenses-MIN_NUM_FORMS": "0", "licenses-MAX_NUM_FORMS": "1000",
        "licenses-0-application": app.pk, "licenses-0-plan_name": "Seats", "licenses-0-kind": "seats",
        "licenses-0-start_date": "0001-01-01", "licenses-0-currency": "USD", "licenses-0-seat_count": "10",
    }  # fmt: skip
    response = superuser_client.post(reverse("admin:usage_application_change", args=[app.pk]), data)
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.errors[0]["start_date"] == [
        f"0001-01-01 is outside the dates Doow accepts ({bounds_text(years=10)})."
    ]
    assert not License.objects.exists()


# The usage list has no date hierarchy (a month filter instead, which refuses 9999-12 the same
# way: usage/tests/test_partitions.py).
@pytest.mark.parametrize(
    ("changelist", "field"), [("integrations_syncrun", "started_at"), ("integrations_integrationevent", "created_at")]
)
def test_the_admin_date_hierarchies_refuse_year_9999_instead_of_a_500(superuser_client, usage, changelist, field):
    make_record(usage, datetime(9999, 12, 31, tzinfo=UTC), "cost", "1", "USD")
    url = reverse(f"admin:{changelist}_changelist")
    assert superuser_client.get(url).status_code == 200
    for params in ({"year": "9999"}, {"year": "9999", "month": "12"}, {"year": "9999", "month": "12", "day": "31"}):
        response = superuser_client.get(url, {f"{field}__{key}": value for key, value in params.items()})
        # The admin's answer to a bad lookup: back to the list with ?e=1.
        assert (response.status_code, response.get("Location")) == (302, f"{url}?e=1"), params


# ---------------------------------------------------------------- stored before the bounds
@pytest.mark.parametrize("kind", [License.Kind.COMMITMENT, License.Kind.PAY_AS_YOU_GO])
def test_a_license_saved_before_the_bounds_still_renders_a_bounded_chart(member_client, workspace, usage, kind):
    app = Application.objects.create(workspace=workspace, name="Chatbot")
    lic = License.objects.create(workspace=workspace, application=app, plan_name="Legacy", kind=kind, start_date=date(2026, 1, 1),
                                 end_date=date.max, committed_amount=Decimal(100))  # fmt: skip
    usage.usage_records.update(application=app, license=lic)
    rollups.refresh_integration(usage.pk)  # as re-attribution does
    make_record(usage, datetime(9999, 12, 30, tzinfo=UTC), "cost", "1", "USD", application=app, license=lic)
    page = member_client.get(reverse("usage:license", kwargs={"ws": "acme", "pk": lic.pk}))
    assert page.status_code == 200
    if kind == License.Kind.COMMITMENT:  # the burn chart: one point a day, at most ten years ahead
        days = page.context["chart"]["labels"]
        assert days[0] == "2026-01-01" and days[-1] == years_after(today(), 10).isoformat()
    assert member_client.get(reverse("usage:licenses", kwargs={"ws": "acme"})).status_code == 200


# ---------------------------------------------------------------- the explorer's presets
@pytest.mark.parametrize(
    "preset, today, expected",
    [
        ("this_month", date(2026, 12, 6), (date(2026, 12, 1), date(2026, 12, 6))),
        ("last_month", date(2026, 12, 6), (date(2026, 11, 1), date(2026, 11, 30))),
        ("last_month", date(2027, 1, 15), (date(2026, 12, 1), date(2026, 12, 31))),  # across a year
        ("last_month", date(2028, 3, 31), (date(2028, 2, 1), date(2028, 2, 29))),  # a leap February
        ("last_30_days", date(2027, 3, 1), (date(2027, 1, 31), date(2027, 3, 1))),
        ("this_quarter", date(2026, 12, 6), (date(2026, 10, 1), date(2026, 12, 6))),
        ("this_quarter", date(2027, 3, 28), (date(2027, 1, 1), date(2027, 3, 28))),
        ("all", date(2026, 12, 6), (None, None)),
    ],
)
def test_presets_are_calendar_periods(preset, today, expected):
    assert preset_range(preset, today) == expected


@pytest.mark.parametrize(
    "first, last, expected",
    [
        # month to date against the same days of the month before, clamped at its end
        ((2026, 12, 1), (2026, 12, 6), ((2026, 11, 1), (2026, 11, 6))),
        ((2027, 3, 1), (2027, 3, 30), ((2027, 2, 1), (2027, 2, 28))),
        # a whole month against the whole month before
        ((2027, 3, 1), (2027, 3, 31), ((2027, 2, 1), (2027, 2, 28))),
        ((2026, 11, 1), (2026, 11, 30), ((2026, 10, 1), (2026, 10, 31))),
        # a quarter to date against the same days of the quarter before
        ((2026, 10, 1), (2026, 12, 6), ((2026, 7, 1), (2026, 9, 6))),
        ((2027, 1, 1), (2027, 3, 28), ((2026, 10, 1), (2026, 12, 28))),
        # any other range: the equal-length period just before
        ((2026, 11, 7), (2026, 12, 6), ((2026, 10, 8), (2026, 11, 6))),
        ((2026, 12, 6), (2026, 12, 6), ((2026, 12, 5), (2026, 12, 5))),
    ],
)
def test_the_previous_period(first, last, expected):
    assert previous_range(date(*first), date(*last)) == (date(*expected[0]), date(*expected[1]))


def test_an_unknown_preset_is_refused():
    with pytest.raises(ValueError):
        preset_range("next_decade", date(2026, 12, 6))
