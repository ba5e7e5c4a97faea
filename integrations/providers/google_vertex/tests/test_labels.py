"""The billing export's labels kept with each Vertex row (outside its key) and matched by
attribution rules: a rule `label team=research` made on the rules page takes the research
team's usage, at ingest and by re-attribution; rows whose export rows disagree on a label keep
only the labels they all share."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.google_vertex.schema import BillingRow, billing_rows, billing_samples, parse_query_response
from integrations.providers.google_vertex.tests import support
from sandbox import google_vertex as fake
from usage.models import Application, AttributionRule, UsageRecord

pytestmark = pytest.mark.django_db
START, END = support.days_ago(4), support.days_ago(1)
RESEARCH, CHAT = fake.PROJECTS[1], fake.PROJECTS[0]


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("google_vertex", support.credential(sandbox), support.settings(sandbox))


def sync(integration: Integration) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=START, until=END, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def rule_form(**changes: str) -> dict[str, str]:
    data = {"provider": "google_vertex", "application": "", "new_application": "", "license": "", "priority": "10"}
    data.update({f: "" for f in (*AttributionRule.MATCH_FIELDS, "label")})
    data.update(changes)
    return data


def test_rows_keep_the_export_labels_outside_their_key(integration) -> None:
    sync(integration)
    rows = UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost")
    assert {tuple(sorted(r.labels.items())) for r in rows.filter(project=RESEARCH)} == {(("team", "research"),)}
    assert {tuple(sorted(r.labels.items())) for r in rows.filter(project=CHAT)} == {(("env", "prod"), ("team", "chat"))}
    # A second sync rewrites nothing: labels are not part of the key and compare equal.
    before = sorted(rows.values_list("pk", "quantity", "labels"))
    sync(integration)
    assert sorted(rows.values_list("pk", "quantity", "labels")) == before


def test_a_label_rule_made_on_the_rules_page_takes_that_teams_usage(
    admin_client, workspace, integration, django_capture_on_commit_callbacks
) -> None:
    sync(integration)
    url = reverse("usage_settings:rule_add", kwargs={"ws": workspace.slug})
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, rule_form(label="team=research*", new_application="Research ML"))
    assert response.status_code == 302
    app = Application.objects.get(workspace=workspace, name="Research ML")
    usage = UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost")
    assert usage.filter(project=RESEARCH).exists() and usage.filter(project=CHAT).exists()
    assert not usage.filter(project=RESEARCH).exclude(application=app).exists()
    assert not usage.filter(project=CHAT, application=app).exists()
    page = admin_client.get(reverse("usage_settings:rules", kwargs={"ws": workspace.slug})).content.decode()
    assert "team=research*" in page


def test_a_label_rule_attributes_at_ingest(workspace, integration) -> None:
    app = Application.objects.create(workspace=workspace, name="Chatbot")
    AttributionRule.objects.create(
        workspace=workspace, provider="google_vertex", label="team=chat", application=app, priority=5
    )
    sync(integration)
    usage = UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost")
    assert set(usage.filter(application=app).values_list("project", flat=True)) == {CHAT}
    assert not usage.filter(project=CHAT).exclude(application=app).exists()


@pytest.mark.parametrize("label", ["team", "=research", "team research"])
def test_a_label_pattern_must_be_key_equals_value(admin_client, workspace, label) -> None:
    url = reverse("usage_settings:rule_add", kwargs={"ws": workspace.slug})
    response = admin_client.post(url, rule_form(label=label, new_application="X"))
    assert response.status_code == 200
    assert "key=value" in " ".join(response.context["form"].errors["label"])
    assert not AttributionRule.objects.exists()


def test_rows_that_share_a_key_keep_only_the_labels_they_share() -> None:
    def row(labels: tuple[tuple[str, str], ...], cost: str) -> BillingRow:
        return BillingRow(date(2026, 11, 1), "p", "us-central1", "A1F3-5C2E-7B90", "Gemini 2.5 Flash GA Text Input - Predictions",
                          "count", "USD", Decimal(1000), Decimal(cost), Decimal(0), (), fake.VERTEX_SERVICE_ID, "Vertex AI",
                          labels)  # fmt: skip

    samples = billing_samples([row((("env", "prod"), ("team", "a")), "1"), row((("team", "a"),), "2")], account="X")
    cost = next(s for s in samples if s.metric == "cost")
    assert cost.quantity == Decimal(3) and cost.labels == (("team", "a"),)


def test_recorded_result_with_services_credit_types_and_labels() -> None:
    """A result of the documented shape (service, labels as TO_JSON_STRING of the key/value
    array, credits as a JSON list by type) through the connector's pure path."""
    page = parse_query_response(support.load("query_results_services_labels.json"))
    samples = billing_samples(billing_rows(page.fields, page.rows), account="01A2B3-C4D5E6-F7A8B9")
    got = {(s.endpoint, s.model, s.operation, s.metric): (s.quantity, s.labels) for s in samples}
    search = (("team", "search"),)  # the two Vertex rows share only team=search
    prod = (("env", "prod"), ("team", "search"))  # the credits came from the env=prod row alone
    assert got == {
        ("Vertex AI", "gemini-2.5-flash", "text input", "cost"): (Decimal("0.9"), search),
        ("Vertex AI", "gemini-2.5-flash", "text input", "input_tokens"): (Decimal(3_000_000), search),
        ("Vertex AI", "gemini-2.5-flash", "credits: committed usage discount", "cost"): (Decimal("-0.06"), prod),
        ("Vertex AI", "gemini-2.5-flash", "credits: promotion", "cost"): (Decimal("-0.1"), prod),
        ("Generative Language API", "gemini-2.5-flash", "output", "cost"): (Decimal("0.1"), ()),
        ("Generative Language API", "gemini-2.5-flash", "output", "output_tokens"): (Decimal(40_000), ()),
        ("Generative Language API", "gemini-2.5-flash", "credits: free tier", "cost"): (Decimal("-0.1"), ()),
        ("Claude Sonnet 4.5", "claude-sonnet-4.5", "input", "cost"): (Decimal("0.3"), (("team", "research"),)),
        ("Claude Sonnet 4.5", "claude-sonnet-4.5", "input", "input_tokens"): (
            Decimal(100_000),
            (("team", "research"),),
        ),
    }
    net = sum(s.quantity for s in samples if s.metric == "cost")
    assert net == Decimal("1.04")  # 0.9 + 0.1 + 0.3 gross, less 0.26 of credits
