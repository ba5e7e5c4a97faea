"""usage/queries.py: filters narrow, sums are right (hand-computed), periods bucket, units stay
apart, and license consumption respects its period and projects at the current rate."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from integrations.testing import make_integration
from usage import queries
from usage.models import Application, License, UsageRecord
from usage.testing import make_license, make_record

D = Decimal


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def data(workspace, other_workspace):
    """Two providers, two applications, one license; rows hand-placed for hand-computed sums."""
    openai = make_integration(workspace)
    anthropic = make_integration(workspace, "Anthropic", "anthropic")
    chat = Application.objects.create(workspace=workspace, name="ChatGPT")
    claude = Application.objects.create(workspace=workspace, name="Claude")
    lic = make_license(
        chat, "Scale", License.Kind.COMMITMENT, date(2026, 1, 1), end_date=date(2026, 1, 31), committed_amount=D("100")
    )
    rows = {
        "a": make_record(
            openai, at("2026-01-05", 0), "cost", "1.50", model="gpt-4o", project="web", application=chat, license=lic
        ),
        "b": make_record(
            openai,
            at("2026-01-05", 23),
            "cost",
            "2.25",
            model="gpt-4o-mini",
            project="web",
            application=chat,
            license=lic,
        ),
        "c": make_record(
            openai,
            at("2026-01-06", 0),
            "input_tokens",
            "1000",
            "tokens",
            model="gpt-4o",
            project="batch",
            application=chat,
        ),
        "d": make_record(anthropic, at("2026-01-06", 12), "cost", "4", model="claude", region="us", application=claude),
        "e": make_record(anthropic, at("2026-01-12", 1), "cost", "3", "EUR", model="claude", region="eu"),
        "f": make_record(anthropic, at("2026-02-02", 1), "input_tokens", "500", "tokens", model="claude", region="eu"),
    }
    theirs = make_integration(other_workspace, "Globex OpenAI")
    make_record(theirs, at("2026-01-05"), "cost", "999", model="gpt-4o")
    return {
        "ws": workspace,
        "openai": openai,
        "anthropic": anthropic,
        "chat": chat,
        "claude": claude,
        "license": lic,
        **rows,
    }


def ids(qs) -> set[int]:
    return set(qs.values_list("pk", flat=True))


def pks(data, *names: str) -> set[int]:
    return {data[n].pk for n in names}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "abcdef"),
        ({"date_from": "2026-01-06"}, "cdef"),
        ({"date_to": "2026-01-05"}, "ab"),  # 23:00 on the last day is in, midnight after is out
        ({"date_from": "2026-01-06", "date_to": "2026-01-12"}, "cde"),
        ({"provider": "anthropic"}, "def"),
        ({"model": "gpt-4o"}, "ac"),
        ({"project": "web"}, "ab"),
        ({"region": "eu"}, "ef"),
        ({"metric": "input_tokens"}, "cf"),
        ({"application": "none"}, "ef"),
        ({"license": "none"}, "cdef"),
        ({"provider": "openai", "metric": "cost"}, "ab"),
    ],
)
def test_each_filter_narrows_to_the_matching_rows(data, params, expected):
    assert ids(queries.filtered(data["ws"], params)) == pks(data, *expected)


def test_id_filters_select_by_id(data):
    ws = data["ws"]
    assert ids(queries.filtered(ws, {"application": str(data["claude"].pk)})) == pks(data, "d")
    assert ids(queries.filtered(ws, {"license": str(data["license"].pk)})) == pks(data, "a", "b")
    assert ids(queries.filtered(ws, {"integration": str(data["anthropic"].pk)})) == pks(data, "d", "e", "f")


def test_values_that_do_not_parse_are_no_filter(data):
    assert ids(queries.filtered(data["ws"], {"date_from": "yesterday", "application": "x;drop", "license": ""})) == pks(
        data, *"abcdef"
    )
    assert ids(queries.filtered(data["ws"], {"integration": "²", "license": "9" * 40, "date_to": "2026-02-30"})) == pks(
        data, *"abcdef"
    )


def test_another_workspaces_rows_never_match(data, other_workspace):
    assert ids(queries.filtered(data["ws"], {"model": "gpt-4o"})) == pks(data, "a", "c")
    assert queries.filtered(data["ws"], {}).filter(workspace=other_workspace).count() == 0


def test_the_date_range_uses_aware_bounds_not_a_date_cast(data):
    sql = str(queries.filtered(data["ws"], {"date_from": "2026-01-06", "date_to": "2026-01-12"}).query)
    assert "django_datetime_cast_date" not in sql and "::date" not in sql


def test_totals_by_provider_are_hand_computed_sums_per_metric_and_unit(data):
    totals = {
        (t.group, t.metric, t.unit): (t.total, t.rows)
        for t in queries.totals(queries.daily(data["ws"], {}), "provider")
    }
    assert totals == {
        ("openai", "cost", "USD"): (D("3.75"), 2),
        ("openai", "input_tokens", "tokens"): (D("1000"), 1),
        ("anthropic", "cost", "USD"): (D("4"), 1),
        ("anthropic", "cost", "EUR"): (D("3"), 1),  # another currency: its own line, never added
        ("anthropic", "input_tokens", "tokens"): (D("500"), 1),
    }


def test_totals_by_application_put_unattributed_rows_under_none(data):
    totals = {
        (t.group, t.metric, t.unit): t.total for t in queries.totals(queries.daily(data["ws"], {}), "application")
    }
    assert totals == {
        (data["chat"].pk, "cost", "USD"): D("3.75"),
        (data["chat"].pk, "input_tokens", "tokens"): D("1000"),
        (data["claude"].pk, "cost", "USD"): D("4"),
        (None, "cost", "EUR"): D("3"),
        (None, "input_tokens", "tokens"): D("500"),
    }


def test_totals_without_a_split_still_keep_units_apart(data):
    totals = {(t.metric, t.unit): t.total for t in queries.totals(queries.daily(data["ws"], {}))}
    assert totals == {("cost", "USD"): D("7.75"), ("cost", "EUR"): D("3"), ("input_tokens", "tokens"): D("1500")}


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (
            "day",
            {
                (date(2026, 1, 5), "USD"): D("3.75"),
                (date(2026, 1, 6), "USD"): D("4"),
                (date(2026, 1, 12), "EUR"): D("3"),
            },
        ),
        # 2026-01-05 is a Monday: the 5th and 6th share a week, the 12th starts the next one.
        ("week", {(date(2026, 1, 5), "USD"): D("7.75"), (date(2026, 1, 12), "EUR"): D("3")}),
        ("month", {(date(2026, 1, 1), "USD"): D("7.75"), (date(2026, 1, 1), "EUR"): D("3")}),
    ],
)
def test_series_buckets_one_metric_by_period(data, period, expected):
    points = queries.series(queries.daily(data["ws"], {}), metric="cost", period=period)
    assert {(p.period, p.unit): p.total for p in points} == expected
    assert [p.period for p in points] == sorted(p.period for p in points)


def test_series_split_by_group(data):
    points = queries.series(queries.daily(data["ws"], {}), metric="cost", period="day", group="model")
    assert {(p.period, p.group): p.total for p in points if p.unit == "USD"} == {
        (date(2026, 1, 5), "gpt-4o"): D("1.50"),
        (date(2026, 1, 5), "gpt-4o-mini"): D("2.25"),
        (date(2026, 1, 6), "claude"): D("4"),
    }


def test_unknown_group_or_period_is_refused(data):
    records = queries.daily(data["ws"], {})
    with pytest.raises(ValueError):
        queries.totals(records, "api_key")
    with pytest.raises(ValueError):
        queries.series(records, metric="cost", period="hour")


def test_period_starts_fill_gaps_and_cross_years():
    assert queries.period_starts(date(2025, 12, 30), date(2026, 1, 2), "day") == [
        date(2025, 12, 30),
        date(2025, 12, 31),
        date(2026, 1, 1),
        date(2026, 1, 2),
    ]
    assert queries.period_starts(date(2026, 1, 7), date(2026, 1, 19), "week") == [
        date(2026, 1, 5),
        date(2026, 1, 12),
        date(2026, 1, 19),
    ]
    assert queries.period_starts(date(2025, 11, 15), date(2026, 2, 1), "month") == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]


# ---------------------------------------------------------------- licenses
@pytest.fixture
def commitment(workspace):
    app = Application.objects.create(workspace=workspace, name="ChatGPT")
    lic = make_license(
        app,
        "Scale",
        License.Kind.COMMITMENT,
        date(2026, 3, 1),
        end_date=date(2026, 3, 31),
        committed_amount=D("1000"),
        currency="USD",
    )
    integration = make_integration(workspace)

    def add(day: str, quantity: str, metric: str = "cost", unit: str = "USD", hour: int = 0, **fields) -> UsageRecord:
        return make_record(integration, at(day, hour), metric, quantity, unit, license=lic, application=app, **fields)

    return lic, add


def test_consumption_counts_only_rows_within_the_period(commitment):
    lic, add = commitment
    add("2026-02-28", "500", hour=23)  # the day before: out
    add("2026-03-01", "10")  # first day, midnight: in
    add("2026-03-31", "20", hour=23)  # last day, 23:00: in
    add("2026-04-01", "700")  # the day after: out
    c = queries.license_consumption(lic, today=date(2026, 4, 10))
    assert c.spent == D("30")
    assert c.rows == 2
    assert c.status == "ended"
    assert c.projected == D("30")  # over: the final figure
    assert c.percent_used == pytest.approx(3.0)


def test_consumption_keeps_other_currencies_and_units_out_of_the_spend(commitment):
    lic, add = commitment
    add("2026-03-02", "100")
    add("2026-03-02", "80", unit="EUR", model="billed-in-eur")
    add("2026-03-02", "5000", metric="input_tokens", unit="tokens")
    c = queries.license_consumption(lic, today=date(2026, 3, 2))
    assert c.spent == D("100")
    assert [(t.metric, t.unit, t.total) for t in c.other_costs] == [("cost", "EUR", D("80"))]
    assert [(t.metric, t.unit, t.total) for t in c.other_totals] == [("input_tokens", "tokens", D("5000"))]
    assert {(m.metric, m.unit): m.total for m in c.monthly} == {
        ("cost", "USD"): D("100"),
        ("cost", "EUR"): D("80"),
        ("input_tokens", "tokens"): D("5000"),
    }


def test_projection_extends_the_average_daily_rate_to_the_end_of_the_period(commitment):
    lic, add = commitment
    # Ten days elapsed (1st–10th), 200 spent: 20 a day; 21 days remain after the 10th.
    add("2026-03-01", "50")
    add("2026-03-04", "100")
    add("2026-03-10", "50", hour=8)
    c = queries.license_consumption(lic, today=date(2026, 3, 10))
    assert c.status == "active"
    assert (c.days_elapsed, c.days_remaining, c.days_total) == (10, 21, 31)
    assert c.rate_days == 10
    assert c.daily_rate == D("20")
    assert c.projected == D("200") + D("20") * 21 == D("620")
    assert c.projected_percent == pytest.approx(62.0)
    assert c.remaining == D("800")
    cumulative = c.cumulative()
    assert cumulative[0] == (date(2026, 3, 1), D("50"))
    assert cumulative[3] == (date(2026, 3, 4), D("150"))
    assert cumulative[-1] == (date(2026, 3, 10), D("200"))
    assert len(c.daily) == 10  # every day up to today, gaps filled with 0


def test_the_rate_is_the_average_of_the_last_30_days(workspace):
    app = Application.objects.create(workspace=workspace, name="App")
    lic = make_license(
        app, "Year", License.Kind.COMMITMENT, date(2026, 1, 1), end_date=date(2026, 12, 31), committed_amount=D("10000")
    )
    integration = make_integration(workspace)
    make_record(integration, at("2026-01-02"), "cost", "3000", license=lic)  # long ago: outside the rate window
    make_record(integration, at("2026-03-20"), "cost", "300", license=lic)  # within the last 30 days of 2026-04-10
    c = queries.license_consumption(lic, today=date(2026, 4, 10))
    assert c.rate_days == 30
    assert c.daily_rate == D("10")
    assert c.projected == D("3300") + D("10") * (date(2026, 12, 31) - date(2026, 4, 10)).days


def test_an_open_ended_license_has_a_rate_but_no_end_to_project_to(workspace):
    app = Application.objects.create(workspace=workspace, name="Bedrock")
    lic = make_license(app, "On demand", License.Kind.PAY_AS_YOU_GO, date(2026, 5, 1))
    make_record(make_integration(workspace), at("2026-05-02"), "cost", "40", license=lic)
    c = queries.license_consumption(lic, today=date(2026, 5, 4))
    assert c.daily_rate == D("10")
    assert c.projected is None
    assert c.percent_used is None


def test_an_upcoming_license_has_no_rate_and_no_days(commitment):
    lic, _ = commitment
    c = queries.license_consumption(lic, today=date(2026, 2, 1))
    assert c.status == "upcoming"
    assert (c.spent, c.rows, c.daily, c.daily_rate, c.projected) == (D("0"), 0, [], None, None)


def test_license_list_annotations_match_the_detail_figures(commitment, workspace):
    lic, add = commitment
    add("2026-02-28", "500", hour=23)
    add("2026-03-15", "25")
    add("2026-03-15", "7", unit="EUR", model="billed-in-eur")
    add("2026-03-16", "99", metric="requests", unit="requests")
    other_app = Application.objects.create(workspace=workspace, name="Idle")
    idle = make_license(other_app, "Seats", License.Kind.SEATS, date(2026, 1, 1), seat_count=5)
    listed = {row.pk: row for row in queries.licenses_with_consumption(workspace)}
    assert listed[lic.pk].spent == D("25") == queries.license_consumption(lic, today=date(2026, 4, 1)).spent
    assert listed[lic.pk].attributed_rows == 3
    assert listed[idle.pk].spent is None
    assert listed[idle.pk].attributed_rows == 0


def test_dimension_values_list_each_columns_values_once(data, monkeypatch):
    expected = {
        "metric": ["cost", "input_tokens"],
        "model": ["claude", "gpt-4o", "gpt-4o-mini"],
        "region": ["eu", "us"],
    }
    assert queries.dimension_values(data["ws"], ("metric", "model", "region")) == expected
    monkeypatch.setattr(queries, "_COMBINATIONS_CAP", 2)  # too many combinations: one query per column
    assert queries.dimension_values(data["ws"], ("metric", "model", "region")) == expected
