"""The spend-anomaly rule on synthetic series (flat, weekly rhythm, a true spike, a slow ramp),
and through the Celery task: one mail when a day spikes, a link to the explorer filtered to it,
nothing more while it stays open, resolved after a full day back to normal."""

from __future__ import annotations

import html
import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import time_machine
from django.core import mail
from django.urls import reverse

from alerts.anomalies import Rule, judge, judge_day
from alerts.models import Alert, AnomalyRule
from alerts.tasks import evaluate_alerts
from alerts.tests.conftest import put_spend

D = Decimal
START = date(2026, 9, 1)


def series(values) -> dict[date, Decimal]:
    return {START + timedelta(days=n): D(str(v)) for n, v in enumerate(values)}


DEFAULT_RULE = Rule()


def alerting_days(data: dict[date, Decimal], rule: Rule = DEFAULT_RULE) -> list[date]:
    return [day for day in sorted(data) if day >= START + timedelta(days=28) and judge_day(data, day, rule).anomaly]


def test_flat_with_noise_never_alerts():
    rng = random.Random(11)
    assert alerting_days(series(round(1000 + rng.uniform(-80, 80), 2) for _ in range(90))) == []


def test_weekly_rhythm_never_alerts():
    # Weekdays 1000, weekends 80: a Monday is judged against weekdays only.
    data = {START + timedelta(days=n): D(80 if (START + timedelta(days=n)).weekday() >= 5 else 1000) for n in range(90)}
    assert alerting_days(data) == []


def test_weekend_at_weekday_level_alerts():
    data = {START + timedelta(days=n): D(80 if (START + timedelta(days=n)).weekday() >= 5 else 1000) for n in range(60)}
    saturday = next(day for day in sorted(data)[40:] if day.weekday() == 5)
    data[saturday] = D(1000)
    assert alerting_days(data) == [saturday]


def test_true_spike_alerts_on_that_day_only():
    data = series([400] * 60)
    spike = START + timedelta(days=45)
    data[spike] = D(900)
    assert alerting_days(data) == [spike]
    verdict = judge_day(data, spike, Rule())
    assert (verdict.spend, verdict.median, verdict.mad) == (D(900), D(400), D(0))


def test_slow_ramp_never_alerts():
    # +2 % a day for 120 days: spend grows 10× but no day is far above the last four weeks.
    assert alerting_days(series(round(100 * 1.02**n, 2) for n in range(120))) == []


def test_small_amounts_need_fifty_dollars_above_the_median():
    data = series([10] * 40)
    day = START + timedelta(days=35)
    data[day] = D(55)  # 5.5× the median but only $45 above it
    assert alerting_days(data) == []
    data[day] = D(60)
    assert alerting_days(data) == [day]


def test_noisy_series_needs_three_mads():
    history = [D(100), D(500)] * 10  # median 300, MAD 200
    verdict = judge(D(800), history, Rule())  # > 1.5 × 300 and $500 above, but < 300 + 3 × 200
    assert (verdict.median, verdict.mad, verdict.anomaly) == (D(300), D(200), False)
    assert judge(D(901), history, Rule()).anomaly is True


def test_spike_through_the_task(workspace, openai, admin_user):
    today = date(2026, 12, 6)
    history = {today - timedelta(days=n): "100" for n in range(2, 31)}
    put_spend(openai, history, model="gpt-4o")
    evaluate_alerts.delay()
    assert not Alert.objects.exists() and mail.outbox == []

    put_spend(openai, {today - timedelta(days=1): "400"}, model="gpt-4o")  # yesterday, complete
    evaluate_alerts.delay()
    evaluate_alerts.delay()
    keys = set(Alert.objects.values_list("key", flat=True))
    assert keys == {"anomaly:provider:openai", "anomaly:model:gpt-4o"}
    alert = Alert.objects.get(key="anomaly:model:gpt-4o")
    assert alert.numbers["spend"] == "400.00" and alert.numbers["median"] == "100.00"
    assert (
        alert.numbers["explorer"]
        == "http://localhost:8000/w/acme/usage/?model=gpt-4o&date_from=2026-12-05&date_to=2026-12-05"
    )
    assert len(mail.outbox) == 2
    assert "Model gpt-4o spent 400.00 USD on 2026-12-05, usually 100.00" in {
        m.subject.split(": ", 1)[1] for m in mail.outbox
    }
    assert "explorer: http://localhost:8000/w/acme/usage/?model=gpt-4o" in mail.outbox[0].body + mail.outbox[1].body

    # The next day is normal: below since then, resolved a full day later; no mail in between.
    put_spend(openai, {today: "100"}, model="gpt-4o")
    with time_machine.travel(datetime(2026, 12, 7, 1, tzinfo=UTC), tick=False):
        evaluate_alerts.delay()
    assert len(mail.outbox) == 2
    with time_machine.travel(datetime(2026, 12, 8, 1, 30, tzinfo=UTC), tick=False):
        put_spend(openai, {date(2026, 12, 7): "100"}, model="gpt-4o")
        evaluate_alerts.delay()
    assert set(Alert.objects.filter(kind="anomaly").values_list("state", flat=True)) == {"resolved"}
    assert len([m for m in mail.outbox if m.subject.startswith("[Doow] Resolved")]) == 2


def test_rule_is_settable_per_workspace(workspace, openai, admin_user):
    today = date(2026, 12, 6)
    put_spend(openai, {today - timedelta(days=n): "100" for n in range(2, 31)})
    put_spend(openai, {today - timedelta(days=1): "400"})
    AnomalyRule.objects.create(workspace=workspace, ratio=D(5))
    evaluate_alerts.delay()
    assert not Alert.objects.exists()
    AnomalyRule.objects.filter(workspace=workspace).update(ratio=D("1.5"), enabled=False)
    evaluate_alerts.delay()
    assert not Alert.objects.exists()


def test_the_complete_day_is_the_workspaces_yesterday(workspace, openai, admin_user):
    """At 2026-12-06 12:00 UTC it is already 7 December 01:00 in Auckland: the complete day
    judged is Auckland's 6 December (which holds the spend logged at noon UTC on the 5th)."""
    workspace.time_zone = "Pacific/Auckland"
    workspace.save()
    utc_noon = date(2026, 12, 5)
    put_spend(openai, {utc_noon - timedelta(days=n): "100" for n in range(1, 30)})
    put_spend(openai, {utc_noon: "400"})
    evaluate_alerts.delay()
    alert = Alert.objects.get(key="anomaly:provider:openai")
    assert alert.numbers["day"] == "2026-12-06" and alert.numbers["spend"] == "400.00"
    assert alert.numbers["explorer"].endswith("date_from=2026-12-06&date_to=2026-12-06")


def test_the_notifications_link_opens_the_explorer_on_exactly_that_model(workspace, openai, admin_client):
    """A model name with characters a query string gives meaning to (+ & # and spaces): the
    link on the notifications page, followed, filters the explorer to that model and day."""
    name = "gpt-4o+beta & co #2"
    today, yesterday = date(2026, 12, 6), date(2026, 12, 5)
    put_spend(openai, {today - timedelta(days=n): "100" for n in range(2, 31)}, model=name)
    put_spend(openai, {today - timedelta(days=n): "10" for n in range(1, 31)}, model="gpt-4o")
    put_spend(openai, {yesterday: "400"}, model=name)
    evaluate_alerts.delay()
    assert Alert.objects.filter(key=f"anomaly:model:{name}").exists()

    page = admin_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"})).content.decode()
    links = re.findall(r'<a href="([^"]+)">Open in the explorer', page)
    link = next(html.unescape(href) for href in links if "model=" in href)
    assert link.startswith("/w/acme/usage/?")
    explorer = admin_client.get(link)
    assert explorer.status_code == 200
    assert explorer.context["form"]["model"].value() == name
    assert (explorer.context["filters"].date_from, explorer.context["filters"].date_to) == (yesterday, yesterday)
    rows = list(explorer.context["rows_page"])
    assert [(row.model, row.quantity) for row in rows] == [(name, Decimal("400"))]  # not gpt-4o's 10


def test_a_notification_keeps_the_numbers_of_its_change(workspace, openai, admin_client):
    """The alert's numbers are refreshed on every evaluation; its notification shows those it
    was told with."""
    today = date(2026, 12, 6)
    put_spend(openai, {today - timedelta(days=n): "100" for n in range(2, 31)}, model="gpt-4o")
    put_spend(openai, {today - timedelta(days=1): "400"}, model="gpt-4o")
    evaluate_alerts.delay()
    put_spend(openai, {today - timedelta(days=1): "450"}, model="gpt-4o")  # restated: refreshed, not told
    evaluate_alerts.delay()
    assert Alert.objects.get(key="anomaly:model:gpt-4o").numbers["spend"] == "450.00"
    page = admin_client.get(reverse("alerts:notifications", kwargs={"ws": "acme"})).content.decode()
    assert "<dt>Spend</dt><dd>400.00</dd>" in page and "450.00" not in page.split('class="notification-list"')[1]
    assert "<dt>Median</dt><dd>100.00</dd>" in page and "<dt>MAD</dt>" in page
