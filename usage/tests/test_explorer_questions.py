"""The explorer answers questions first, over HTTP: spend (reported, estimated, unpriced volume)
before volume tiles, date presets in the workspace's calendar with this month as the default,
compare with the previous period, metric labels in words, and a split by team."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from doow.templatetags.formats import local_time
from usage import rollups
from usage.models import Application, Team, UsageRecord
from usage.testing import new_record
from usage.tests.test_overview import make_integration, text

# Figures of December 2026, seen on 6 December (whatever DOOW_TEST_CLOCK says).
pytestmark = pytest.mark.clock("2026-12-06T12:00:00Z")
D = Decimal


def url(workspace, **params) -> str:
    base = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.fixture
def spend_data(workspace):
    """OpenAI reports money: $1.00 a day in October, $2.00 a day in November, $3.00 a day on
    1–6 December (the Support bot, Platform team). Groq is priced from list prices: $1.00 a day
    on 1–6 December (Research notes, Research team), plus 250k tokens a day of a model no price
    covers (unattributed)."""
    platform = Team.objects.create(workspace=workspace, name="Platform", cost_centre="CC-4100")
    research = Team.objects.create(workspace=workspace, name="Research")
    bot = Application.objects.create(workspace=workspace, name="Support bot", team=platform)
    notes = Application.objects.create(workspace=workspace, name="Research notes", team=research)
    openai = make_integration(workspace, "OpenAI prod", "openai")
    groq = make_integration(workspace, "Groq", "groq")
    rows = []
    for d in range(1, 32):
        rows.append(
            new_record(openai, datetime(2026, 10, d, 9, tzinfo=UTC), "cost", "1.00", model="gpt-4o", application=bot)
        )
    for d in range(1, 31):
        rows.append(
            new_record(openai, datetime(2026, 11, d, 9, tzinfo=UTC), "cost", "2.00", model="gpt-4o", application=bot)
        )
    for d in range(1, 7):
        at = datetime(2026, 12, d, 9, tzinfo=UTC)
        rows.append(new_record(openai, at, "cost", "3.00", model="gpt-4o", application=bot))
        rows.append(new_record(groq, at, "estimated_cost", "1.00", model="llama-3.3-70b", application=notes))
        rows.append(
            new_record(groq, at, "input_tokens", "1000000", unit="tokens", model="llama-3.3-70b", application=notes)
        )
        rows.append(
            new_record(groq, at.replace(hour=10), "input_tokens", "250000", unit="tokens", model="mystery-model")
        )
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
    return {"openai": openai, "groq": groq, "bot": bot, "notes": notes, "platform": platform, "research": research}


def spend_table(body: str) -> dict[str, list[str]]:
    """The spend table's lines: first cell → the other cells, as text."""
    table = body[body.index('data-testid="spend-table"') :]
    table = table[: table.index("</table>")]
    lines = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>") :]):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        lines[cells[0]] = cells[1:]
    return lines


def test_the_explorer_opens_on_this_month_with_spend_first(member_client, workspace, spend_data):
    response = member_client.get(url(workspace))
    body = text(response)
    assert response.context["window"].preset == "this_month"
    assert "This month</strong>: 1 Dec 2026 – 6 Dec 2026" in body
    assert re.search(r'<a href="[^"]*range=this_month" aria-current="true">This month</a>', body)
    # the From / To fields show the window, and the hidden range keeps it
    assert 'name="date_from" value="2026-12-01"' in body and 'name="date_to" value="2026-12-06"' in body
    assert 'type="hidden" name="range" value="this_month"' in body
    # spend: $18 reported by OpenAI + $6 estimated for Groq (October and November are not in it)
    assert 'data-testid="spend-USD">$24.00<' in body
    assert "$18.00 reported" in body and "$6.00 estimated" in body
    unpriced = body[body.index('data-testid="unpriced"') :]
    assert "1.5M tokens" in unpriced[:300] and "mystery-model" in unpriced[:300]
    # spend before any volume tile; volumes in words and formats, never column names
    assert body.index('data-testid="spend-USD"') < body.index('aria-label="Usage volume"')
    volumes = body[body.index('aria-label="Usage volume"') :]
    volumes = volumes[: volumes.index("</div> </div>") if "</div> </div>" in volumes else 800]
    assert "Input tokens" in volumes and "7.5M tokens" in volumes
    assert "input_tokens" not in re.sub(r'(?:title|value|data-metric)="[^"]*"', "", volumes)
    # the chart is spend per day, the spend table by provider
    assert response.context["chart"].metric == "spend" and "Spend per day, by provider" in body
    assert spend_table(body) == {"OpenAI": ["$18.00", "—"], "Groq": ["$6.00", "$6.00"]}


def test_metric_labels_are_words_in_the_totals_and_the_rows(member_client, workspace, spend_data):
    body = text(member_client.get(url(workspace, by="none")))
    totals = body[body.index('id="totals-title"') : body.index('id="rows-title"')]
    assert ">Reported cost<" in totals and ">Estimated cost<" in totals and ">Input tokens<" in totals
    assert "$18.00" in totals and "7.5M tokens" in totals
    rows = body[body.index('id="rows-title"') :]
    assert ">Input tokens<" in rows and "<code>input_tokens</code>" not in rows
    # Bucket times as on every page: the workspace's zone, named.
    zone = workspace.time_zone or "UTC"
    assert f">{local_time(datetime(2026, 12, 6, 10, tzinfo=UTC), zone)}</time>" in rows
    assert "2026-12-06 " not in rows
    chart_choices = body[body.index('name="chart"') :]
    assert '<option value="input_tokens">Input tokens</option>' in chart_choices[:2000]


@pytest.mark.parametrize(
    "preset, first, last, total",
    [
        ("this_month", "1 Dec 2026", "6 Dec 2026", "$24.00"),
        ("last_month", "1 Nov 2026", "30 Nov 2026", "$60.00"),
        ("last_30_days", "7 Nov 2026", "6 Dec 2026", "$72.00"),  # 24 November days × $2 + $24
        ("this_quarter", "1 Oct 2026", "6 Dec 2026", "$115.00"),  # $31 + $60 + $24
    ],
)
def test_date_presets_are_calendar_periods_of_the_workspace(
    member_client, workspace, spend_data, preset, first, last, total
):
    body = text(member_client.get(url(workspace, range=preset)))
    assert f"</strong>: {first} – {last}" in body
    assert f'data-testid="spend-USD">{total}<' in body


def test_all_time_has_no_dates(member_client, workspace, spend_data):
    response = member_client.get(url(workspace, range="all"))
    body = text(response)
    assert "All time</strong>: every day with usage" in body and 'data-testid="spend-USD">$115.00<' in body
    assert 'name="date_from" value=' not in body


def test_months_follow_the_workspace_time_zone(member_client, workspace, spend_data):
    # 6 Dec 12:00 UTC is already 7 December in Auckland (UTC+13): the window runs to the 7th.
    workspace.time_zone = "Pacific/Auckland"
    workspace.save()
    rollups.rebuild_workspace(workspace)
    body = text(member_client.get(url(workspace, range="this_month")))
    assert "</strong>: 1 Dec 2026 – 7 Dec 2026" in body


def test_a_preset_holds_while_its_dates_are_sent_and_a_changed_date_makes_it_custom(
    member_client, workspace, spend_data
):
    same = member_client.get(
        url(workspace, range="last_month", date_from="2026-11-01", date_to="2026-11-30", provider="openai")
    )
    assert same.context["window"].preset == "last_month"
    changed = member_client.get(url(workspace, range="last_month", date_from="2026-11-10", date_to="2026-11-30"))
    body = text(changed)
    assert changed.context["window"].preset == "custom"
    assert "Custom dates</strong>: 10 Nov 2026 – 30 Nov 2026" in body and 'data-testid="spend-USD">$42.00<' in body
    assert 'type="hidden" name="range" value="custom"' in body
    # custom with both dates cleared is every day, not the default month
    cleared = member_client.get(url(workspace, range="custom", date_from="", date_to=""))
    assert cleared.context["window"].preset == "custom" and 'data-testid="spend-USD">$115.00<' in text(cleared)
    # a shared link with dates only is a custom range
    assert member_client.get(url(workspace, date_from="2026-11-01")).context["window"].preset == "custom"


def test_preset_links_keep_the_other_filters_and_drop_the_dates(member_client, workspace, spend_data):
    response = member_client.get(url(workspace, provider="openai", by="model", date_from="2026-11-03", page=2))
    links = {link["label"]: link["url"] for link in response.context["preset_links"]}
    assert links["Last month"] == url(workspace, provider="openai", by="model", range="last_month")
    # the links are inside the swapped results, so an htmx filter change refreshes them
    partial = member_client.get(url(workspace, provider="groq"), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="results"') and "provider=groq&amp;range=last_month" in partial


def test_compare_shows_the_previous_period_and_the_change(member_client, workspace, spend_data):
    response = member_client.get(url(workspace, compare="1"))
    body = text(response)
    assert "compared with 1 Nov 2026 – 6 Nov 2026" in body
    tile = body[body.index('data-testid="spend-USD"') :]
    assert "▲ $12.00 (+100%)" in tile[:600] and "vs $12.00" in tile[:600]
    assert spend_table(body) == {
        "OpenAI": ["$18.00", "—", "$12.00", "+50%"],
        "Groq": ["$6.00", "$6.00", "$0.00", "new"],
    }
    totals = body[body.index('id="totals-title"') : body.index('id="rows-title"')]
    assert "Previous period" in totals and "+50%" in totals
    # without the toggle, no comparison
    assert "Previous period" not in text(member_client.get(url(workspace)))


def test_compare_last_30_days_with_the_30_days_before(member_client, workspace, spend_data):
    body = text(member_client.get(url(workspace, range="last_30_days", compare="1")))
    # 8 Oct – 6 Nov: 24 October days × $1 + 6 November days × $2
    assert "compared with 8 Oct 2026 – 6 Nov 2026" in body
    assert "vs $36.00" in body


def test_compare_needs_a_closed_range(member_client, workspace, spend_data):
    body = text(member_client.get(url(workspace, range="all", compare="1")))
    assert "choose a range with a start and an end to compare" in body


def test_split_by_team_with_no_team_for_the_rest(member_client, workspace, spend_data):
    response = member_client.get(url(workspace, by="team", compare="1"))
    body = text(response)
    assert spend_table(body) == {
        "Platform": ["$18.00", "—", "$12.00", "+50%"],
        "Research": ["$6.00", "$6.00", "$0.00", "new"],
    }
    totals = {(row["name"], row["total"].metric): row["total"].total for row in response.context["totals_rows"]}
    assert totals == {
        ("Platform", "cost"): D("18.00"),
        ("Research", "estimated_cost"): D("6.00"),
        ("Research", "input_tokens"): D("6000000"),
        ("No team", "input_tokens"): D("1500000"),
    }
    chart = response.context["chart"]
    assert {d["label"]: sum(d["data"]) for d in chart.payload["datasets"]} == {"Platform": 18.0, "Research": 6.0}


def test_filter_by_team_and_drill_into_a_team_from_the_split(member_client, workspace, spend_data):
    platform, research = spend_data["platform"], spend_data["research"]
    split = text(member_client.get(url(workspace, by="team")))
    # Each team's line links to the explorer narrowed to it.
    assert f'?by=team&amp;team={platform.pk}" title="Show only Platform"' in split

    only_research = member_client.get(url(workspace, by="model", team=research.pk))
    assert 'data-testid="spend-USD">$6.00<' in text(only_research)
    assert {(row["name"], row["total"].metric) for row in only_research.context["totals_rows"]} == {
        ("llama-3.3-70b", "estimated_cost"),
        ("llama-3.3-70b", "input_tokens"),
    }
    # "No team": usage of no application (the mystery model) or of an application without a team.
    loose = Application.objects.create(workspace=workspace, name="Loose app")
    UsageRecord.objects.bulk_create(
        [
            new_record(
                spend_data["openai"],
                datetime(2026, 12, 3, 11, tzinfo=UTC),
                "cost",
                "0.25",
                model="gpt-4o",
                application=loose,
            )
        ]
    )
    rollups.rebuild_workspace(workspace)
    no_team = member_client.get(url(workspace, by="model", team="none"))
    assert {(row["name"], row["total"].metric): row["total"].total for row in no_team.context["totals_rows"]} == {
        ("mystery-model", "input_tokens"): D("1500000"),
        ("gpt-4o", "cost"): D("0.25"),
    }
    # The export takes the same filter.
    export = member_client.get(
        reverse("usage:export", kwargs={"ws": workspace.slug}), {"format": "csv", "team": research.pk, "range": "all"}
    )
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert len(lines) == 1 + 12 and all("Research notes" in line for line in lines[1:])


def test_another_workspaces_usage_and_teams_never_show(member_client, workspace, other_workspace, spend_data):
    theirs = make_integration(other_workspace, "Globex OpenAI", "openai")
    team = Team.objects.create(workspace=other_workspace, name="Globex finance")
    app = Application.objects.create(workspace=other_workspace, name="Globex app", team=team)
    UsageRecord.objects.bulk_create(
        [new_record(theirs, datetime(2026, 12, 2, 9, tzinfo=UTC), "cost", "777", application=app)]
    )
    rollups.rebuild_workspace(other_workspace)
    body = text(member_client.get(url(workspace, by="team", compare="1")))
    assert "Globex" not in body and "777" not in body
    assert 'data-testid="spend-USD">$24.00<' in body


@pytest.mark.parametrize(
    "params", [{"by": "team", "compare": "1"}, {"by": "provider", "compare": "1", "range": "this_quarter"}]
)
def test_the_number_of_queries_does_not_grow_with_the_data(member_client, workspace, spend_data, params):
    target = url(workspace, **params)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert member_client.get(target).status_code == 200
        return len(captured)

    count()  # the first request also saves the session
    few = count()
    more = []
    for i in range(5):
        integration = make_integration(workspace, f"More {i}", "anthropic")
        app = Application.objects.create(
            workspace=workspace, name=f"App {i}", team=spend_data["research"] if i % 2 else None
        )
        for d in range(1, 7):
            more.append(
                new_record(
                    integration, datetime(2026, 12, d, 9, tzinfo=UTC), "cost", "1", model=f"m-{i}-{d}", application=app
                )
            )
            more.append(
                new_record(
                    integration, datetime(2026, 11, d, 9, tzinfo=UTC), "cost", "1", model=f"m-{i}-{d}", application=app
                )
            )
    UsageRecord.objects.bulk_create(more)
    rollups.rebuild_workspace(workspace)
    assert count() == few


def test_spend_per_month_of_the_quarter(member_client, workspace, spend_data):
    chart = member_client.get(url(workspace, range="this_quarter", period="month", by="none")).context["chart"]
    assert chart.payload["labels"] == ["2026-10", "2026-11", "2026-12"]
    assert chart.payload["datasets"] == [{"label": "Spend", "data": [31.0, 60.0, 24.0]}]


def test_a_metric_filter_charts_that_metric_in_words(member_client, workspace, spend_data):
    response = member_client.get(url(workspace, metric="input_tokens", by="model"))
    chart = response.context["chart"]
    assert chart.metric == "input_tokens" and chart.payload["yTitle"] == "Input tokens (tokens)"
    assert "Input tokens per day, by model" in text(response)
    assert response.context["spend"] == []  # no money in what matches: the tile says so
    assert "No cost reported and no estimate for what matches." in text(response)


def test_currencies_are_spent_apart_never_added(member_client, workspace, spend_data):
    euros = new_record(
        spend_data["openai"], datetime(2026, 12, 3, 11, tzinfo=UTC), "cost", "50", unit="EUR", model="gpt-4o"
    )
    UsageRecord.objects.bulk_create([euros])
    rollups.rebuild_workspace(workspace)
    body = text(member_client.get(url(workspace)))
    assert 'data-testid="spend-USD">$24.00<' in body and 'data-testid="spend-EUR">50.00 EUR<' in body
    assert body.index('data-testid="spend-USD"') < body.index('data-testid="spend-EUR"')  # USD first
    table = body[body.index('data-testid="spend-table"') :]
    table = table[: table.index("</table>")]
    cells = [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table)
    ]
    assert [c for c in cells if c] == [
        ["OpenAI", "$18.00", "—"],
        ["Groq", "$6.00", "$6.00"],
        ["OpenAI", "50.00 EUR", "—"],
    ]


def spend_footer(body: str) -> list[str]:
    """The spend table's total line, as text."""
    table = body[body.index('data-testid="spend-table"') :]
    foot = table[table.index("<tfoot>") : table.index("</tfoot>")]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", foot)]


@pytest.fixture
def wide_split(workspace, spend_data):
    """Twelve more models, model-01 … model-12 costing $1 … $12 on 2 December: with gpt-4o, the
    Groq llama and the unpriced mystery model, a split by model holds 15 groups."""
    rows = [
        new_record(spend_data["openai"], datetime(2026, 12, 2, 11, tzinfo=UTC), "cost", str(i), model=f"model-{i:02}")
        for i in range(1, 13)
    ]
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
    return spend_data


def test_a_wide_split_shows_the_top_ten_and_one_other_line_that_keeps_the_total(member_client, workspace, wide_split):
    response = member_client.get(url(workspace, by="model"))
    body = text(response)
    lines = spend_table(body)
    # gpt-4o $18, models 12 … 7, llama-3.3-70b $6 and model-06 $6 (ties by name), model-05; then the rest
    assert list(lines) == [
        "gpt-4o",
        "model-12",
        "model-11",
        "model-10",
        "model-09",
        "model-08",
        "model-07",
        "llama-3.3-70b",
        "model-06",
        "model-05",
        "Other (5 more)",
    ]
    assert lines["Other (5 more)"] == ["$10.00", "—"]  # models 4 + 3 + 2 + 1 (the mystery model has no spend)
    # the lines add up to the whole, which the table says
    base = UsageRecord.objects.filter(workspace=workspace, bucket_start__gte=datetime(2026, 12, 1, tzinfo=UTC))
    spent = sum(r.quantity for r in base if r.metric in ("cost", "estimated_cost"))
    assert spent == D("102.00") and 'data-testid="spend-USD">$102.00<' in body
    assert spend_footer(body) == ["All 15 models", "$102.00", "$6.00"]
    # the usage table: the same ten groups and the fold, every metric summed, rows counted
    totals = {(row["name"], row["total"].metric): row["total"] for row in response.context["totals_rows"]}
    assert {name for name, _ in totals} == {*lines}
    assert totals[("Other (5 more)", "cost")].total == D(10)
    assert totals[("Other (5 more)", "input_tokens")].total == D(1_500_000)  # the mystery model
    for metric in ("cost", "estimated_cost", "input_tokens"):
        shown = sum(t.total for (_, m), t in totals.items() if m == metric)
        assert shown == sum(r.quantity for r in base if r.metric == metric)
    assert sum(t.rows for t in totals.values()) == base.count() == response.context["row_count"]
    # the chart: ten series and the fold, the bars adding up to the spend
    datasets = {d["label"]: sum(d["data"]) for d in response.context["chart"].payload["datasets"]}
    assert len(datasets) == 11 and datasets["Other (5 more)"] == 10.0 and sum(datasets.values()) == 102.0
    assert "models 1–10 of 15 by spend" in body


def test_the_other_line_opens_the_next_groups_so_every_group_is_reachable(member_client, workspace, wide_split):
    first = member_client.get(url(workspace, by="model", page=3))
    other = next(line for line in first.context["spend_rows"] if line["fold"])
    assert other["drill"] == "by=model&groups=2"  # the rows' page is dropped, the split kept
    assert f'href="{url(workspace)}?by=model&amp;groups=2"' in text(first)

    second = member_client.get(url(workspace, by="model", groups=2))
    body = text(second)
    lines = spend_table(body)
    assert list(lines) == ["Top 10 models", "model-04", "model-03", "model-02", "model-01"]
    assert lines["Top 10 models"] == ["$92.00", "$6.00"]
    assert spend_footer(body) == ["All 15 models", "$102.00", "$6.00"]
    names = {row["name"] for row in second.context["totals_rows"]}
    assert names == {"Top 10 models", "model-04", "model-03", "model-02", "model-01", "mystery-model"}
    assert {d["label"] for d in second.context["chart"].payload["datasets"]} == {
        "Top 10 models",
        "model-04",
        "model-03",
        "model-02",
        "model-01",
    }
    # each model is named on one of the two pages, and its name narrows the explorer to it
    seen = {row["name"] for page in (first, second) for row in page.context["totals_rows"] if not row["fold"]}
    assert len(seen) == 15
    drill = next(row["drill"] for row in second.context["totals_rows"] if row["name"] == "model-01")
    assert drill == "by=model&model=model-01"
    assert "$1.00" in text(member_client.get(url(workspace) + "?" + drill))
    # a page past the end shows the last one; nonsense shows the first
    assert member_client.get(url(workspace, by="model", groups=99)).context["group_page"].number == 2
    assert member_client.get(url(workspace, by="model", groups="x")).context["group_page"].number == 1


def test_the_export_of_a_wide_split_is_never_folded(member_client, workspace, wide_split):
    response = member_client.get(url(workspace, by="model", groups=2))
    export_url = response.context["export_csv_url"]
    assert "groups=" not in export_url and "by=" not in export_url
    lines = b"".join(member_client.get(export_url).streaming_content).decode().splitlines()
    assert len(lines) == 1 + 24 + 12  # every row of December: the fixture's 24 and the twelve models
    assert all(any(f",model-{i:02}," in line for line in lines) for i in range(1, 13))


def test_a_split_of_eleven_groups_is_not_folded(member_client, workspace, spend_data):
    rows = [
        new_record(spend_data["openai"], datetime(2026, 12, 2, 11, tzinfo=UTC), "cost", str(i), model=f"model-{i:02}")
        for i in range(1, 9)
    ]
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
    response = member_client.get(url(workspace, by="model"))
    assert len(spend_table(text(response))) == 10  # eight models, gpt-4o, llama; the mystery model has no spend
    assert not response.context["group_page"].folded and "<tfoot>" not in text(response)
    assert len({row["name"] for row in response.context["totals_rows"]}) == 11


def test_a_wide_split_without_money_is_ranked_by_the_charted_volume(member_client, workspace, spend_data):
    groq = spend_data["groq"]
    rows = [
        new_record(groq, datetime(2026, 12, 2, 11, tzinfo=UTC), "input_tokens", 1000 * i, "tokens", model=f"tok-{i:02}")
        for i in range(1, 13)
    ]
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
    response = member_client.get(url(workspace, by="model", metric="input_tokens"))
    names = [row["name"] for row in response.context["totals_rows"]]
    # llama 6M tokens, the mystery model 1.5M, then tok-12 … tok-05; tok-04 … tok-01 folded
    assert names == ["llama-3.3-70b", "mystery-model", *(f"tok-{i:02}" for i in range(12, 4, -1)), "Other (4 more)"]
    assert response.context["totals_rows"][-1]["total"].total == D(10_000)
    assert "models 1–10 of 14 by input tokens" in text(response)
