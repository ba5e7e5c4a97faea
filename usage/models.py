"""Normalized usage: one row = one quantity of one metric for one bucket and dimension set."""
from __future__ import annotations

from django.db import models

DIMENSION_FIELDS = ("account", "project", "region", "model", "deployment", "endpoint", "resource", "operation", "api_key")
NATURAL_KEY = ("integration", "bucket_start", "bucket_end", *DIMENSION_FIELDS, "metric")


class UsageRecord(models.Model):
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="usage_records")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="usage_records")
    provider = models.CharField(max_length=64)
    bucket_start = models.DateTimeField()
    bucket_end = models.DateTimeField()
    account = models.CharField(max_length=200, blank=True, default="")
    project = models.CharField(max_length=200, blank=True, default="")
    region = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    deployment = models.CharField(max_length=200, blank=True, default="")
    endpoint = models.CharField(max_length=200, blank=True, default="")
    resource = models.CharField(max_length=200, blank=True, default="")
    operation = models.CharField(max_length=200, blank=True, default="")
    api_key = models.CharField(max_length=200, blank=True, default="")
    metric = models.CharField(max_length=32)
    quantity = models.DecimalField(max_digits=30, decimal_places=9)
    unit = models.CharField(max_length=16)
    provenance = models.CharField(max_length=16, default="reported")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bucket_start", "pk"]
        constraints = [models.UniqueConstraint(fields=NATURAL_KEY, name="usage_record_natural_key")]
        indexes = [
            models.Index(fields=["workspace", "bucket_start"]),
            models.Index(fields=["integration", "bucket_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.quantity} {self.unit} @ {self.bucket_start:%Y-%m-%d %H:%M}"
