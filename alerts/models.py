"""Budgets, the alerts raised against them and against integrations, and their delivery.

An Alert is one condition's life: opened, escalated (a higher level reached), resolved (below
every level for one full day). People are told once per state change (Notification rows, one
mail); evaluation between changes only refreshes the numbers (alerts/services.py).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from fernet_fields import EncryptedTextField

from integrations.providers.registry import PROVIDERS


class Budget(models.Model):
    class Scope(models.TextChoices):
        WORKSPACE = "workspace", "Whole workspace"
        APPLICATION = "application", "Application"
        LICENSE = "license", "License"
        PROVIDER = "provider", "Provider"

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=120)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.WORKSPACE)
    application = models.ForeignKey(
        "usage.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    license = models.ForeignKey(
        "usage.License", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    provider = models.CharField(max_length=64, blank=True, default="")
    amount = models.DecimalField(
        max_digits=18,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Per calendar month.",
    )
    currency = models.CharField(max_length=3, default="USD")
    warn_percent = models.PositiveIntegerField(default=80, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    exceed_percent = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    alert_on_forecast = models.BooleanField(
        default=True, help_text="Alert when the run-rate forecast passes the budget."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="budget_name_per_workspace")]

    def __str__(self) -> str:
        return self.name

    @property
    def alert_key(self) -> str:
        return f"budget:{self.pk}"

    @property
    def provider_name(self) -> str:
        provider = PROVIDERS.get(self.provider)
        return provider.name if provider else self.provider


class Alert(models.Model):
    class Kind(models.TextChoices):
        BUDGET = "budget", "Budget"
        INTEGRATION = "integration", "Integration"
        ANOMALY = "anomaly", "Spend anomaly"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ESCALATED = "escalated", "Escalated"
        RESOLVED = "resolved", "Resolved"

    ACTIVE_STATES = (State.OPEN, State.ESCALATED)

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # What the alert is about, e.g. "budget:12" or "integration:3": one active alert per key.
    key = models.CharField(max_length=200)
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    level = models.CharField(max_length=32, help_text="The highest level reached, e.g. warning, exceeded, stale.")
    title = models.CharField(max_length=300)
    # The numbers that triggered it (strings for money: never floats), refreshed on every evaluation.
    numbers = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    changed_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # First evaluation that found it below every level; resolved one full day later.
    below_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-changed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "key"],
                condition=Q(state__in=["open", "escalated"]),
                name="alert_one_active_per_key",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class Notification(models.Model):
    """One state change of an alert, for one person; unread until they mark it read."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="notifications")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_notifications")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, help_text="opened, escalated or resolved")
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    # The alert's numbers at this change (Alert.numbers is refreshed afterwards); the body is
    # the same as "name: value" text.
    numbers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "workspace", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.title


class Mute(models.Model):
    """Admins silence one budget's or one integration's alerts: states are still tracked, but
    nobody is told."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="alert_mutes")
    budget = models.OneToOneField(Budget, null=True, blank=True, on_delete=models.CASCADE, related_name="mute")
    integration = models.OneToOneField(
        "integrations.Integration", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_mute"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(budget__isnull=False, integration__isnull=True)
                | Q(budget__isnull=True, integration__isnull=False),
                name="mute_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"Mute of {self.budget or self.integration}"

    @property
    def alert_key(self) -> str:
        return f"budget:{self.budget_id}" if self.budget_id else f"integration:{self.integration_id}"


class AnomalyRule(models.Model):
    """A workspace's spend-anomaly rule (docs/alerts.md); a workspace without a row uses the
    defaults."""

    workspace = models.OneToOneField("accounts.Workspace", on_delete=models.CASCADE, related_name="anomaly_rule")
    enabled = models.BooleanField(default=True)
    ratio = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("1.5"), help_text="Spend must exceed the median × this."
    )
    mads = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("3"), help_text="…and the median + this many MADs."
    )
    min_amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("50"),
        help_text="…and be at least this many USD above the median.",
    )

    def __str__(self) -> str:
        return f"Anomaly rule of {self.workspace}"


class Webhook(models.Model):
    """A workspace's outgoing webhook: every told alert change is POSTed to `url` as JSON,
    signed with HMAC-SHA256 under `secret` (docs/alerts.md). The secret is shown once, when it
    is made; afterwards only its last four characters."""

    workspace = models.OneToOneField("accounts.Workspace", on_delete=models.CASCADE, related_name="webhook")
    url = models.URLField(max_length=2000)
    # Fernet-encrypted with FERNET_KEYS, like integration credentials.
    secret = EncryptedTextField()
    secret_hint = models.CharField(max_length=8, help_text="The secret's last four characters.")
    created_at = models.DateTimeField(help_text="When this URL and secret were set.")

    def __str__(self) -> str:
        return f"Webhook of {self.workspace}"


class WebhookDelivery(models.Model):
    """One attempt to deliver one event to a workspace's webhook (never the secret, never the
    body's signature)."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(
        max_length=36, help_text="The X-Doow-Delivery header: the same for every attempt of one event."
    )
    event = models.CharField(max_length=32, help_text="alert.opened, alert.escalated, alert.resolved or ping")
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_deliveries"
    )
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    will_retry = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        outcome = self.status_code if self.status_code is not None else (self.error or "no answer")
        return f"{self.event} attempt {self.attempt}: {outcome}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
