"""Alert evaluation and delivery.

`alerts_evaluate_workspace` reads the rollups and the integrations, moves each Alert through
open → escalated → resolved, and tells people once per state change: a Notification per
admin and one mail. Running it again with nothing changed writes only refreshed numbers and
tells nobody. A bounded number of queries per workspace (tests assert ≤ 20).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Workspace
from alerts import anomalies, webhooks
from alerts.models import Alert, AnomalyRule, Budget, Mute, Notification, Webhook
from usage.rollups import local_day, zone_of
from usage.spend import RUN_RATE_DAYS, DetailRow, Periods, month_to_date, spend_detail

logger = logging.getLogger(__name__)

# An alert below every level is resolved after this long, so restated data does not make it flap.
RESOLVE_AFTER = timedelta(days=1)
# Levels in rising order: reaching a later one escalates an open alert.
BUDGET_LEVELS = ("forecast", "warning", "exceeded")
ANOMALY_LEVELS = ("anomaly",)
INTEGRATION_LEVELS = ("stale", "paused", "failing", "permission_missing", "credential_rejected")
# Integration.health codes that raise an integration alert, and the level each is.
HEALTH_LEVELS = {
    "stale": "stale",
    "paused": "paused",
    "permission_missing": "permission_missing",
    "needs_attention": "failing",  # a permanent failure; "credential_rejected" when the key was refused
}


@dataclass
class Condition:
    """What one evaluation found for one key: a level (None: below every level) and numbers."""

    key: str
    kind: str
    level: str | None
    title: str
    numbers: dict[str, Any] = field(default_factory=dict)
    budget: Budget | None = None
    integration_id: int | None = None


@dataclass(frozen=True)
class Change:
    alert: Alert
    event: str  # opened, escalated, resolved


# ------------------------------------------------------------------ budgets
def _budget_rows(budget: Budget, rows: list[DetailRow]) -> list[DetailRow]:
    currency = budget.currency.upper()
    match budget.scope:
        case Budget.Scope.APPLICATION:
            return [r for r in rows if r.currency == currency and r.application_id == budget.application_id]
        case Budget.Scope.LICENSE:
            return [r for r in rows if r.currency == currency and r.license_id == budget.license_id]
        case Budget.Scope.PROVIDER:
            return [r for r in rows if r.currency == currency and r.provider == budget.provider]
    return [r for r in rows if r.currency == currency]


def budget_condition(budget: Budget, rows: list[DetailRow], *, today) -> Condition:
    spend = month_to_date(_budget_rows(budget, rows), budget.currency.upper(), Periods(today))
    percent = spend.amount / budget.amount * 100
    level = None
    if percent >= budget.exceed_percent:
        level = "exceeded"
    elif percent >= budget.warn_percent:
        level = "warning"
    elif budget.alert_on_forecast and spend.forecast > budget.amount:
        level = "forecast"
    words = {
        "exceeded": f"passed {budget.exceed_percent}%",
        "warning": f"passed {budget.warn_percent}%",
        "forecast": "is forecast to exceed its amount",
        None: "is within its amount",
    }
    money = lambda value: f"{value.quantize(Decimal('0.01'))}"  # noqa: E731
    return Condition(
        key=budget.alert_key,
        kind=Alert.Kind.BUDGET,
        level=level,
        title=f"Budget {budget.name} {words[level]}",
        budget=budget,
        numbers={
            "month": today.strftime("%Y-%m"),
            "currency": budget.currency,
            "budget": money(budget.amount),
            "month_to_date": money(spend.amount),
            "estimated": money(spend.estimated),
            "percent": f"{percent.quantize(Decimal('0.1'))}",
            "forecast": money(spend.forecast),
            "daily_rate": money(spend.daily_rate),
            "days_left": spend.days_left,
        },
    )


# ------------------------------------------------------------------ integrations
def integration_condition(integration, *, now: datetime) -> Condition:
    health = integration.health_at(now)
    level = HEALTH_LEVELS.get(health.code)
    if level in ("paused", "failing") and integration.last_error_category == "credential":
        # Paused after rejected credentials is still "the key is dead", the most urgent kind.
        level = "credential_rejected"
    if level is None and health.stale and health.code != "disconnected":
        level = "stale"
    label = {
        "stale": "is stale",
        "paused": "is paused",
        "permission_missing": "is missing a permission",
        "failing": "is failing",
        "credential_rejected": "had its credential rejected",
        None: "is healthy",
    }[level]
    return Condition(
        key=f"integration:{integration.pk}",
        kind=Alert.Kind.INTEGRATION,
        level=level,
        title=f"Integration {integration.name} {label}",
        integration_id=integration.pk,
        numbers={
            "health": health.code,
            "detail": health.detail,
            "data_through": integration.data_through.isoformat() if integration.data_through else None,
        },
    )


# ------------------------------------------------------------------ anomalies
def anomaly_conditions(
    workspace: Workspace, rows: list[DetailRow], *, today, active: dict[str, Alert]
) -> list[Condition]:
    """The latest complete local day (yesterday) of every provider, model and application with
    USD spend, plus every open anomaly alert (so it can resolve when its series went quiet)."""
    rule_row = AnomalyRule.objects.filter(workspace=workspace).first()
    if rule_row is not None and not rule_row.enabled:
        return []
    rule = anomalies.Rule(rule_row.ratio, rule_row.mads, rule_row.min_amount) if rule_row else anomalies.Rule()
    day = today - timedelta(days=1)
    series = anomalies.series_by_dimension(rows)
    names = (
        dict(workspace.applications.values_list("pk", "name")) if any(d == "application_id" for d, _ in series) else {}
    )
    keys: dict[str, tuple[str, Any]] = {
        f"anomaly:{dimension}:{value}": (dimension, value) for dimension, value in series
    }
    for key, alert in active.items():
        if alert.kind == Alert.Kind.ANOMALY and key not in keys:
            dimension, _, value = key.removeprefix("anomaly:").partition(":")
            keys[key] = (dimension, int(value) if dimension == "application_id" else value)
    conditions = []
    for key, (dimension, value) in keys.items():
        verdict = anomalies.judge_day(series.get((dimension, value), {}), day, rule)
        label = {"provider": "Provider", "model": "Model", "application_id": "Application"}[dimension]
        shown = names.get(value, value) if dimension == "application_id" else value
        link_filter = {"application_id": "application"}.get(dimension, dimension)
        explorer = reverse("usage:explorer", kwargs={"ws": workspace.slug})
        conditions.append(
            Condition(
                key=key,
                kind=Alert.Kind.ANOMALY,
                level="anomaly" if verdict.anomaly else None,
                title=f"{label} {shown} spent {verdict.spend.quantize(Decimal('0.01'))} USD on {day:%Y-%m-%d}"
                + (f", usually {verdict.median.quantize(Decimal('0.01'))}" if verdict.anomaly else ""),
                numbers={
                    "day": day.isoformat(),
                    "currency": anomalies.CURRENCY,
                    "spend": f"{verdict.spend.quantize(Decimal('0.01'))}",
                    "median": f"{verdict.median.quantize(Decimal('0.01'))}",
                    "mad": f"{verdict.mad.quantize(Decimal('0.01'))}",
                    "rule": f"> median × {rule.ratio}, > median + {rule.mads} × MAD, ≥ median + {rule.min_amount}",
                    "explorer": f"{settings.DOOW_BASE_URL.rstrip('/')}{explorer}?"
                    + urlencode({link_filter: value, "date_from": day, "date_to": day}),
                },
            )
        )
    return conditions


# ------------------------------------------------------------------ state machine
def _rank(kind: str, level: str) -> int:
    by_kind: dict[str, tuple[str, ...]] = {Alert.Kind.BUDGET: BUDGET_LEVELS, Alert.Kind.ANOMALY: ANOMALY_LEVELS}
    levels = by_kind.get(kind, INTEGRATION_LEVELS)
    return levels.index(level) if level in levels else -1


def _apply(
    workspace: Workspace, condition: Condition, alert: Alert | None, now: datetime
) -> tuple[Alert | None, str | None, bool]:
    """The alert after this evaluation, the event to tell (or None) and whether to save it."""
    if alert is None:
        if condition.level is None:
            return None, None, False
        alert = Alert(
            workspace=workspace,
            kind=condition.kind,
            key=condition.key,
            budget=condition.budget,
            integration_id=condition.integration_id,
            state=Alert.State.OPEN,
            level=condition.level,
            title=condition.title,
            numbers=condition.numbers,
            opened_at=now,
            changed_at=now,
        )
        return alert, "opened", True
    event = None
    if condition.level is None:
        if alert.below_since is None:
            alert.below_since = now
        elif now - alert.below_since >= RESOLVE_AFTER:
            alert.state, alert.resolved_at, alert.changed_at = Alert.State.RESOLVED, now, now
            alert.title = condition.title
            event = "resolved"
    else:
        alert.below_since = None
        if _rank(condition.kind, condition.level) > _rank(alert.kind, alert.level):
            alert.state, alert.level, alert.changed_at = Alert.State.ESCALATED, condition.level, now
            alert.title = condition.title
            event = "escalated"
    alert.numbers = condition.numbers
    return alert, event, True


def _record(workspace: Workspace, conditions: list[Condition], active: dict[str, Alert], now: datetime) -> list[Change]:
    changes: list[Change] = []
    created: list[tuple[Alert, str]] = []
    updated: list[Alert] = []
    for condition in conditions:
        alert, event, save = _apply(workspace, condition, active.get(condition.key), now)
        if alert is None or not save:
            continue
        if alert.pk is None:
            created.append((alert, event))
        else:
            updated.append(alert)
            if event:
                changes.append(Change(alert, event))
    if created:
        Alert.objects.bulk_create([alert for alert, _ in created])
        changes += [Change(alert, event) for alert, event in created]
    if updated:
        Alert.objects.bulk_update(
            updated, ["state", "level", "title", "numbers", "changed_at", "resolved_at", "below_since"]
        )
    return changes


# ------------------------------------------------------------------ delivery
def _alert_url(workspace: Workspace) -> str:
    return settings.DOOW_BASE_URL.rstrip("/") + reverse("alerts:notifications", kwargs={"ws": workspace.slug})


def _numbers_text(alert: Alert) -> str:
    """The numbers that triggered the change, one "name: value" a line (the notification's body)."""
    return "\n".join(
        f"{name.replace('_', ' ')}: {value}" for name, value in alert.numbers.items() if value not in (None, "")
    )


def _mail_body(change: Change, workspace: Workspace, numbers: str) -> str:
    lines = [f"{change.alert.title} ({change.event}).", "", numbers, ""]
    lines += [f"Workspace: {workspace.name}", f"Notifications: {_alert_url(workspace)}"]
    return "\n".join(lines)


def _tell(workspace: Workspace, changes: list[Change], muted: set[str]) -> list[EmailMessage]:
    """A Notification per admin and one webhook delivery per change (queued for when the
    evaluation commits); returns one mail to the admins per change, to send once committed.
    Muted keys are silent."""
    told = [c for c in changes if c.alert.key not in muted]
    if not told:
        return []
    admins = list(
        Membership.objects.filter(workspace=workspace, role=Membership.Role.ADMIN).select_related("user").order_by("pk")
    )
    recipients = [m.user.email for m in admins if m.user.email]
    notes, mails = [], []
    for change in told:
        numbers = _numbers_text(change.alert)
        notes += [
            Notification(
                workspace=workspace,
                user=m.user,
                alert=change.alert,
                event=change.event,
                title=change.alert.title,
                body=numbers,
                numbers=change.alert.numbers,
            )
            for m in admins
        ]
        if recipients:
            subject = f"[Doow] {change.event.capitalize()}: {change.alert.title}"
            body = _mail_body(change, workspace, numbers)
            mails.append(EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients))
    Notification.objects.bulk_create(notes)
    webhook_id = Webhook.objects.filter(workspace=workspace).values_list("pk", flat=True).first()
    if webhook_id is not None:
        now = timezone.now()
        for change in told:
            payload = webhooks.alert_payload(workspace, change.alert, change.event, now=now)
            webhooks.webhook_enqueue(webhook_id=webhook_id, payload=payload, alert_id=change.alert.pk)
    return mails


def _send(workspace: Workspace, mails: list[EmailMessage]) -> None:
    for message in mails:
        try:
            message.send()
        except Exception:  # a mail server being down must not lose the in-app notification
            logger.exception("alert mail for workspace %s failed", workspace.pk)


def workspace_today(workspace: Workspace, now: datetime | None = None):
    return local_day(now or timezone.now(), zone_of(workspace))


def budget_spend_rows(workspace: Workspace, *, now: datetime | None = None) -> list[DetailRow]:
    """The rows a budget's month to date and forecast are summed from (one query)."""
    today = workspace_today(workspace, now)
    return spend_detail(workspace, min(today.replace(day=1), today - timedelta(days=RUN_RATE_DAYS)), today)


@dataclass
class BudgetState:
    """A budget as the budgets page and the overview show it: its numbers as of now and its
    state as of the last evaluation (the active alert, if any)."""

    budget: Budget
    now: dict[str, Any]
    alert: Alert | None
    muted: bool

    @property
    def label(self) -> str:
        if self.alert is None:
            return "Within budget"
        return {
            "exceeded": f"Passed {self.budget.exceed_percent}%",
            "warning": f"Passed {self.budget.warn_percent}%",
            "forecast": "Forecast to exceed",
        }.get(self.alert.level, self.alert.level)

    @property
    def badge(self) -> str:
        if self.alert is None:
            return "badge-ok"
        return "badge-bad" if self.alert.level == "exceeded" else "badge-warn"


def budget_states(workspace: Workspace, *, now: datetime | None = None) -> list[BudgetState]:
    """Every budget of the workspace with its state: one query without budgets, three with (the
    budgets, their active alerts, one rollup query for their spend)."""
    budgets = list(workspace.budgets.select_related("application", "license__application", "mute"))
    if not budgets:
        return []
    active = {a.budget_id: a for a in workspace.alerts.filter(kind=Alert.Kind.BUDGET, state__in=Alert.ACTIVE_STATES)}
    rows = budget_spend_rows(workspace, now=now)
    today = workspace_today(workspace, now)
    return [
        BudgetState(
            budget=budget,
            now=budget_condition(budget, rows, today=today).numbers,
            alert=active.get(budget.pk),
            muted=hasattr(budget, "mute"),
        )
        for budget in budgets
    ]


# ------------------------------------------------------------------ entry points
def alerts_evaluate_workspace(*, workspace_id: int, now: datetime | None = None) -> list[Change]:
    """Evaluate one workspace and tell its admins what changed. One evaluation of a workspace
    at a time: the beat's and an after-sync run that overlap would otherwise both find the same
    alert at its old level and both tell its escalation. The second waits for the first's
    commit and then finds nothing new. Mails go out once the changes are committed."""
    now = now or timezone.now()
    with transaction.atomic():
        # FOR NO KEY UPDATE: evaluations of the workspace wait for each other, while rows that
        # only reference it (a sync's inserts take FOR KEY SHARE) never wait for an evaluation.
        workspace = Workspace.objects.select_for_update(no_key=True).get(pk=workspace_id)
        today = local_day(now, zone_of(workspace))
        first = min(today.replace(day=1), today - timedelta(days=max(RUN_RATE_DAYS, anomalies.TRAILING_DAYS + 1)))
        rows = spend_detail(workspace, first, today)
        active = {a.key: a for a in workspace.alerts.filter(state__in=Alert.ACTIVE_STATES)}
        conditions = [budget_condition(b, rows, today=today) for b in workspace.budgets.all()]
        conditions += [integration_condition(i, now=now) for i in workspace.integrations.live()]
        conditions += anomaly_conditions(workspace, rows, today=today, active=active)
        changes = _record(workspace, conditions, active, now)
        mails: list[EmailMessage] = []
        if changes:
            muted = {m.alert_key for m in Mute.objects.filter(workspace=workspace)}
            mails = _tell(workspace, changes, muted)
    _send(workspace, mails)
    return changes


def alerts_evaluate_all(*, now: datetime | None = None) -> int:
    """Every workspace; one that fails never stops the others."""
    count = 0
    for workspace_id in Workspace.objects.order_by("pk").values_list("pk", flat=True):
        try:
            alerts_evaluate_workspace(workspace_id=workspace_id, now=now)
            count += 1
        except Exception:
            logger.exception("alert evaluation of workspace %s failed", workspace_id)
    return count
