"""Normalized usage in the admin: read-only (the sync engine is its only writer)."""
from __future__ import annotations

from django.contrib import admin

from integrations.admin import ProviderListFilter, ReadOnlyAdmin
from usage.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "bucket_start",
        "bucket_end",
        "workspace",
        "integration",
        "provider",
        "account",
        "project",
        "model",
        "metric",
        "quantity",
        "unit",
        "provenance",
    )
    list_filter = (ProviderListFilter, "metric", "workspace")
    list_select_related = ("workspace", "integration")
    search_fields = ("model", "project", "account", "api_key")
    date_hierarchy = "bucket_start"
    # Usage tables are large: skip the unfiltered COUNT(*) on every filtered page.
    show_full_result_count = False
