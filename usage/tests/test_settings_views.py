"""Company Settings → Applications, Licenses, Attribution rules, Unattributed usage, over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote

import pytest
from django.urls import reverse

from usage import rollups
from usage.models import (
    Application,
    AttributionRule,
    License,
    ReattributionJob,
    UsageRecord,
)

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def url(workspace, name: str, **kwargs) -> str:
    return reverse(f"usage_settings:{name}", kwargs={"ws": workspace.slug, **kwargs})


def row(
    integration, hour: int = 0, *, metric: str = "input_tokens", quantity: int = 10, unit: str = "tokens", **dims
) -> UsageRecord:
    record = UsageRecord.objects.create(
        workspace=integration.workspace,
        integration=integration,
        provider=integration.provider,
        bucket_start=T0 + timedelta(hours=hour),
        bucket_end=T0 + timedelta(hours=hour + 1),
        metric=metric,
        quantity=Decimal(quantity),
        unit=unit,
        **dims,
    )
    rollups.refresh_moments(integration.pk, [record.bucket_start])  # as every write path does
    return record


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# ---------------------------------------------------------------- applications
def test_applications_show_their_licenses_and_attributed_usage(admin_client, workspace, integration):
    app = Application.objects.create(workspace=workspace, name="Chatbot", vendor="OpenAI", owner="Support team")
    License.objects.create(
        workspace=workspace, application=app, plan_name="Enterprise 2026", start_date=date(2026, 1, 1)
    )
    rule = AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    for hour in range(3):
        row(integration, hour, application=app, rule=rule)
    row(integration, 5, metric="cost", quantity=12, unit="USD", application=app, rule=rule)
    page = text(admin_client.get(url(workspace, "applications")))
    assert "Chatbot" in page and "Support team" in page and "Enterprise 2026" in page
    # the explorer link shows the rows counted here: all time, not the explorer's default month
    assert re.search(
        r'application=\d+&amp;range=all" title="Explore this usage \(all time, as counted here\)">4</a>', page
    )
    assert "$12.00" in page
    assert 'aria-current="page">Applications</a>' in page


def test_latest_usage_is_the_local_day_never_a_future_moment(admin_client, workspace, integration):
    """Far east of UTC the latest bucket's local day is ahead of UTC's: it is named as a day,
    never as "in 19 hours" (a past bucket read as a future time)."""
    workspace.time_zone = "Pacific/Kiritimati"  # UTC+14
    workspace.save()
    app = Application.objects.create(workspace=workspace, name="Chatbot")
    rule = AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    row(integration, 11, application=app, rule=rule)  # 2026-11-02 11:00 UTC = 3 Nov, 01:00 local
    rollups.refresh_integration(integration.pk)
    page = text(admin_client.get(url(workspace, "applications")))
    assert '<time datetime="2026-11-03">3 Nov 2026</time>' in page
    assert not re.search(r"\bin \d+ (hour|minute|day)", page)
    assert "times in Pacific/Kiritimati" in page


def test_an_application_is_created_and_names_are_unique(admin_client, workspace):
    response = admin_client.post(
        url(workspace, "application_add"),
        {"name": "Chatbot", "vendor": "OpenAI", "owner": "", "category": "AI provider"},
    )
    assert response.status_code == 302
    app = workspace.applications.get()
    assert (app.name, app.vendor, app.category) == ("Chatbot", "OpenAI", "AI provider")
    response = admin_client.post(url(workspace, "application_add"), {"name": "chatbot"})
    assert "An application with this name already exists." in text(response)
    assert workspace.applications.count() == 1


def test_an_application_is_renamed(admin_client, workspace):
    app = Application.objects.create(workspace=workspace, name="Chatbot")
    response = admin_client.post(url(workspace, "application_edit", pk=app.pk), {"name": "Support bot"})
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.name == "Support bot"


def test_deleting_an_application_hands_its_usage_to_the_next_rule(
    admin_client, workspace, integration, django_capture_on_commit_callbacks
):
    vendor = Application.objects.create(workspace=workspace, name="OpenAI")
    chatbot = Application.objects.create(workspace=workspace, name="Chatbot")
    AttributionRule.objects.create(
        workspace=workspace, provider="openai", application=vendor, priority=1000, is_default=True
    )
    specific = AttributionRule.objects.create(
        workspace=workspace, provider="openai", model="gpt-4o", application=chatbot
    )
    row(integration, 0, model="gpt-4o", application=chatbot, rule=specific)
    confirm = text(admin_client.get(url(workspace, "application_delete", pk=chatbot.pk)))
    assert "Delete Chatbot?" in confirm and "1 attribution rule pointing at it" in confirm
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(workspace, "application_delete", pk=chatbot.pk))
    assert response.status_code == 302
    assert not Application.objects.filter(pk=chatbot.pk).exists()
    assert UsageRecord.objects.get().application == vendor


# ---------------------------------------------------------------- licenses
LICENSE = {
    "plan_name": "Enterprise",
    "kind": "pay_as_you_go",
    "start_date": "2026-01-01",
    "end_date": "",
    "committed_amount": "",
    "currency": "",
    "seat_count": "",
}


@pytest.fixture
def app(workspace) -> Application:
    return Application.objects.create(workspace=workspace, name="Chatbot")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"end_date": "2025-12-31"}, "end_date", "The end date is before the start date."),
        ({"kind": "usage_commitment"}, "committed_amount", "A usage commitment needs the committed amount."),
        (
            {"kind": "usage_commitment", "committed_amount": "1000"},
            "currency",
            "A usage commitment needs its currency.",
        ),
        ({"kind": "seats"}, "seat_count", "A seat-based plan needs the number of seats."),
        ({"currency": "us$"}, "currency", "Use a three-letter currency code, e.g. USD."),
        ({"start_date": ""}, "start_date", "This field is required."),
    ],
)
def test_license_validation(admin_client, workspace, app, changes, field, message):
    response = admin_client.post(url(workspace, "license_add"), {**LICENSE, "application": app.pk, **changes})
    assert response.status_code == 200
    assert message in text(response)
    assert response.context["form"].errors[field] == [message]
    assert not License.objects.exists()


def test_a_commitment_license_is_created_and_listed(admin_client, workspace, app):
    data = {
        **LICENSE,
        "application": app.pk,
        "kind": "usage_commitment",
        "committed_amount": "50000",
        "currency": "eur",
        "end_date": "2026-12-31",
    }
    response = admin_client.post(url(workspace, "license_add"), data)
    # Back to the one Licenses page (Usage → Licenses), where admins edit and members read.
    assert response.status_code == 302 and response["Location"] == reverse(
        "usage:licenses", kwargs={"ws": workspace.slug}
    )
    lic = License.objects.get()
    assert (lic.workspace, lic.application, lic.committed_amount, lic.currency) == (
        workspace,
        app,
        Decimal(50000),
        "EUR",
    )
    page = text(admin_client.get(response["Location"]))
    assert "Enterprise" in page and "50,000.00 EUR committed" in page and "1 Jan 2026 → 31 Dec 2026" in page


def test_a_seat_license_without_currency_keeps_the_default(admin_client, workspace, app):
    assert (
        admin_client.post(
            url(workspace, "license_add"), {**LICENSE, "application": app.pk, "kind": "seats", "seat_count": "25"}
        ).status_code
        == 302
    )
    assert (License.objects.get().seat_count, License.objects.get().currency) == (25, "USD")


def test_another_workspaces_application_is_not_a_choice(admin_client, workspace, other_workspace):
    theirs = Application.objects.create(workspace=other_workspace, name="Globex app")
    response = admin_client.post(url(workspace, "license_add"), {**LICENSE, "application": theirs.pk})
    assert "Select a valid choice" in text(response)
    assert "Globex app" not in text(response)


def test_the_add_license_link_preselects_the_application(admin_client, workspace, app):
    response = admin_client.get(url(workspace, "license_add") + f"?application={app.pk}")
    assert response.context["form"]["application"].value() == app.pk


# ---------------------------------------------------------------- rules
def rule_data(**changes) -> dict[str, str]:
    data = {"provider": "openai", "application": "", "new_application": "", "license": "", "priority": "100"}
    data.update({f: "" for f in AttributionRule.MATCH_FIELDS})
    data.update(changes)
    return data


def test_rules_are_listed_in_precedence_order_with_the_default_marked(admin_client, workspace, app):
    AttributionRule.objects.create(
        workspace=workspace, provider="openai", application=app, priority=1000, is_default=True
    )
    AttributionRule.objects.create(
        workspace=workspace, provider="openai", model="gpt-4o*", project="proj_a", application=app, priority=10
    )
    AttributionRule.objects.create(
        workspace=workspace, provider="anthropic", model="claude-*", application=app, priority=50
    )
    page = text(admin_client.get(url(workspace, "rules")))
    assert page.index("gpt-4o*") < page.index("claude-*") < page.index("all OpenAI usage")
    assert ">Default</span>" in page
    assert "Attribution is up to date" in page


def test_a_rule_is_created_for_a_new_application_and_reattributes(
    admin_client, workspace, integration, django_capture_on_commit_callbacks
):
    row(integration, 0, model="gpt-4o")
    row(integration, 1, model="o1")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(workspace, "rule_add"), rule_data(model="gpt-*", new_application="Chatbot"))
    assert response.status_code == 302 and response["Location"] == url(workspace, "rules")
    rule = workspace.attribution_rules.get()
    assert (rule.application.name, rule.model, rule.workspace) == ("Chatbot", "gpt-*", workspace)
    assert list(UsageRecord.objects.filter(application=rule.application).values_list("model", flat=True)) == ["gpt-4o"]
    assert ReattributionJob.objects.get().status == "done"
    page = text(admin_client.get(response["Location"]))
    assert "Rule saved: matching OpenAI usage goes to Chatbot" in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({}, "application", "Choose the application this usage belongs to, or name a new one."),
        (
            {"application": "APP", "new_application": "Other"},
            "new_application",
            "Choose an application or type a new name, not both.",
        ),
        ({"application": "APP", "license": "OTHER_LICENSE"}, "license", "This license belongs to another application."),
        ({"new_application": "New", "license": "LICENSE"}, "license", "This license belongs to another application."),
        ({"provider": ""}, "provider", "This field is required."),
    ],
)
def test_rule_validation(admin_client, workspace, app, changes, field, message):
    lic = License.objects.create(workspace=workspace, application=app, plan_name="Plan", start_date=date(2026, 1, 1))
    other = Application.objects.create(workspace=workspace, name="Other app")
    other_license = License.objects.create(
        workspace=workspace, application=other, plan_name="Other plan", start_date=date(2026, 1, 1)
    )
    values = {"APP": str(app.pk), "LICENSE": str(lic.pk), "OTHER_LICENSE": str(other_license.pk)}
    data = rule_data(**{k: values.get(v, v) for k, v in changes.items()})
    response = admin_client.post(url(workspace, "rule_add"), data)
    assert response.status_code == 200
    assert message in response.context["form"].errors[field]
    assert not AttributionRule.objects.exists()


def test_a_rule_with_a_license_of_its_application(admin_client, workspace, app, django_capture_on_commit_callbacks):
    lic = License.objects.create(workspace=workspace, application=app, plan_name="Plan", start_date=date(2026, 1, 1))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            url(workspace, "rule_add"), rule_data(application=str(app.pk), license=str(lic.pk), project="proj_*")
        )
    assert AttributionRule.objects.get().license == lic


def test_editing_a_rule_keeps_its_license_choice(admin_client, workspace, app):
    lic = License.objects.create(workspace=workspace, application=app, plan_name="Plan", start_date=date(2026, 1, 1))
    rule = AttributionRule.objects.create(workspace=workspace, provider="openai", application=app, license=lic)
    response = admin_client.get(url(workspace, "rule_edit", pk=rule.pk))
    assert response.context["form"]["license"].value() == lic.pk


def test_moving_a_rule_over_htmx_returns_the_table_and_starts_reattribution(
    admin_client, workspace, app, django_capture_on_commit_callbacks
):
    first = AttributionRule.objects.create(
        workspace=workspace, provider="openai", model="a", application=app, priority=10
    )
    second = AttributionRule.objects.create(
        workspace=workspace, provider="openai", model="b", application=app, priority=20
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url(workspace, "rule_move", pk=second.pk), {"direction": "up"}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "reattribution-started"
    assert '<section id="rules"' in response.content.decode()
    assert list(workspace.attribution_rules.order_by("priority", "pk")) == [second, first]


def test_the_progress_panel_polls_while_a_job_runs_and_says_when_it_is_done(admin_client, workspace):
    job = ReattributionJob.objects.create(workspace=workspace, status="running", total=20_000, done=5_000)
    page = text(admin_client.get(url(workspace, "rules")))
    assert 'hx-trigger="every 1s, reattribution-started from:body"' in page
    assert "5,000 of 20,000 rows checked · 25%" in page
    ReattributionJob.objects.filter(pk=job.pk).update(status="done", done=20_000)
    poll = admin_client.get(url(workspace, "reattribution") + f"?watching={job.pk}", HTTP_HX_REQUEST="true")
    assert "Attribution is up to date" in text(poll)
    assert "every 1s" not in text(poll)
    assert poll["HX-Trigger"] == "attribution-changed"


def test_a_queued_job_nobody_runs_is_explained(admin_client, workspace):
    job = ReattributionJob.objects.create(workspace=workspace)
    ReattributionJob.objects.filter(pk=job.pk).update(created_at=datetime.now(UTC) - timedelta(minutes=5))
    assert "no worker has started it yet" in text(admin_client.get(url(workspace, "rules")))


def test_deleting_a_rule(admin_client, workspace, app, django_capture_on_commit_callbacks):
    rule = AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    assert "Delete this rule?" in text(admin_client.get(url(workspace, "rule_delete", pk=rule.pk)))
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url(workspace, "rule_delete", pk=rule.pk)).status_code == 302
    assert not AttributionRule.objects.exists()


# ---------------------------------------------------------------- unattributed usage
@pytest.fixture
def unattributed_rows(integration, app):
    rule = AttributionRule.objects.create(
        workspace=integration.workspace, provider="openai", project="proj_attributed", application=app
    )
    for hour in range(5):
        row(integration, hour, project="proj_a", model="gpt-4o", region=("us", "eu")[hour % 2])
        row(integration, hour, project="proj_a", model="gpt-4o", metric="output_tokens", quantity=3)
    for hour in range(2):
        row(integration, hour, project="proj_b", model="o1[preview]", metric="cost", quantity=2, unit="USD")
    row(integration, 0, project="proj_attributed", model="gpt-4o", application=app, rule=rule)
    return integration


def test_unattributed_usage_is_grouped_largest_first(admin_client, workspace, unattributed_rows):
    response = admin_client.get(url(workspace, "unattributed"))
    groups = response.context["groups"]
    assert [(g.provider, g.values["project"], g.values["model"], g.rows) for g in groups] == [
        ("openai", "proj_a", "gpt-4o", 10),
        ("openai", "proj_b", "o1[preview]", 2),
    ]
    assert groups[0].totals == [("input_tokens", Decimal(50), "tokens"), ("output_tokens", Decimal(15), "tokens")]
    assert (groups[0].first, groups[0].last) == (T0.date(), (T0 + timedelta(hours=5)).date())  # local days (UTC here)
    assert groups[1].totals == [("cost", Decimal(4), "USD")]
    assert response.context["group_columns"] == ["project", "model"]  # the dimensions these rows fill
    page = text(response)
    assert "12 rows in 2 groups" in page
    assert page.count(">Create rule from this</a>") == 2
    assert "proj_attributed" not in page


def test_create_rule_from_a_group_prefills_its_exact_values_and_the_group_disappears(
    admin_client, workspace, unattributed_rows, django_capture_on_commit_callbacks
):
    page = admin_client.get(url(workspace, "unattributed")).content.decode()
    links = re.findall(r'href="([^"]+)">Create rule from this</a>', page)
    link = unquote(links[1].replace("&amp;", "&"))
    assert "project=proj_b" in link and "model=o1[[]preview]" in link and "provider=openai" in link
    form_page = admin_client.get(links[1].replace("&amp;", "&"))
    form = form_page.context["form"]
    assert (form["provider"].value(), form["project"].value(), form["model"].value()) == (
        "openai",
        "proj_b",
        "o1[[]preview]",
    )
    assert form["region"].value() in ("", None)
    assert "Prefilled from unattributed usage" in text(form_page)
    assert 'name="from" value="unattributed"' in form_page.content.decode()

    data = rule_data(
        project="proj_b", model="o1[[]preview]", new_application="Reasoning lab", **{"from": "unattributed"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url(workspace, "rule_add"), data)
    assert response.status_code == 302 and response["Location"] == url(workspace, "unattributed")
    after = admin_client.get(response["Location"])
    assert [g.values["project"] for g in after.context["groups"]] == ["proj_a"]
    assert "Rule saved: matching OpenAI usage goes to Reasoning lab" in text(after)
    assert UsageRecord.objects.filter(application__name="Reasoning lab").count() == 2


def test_the_unattributed_list_refreshes_itself_when_reattribution_finishes(
    admin_client, workspace, unattributed_rows, django_capture_on_commit_callbacks
):
    """A worker re-attributes after the rule is saved: the page the browser lands on follows the job
    and, when it ends, the groups section reloads (attribution-changed) without the user reloading."""
    from usage.tasks import reattribute_workspace

    data = rule_data(
        project="proj_b", model="o1[[]preview]", new_application="Reasoning lab", **{"from": "unattributed"}
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:  # no worker has run yet
        response = admin_client.post(url(workspace, "rule_add"), data)
    assert len(queued) == 1
    job = ReattributionJob.objects.get()
    landing = admin_client.get(response["Location"]).content.decode()
    assert f'?watching={job.pk}"' in landing and 'hx-trigger="every 1s, reattribution-started from:body"' in landing
    assert 'hx-trigger="attribution-changed from:body"' in landing  # the groups listen for the job's end
    assert "o1[preview]" in landing  # still unattributed: the job has not run

    reattribute_workspace(job.pk)  # the worker
    poll = admin_client.get(url(workspace, "reattribution") + f"?watching={job.pk}", HTTP_HX_REQUEST="true")
    assert poll["HX-Trigger"] == "attribution-changed" and "every 1s" not in text(poll)
    groups = admin_client.get(url(workspace, "unattributed"), HTTP_HX_REQUEST="true").content.decode()
    assert "o1[preview]" not in groups and "proj_a" in groups


def test_the_totals_come_before_the_dimensions_so_long_names_never_push_them_out_of_view(
    admin_client, workspace, unattributed_rows
):
    page = text(admin_client.get(url(workspace, "unattributed")))
    head = re.search(r"<thead>(.*?)</thead>", page).group(1)
    assert [h.strip() for h in re.findall(r"<th[^>]*>([^<]*)</th>", head)] == [
        "Provider",
        "Totals",
        "Rows",
        "Days (UTC)",
        "Project",
        "Model",
    ]
    assert "Input tokens</span> 50 tokens" in page and "Reported cost</span> $4.00" in page


# ---------------------------------------------------------------- rule preview
def _preview(client, workspace, **params) -> str:
    response = client.get(url(workspace, "rule_preview"), rule_data(**params), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="rule-preview-result"') and "<html" not in body
    return re.sub(r"<[^>]+>", "", text(response)).strip()


def test_the_rule_form_previews_rows_and_spend_before_saving(admin_client, workspace, unattributed_rows):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        lab = _preview(admin_client, workspace, project="proj_b")
    assert "2 rows would go to this rule (2 of them unattributed now) · reported cost $4.00." in lab
    assert not [q for q in captured.captured_queries if '"usage_usagerecord"' in q["sql"]]  # the rollups only

    # gpt-4o: proj_a's 10 rows; the proj_attributed row stays with the older rule of equal priority.
    gpt = _preview(admin_client, workspace, model="gpt-4o")
    assert "10 rows would go to this rule (10 of them unattributed now) · 50 tokens in, 15 tokens out." in gpt
    assert "1 more matching row stays with an earlier rule" in gpt
    examples = " ".join(gpt.split())  # the combinations it takes, largest first
    assert "project proj_a model gpt-4o 5 rows project proj_a region us model gpt-4o 3 rows" in examples
    first = _preview(admin_client, workspace, model="gpt-4o", priority="1")  # runs before it
    assert "11 rows would go to this rule (10 of them unattributed now)" in first and "earlier rule" not in first

    assert "Matches no stored usage" in _preview(admin_client, workspace, model="GPT-4O")  # case matters
    assert "Choose a provider" in _preview(admin_client, workspace, provider="")


def test_editing_a_rule_previews_it_in_place_of_itself(admin_client, workspace, unattributed_rows):
    rule = AttributionRule.objects.get()
    edited = _preview(admin_client, workspace, project="proj_*", rule=str(rule.pk))
    assert "13 rows would go to this rule (12 of them unattributed now)" in edited and "earlier rule" not in edited
    # The edit page opens with what the saved rule takes now.
    page = text(admin_client.get(url(workspace, "rule_edit", pk=rule.pk)))
    assert "1 row would go to this rule (0 of them unattributed now)" in re.sub(r"<[^>]+>", "", page)
    assert f'hx-vals=\'{{"rule": "{rule.pk}"}}\'' in page


def test_the_preview_follows_the_prefilled_group_and_refuses_other_workspaces_rules(
    admin_client, workspace, other_workspace, unattributed_rows
):
    form = text(
        admin_client.get(
            url(workspace, "rule_add"), {"provider": "openai", "project": "proj_b", "from": "unattributed"}
        )
    )
    assert "2 rows would go to this rule" in re.sub(r"<[^>]+>", "", form)
    assert 'hx-get="' + url(workspace, "rule_preview") + '"' in form
    theirs = AttributionRule.objects.create(
        workspace=other_workspace,
        provider="openai",
        application=Application.objects.create(workspace=other_workspace, name="Theirs"),
    )
    response = admin_client.get(
        url(workspace, "rule_preview"), {"provider": "openai", "rule": theirs.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 404
    # Without htmx the preview is the form's own page.
    plain = admin_client.get(url(workspace, "rule_preview"), {"provider": "openai", "project": "proj_b"})
    assert plain.status_code == 302 and plain["Location"].startswith(url(workspace, "rule_add") + "?")


def test_the_groups_refresh_as_a_fragment(admin_client, workspace, unattributed_rows):
    response = admin_client.get(url(workspace, "unattributed"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="groups"')
    assert "<html" not in body


def test_when_everything_is_attributed_the_page_says_so(admin_client, workspace, integration, app):
    rule = AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    row(integration, 0, application=app, rule=rule)
    assert "All usage is attributed" in text(admin_client.get(url(workspace, "unattributed")))


def test_without_usage_the_page_says_so(admin_client, workspace):
    assert "No usage stored yet" in text(admin_client.get(url(workspace, "unattributed")))


# ---------------------------------------------------------------- navigation
@pytest.mark.parametrize(
    "name", ["applications", "rules", "unattributed", "rule_add", "application_add", "license_add"]
)
def test_every_settings_page_has_the_company_settings_tabs(admin_client, workspace, name):
    page = text(admin_client.get(url(workspace, name)))
    for label in ("Integrations", "Applications", "Licenses", "Attribution rules", "Unattributed usage"):
        assert f">{label}</a>" in page


def test_rule_preview_counts_what_the_rule_would_take_and_a_label_narrows_it(admin_client, workspace, integration):
    row(integration, 0, project="proj_a", metric="cost", quantity=4, unit="USD", labels={"team": "search"})
    row(integration, 1, project="proj_a", metric="cost", quantity=6, unit="USD", labels={"team": "ads"})
    row(integration, 2, project="proj_a", metric="cost", quantity=5, unit="USD")
    row(integration, 3, project="proj_b", metric="cost", quantity=7, unit="USD")
    preview = url(workspace, "rule_preview")
    htmx = {"HTTP_HX_REQUEST": "true"}

    by_project = text(admin_client.get(preview, {"provider": "openai", "project": "proj_a"}, **htmx))
    assert "<strong>3 rows</strong> would go to this rule" in by_project and "$15.00" in by_project

    # Labels are kept on the stored rows, not in the daily rollups: the preview reads those rows.
    by_label = text(
        admin_client.get(preview, {"provider": "openai", "project": "proj_a", "label": "team=search"}, **htmx)
    )
    assert "<strong>1 row</strong> would go to this rule" in by_label and "$4.00" in by_label
    nothing = text(admin_client.get(preview, {"provider": "openai", "label": "team=nobody"}, **htmx))
    assert "Matches no stored usage" in nothing
