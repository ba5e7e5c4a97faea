"""The derived rollup levels (usage.rollups.LEVELS: the total, narrow and project rollups) answer
what UsageDaily answers: the query layer routes each aggregate to the smallest level holding its
columns, and every answer equals the same aggregate over UsageDaily. Run on SQLite and
PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.testing import make_integration
from usage import queries, rollups, spend
from usage.models import Application, License, UsageDaily, UsageDailyNarrow, UsageDailyProject, UsageDailyTotal
from usage.summaries import integration_usage_summary
from usage.testing import make_record

pytestmark = pytest.mark.django_db


def at(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def data(workspace):
    """Two integrations over three weeks of two months (in New York's days): costs on some days
    only (the others are unpriced unless estimated), several models, projects, regions and
    accounts, attributed to two applications or none."""
    workspace.time_zone = "America/New_York"
    workspace.save()
    openai = make_integration(workspace)
    anthropic = make_integration(workspace, "Anthropic", "anthropic")
    chat = Application.objects.create(workspace=workspace, name="Chat")
    batch = Application.objects.create(workspace=workspace, name="Batch")
    lic = License.objects.create(
        workspace=workspace, application=chat, plan_name="Scale", kind=License.Kind.PAY_AS_YOU_GO,
        start_date=date(2026, 1, 1),
    )  # fmt: skip
    days = ["2026-01-27", "2026-01-31", "2026-02-01", "2026-02-03"]
    for i, day in enumerate(days):
        for hour in (3, 15):  # 03:00Z is the evening before in New York
            for integration, model in ((openai, "gpt-4o"), (openai, "gpt-4o-mini"), (anthropic, "claude")):
                for project, account, region, app, license_ in (
                    ("web", "acct-1", "us", chat, lic),
                    ("jobs", "acct-2", "eu", batch, None),
                    ("lab", "", "", None, None),
                ):
                    dims = {"model": model, "project": project, "account": account, "region": region}
                    attributed = {"application": app, "license": license_}
                    make_record(integration, at(day, hour), "input_tokens", f"{100 + i}.5", "tokens",
                                **dims, **attributed)  # fmt: skip
                    if i % 3 != 1:  # reported cost on most days, none on the others
                        make_record(integration, at(day, hour), "cost", f"0.{i}25", "USD", **dims, **attributed)
                    if model == "gpt-4o" and i % 3 == 1:  # estimated only for one model
                        make_record(integration, at(day, hour), "estimated_cost", "0.015", "USD",
                                    **dims, **attributed)  # fmt: skip
    return {"ws": workspace, "openai": openai, "anthropic": anthropic, "chat": chat, "lic": lic}


def wide(workspace, filters):
    """The same rows from UsageDaily (no `group`: every dimension)."""
    return queries.daily(workspace, filters)


VIEWS = [
    # (filters, split, period)
    ({}, "", "day"),
    ({}, "provider", "day"),
    ({}, "integration", "month"),
    ({}, "application", "week"),
    ({}, "license", "day"),
    ({}, "model", "day"),
    ({}, "project", "day"),
    ({}, "region", "month"),
    ({"project": "web"}, "provider", "day"),
    ({"model": "gpt-4o"}, "project", "week"),
    ({"application": "none"}, "license", "day"),
    ({"date_from": "2026-01-27", "date_to": "2026-02-02"}, "project", "day"),
    ({"date_from": "2026-02-01", "metric": "cost"}, "model", "month"),
]


@pytest.mark.parametrize(("params", "group", "period"), VIEWS)
def test_every_explorer_aggregate_from_its_level_equals_usage_daily(data, params, group, period):
    ws = data["ws"]
    filters = queries.parse_filters(params)
    routed = queries.daily(ws, filters, group=group)
    assert queries.totals(routed, group=group) == queries.totals(wide(ws, filters), group=group)
    for metric in ("cost", "input_tokens"):
        assert queries.series(routed, metric=metric, period=period, group=group) == queries.series(
            wide(ws, filters), metric=metric, period=period, group=group
        )
    assert queries.rows_per_day(queries.daily(ws, filters, group="")) == queries.rows_per_day(wide(ws, filters))
    by = group or None
    assert sorted(spend.spend_rows(routed, by), key=repr) == sorted(spend.spend_rows(wide(ws, filters), by), key=repr)
    unpriced = spend.unpriced_in(
        queries.daily(ws, filters, group="", reads=spend.UNPRICED_COLUMNS), totals=queries.daily(ws, filters, group="")
    )
    assert unpriced == spend.unpriced_in(wide(ws, filters))
    if not filters.metric and not filters.model:
        assert unpriced, "no unpriced usage in the data: the test proves nothing"


def test_the_smallest_level_holding_the_columns_is_read(data):
    ws = data["ws"]
    everything = queries.UsageFilters()
    assert queries.daily(ws, everything, group="provider").model is UsageDailyTotal
    assert queries.daily(ws, everything, group="application").model is UsageDailyTotal
    assert queries.daily(ws, everything, group="model").model is UsageDailyNarrow
    assert queries.daily(ws, everything, group="project").model is UsageDailyProject
    assert queries.daily(ws, replace(everything, project="web"), group="model").model is UsageDaily
    assert queries.daily(ws, everything, group="", reads=spend.UNPRICED_COLUMNS).model is UsageDailyNarrow
    assert queries.daily(ws, everything).model is UsageDaily
    # Each level holds the rows of every day and integration (nothing left empty by routing).
    for level in rollups.LEVELS:
        assert level.model().objects.filter(workspace=ws).exists()
    assert rollups.narrow_matches(ws)


def test_the_explorer_split_by_project_reads_the_project_rollup(data, admin_client):
    url = reverse("usage:explorer", kwargs={"ws": data["ws"].slug})
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(url, {"range": "all", "by": "project"})
    assert response.status_code == 200
    sql = [q["sql"] for q in captured.captured_queries]
    assert any("usage_usagedailyproject" in q for q in sql)
    # UsageDaily serves only the filter choices' index probes: no sum over it.
    assert not [q for q in sql if '"usage_usagedaily"' in q and "SUM(" in q.upper()]
    names = {row["name"] for row in response.context["totals_rows"]}
    assert {"web", "jobs", "lab"} <= names


@pytest.mark.parametrize("params", [{}, {"model": "gpt-4o"}, {"project": "jobs"}, {"date_from": "2026-02-01"}])
def test_the_integration_summary_from_its_levels_equals_usage_daily(data, params):
    integration = data["openai"]
    filters = replace(queries.parse_filters(params), integration=str(integration.pk))
    routed_totals = list(
        queries.integration_daily(integration, filters)
        .values("metric", "unit")
        .annotate(total=Sum("quantity"), rows=Sum("rows"))
        .order_by("metric", "unit")
    )
    wide_totals = list(
        queries.integration_daily(integration, filters, reads=None)
        .values("metric", "unit")
        .annotate(total=Sum("quantity"), rows=Sum("rows"))
        .order_by("metric", "unit")
    )
    assert routed_totals == wide_totals and wide_totals
    routed = integration_usage_summary(
        lambda dimension: queries.integration_daily(integration, filters, reads=(dimension,)), routed_totals, {}
    )
    from_daily = integration_usage_summary(
        lambda dimension: queries.integration_daily(integration, filters, reads=None), wide_totals, {}
    )
    assert routed == from_daily
    assert routed["summary_by_model"] and routed["summary_by_day"]
