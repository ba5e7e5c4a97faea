"""Integration (one connected provider account), its sync runs and its event log."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from fernet_fields import EncryptedTextField


def validate_provider(value: str) -> None:
    from integrations.providers.registry import PROVIDERS

    if value not in PROVIDERS:
        raise ValidationError(f"Unknown provider {value!r}.")


class IntegrationQuerySet(models.QuerySet):
    def due(self, now: datetime) -> IntegrationQuerySet:
        """Integrations nobody is syncing whose next scheduled sync has come, or whose last
        sync was left stranded (see `stranded`): the dispatcher enqueues exactly these."""
        scheduled = Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now)
        return self.syncable().filter(_lease_free(now)).filter(scheduled | _holder_died())

    def stranded(self, now: datetime) -> IntegrationQuerySet:
        """Integrations whose sync stopped mid-way: a worker took the lease (or started a run)
        and died, and the lease has lapsed. Their next_sync_at may lie far ahead (the
        dispatcher pushed it when it claimed the sync, or the run was a "Sync now"), so
        waiting for it would leave the run "running" and the data stale for that long."""
        return self.syncable().filter(_lease_free(now)).filter(_holder_died())

    def syncable(self) -> IntegrationQuerySet:
        """Connected integrations of providers that have a usage API."""
        from integrations.providers.registry import PROVIDERS

        import_only = [slug for slug, p in PROVIDERS.items() if not p.fetches_usage]
        return self.exclude(provider__in=import_only).filter(
            status__in=[Integration.Status.ACTIVE, Integration.Status.ERROR],
        )


def _lease_free(now: datetime) -> Q:
    return Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=now)


def _holder_died() -> Q:
    # A sync empties its lease token in its `finally` and finishes its run before that: a
    # token left behind, or a run still "running", means the process holding it died.
    running = SyncRun.objects.filter(integration=models.OuterRef("pk"), status=SyncRun.Status.RUNNING)
    return ~Q(lock_token="") | models.Exists(running)


class Integration(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Connected"
        ERROR = "error", "Needs attention"
        PAUSED = "paused", "Paused"
        DISCONNECTED = "disconnected", "Disconnected"

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="integrations")
    # Validated against the registry, not a static choices list: a new provider needs no migration.
    provider = models.CharField(max_length=64, validators=[validate_provider])
    name = models.CharField(max_length=120)
    # JSON of the provider's secret credential fields, Fernet-encrypted with FERNET_KEYS.
    credential = EncryptedTextField(default="{}")
    credential_hint = models.CharField(max_length=16, blank=True, help_text="Last characters of the key, for recognition.")
    settings = models.JSONField(default=dict, blank=True)
    identity = models.JSONField(default=dict, blank=True, help_text="What the credential could see at the last verify.")
    verified_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    last_error_category = models.CharField(max_length=32, blank=True)
    last_error_message = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Credential rejections in a row: any other outcome (a success, another kind of failure, a
    # rotated key) ends the streak, so only a key refused sync after sync pauses the integration.
    consecutive_credential_failures = models.PositiveIntegerField(default=0)

    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    sync_interval = models.DurationField(default=timedelta(hours=1))
    backfill_days = models.PositiveIntegerField(default=30)
    data_through = models.DateTimeField(null=True, blank=True, help_text="Usage is stored up to this instant.")
    provider_state = models.JSONField(default=dict, blank=True, help_text="The connector's memory between syncs.")

    # A lease, not a row lock: it must outlive the per-chunk transactions of one sync.
    lock_token = models.CharField(max_length=64, blank=True)
    lock_expires_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IntegrationQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        indexes = [models.Index(fields=["status", "next_sync_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

    @property
    def provider_obj(self):  # noqa: ANN201 - avoids an import cycle in annotations
        from integrations.providers.registry import get_provider

        return get_provider(self.provider)

    def get_credential(self) -> dict[str, str]:
        return json.loads(self.credential or "{}")

    def set_credential(self, values: dict[str, Any]) -> None:
        clean = {k: str(v) for k, v in values.items() if v not in (None, "")}
        self.credential = json.dumps(clean, sort_keys=True)
        secrets = self.provider_obj.secret_values(clean)
        self.credential_hint = f"…{secrets[0][-4:]}" if secrets and len(secrets[0]) >= 12 else ""

    @property
    def is_connected(self) -> bool:
        return self.status in (self.Status.ACTIVE, self.Status.ERROR)


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Succeeded"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned (worker stopped)"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Sync now"
        COMMAND = "command", "Command"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="sync_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    # Stored rows a complete re-read no longer returned (a renamed SKU, a withdrawn cost).
    rows_removed = models.PositiveIntegerField(default=0)
    provider_calls = models.PositiveIntegerField(default=0)
    error_category = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"Sync #{self.pk} of {self.integration_id} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def progress_percent(self) -> int:
        return int(100 * self.chunks_done / self.chunks_total) if self.chunks_total else 0


class IntegrationEvent(models.Model):
    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    class Category(models.TextChoices):
        CREDENTIAL = "credential", "Credential"
        SCOPE = "scope", "Scope"
        PERMISSION = "permission", "Permission"
        RATE_LIMIT = "rate_limit", "Rate limit"
        NETWORK = "network", "Network"
        PROVIDER = "provider", "Provider"
        CONFIGURATION = "configuration", "Configuration"
        SYNC = "sync", "Sync"
        IMPORT = "import", "Import"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="events")
    sync_run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=16, choices=Level.choices)
    category = models.CharField(max_length=32, choices=Category.choices)
    message = models.TextField()
    hint = models.TextField(blank=True, help_text="What to do about it.")
    http_status = models.PositiveIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["integration", "-created_at"])]

    def __str__(self) -> str:
        return f"[{self.level}/{self.category}] {self.message[:60]}"
