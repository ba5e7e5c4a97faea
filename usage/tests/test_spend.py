"""usage/spend.py: the Definitions (spend, month to date, same days last month, run-rate
forecast) on synthetic daily rollups, in the workspace's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Workspace
from integrations.models import Integration
from integrations.testing import make_integration
from usage import rollups, spend
from usage.models import Application, UsageDaily

D = Decimal


def put(integration, day: date, metric: str, quantity, unit: str = "USD", model: str = "", application=None) -> None:
    UsageDaily.objects.create(
        workspace_id=integration.workspace_id,
        integration=integration,
        provider=integration.provider,
        day=day,
        model=model,
        metric=metric,
        unit=unit,
        quantity=D(str(quantity)),
        rows=1,
        application=application,
    )
    rollups.refresh_derived(integration.pk, [day])  # the narrow rollup pages may read instead


# ------------------------------------------------------------------ periods
@pytest.mark.parametrize(
    ("today", "previous"),
    [
        (date(2027, 3, 31), (date(2027, 2, 1), date(2027, 2, 28))),  # 31 days elapsed, February has 28
        (date(2028, 3, 31), (date(2028, 2, 1), date(2028, 2, 29))),  # leap year
        (date(2027, 3, 28), (date(2027, 2, 1), date(2027, 2, 28))),
        (date(2027, 3, 1), (date(2027, 2, 1), date(2027, 2, 1))),
        (date(2027, 1, 31), (date(2026, 12, 1), date(2026, 12, 31))),  # across the year
        (date(2026, 5, 31), (date(2026, 4, 1), date(2026, 4, 30))),  # 31st against a 30-day month
    ],
)
def test_same_days_last_month_is_clamped(today, previous):
    assert spend.Periods(today).previous == previous
    assert spend.Periods(today).mtd == (today.replace(day=1), today)


def test_run_rate_window_and_days_left():
    periods = spend.Periods(date(2026, 12, 6))
    assert periods.run_rate == (date(2026, 11, 29), date(2026, 12, 5))  # 7 complete days, today excluded
    assert periods.days_left == 25
    assert spend.Periods(date(2027, 2, 28)).days_left == 0
    assert spend.Periods(date(2026, 12, 6)).span == (date(2026, 11, 1), date(2026, 12, 6))
    assert spend.Periods(date(2026, 12, 31)).span == (date(2026, 11, 1), date(2026, 12, 31))
    assert spend.Periods(date(2027, 3, 2)).span == (date(2027, 2, 1), date(2027, 3, 2))
    assert spend.Periods(date(2027, 3, 3)).run_rate == (date(2027, 2, 24), date(2027, 3, 2))


@pytest.mark.parametrize(
    ("zone", "now", "today"),
    [
        ("UTC", datetime(2026, 12, 6, 12, tzinfo=UTC), date(2026, 12, 6)),
        ("Pacific/Auckland", datetime(2026, 12, 6, 12, tzinfo=UTC), date(2026, 12, 7)),  # NZDT, UTC+13
        ("Pacific/Auckland", datetime(2026, 11, 30, 10, 59, tzinfo=UTC), date(2026, 11, 30)),
        ("Pacific/Auckland", datetime(2026, 11, 30, 11, 0, tzinfo=UTC), date(2026, 12, 1)),  # a new month there
        ("America/Los_Angeles", datetime(2026, 12, 1, 7, 59, tzinfo=UTC), date(2026, 11, 30)),
        # DST: Paris leaves summer time on 2026-10-25; 22:30 UTC on the 24th is 00:30 CEST on the 25th
        ("Europe/Paris", datetime(2026, 10, 24, 22, 30, tzinfo=UTC), date(2026, 10, 25)),
        ("Europe/Paris", datetime(2026, 10, 25, 22, 59, tzinfo=UTC), date(2026, 10, 25)),  # 23:59 CET
        ("Europe/Paris", datetime(2026, 10, 25, 23, 0, tzinfo=UTC), date(2026, 10, 26)),
    ],
)
def test_today_is_the_workspace_local_day(workspace, zone, now, today):
    workspace.time_zone = zone
    assert spend.periods_for(workspace, now).today == today


# ------------------------------------------------------------------ the spend rule
def test_reported_cost_wins_per_integration_day_and_estimates_fill_the_rest(workspace):
    reporting = make_integration(workspace, "OpenAI")
    silent = make_integration(workspace, "Groq", provider="groq")
    day1, day2 = date(2026, 12, 1), date(2026, 12, 2)
    put(reporting, day1, "cost", "10.00")
    put(reporting, day1, "estimated_cost", "12.00", model="gpt-4o")  # list price beside an invoice: not added
    put(reporting, day2, "estimated_cost", "3.00", model="gpt-4o")  # cost not reported yet that day
    put(silent, day1, "estimated_cost", "4.50", model="llama")
    put(silent, day1, "input_tokens", "1000", unit="tokens", model="llama")  # volume is never spend
    put(reporting, day1, "cost", "7.00", unit="EUR")

    rows = spend.spend_by_day(workspace, day1, day2)
    totals = spend.total(rows)
    assert set(totals) == {"USD", "EUR"}  # never added across currencies
    assert totals["USD"].total == D("17.50")  # 10 reported + 3 + 4.50 estimated
    assert totals["USD"].estimated == D("7.50")
    assert totals["USD"].reported == D("10.00")
    assert totals["EUR"].total == D("7.00") and totals["EUR"].estimated == 0
    assert [a.currency for a in totals.ordered()] == ["USD", "EUR"]

    by_integration = spend.total(
        r for r in spend.spend_by_day(workspace, day1, day2, by="integration") if r.key == silent.pk
    )
    assert by_integration["USD"].total == D("4.50")
    by_model = {(r.key, r.day): r.amount for r in spend.spend_by_day(workspace, day1, day2, by="model")}
    assert by_model[("gpt-4o", day2)] == D("3.00")
    assert ("gpt-4o", day1) not in by_model


def test_uncounted_duplicate_integration_adds_nothing(workspace):
    first = make_integration(workspace, "OpenAI", account_key="openai:org-1")
    make_integration(workspace, "OpenAI again", account_key="openai:org-1")  # same account, whole: not counted
    for integration in Integration.objects.filter(workspace=workspace):
        put(integration, date(2026, 12, 1), "cost", "5.00")
    assert spend.total(spend.spend_by_day(workspace, date(2026, 12, 1), date(2026, 12, 6)))["USD"].total == D("5.00")
    assert {r.key for r in spend.spend_by_day(workspace, date(2026, 12, 1), date(2026, 12, 6), "integration")} == {
        first.pk
    }


def test_other_workspace_is_not_read(workspace, other_workspace):
    put(make_integration(other_workspace, "Theirs"), date(2026, 12, 1), "cost", "99")
    assert spend.spend_by_day(workspace, date(2026, 12, 1), date(2026, 12, 6)) == []


# ------------------------------------------------------------------ the overview
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def test_overview_mtd_previous_and_forecast(workspace):
    openai = make_integration(workspace, "OpenAI")
    groq = make_integration(workspace, "Groq", provider="groq")
    app = Application.objects.create(workspace=workspace, name="Support bot")
    for d in range(1, 31):  # November: 2.00 reported per day
        put(openai, date(2026, 11, d), "cost", "2.00", model="gpt-4o")
    for d in range(1, 7):  # December 1..6: 3.00 reported + 1.00 estimated per day
        put(openai, date(2026, 12, d), "cost", "3.00", model="gpt-4o")
        put(groq, date(2026, 12, d), "estimated_cost", "1.00", model="llama", application=app)

    result = spend.overview(workspace, now=NOW)
    assert result.periods.today == date(2026, 12, 6)
    assert result.mtd["USD"].total == D("24.00")
    assert result.mtd["USD"].estimated == D("6.00")
    assert result.previous["USD"].total == D("12.00")  # November 1..6
    assert result.delta("USD") == D("12.00")
    assert result.percent("USD") == D("100")
    # last 7 complete days: Nov 29, 30 (2.00 each) and Dec 1..5 (4.00 each) = 24.00 → 24/7 a day
    assert result.run_rate["USD"].total == D("24.00")
    expected = D("24.00") + D("24.00") / 7 * 25
    assert result.forecast["USD"].total == expected
    assert result.forecast["USD"].estimated == D("6.00") + D("5.00") / 7 * 25
    assert {r.day for r in result.daily} == {date(2026, 12, d) for d in range(1, 7)}
    assert {r.key for r in result.daily} == {"openai", "groq"}
    models = {c.key: c for c in result.top["model"]}
    assert models["gpt-4o"].current == D("18.00") and models["gpt-4o"].previous == D("12.00")
    assert models["gpt-4o"].percent == D("50")
    assert models["llama"].previous == 0 and models["llama"].percent is None
    assert result.top["model"][0].key == "gpt-4o"  # largest first
    apps = {c.key: c for c in result.top["application"]}
    assert apps[app.pk].current == D("6.00") and apps[app.pk].estimated == D("6.00")


def test_overview_in_auckland_counts_its_own_calendar(workspace):
    workspace.time_zone = "Pacific/Auckland"
    workspace.save()
    openai = make_integration(workspace)
    put(openai, date(2026, 12, 7), "cost", "5.00")  # today in Auckland (NOW is 01:00 on the 7th there)
    put(openai, date(2026, 11, 7), "cost", "1.00")  # inside same days last month (1..7 Nov)
    put(openai, date(2026, 11, 8), "cost", "100.00")  # outside
    result = spend.overview(workspace, now=NOW)
    assert result.periods.today == date(2026, 12, 7)
    assert result.mtd["USD"].total == D("5.00")
    assert result.previous["USD"].total == D("1.00")


def test_overview_on_the_31st_compares_with_all_of_february(workspace):
    openai = make_integration(workspace)
    put(openai, date(2027, 2, 28), "cost", "1.00")
    put(openai, date(2027, 3, 31), "cost", "2.00")
    result = spend.overview(workspace, now=datetime(2027, 3, 31, 12, tzinfo=UTC))
    assert result.previous["USD"].total == D("1.00")
    assert result.forecast["USD"].total == D("2.00")  # no day left
    assert result.periods.days_left == 0


def test_overview_costs_a_fixed_number_of_queries(workspace):
    openai = make_integration(workspace)
    put(openai, date(2026, 12, 1), "cost", "1.00", model="a")
    # A fresh workspace object each time, as each request has: the page's lookup of the
    # integrations no total may add (duplicate accounts) is counted too.
    fresh = Workspace.objects.get(pk=workspace.pk)
    with CaptureQueriesContext(connection) as few:
        spend.overview(fresh, now=NOW)
    for i in range(3):
        other = make_integration(workspace, f"More {i}", provider="groq")
        app = Application.objects.create(workspace=workspace, name=f"App {i}")
        for d in range(1, 31):
            put(other, date(2026, 11, d), "estimated_cost", "1.00", model=f"m{i}-{d % 4}", application=app)
    fresh = Workspace.objects.get(pk=workspace.pk)
    with CaptureQueriesContext(connection) as many:
        result = spend.overview(fresh, now=NOW)
    assert len(many.captured_queries) == len(few.captured_queries) <= 4
    assert result.previous["USD"].total == D("18.00")  # 3 integrations × Nov 1..6


def test_unpriced_lists_volume_without_spend(workspace):
    openai = make_integration(workspace, "OpenAI")
    replicate = make_integration(workspace, "Replicate", provider="replicate")
    day = date(2026, 12, 2)
    put(openai, day, "cost", "1.00")
    put(openai, day, "input_tokens", "500", unit="tokens", model="gpt-4o")  # priced by the reported cost
    put(replicate, day, "estimated_cost", "0.50", model="flux")
    put(replicate, day, "compute_seconds", "30", unit="seconds", model="flux")  # priced by an estimate
    put(replicate, day, "compute_seconds", "120", unit="seconds", model="mystery")
    put(replicate, date(2026, 12, 3), "compute_seconds", "60", unit="seconds", model="mystery")
    listed = spend.unpriced(workspace, date(2026, 12, 1), date(2026, 12, 6))
    assert listed == [
        {
            "provider": "replicate",
            "model": "mystery",
            "metric": "compute_seconds",
            "unit": "seconds",
            "quantity": D("180"),
        }
    ]
