"""Company Settings → Anomaly rule: admins set the workspace's rule, it is validated, and the
Celery evaluation uses it (a changed setting changes what alerts)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from alerts.models import Alert, AnomalyRule
from alerts.tasks import evaluate_alerts
from alerts.tests.conftest import put_spend

TODAY = date(2026, 12, 6)


def url(ws: str = "acme") -> str:
    return reverse("alerts:anomaly_rule", kwargs={"ws": ws})


def rule(**changes) -> dict:
    data = {"enabled": "on", "ratio": "1.5", "mads": "3", "min_amount": "50"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def spike(openai):
    """Yesterday's spend is 400 USD against a steady 100 (median 100, MAD 0)."""
    put_spend(openai, {TODAY - timedelta(days=n): "100" for n in range(2, 31)})
    put_spend(openai, {TODAY - timedelta(days=1): "400"})
    return openai


def test_page_shows_the_defaults_until_saved(admin_client, workspace):
    page = admin_client.get(url())
    assert page.status_code == 200
    form = page.context["form"]
    assert (form["ratio"].value(), form["mads"].value(), form["min_amount"].value(), form["enabled"].value()) == (
        Decimal("1.5"), Decimal("3"), Decimal("50"), True,
    )  # fmt: skip
    assert not AnomalyRule.objects.exists()


def test_only_admins_of_the_workspace(member_client, outsider_client):
    assert member_client.get(url()).status_code == 403
    assert member_client.post(url(), rule(ratio="9")).status_code == 403
    assert outsider_client.post(url(), rule(ratio="9")).status_code == 404
    assert not AnomalyRule.objects.exists()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"ratio": "0.5"}, "ratio"),
        ({"ratio": "abc"}, "ratio"),
        ({"ratio": "101"}, "ratio"),
        ({"mads": "-1"}, "mads"),
        ({"min_amount": "-5"}, "min_amount"),
        ({"min_amount": ""}, "min_amount"),
        ({"ratio": "1", "mads": "0", "min_amount": "0"}, None),
    ],
)
def test_invalid_values_are_refused(admin_client, workspace, changes, field):
    response = admin_client.post(url(), rule(**changes))
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors[field] if field else form.non_field_errors()
    assert not AnomalyRule.objects.exists()


def test_a_changed_rule_changes_what_alerts(admin_client, workspace, admin_user, spike):
    # 400 vs a median of 100 is 4×: a rule asking for 5× holds it back…
    assert admin_client.post(url(), rule(ratio="5")).status_code == 302
    evaluate_alerts.delay()
    assert not Alert.objects.filter(kind="anomaly").exists() and mail.outbox == []

    # …and so does a $500 floor, whatever the ratio…
    admin_client.post(url(), rule(ratio="1.5", min_amount="500"))
    evaluate_alerts.delay()
    assert not Alert.objects.filter(kind="anomaly").exists()

    # …and switching anomalies off…
    admin_client.post(url(), rule(enabled=None))
    evaluate_alerts.delay()
    assert not Alert.objects.filter(kind="anomaly").exists()

    # …while 3× (and the default floor) raises it, with the rule in its numbers.
    admin_client.post(url(), rule(ratio="3"))
    saved = AnomalyRule.objects.get(workspace=workspace)
    assert (saved.enabled, saved.ratio, saved.mads, saved.min_amount) == (
        True,
        Decimal("3"),
        Decimal("3"),
        Decimal("50"),
    )
    evaluate_alerts.delay()
    alert = Alert.objects.get(key="anomaly:provider:openai")
    assert alert.numbers["rule"] == "> median × 3.00, > median + 3.00 × MAD, ≥ median + 50.00"
    assert any("Provider openai spent 400.00 USD" in m.subject for m in mail.outbox)
    page = admin_client.get(url()).content.decode()
    assert 'value="3.00"' in page
