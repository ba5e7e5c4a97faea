"""Integration (one connected provider account), its sync runs and its event log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from fernet_fields import EncryptedTextField

# Past its provider's reporting delay, data this much older than expected makes an
# integration stale (docs/architecture.md, Definitions).
STALE_GRACE = timedelta(hours=24)
# Error categories that mean the credential works but may not read usage.
PERMISSION_CATEGORIES = ("scope", "permission")
# The longest backfill an integration may ask for (the edit form's limit), and so the furthest
# back the history re-read after a connector upgrade goes (engine, _reread_plan).
MAX_BACKFILL_DAYS = 366


def validate_provider(value: str) -> None:
    from integrations.providers.registry import PROVIDERS

    if value not in PROVIDERS:
        raise ValidationError(f"Unknown provider {value!r}.")


class SyncNotAllowed(Exception):
    """The integration is paused or disconnected, or its provider has no usage API to sync from."""


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

    def live(self) -> IntegrationQuerySet:
        """Integrations still holding their credential (connected, failing or paused): the
        ones that read, or will read again, their provider account."""
        return self.exclude(status=Integration.Status.DISCONNECTED)

    def uncounted_ids(self) -> set[int]:
        """Integrations whose usage no total may add, because another one already counts
        the same provider account: those marked as duplicates, and in a group of live
        integrations reading one account as a whole (same account key, nobody chose to
        split it), every one but the oldest. Call it on one workspace's integrations."""
        rows = self.values_list("pk", "account_key", "account_share", "status").order_by("created_at", "pk")
        uncounted: set[int] = set()
        whole_counted: set[str] = set()
        for pk, key, share, status in rows:
            if share == Integration.AccountShare.DUPLICATE:
                uncounted.add(pk)
            elif key and share == Integration.AccountShare.WHOLE and status != Integration.Status.DISCONNECTED:
                if key in whole_counted:
                    uncounted.add(pk)
                whole_counted.add(key)
        return uncounted

    def counted(self) -> IntegrationQuerySet:
        """These integrations less `uncounted_ids()`: filter usage with
        `integration__in=workspace.integrations.counted()` and no account is added twice."""
        return self.exclude(pk__in=self.uncounted_ids())


def _lease_free(now: datetime) -> Q:
    return Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=now)


def _holder_died() -> Q:
    # A sync empties its lease token in its `finally` and finishes its run before that: a
    # token left behind, or a run still "running", means the process holding it died.
    running = SyncRun.objects.filter(integration=models.OuterRef("pk"), status=SyncRun.Status.RUNNING)
    return ~Q(lock_token="") | models.Exists(running)  # type: ignore[return-value]  # a Q at run time


@dataclass(frozen=True)
class Health:
    """The last outcome of an integration, as the badge, the list and the usage banner say it."""

    code: str  # connected, rate_limited, retrying, permission_missing, needs_attention, paused, stale, disconnected
    label: str
    tone: str  # ok, warn, bad, muted: the badge colour
    detail: str = ""
    # Data older than expected (docs/architecture.md: data_through older than now − delay − 24 h, or
    # paused, or failing permanently): the usage pages warn while any counted one is.
    stale: bool = False

    @property
    def failing(self) -> bool:
        return self.code in ("rate_limited", "retrying", "permission_missing", "needs_attention")

    @property
    def badge_class(self) -> str:
        return f"badge badge-{self.tone}"


class Integration(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Connected"
        ERROR = "error", "Needs attention"
        PAUSED = "paused", "Paused"
        DISCONNECTED = "disconnected", "Disconnected"

    class AccountShare(models.TextChoices):
        WHOLE = "whole", "Whole account"
        SPLIT = "split", "Part of a shared account"
        DUPLICATE = "duplicate", "Duplicate, not counted"

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="integrations")
    # Validated against the registry, not a static choices list: a new provider needs no migration.
    provider = models.CharField(max_length=64, validators=[validate_provider])
    name = models.CharField(max_length=120)
    # JSON of the provider's secret credential fields, Fernet-encrypted with FERNET_KEYS.
    credential = EncryptedTextField(default="{}")
    credential_hint = models.CharField(
        max_length=16, blank=True, help_text="Last characters of the key, for recognition."
    )
    settings = models.JSONField(default=dict, blank=True)
    identity = models.JSONField(default=dict, blank=True, help_text="What the credential could see at the last verify.")
    verified_at = models.DateTimeField(null=True, blank=True)
    # The provider account the credential reads ("<provider>:<account id>", case-folded), learnt
    # by verify; "" when not verified or the provider names no account. Two live integrations
    # with one key read the same usage: see IntegrationQuerySet.uncounted_ids.
    account_key = models.CharField(max_length=255, blank=True, default="")
    # The admin's word on sharing that account: SPLIT integrations each read a part (all are
    # counted); a DUPLICATE one is never counted.
    account_share = models.CharField(max_length=16, choices=AccountShare.choices, default=AccountShare.WHOLE)

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
    # The connector's keys version (Provider.keys_version) the stored rows were written with.
    # A sync that finds it older than the provider's re-reads the stored history first
    # (integrations/engine.py, _reread_plan); a new integration starts at the current version.
    keys_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The connector's keys version the stored usage was written with."
    )
    # A re-read after a connector upgrade under way: {"version": the version it brings the rows
    # to, "from": its first bucket, "through": where the stored part ends} (ISO instants), so a
    # worker that stops mid-way resumes there. Empty when none is.
    keys_reread = models.JSONField(default=dict, blank=True, help_text="A history re-read under way, if any.")

    # A lease, not a row lock: it must outlive the per-chunk transactions of one sync.
    lock_token = models.CharField(max_length=64, blank=True)
    lock_expires_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IntegrationQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        indexes = [
            models.Index(fields=["status", "next_sync_at"]),
            models.Index(fields=["workspace", "account_key"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and self.keys_version is None and self.provider:
            from integrations.providers.registry import PROVIDERS

            # A new integration holds no rows of an older connector: nothing to re-read.
            if self.provider in PROVIDERS:
                self.keys_version = PROVIDERS[self.provider].keys_version
        super().save(*args, **kwargs)

    @property
    def provider_obj(self):  # avoids an import cycle in annotations
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

    def check_can_sync(self) -> None:
        """Raise SyncNotAllowed unless a sync may run: the one rule for the engine, Sync now and
        `manage.py sync`."""
        if not self.is_connected:
            raise SyncNotAllowed(f"{self.name} is {self.get_status_display().lower()}.")
        if not self.provider_obj.fetches_usage:
            raise SyncNotAllowed(f"{self.provider_obj.name} has no usage API to sync from; import its usage instead.")

    @property
    def health(self) -> Health:
        return self.health_at(timezone.now())

    def health_at(self, now: datetime) -> Health:
        """The one rule for "how is this integration doing", from the columns every sync and
        Test connection update. Failures come first (they say why data stops), then
        staleness; "Connected" only when the last outcome was a success."""
        status, category = self.status, self.last_error_category
        message = self.last_error_message
        if status == self.Status.DISCONNECTED:
            return Health("disconnected", "Disconnected", "muted", "The credential was deleted; stored usage is kept.")
        if status == self.Status.PAUSED:
            if self.account_share == self.AccountShare.DUPLICATE:
                reason = "Another integration reads the same account; this one's usage is not counted."
            else:
                reason = message if category else "Paused by an admin."
            return Health("paused", "Paused", "warn", reason, stale=True)
        if category in PERMISSION_CATEGORIES:
            return Health("permission_missing", "Permission missing", "bad", message, stale=True)
        if status == self.Status.ERROR:
            return Health("needs_attention", "Needs attention", "bad", message, stale=True)
        stale = self._data_late(now)
        if category == "rate_limit":
            return Health("rate_limited", "Rate limited — retrying", "warn", message, stale=stale)
        if category:
            return Health("retrying", "Failed — retrying", "warn", message, stale=stale)
        if stale:
            through = f"{self.data_through:%Y-%m-%d %H:%M} UTC" if self.data_through else "nothing yet"
            return Health(
                "stale",
                "Stale",
                "warn",
                f"Data through {through}, later than {self.provider_obj.name} usually reports.",
                stale=True,
            )
        return Health("connected", "Connected", "ok")

    def _data_late(self, now: datetime) -> bool:
        """Stale (docs/architecture.md): data through older than now − reporting delay − 24 h. A provider
        reporting whole days can only have reached the start of today (now − delay, aligned
        down to its bucket), so the 24 h count from there: otherwise a daily provider would
        read "stale" for part of every day while nothing is wrong."""
        from integrations.providers.base import align_down

        provider = self.provider_obj
        if not provider.fetches_usage:
            return False
        expected = align_down(now - provider.reporting_delay, provider.bucket) - STALE_GRACE
        # Never synced: stale once the first sync is overdue by as much.
        return (self.data_through or self.created_at or now) < expected


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
