"""The notifications page: each person sees their own, unread until marked read."""

from __future__ import annotations

import importlib
from datetime import date

import pytest
from django.urls import reverse

from alerts.models import Budget, Notification
from alerts.tasks import evaluate_alerts
from alerts.tests.conftest import put_spend

pytestmark = pytest.mark.usefixtures("no_anomalies")


def test_unread_until_marked_read(workspace, openai, admin_user, admin_client, outsider_client):
    Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    put_spend(openai, {date(2026, 12, 6): "120"})
    evaluate_alerts.delay()
    url = reverse("alerts:notifications", kwargs={"ws": "acme"})
    page = admin_client.get(url)
    assert b"1 unread" in page.content and b"Budget AI spend passed 100%" in page.content
    assert b"Unread" in page.content
    assert outsider_client.get(url).status_code == 404
    assert admin_client.post(reverse("alerts:notifications_read", kwargs={"ws": "acme"})).status_code == 302
    page = admin_client.get(url)
    assert b"Nothing unread" in page.content and b"Budget AI spend passed 100%" in page.content
    assert Notification.objects.get(user=admin_user).read_at is not None


def test_member_sees_page_without_others_notifications(workspace, openai, admin_user, member_client):
    Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    put_spend(openai, {date(2026, 12, 6): "120"})
    evaluate_alerts.delay()
    page = member_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"}))
    assert page.status_code == 200 and b"No notifications" in page.content


def test_notifications_from_before_their_numbers_were_stored_get_them_from_their_body(
    workspace, openai, admin_user, admin_client
):
    """alerts 0004 fills Notification.numbers of earlier rows from their "name: value" body."""
    from django.apps import apps

    fill = importlib.import_module("alerts.migrations.0004_notification_numbers").numbers_from_body
    Budget.objects.create(workspace=workspace, name="AI spend", amount=100)
    put_spend(openai, {date(2026, 12, 6): "120"})
    evaluate_alerts.delay()
    note = Notification.objects.get(user=admin_user)
    told = note.numbers
    assert told["month_to_date"] == "120.00"
    Notification.objects.filter(pk=note.pk).update(numbers={})  # as 0004 found it
    fill(apps, None)
    note.refresh_from_db()
    assert note.numbers == {name: str(value) for name, value in told.items() if value not in (None, "")}
    page = admin_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"})).content.decode()
    assert "<dt>Month to date</dt><dd>120.00</dd>" in page
