"""The aggregating pages read the daily rollups, never aggregate the hourly base table; their
days are the workspace's local days; the raw-row views page through the base table without a
COUNT(*) or a deep OFFSET; the integration list paginates."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import Integration
from usage import queries, rollups
from usage.models import Application, License, UsageRecord
from usage.tests.test_queries import data, make_integration  # noqa: F401 (data is a fixture)

D = Decimal
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def bulk_rows(
    integration: Integration, hours: int, *, start: datetime = T0, models: tuple[str, ...] = ("gpt-4o", "o1"), **fields
) -> None:
    """`hours` hourly rows per model, cost 1 each, then the rollups recomputed as a write path does."""
    UsageRecord.objects.bulk_create(
        UsageRecord(
            workspace_id=integration.workspace_id, integration=integration, provider=integration.provider,
            bucket_start=start + timedelta(hours=h), bucket_end=start + timedelta(hours=h + 1), model=model,
            metric="cost", quantity=D(1), unit="USD", **fields,
        )
        for h in range(hours) for model in models
    )  # fmt: skip
    rollups.refresh_integration(integration.pk)


def aggregates_over_base_table(captured) -> list[str]:
    """The queries that aggregate usage_usagerecord (SUM, COUNT, MIN, MAX, GROUP BY, DISTINCT)."""
    out = []
    for query in captured:
        sql = query["sql"].upper()
        if '"USAGE_USAGERECORD"' in sql and re.search(r"\b(SUM|COUNT|MIN|MAX|AVG)\(|GROUP BY|DISTINCT", sql):
            out.append(query["sql"])
    return out


@pytest.fixture
def usage(workspace):
    integration = make_integration(workspace)
    app = Application.objects.create(workspace=workspace, name="Chat")
    lic = License.objects.create(workspace=workspace, application=app, plan_name="Scale", kind=License.Kind.COMMITMENT,
                                 start_date=date(2026, 3, 1), end_date=date(2026, 12, 31), committed_amount=D("500"))  # fmt: skip
    bulk_rows(integration, 30, application=app, license=lic)
    bulk_rows(make_integration(workspace, "Anthropic", "anthropic"), 30, models=("claude",))
    return {"integration": integration, "application": app, "license": lic}


# ---------------------------------------------------------------- no aggregate over base rows
def test_no_aggregating_page_aggregates_the_base_table(admin_client, workspace, usage):
    integration, lic = usage["integration"], usage["license"]
    explorer = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    pages = [
        explorer,
        f"{explorer}?date_from=",
        f"{explorer}?by=model&period=week&date_from=2026-03-02&model=o1",
        f"{explorer}?by=application&period=month&page=2&date_from=",
        reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": integration.pk}),
        reverse("integrations:usage", kwargs={"ws": workspace.slug, "pk": integration.pk})
        + "?model=o1&page=2&view=rows",
        reverse("integrations:usage", kwargs={"ws": workspace.slug, "pk": integration.pk}) + "?model=o1",  # the summary
        reverse("integrations:list", kwargs={"ws": workspace.slug}),
        reverse("usage_settings:unattributed", kwargs={"ws": workspace.slug}),
        reverse("usage_settings:applications", kwargs={"ws": workspace.slug}),
        reverse("usage:licenses", kwargs={"ws": workspace.slug}),
        reverse("usage:license", kwargs={"ws": workspace.slug, "pk": lic.pk}),
    ]
    for url in pages:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url)
        assert response.status_code == 200, url
        assert aggregates_over_base_table(captured.captured_queries) == [], url


def test_the_pages_show_the_base_tables_totals(admin_client, workspace, usage):
    response = admin_client.get(
        reverse("usage:explorer", kwargs={"ws": workspace.slug}), {"by": "model", "range": "all"}
    )
    totals = {(row["name"], row["total"].metric): row["total"].total for row in response.context["totals_rows"]}
    assert totals == {("gpt-4o", "cost"): D(30), ("o1", "cost"): D(30), ("claude", "cost"): D(30)}
    assert response.context["row_count"] == 90 == UsageRecord.objects.count()
    assert response.context["rows_page"].paginator.num_pages == 2


# ---------------------------------------------------------------- the row pager's counts
@pytest.mark.parametrize("params", [{}, {"model": "gpt-4o"}, {"date_from": "2026-02-01"}])
def test_rows_per_day_are_the_counts_the_row_pager_reads(data, params):  # noqa: F811 - the fixture imported above
    """The explorer hands the pager the per-day counts it reads once (from the smallest level):
    the same the pager would read itself, day by day, from UsageDaily."""
    filters = queries.parse_filters(params)
    per_day = queries.rows_per_day(queries.daily(data["ws"], filters, group=""))
    records = queries.filtered(data["ws"], filters).order_by("-bucket_start", "-pk")
    paginator = queries.DaySeekPaginator(records, 2, days=queries.daily(data["ws"], filters), zone=UTC)
    assert per_day and sorted(per_day.items(), reverse=True) == list(paginator.day_counts())
    assert sum(per_day.values()) == records.count()


def test_the_filter_choices_are_every_value_of_the_workspace(data, monkeypatch):  # noqa: F811 - the fixture imported above
    """The loose index scan finds what a DISTINCT finds, another workspace's values never."""
    expected = {
        "metric": ["cost", "input_tokens"],
        "model": ["claude", "gpt-4o", "gpt-4o-mini"],
        "project": ["batch", "web"],
        "region": ["eu", "us"],
    }
    assert queries.dimension_values(data["ws"], ("metric", "model", "project", "region")) == expected
    assert queries.indexed_values(data["ws"], "model", limit=2) == ["claude", "gpt-4o"]
    with pytest.raises(ValueError):
        queries.indexed_values(data["ws"], "api_key")


# ---------------------------------------------------------------- local days
def test_days_weeks_and_months_are_those_of_the_workspace_time_zone(member_client, workspace):
    workspace.time_zone = "America/New_York"
    workspace.save()
    integration = make_integration(workspace)
    # 2026-03-01 03:00 UTC is still 28 February, 22:00, in New York (UTC−5): February's usage.
    bulk_rows(integration, 1, start=datetime(2026, 3, 1, 3, tzinfo=UTC), models=("m",))
    bulk_rows(integration, 1, start=datetime(2026, 3, 1, 6, tzinfo=UTC), models=("m",))
    url = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    monthly = member_client.get(url, {"period": "month", "by": "none", "range": "all"}).context["chart"]
    assert [label for label, _ in monthly.rows] == ["2026-02", "2026-03"]
    assert [values for _, values in monthly.rows] == [["$1.00"], ["$1.00"]]
    assert monthly.payload["datasets"][0]["data"] == [1.0, 1.0]
    # A date filter is a local day too: 1 March in New York starts at 05:00 UTC.
    march = member_client.get(url, {"date_from": "2026-03-01", "by": "none"})
    assert march.context["row_count"] == 1
    assert [r.bucket_start for r in march.context["rows_page"].object_list] == [datetime(2026, 3, 1, 6, tzinfo=UTC)]
    # The export of what is in view agrees with the page.
    assert list(queries.filtered(workspace, {"date_from": "2026-03-01"}).values_list("bucket_start", flat=True)) == [
        datetime(2026, 3, 1, 6, tzinfo=UTC)
    ]


def test_a_license_period_counts_local_days(member_client, workspace):
    workspace.time_zone = "Asia/Tokyo"  # UTC+9
    workspace.save()
    integration = make_integration(workspace)
    app = Application.objects.create(workspace=workspace, name="Chat")
    lic = License.objects.create(workspace=workspace, application=app, plan_name="March", kind=License.Kind.PAY_AS_YOU_GO,
                                 start_date=date(2026, 3, 1), end_date=date(2026, 3, 31))  # fmt: skip
    # 28 Feb 16:00 UTC is 1 March 01:00 in Tokyo: in; 31 March 15:00 UTC is 1 April in Tokyo: out.
    bulk_rows(integration, 1, start=datetime(2026, 2, 28, 16, tzinfo=UTC), models=("in",), application=app, license=lic)
    bulk_rows(
        integration, 1, start=datetime(2026, 3, 31, 15, tzinfo=UTC), models=("out",), application=app, license=lic
    )
    c = queries.license_consumption(lic, today=date(2026, 4, 2))
    assert (c.spent, c.rows) == (D(1), 1)
    assert c.daily[0] == (date(2026, 3, 1), D(1))


# ---------------------------------------------------------------- raw rows
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Pacific/Kiritimati"])
def test_every_page_of_rows_is_the_same_as_an_offset_over_the_base_table(workspace, zone):
    workspace.time_zone = zone
    workspace.save()
    integration = make_integration(workspace)
    # Uneven days (a DST change in Paris on 29 March), three rows an hour, some days empty.
    bulk_rows(integration, 70, start=datetime(2026, 3, 27, 5, tzinfo=UTC), models=("a", "b", "c"))
    bulk_rows(integration, 5, start=datetime(2026, 4, 6, 22, tzinfo=UTC), models=("a",))
    for params in ({}, {"model": "b"}, {"date_from": "2026-03-28", "date_to": "2026-03-29"}):
        records = queries.filtered(workspace, params).order_by("-bucket_start", "-pk")
        expected = list(records.values_list("pk", flat=True))
        paginator = queries.DaySeekPaginator(
            records, 7, days=queries.daily(workspace, params), zone=rollups.zone_of(workspace)
        )
        assert paginator.count == len(expected)
        pages = [[row.pk for row in paginator.page(n).object_list] for n in paginator.page_range]
        assert [pk for page in pages for pk in page] == expected, params
        assert all(len(page) == 7 for page in pages[:-1])


def test_a_deep_page_reads_only_the_days_that_hold_it(admin_client, workspace):
    integration = make_integration(workspace)
    bulk_rows(integration, 24 * 20, models=("a", "b"))  # 20 days, 48 rows a day
    url = reverse("integrations:usage", kwargs={"ws": workspace.slug, "pk": integration.pk})
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(url, {"page": 15, "view": "rows"})  # rows 701–750: the 15th day from the end
    assert response.status_code == 200
    rows = response.context["usage_page"].object_list
    assert len(rows) == 50
    base = [q["sql"] for q in captured.captured_queries if '"usage_usagerecord"' in q["sql"] and "ORDER BY" in q["sql"]]
    assert len(base) == 1, [b[:300] for b in base]
    # The page is bounded to its days (two days of 48 rows), so its OFFSET is within one day.
    offset = re.search(r"OFFSET (\d+)", base[0])
    assert offset is None or int(offset.group(1)) < 48
    assert "COUNT(" not in " ".join(q["sql"] for q in captured.captured_queries if '"usage_usagerecord"' in q["sql"])
    everything = list(integration.usage_records.order_by("-bucket_start", "metric", "pk")[700:750])
    assert [r.pk for r in rows] == [r.pk for r in everything]
    assert "Page 15 of 20" in response.content.decode()


def test_a_page_past_the_end_shows_the_last(admin_client, workspace):
    integration = make_integration(workspace)
    bulk_rows(integration, 30, models=("a", "b"))
    response = admin_client.get(
        reverse("integrations:usage", kwargs={"ws": workspace.slug, "pk": integration.pk}), {"page": 99, "view": "rows"}
    )
    assert response.context["usage_page"].number == 2
    assert len(response.context["usage_page"].object_list) == 10


# ---------------------------------------------------------------- integration list
def test_the_integration_list_pages_by_50_with_a_constant_number_of_queries(admin_client, workspace):
    def add(n: int, start: int) -> None:
        template = make_integration(workspace, "template")
        Integration.objects.bulk_create(
            Integration(
                workspace=workspace, provider="openai", name=f"Integration {i:04d}", credential=template.credential
            )
            for i in range(start, start + n)
        )
        template.delete()

    url = reverse("integrations:list", kwargs={"ws": workspace.slug})

    def count(**params) -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url, params)
        assert response.status_code == 200
        return len(captured), response.content.decode()

    add(60, 0)
    count()  # the session is saved on the first request: not what is measured
    few, body = count()
    assert "Integration 0049" in body and "Integration 0050" not in body
    assert "Page 1 of 2" in body and 'href="?page=2"' in body
    add(240, 60)
    many, body = count(page=3)
    assert many == few
    assert "Integration 0100" in body and "Integration 0149" in body and "Integration 0150" not in body
    assert "Page 3 of 6" in body and "300 integrations" in body
