"""Tenancy: a Workspace is a company; users belong to workspaces through Memberships."""

from __future__ import annotations

import zoneinfo
from datetime import tzinfo
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from accounts.zones import zone_named


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """The IANA zone names this machine knows, sorted (the tz database, or the tzdata package)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def validate_time_zone(value: str) -> None:
    if value not in time_zone_names():
        raise ValidationError("%(value)s is not an IANA time zone name.", params={"value": value}, code="invalid")


class Workspace(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    # Days, weeks and months on pages, budgets and alerts are calendar periods in this zone;
    # stored buckets stay UTC. Changing it rebuilds the daily rollups (usage.rollups).
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="IANA name, e.g. Europe/Paris."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> tzinfo:
        """The workspace's time zone (UTC if the stored name is unknown to this machine)."""
        return zone_named(self.time_zone)


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN
