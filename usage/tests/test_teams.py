"""Teams own applications' spend: managed on Company Settings → Applications (admins), and the
overview and the explorer split spend by team, with "No team" for unowned usage."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from usage import rollups
from usage.models import Application, Team, UsageRecord
from usage.testing import new_record
from usage.tests.test_overview import make_integration, text
from usage.tests.test_overview import url as overview_url

pytestmark = pytest.mark.clock("2026-12-06T12:00:00Z")


def settings_url(workspace, name: str, **kwargs) -> str:
    return reverse(f"usage_settings:{name}", kwargs={"ws": workspace.slug, **kwargs})


@pytest.fixture
def teams_data(workspace):
    """December 1..6: OpenAI reports $3.00 a day for the Support bot (Platform team), Groq is
    estimated at $1.00 a day for Research notes (Research), and $0.50 a day of OpenAI is
    unattributed."""
    platform = Team.objects.create(workspace=workspace, name="Platform", cost_centre="CC-4100")
    research = Team.objects.create(workspace=workspace, name="Research")
    bot = Application.objects.create(workspace=workspace, name="Support bot", team=platform)
    notes = Application.objects.create(workspace=workspace, name="Research notes", team=research)
    loose = Application.objects.create(workspace=workspace, name="Loose app")
    openai = make_integration(workspace, "OpenAI prod", "openai")
    groq = make_integration(workspace, "Groq", "groq")
    rows = []
    for d in range(1, 7):
        at = datetime(2026, 12, d, 9, tzinfo=UTC)
        rows.append(new_record(openai, at, "cost", "3.00", model="gpt-4o", application=bot))
        rows.append(new_record(openai, at.replace(hour=10), "cost", "0.50", model="gpt-4o"))
        rows.append(new_record(groq, at, "estimated_cost", "1.00", model="llama-3.3-70b", application=notes))
        rows.append(
            new_record(groq, at, "input_tokens", "1000", unit="tokens", model="llama-3.3-70b", application=notes)
        )
    for d in range(1, 7):  # November 1..6: the Platform team's bot spent $2.00 a day
        rows.append(
            new_record(openai, datetime(2026, 11, d, 9, tzinfo=UTC), "cost", "2.00", model="gpt-4o", application=bot)
        )
    UsageRecord.objects.bulk_create(rows)
    rollups.rebuild_workspace(workspace)
    return {"platform": platform, "research": research, "bot": bot, "notes": notes, "loose": loose, "openai": openai}


# ---------------------------------------------------------------- settings
def test_admin_adds_a_team_and_gives_it_an_application(admin_client, workspace):
    app = Application.objects.create(workspace=workspace, name="Support bot")
    response = admin_client.post(settings_url(workspace, "team_add"), {"name": " Platform ", "cost_centre": "CC-4100"})
    assert response.status_code == 302
    team = workspace.teams.get()
    assert (team.name, team.cost_centre) == ("Platform", "CC-4100")

    form = admin_client.get(settings_url(workspace, "application_edit", pk=app.pk)).content.decode()
    assert "Team / cost centre" in form and "Platform (CC-4100)" in form and ">No team<" in form
    response = admin_client.post(
        settings_url(workspace, "application_edit", pk=app.pk), {"name": "Support bot", "team": team.pk}
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.team == team

    listing = text(admin_client.get(settings_url(workspace, "applications")))
    row = listing[listing.index("<strong>Support bot</strong>") :]
    assert "Platform" in row[:400] and "CC-4100" in row[:400]
    teams = listing[listing.index('id="teams-title"') :]
    assert "Platform" in teams and "Add team" in teams


def test_team_names_are_unique_per_workspace_and_editable(admin_client, workspace, other_workspace):
    Team.objects.create(workspace=other_workspace, name="Platform")  # another workspace may use the name
    assert admin_client.post(settings_url(workspace, "team_add"), {"name": "Platform"}).status_code == 302
    response = admin_client.post(settings_url(workspace, "team_add"), {"name": "platform"})
    assert response.status_code == 200 and "A team with this name already exists." in response.content.decode()
    team = workspace.teams.get()
    admin_client.post(settings_url(workspace, "team_edit", pk=team.pk), {"name": "Platform eng", "cost_centre": "CC-1"})
    team.refresh_from_db()
    assert (team.name, team.cost_centre) == ("Platform eng", "CC-1")


def test_another_workspaces_team_is_not_a_choice(admin_client, workspace, other_workspace):
    theirs = Team.objects.create(workspace=other_workspace, name="Globex finance")
    app = Application.objects.create(workspace=workspace, name="Support bot")
    assert (
        "Globex finance"
        not in admin_client.get(settings_url(workspace, "application_edit", pk=app.pk)).content.decode()
    )
    response = admin_client.post(
        settings_url(workspace, "application_edit", pk=app.pk), {"name": "Support bot", "team": theirs.pk}
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert admin_client.get(settings_url(workspace, "team_edit", pk=theirs.pk)).status_code == 404
    assert admin_client.post(settings_url(workspace, "team_delete", pk=theirs.pk)).status_code == 404
    assert Team.objects.filter(pk=theirs.pk).exists()


def test_deleting_a_team_keeps_its_applications_and_their_usage(admin_client, workspace, teams_data):
    platform = teams_data["platform"]
    confirm = text(admin_client.get(settings_url(workspace, "team_delete", pk=platform.pk)))
    assert "Delete team Platform?" in confirm and "Support bot" in confirm and "“No team”" in confirm
    assert admin_client.post(settings_url(workspace, "team_delete", pk=platform.pk)).status_code == 302
    bot = Application.objects.get(pk=teams_data["bot"].pk)
    assert bot.team is None and bot.usage_records.count() == 12


@pytest.mark.parametrize("name, kwargs", [("team_add", {}), ("team_edit", {"pk": 0}), ("team_delete", {"pk": 0})])
def test_members_cannot_manage_teams_and_outsiders_do_not_find_them(
    member_client, outsider_client, workspace, teams_data, name, kwargs
):
    kwargs = {k: teams_data["platform"].pk for k in kwargs}
    target = settings_url(workspace, name, **kwargs)
    assert member_client.get(target).status_code == 403
    assert member_client.post(target, {"name": "Hijacked"}).status_code == 403
    assert outsider_client.get(target).status_code == 404
    assert outsider_client.post(target, {"name": "Hijacked"}).status_code == 404
    assert set(workspace.teams.values_list("name", flat=True)) == {"Platform", "Research"}


# ---------------------------------------------------------------- the overview
def _chart(html: str) -> dict[str, float]:
    payload = json.loads(re.search(r'id="overview-chart-data" type="application/json">(.*?)</script>', html).group(1))
    return {d["label"]: round(sum(d["data"]), 2) for d in payload["datasets"]}


def test_overview_splits_spend_by_team_with_no_team_for_the_rest(member_client, workspace, teams_data):
    html = member_client.get(overview_url(workspace)).content.decode()
    assert f'href="{overview_url(workspace, by="team")}"' in html
    response = member_client.get(overview_url(workspace, by="team"))
    html = response.content.decode()
    assert "Daily spend by team" in html
    assert _chart(html) == {"Platform": 18.0, "Research": 6.0, "No team": 3.0}
    partial = member_client.get(overview_url(workspace, by="team"), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="overview-chart"')
    assert _chart(partial) == {"Platform": 18.0, "Research": 6.0, "No team": 3.0}


def test_moving_an_application_to_another_team_moves_its_spend_at_once(member_client, workspace, teams_data):
    Application.objects.filter(pk=teams_data["bot"].pk).update(team=teams_data["research"])
    html = member_client.get(overview_url(workspace, by="team")).content.decode()
    assert _chart(html) == {"Research": 24.0, "No team": 3.0}


def test_members_see_the_overview_read_only_and_admins_see_everything(
    member_client, admin_client, workspace, teams_data
):
    from integrations.models import Integration

    Integration.objects.filter(pk=teams_data["openai"].pk).update(
        status=Integration.Status.ERROR, last_error_message="Invalid API key"
    )
    member = member_client.get(overview_url(workspace, by="team")).content.decode()
    admin = admin_client.get(overview_url(workspace, by="team")).content.decode()
    for body in (member, admin):  # the same figures for both
        assert 'data-testid="mtd-USD">$27.00<' in body and _chart(body) == {
            "Platform": 18.0,
            "Research": 6.0,
            "No team": 3.0,
        }
    # a member has nothing to edit: the only form is the layout's sign-out
    assert re.findall(r'<form[^>]*action="([^"]*)"', member) == [reverse("accounts:logout")]
    settings_prefix = f"/w/{workspace.slug}/settings/"
    assert settings_prefix not in member
    fix = reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": teams_data["openai"].pk})
    assert fix not in member and "An admin can fix this" in member
    # an admin gets the fix link and Company Settings
    assert fix in admin and settings_prefix in admin
    assert member_client.get(settings_url(workspace, "applications")).status_code == 403


def test_an_application_cannot_belong_to_another_workspaces_team(workspace, other_workspace):
    """Django admin edits across workspaces: the model refuses the mix the pages cannot offer."""
    from django.core.exceptions import ValidationError

    theirs = Team.objects.create(workspace=other_workspace, name="Globex finance")
    app = Application(workspace=workspace, name="Support bot", team=theirs)
    with pytest.raises(ValidationError) as refused:
        app.full_clean()
    assert "team" in refused.value.message_dict
    app.team = Team.objects.create(workspace=workspace, name="Platform")
    app.full_clean()


def test_the_overview_lists_the_top_teams_once_teams_own_spend(member_client, workspace, teams_data):
    body = text(member_client.get(overview_url(workspace)))
    teams = body[body.index('id="top-teams"') :]
    teams = teams[: teams.index("</table>")]
    assert re.search(r"Platform</td> <td class=\"num\">\$18.00</td> <td class=\"num delta-up\">\+50%", teams)
    assert "Research" in teams and "No team" in teams
    Application.objects.update(team=None)
    assert 'id="top-teams"' not in text(member_client.get(overview_url(workspace)))
