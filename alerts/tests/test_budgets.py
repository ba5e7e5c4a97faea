"""Budgets through the Celery task: levels open and escalate an alert, people are told once per
change (mail to admins + a notification each), a full day below resolves it, mutes silence it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, Budget, Mute, Notification
from alerts.tasks import evaluate_alerts, evaluate_workspace_alerts
from alerts.tests.conftest import clear_spend, put_spend

TODAY = date(2026, 12, 6)  # conftest pins 2026-12-06T12:00Z
pytestmark = pytest.mark.usefixtures("no_anomalies")


def days(first: date, last: date, amount: str) -> dict[date, str]:
    return {first + timedelta(days=n): amount for n in range((last - first).days + 1)}


@pytest.fixture
def budget(workspace) -> Budget:
    return Budget.objects.create(workspace=workspace, name="AI spend", amount=1000)


@pytest.fixture
def people(admin_user, member_user):
    return admin_user, member_user


def test_forecast_then_warning_then_exceeded_mail_once_per_change(
    workspace, openai, budget, people, admin_client, member_client
):
    admin, member = people
    # 100/day from Nov 29: month to date 500 (Dec 1–5), run rate 100/day → forecast 500 + 100×25 = 3000.
    put_spend(openai, days(date(2026, 11, 29), date(2026, 12, 5), "100"))
    evaluate_alerts.delay()
    alert = Alert.objects.get(workspace=workspace, budget=budget)
    assert (alert.state, alert.level) == ("open", "forecast")
    assert alert.numbers["month_to_date"] == "500.00"
    assert alert.numbers["forecast"] == "3000.00"
    assert alert.numbers["percent"] == "50.0"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [admin.email]  # admins only, not the member
    assert "forecast to exceed" in mail.outbox[0].subject
    assert "http://localhost:8000/w/acme/notifications/" in mail.outbox[0].body

    # Nothing changed: no second mail, no second notification, still one alert.
    evaluate_alerts.delay()
    evaluate_workspace_alerts.delay(workspace.pk)
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1
    assert Alert.objects.count() == 1

    put_spend(openai, {TODAY: "350"})  # 850 → 85 %
    evaluate_alerts.delay()
    alert.refresh_from_db()
    assert (alert.state, alert.level) == ("escalated", "warning")
    assert len(mail.outbox) == 2 and "passed 80%" in mail.outbox[1].subject

    put_spend(openai, {TODAY: "550"})  # 1050 → 105 %
    evaluate_alerts.delay()
    evaluate_alerts.delay()
    alert.refresh_from_db()
    assert (alert.state, alert.level) == ("escalated", "exceeded")
    assert alert.numbers["month_to_date"] == "1050.00"
    assert len(mail.outbox) == 3 and "passed 100%" in mail.outbox[2].subject
    assert list(Notification.objects.filter(user=admin).values_list("event", flat=True)) == [
        "escalated",
        "escalated",
        "opened",
    ]
    assert not Notification.objects.filter(user=member).exists()

    page = admin_client.get(reverse("alerts:budgets", kwargs={"ws": "acme"})).content.decode()
    assert "Passed 100%" in page and "$1,050.00 (105%)" in page
    # The overview shows every budget with its state, to every member.
    overview = member_client.get(reverse("accounts:workspace", kwargs={"ws": "acme"})).content.decode()
    assert 'id="overview-budgets"' in overview and "AI spend" in overview
    assert "$1,050.00" in overview and "Passed 100%" in overview and "Manage budgets" not in overview


def test_resolved_only_after_a_full_day_below(workspace, openai, budget, people):
    put_spend(openai, {TODAY: "900"})
    evaluate_alerts.delay()
    assert len(mail.outbox) == 1
    clear_spend(openai)  # restated away
    evaluate_alerts.delay()
    alert = Alert.objects.get()
    assert alert.state == "open" and alert.below_since is not None
    assert len(mail.outbox) == 1
    with time_machine.travel(datetime(2026, 12, 7, 11, 0, tzinfo=UTC), tick=False):
        evaluate_alerts.delay()  # below for 23 hours: not yet
    assert Alert.objects.get().state == "open" and len(mail.outbox) == 1
    with time_machine.travel(datetime(2026, 12, 7, 12, 5, tzinfo=UTC), tick=False):
        evaluate_alerts.delay()
        evaluate_alerts.delay()
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert len(mail.outbox) == 2 and mail.outbox[1].subject.startswith("[Doow] Resolved")
    # Crossing again opens a new alert (the old one stays resolved, with its numbers).
    put_spend(openai, {TODAY: "950"})
    with time_machine.travel(datetime(2026, 12, 7, 13, 0, tzinfo=UTC), tick=False):
        evaluate_alerts.delay()
    assert Alert.objects.filter(state="open").count() == 1 and Alert.objects.count() == 2
    assert len(mail.outbox) == 3


def test_back_above_before_a_day_keeps_the_alert_without_mail(workspace, openai, budget, people):
    put_spend(openai, {TODAY: "900"})
    evaluate_alerts.delay()
    put_spend(openai, {TODAY: "10"})
    evaluate_alerts.delay()
    put_spend(openai, {TODAY: "900"})
    evaluate_alerts.delay()
    alert = Alert.objects.get()
    assert alert.state == "open" and alert.below_since is None
    assert len(mail.outbox) == 1


def test_estimate_counts_where_no_cost_is_reported_and_other_currencies_never(workspace, openai, budget, people):
    from alerts.tests.conftest import make_integration

    groq = make_integration(workspace, name="Groq", provider="groq")
    put_spend(groq, {TODAY: "700"}, metric="estimated_cost")
    put_spend(openai, {TODAY: "150"})
    put_spend(openai, {TODAY: "999"}, metric="estimated_cost")  # OpenAI reports cost: its estimate is not spend
    put_spend(openai, {date(2026, 12, 5): "5000"}, unit="EUR")
    evaluate_alerts.delay()
    alert = Alert.objects.get()
    assert alert.numbers["month_to_date"] == "850.00"
    assert alert.numbers["estimated"] == "700.00"
    assert alert.level == "warning"


def test_application_license_and_provider_scopes(workspace, openai, people):
    from alerts.tests.conftest import make_integration
    from usage.models import Application, License

    app = Application.objects.create(workspace=workspace, name="Chatbot")
    seats = Application.objects.create(workspace=workspace, name="Copilot")
    plan = License.objects.create(workspace=workspace, application=seats, plan_name="Team", start_date=TODAY)
    groq = make_integration(workspace, name="Groq", provider="groq")
    put_spend(openai, {TODAY: "90"}, application=app)
    put_spend(openai, {TODAY: "60"}, application=seats, license=plan, model="copilot")
    put_spend(groq, {TODAY: "500"}, metric="estimated_cost")
    levels = {"alert_on_forecast": False, "workspace": workspace}
    by_app = Budget.objects.create(name="Chatbot", scope="application", application=app, amount=100, **levels)
    by_license = Budget.objects.create(name="Copilot Team", scope="license", license=plan, amount=50, **levels)
    by_provider = Budget.objects.create(name="OpenAI", scope="provider", provider="openai", amount=160, **levels)
    groq_budget = Budget.objects.create(name="Groq", scope="provider", provider="groq", amount=1000, **levels)
    evaluate_alerts.delay()
    assert Alert.objects.get(budget=by_app).numbers["month_to_date"] == "90.00"  # not the license's 60
    assert Alert.objects.get(budget=by_app).level == "warning"
    assert Alert.objects.get(budget=by_license).level == "exceeded"  # 60 of 50
    assert Alert.objects.get(budget=by_provider).numbers["month_to_date"] == "150.00"  # not Groq's
    assert Alert.objects.get(budget=by_provider).level == "warning"
    assert not Alert.objects.filter(budget=groq_budget).exists()  # 50 %


def test_month_is_the_workspace_month(workspace, openai, people):
    """At 2026-12-01 05:00 UTC it is still November in Los Angeles: November's spend counts."""
    workspace.time_zone = "America/Los_Angeles"
    workspace.save()
    budget = Budget.objects.create(workspace=workspace, name="AI", amount=1000, alert_on_forecast=False)
    put_spend(openai, {date(2026, 11, 20): "900"})  # noon UTC = Nov 20 local
    with time_machine.travel(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), tick=False):
        evaluate_alerts.delay()
    assert Alert.objects.get(budget=budget).numbers["month"] == "2026-11"
    assert len(mail.outbox) == 1


def test_muted_budget_tracks_state_but_tells_nobody(workspace, openai, budget, people, admin_client):
    response = admin_client.post(reverse("alerts:budget_mute", kwargs={"ws": "acme", "pk": budget.pk}), {"mute": "1"})
    assert response.status_code == 302 and Mute.objects.filter(budget=budget).exists()
    put_spend(openai, {TODAY: "1200"})
    evaluate_alerts.delay()
    assert Alert.objects.get().level == "exceeded"
    assert mail.outbox == [] and not Notification.objects.exists()


def test_evaluation_queries_are_bounded(
    workspace, openai, people, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    from alerts.models import Webhook
    from alerts.tests.conftest import make_integration
    from usage.models import Application

    # With a webhook too: its deliveries are tasks of their own, queued once the evaluation commits.
    Webhook.objects.create(
        workspace=workspace,
        url="https://hooks.example.test/doow",
        secret="whsec_x",
        secret_hint="ec_x",
        created_at=timezone.now(),
    )

    for n in range(4):
        app = Application.objects.create(workspace=workspace, name=f"App {n}")
        put_spend(make_integration(workspace, name=f"I{n}"), {TODAY: "100"}, application=app)
        Budget.objects.create(workspace=workspace, name=f"B{n}", scope="application", application=app, amount=50)
        Budget.objects.create(workspace=workspace, name=f"W{n}", amount=450)  # 400 of 450: warning
    with django_assert_max_num_queries(20), django_capture_on_commit_callbacks() as queued:
        evaluate_workspace_alerts.delay(workspace.pk)
    assert len(mail.outbox) == 8 and len(queued) == 8  # 4 exceeded + 4 warning
    with CaptureQueriesContext(connection) as second:
        evaluate_workspace_alerts.delay(workspace.pk)
    assert len(second.captured_queries) <= 20 and len(mail.outbox) == 8


def test_budgets_page_shows_month_to_date_and_forecast_within_budget(workspace, openai, budget, admin_client):
    put_spend(openai, days(date(2026, 11, 29), date(2026, 12, 5), "10"))
    page = admin_client.get(reverse("alerts:budgets", kwargs={"ws": "acme"}))
    # Month to date 50 (Dec 1–5) = 5 %; forecast 50 + 10 × 25 = 300.
    assert b"$50.00 (5%)" in page.content and b"$300.00" in page.content and b"Within budget" in page.content
    overview = admin_client.get(reverse("accounts:workspace", kwargs={"ws": "acme"})).content.decode()
    assert "Within budget" in overview and "$300.00" in overview and "Manage budgets" in overview


def test_budget_pages_are_admin_only_and_tenant_scoped(
    workspace, other_workspace, admin_client, member_client, outsider_client
):
    url = reverse("alerts:budget_add", kwargs={"ws": "acme"})
    assert member_client.get(url).status_code == 403
    assert outsider_client.get(url).status_code == 404
    response = admin_client.post(
        url,
        {
            "name": "All",
            "scope": "workspace",
            "amount": "500",
            "currency": "usd",
            "warn_percent": 70,
            "exceed_percent": 100,
            "alert_on_forecast": "on",
        },
    )
    assert response.status_code == 302
    budget = Budget.objects.get(workspace=workspace)
    assert (budget.amount, budget.currency, budget.warn_percent) == (500, "USD", 70)
    response = admin_client.post(
        reverse("alerts:budget_edit", kwargs={"ws": "acme", "pk": budget.pk}),
        {
            "name": "All",
            "scope": "application",
            "amount": "500",
            "currency": "USD",
            "warn_percent": 70,
            "exceed_percent": 100,
        },
    )
    assert response.status_code == 200 and b"Choose the application" in response.content
    foreign = Budget.objects.create(workspace=other_workspace, name="Theirs", amount=1)
    assert admin_client.get(reverse("alerts:budget_edit", kwargs={"ws": "acme", "pk": foreign.pk})).status_code == 404
    assert admin_client.post(reverse("alerts:budget_delete", kwargs={"ws": "acme", "pk": budget.pk})).status_code == 302
    assert not Budget.objects.filter(workspace=workspace).exists()


def test_levels_set_on_the_form_are_the_ones_evaluated(workspace, openai, people, admin_client):
    """Defaults 80 %, 100 % and forecast on; an admin changes them and the next run uses them."""
    add = admin_client.get(reverse("alerts:budget_add", kwargs={"ws": "acme"}))
    form = add.context["form"]
    assert (form["warn_percent"].value(), form["exceed_percent"].value(), form["alert_on_forecast"].value()) == (
        80,
        100,
        True,
    )
    put_spend(openai, {TODAY: "600"})  # 60 % of 1000
    fields = {"name": "AI", "scope": "workspace", "amount": "1000", "currency": "USD"}
    admin_client.post(
        reverse("alerts:budget_add", kwargs={"ws": "acme"}), {**fields, "warn_percent": 50, "exceed_percent": 90}
    )
    budget = Budget.objects.get()
    assert not budget.alert_on_forecast  # unticked on the form
    evaluate_alerts.delay()
    assert Alert.objects.get().level == "warning" and "passed 50%" in mail.outbox[-1].subject
    edit = reverse("alerts:budget_edit", kwargs={"ws": "acme", "pk": budget.pk})
    assert admin_client.post(edit, {**fields, "warn_percent": 40, "exceed_percent": 55}).status_code == 302
    evaluate_alerts.delay()
    alert = Alert.objects.get()
    assert (alert.state, alert.level) == ("escalated", "exceeded")
    assert [m.subject for m in mail.outbox] == [
        "[Doow] Opened: Budget AI passed 50%",
        "[Doow] Escalated: Budget AI passed 55%",
    ]
