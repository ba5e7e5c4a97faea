"""Usage and its inventory in the admin.

Usage records, re-attribution jobs and import jobs are read-only (the sync engine and the
jobs write them; an import job's file is never shown). The usage list is built for a table of
tens of millions of rows split into monthly partitions (usage/partitions.py): it is filtered by
month rather than by Django's date hierarchy (which asks the whole table for its first and
last rows and its distinct years), and an unfiltered list is counted from the statistics. Applications, licenses and rules are editable; a license's or rule's workspace is
taken from its application, and every change that can move usage between applications goes
through the services, which re-attribute in the background like the pages do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.paginator import Paginator
from django.db import router
from django.db.models import QuerySet
from django.http import HttpRequest

from doow.admin import ProviderListFilter, ReadOnlyAdmin, cut
from doow.templatetags.formats import amount
from usage import partitions, services
from usage.forms import LICENSE_FIELDS, LICENSE_TERMS, bound_license_dates, check_license_period
from usage.models import (
    Application,
    AttributionRule,
    License,
    PriceOverride,
    PricingRecomputeJob,
    ReattributionJob,
    Team,
    UsageImport,
    UsageRecord,
)


class MonthListFilter(admin.SimpleListFilter):
    """Calendar months (UTC) of bucket_start, newest first. On PostgreSQL the choices are the
    table's monthly partitions, read from the catalog; a chosen month confines the list, its
    count and its ordering to one partition. On SQLite (one modest table) the months with rows."""

    title = "month (UTC)"
    parameter_name = "month"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        months = [p.start for p in partitions.usage_partitions() if p.start is not None]
        if not partitions.is_partitioned():
            months = list(UsageRecord.objects.datetimes("bucket_start", "month", tzinfo=UTC))
        return [(f"{m:%Y-%m}", f"{m:%B %Y}") for m in sorted(months, reverse=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        try:
            month = datetime.strptime(self.value() or "", "%Y-%m").replace(tzinfo=UTC)
            end = partitions.add_months(month, 1)
        except ValueError as error:  # not a month, or past year 9999
            raise IncorrectLookupParameters(error) from error
        return queryset.filter(bucket_start__gte=month, bucket_start__lt=end)


class EstimatedCountPaginator(Paginator):
    """An unfiltered usage list on PostgreSQL is counted from the planner's statistics (the
    partitions' reltuples, kept by autovacuum) instead of a COUNT(*) over every row; a filtered
    list, or a table too small for the estimate to matter, is counted exactly."""

    EXACT_BELOW = 100_000

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            estimate = partitions.estimated_rows(router.db_for_read(UsageRecord))
            if estimate is not None and estimate >= self.EXACT_BELOW:
                return estimate
        return super().count


DIMENSION_CHARS = 24


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    # Seven columns, so the list fits 1,280 px beside the filters: the bucket as one cell, the
    # quantity with its unit, the attribution as one name. Account, provenance, stream and the
    # rest are on the record's page (and provenance/stream are filters).
    # Model and project ids can be long (fine-tuned models, long project slugs): cut in the list.
    list_display = ("bucket", "integration", "short_model", "short_project", "metric", "amount", "attributed_to")
    list_filter = (MonthListFilter, ProviderListFilter, "metric", "provenance", "stream", "workspace")
    list_select_related = ("workspace", "integration", "application", "license__application")
    search_fields = ("model", "project", "account", "api_key")

    @admin.display(description="bucket (UTC)", ordering="bucket_start")
    def bucket(self, record: UsageRecord) -> str:
        start, end = record.bucket_start.astimezone(UTC), record.bucket_end.astimezone(UTC)
        span = end - start
        length = f"{span.days} d" if span.days and not span.seconds else f"{int(span.total_seconds() // 3600)} h"
        return f"{start:%Y-%m-%d %H:%M} · {length}"

    @admin.display(description="model", ordering="model")
    def short_model(self, record: UsageRecord) -> str:
        return cut(record.model, DIMENSION_CHARS)

    @admin.display(description="project", ordering="project")
    def short_project(self, record: UsageRecord) -> str:
        return cut(record.project, DIMENSION_CHARS)

    @admin.display(description="quantity", ordering="quantity")
    def amount(self, record: UsageRecord) -> str:
        return amount(record.quantity, record.unit)

    @admin.display(description="attributed to", ordering="application__name")
    def attributed_to(self, record: UsageRecord) -> str:
        if record.license_id:
            return str(record.license)
        return record.application.name if record.application is not None else "—"

    ordering = ("-bucket_start", "-id")  # newest first: the month partitions read from the end
    paginator = EstimatedCountPaginator
    # Usage tables are large: skip the unfiltered COUNT(*) on every filtered page.
    show_full_result_count = False


class DeleteThroughServices:
    """Admin deletions, one object or a selection, go through the service that deletes it as
    the pages do (re-attributing its usage in the background), never a bare SQL delete."""

    def delete_through_services(self, obj: Any) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_through_services(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_through_services(obj)


class LicenseAdminForm(forms.ModelForm):
    class Meta:
        model = License
        fields = LICENSE_FIELDS  # the workspace comes from the application (save_model)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound_license_dates(self)  # as on the Licenses page: no year 1 or 9999

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Django's clean() returns cleaned_data
        check_license_period(self, data)
        return data


class LicenseInline(admin.TabularInline):
    model = License
    form = LicenseAdminForm
    exclude = ("workspace",)  # the application's
    extra = 0


@admin.register(Application)
class ApplicationAdmin(DeleteThroughServices, admin.ModelAdmin):
    list_display = ("name", "workspace", "vendor", "owner", "team", "category", "created_at")
    list_filter = ("workspace", "category")
    search_fields = ("name", "vendor", "owner")
    list_select_related = ("workspace",)
    inlines = (LicenseInline,)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for obj in formset.save(commit=False):
            obj.workspace_id = form.instance.workspace_id
            obj.save()
        for obj in formset.deleted_objects:
            services.license_delete(license=obj)

    def delete_through_services(self, obj: Application) -> None:
        services.application_delete(application=obj)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "cost_centre", "created_at")
    list_filter = ("workspace",)
    search_fields = ("name", "cost_centre")
    list_select_related = ("workspace",)


@admin.register(License)
class LicenseAdmin(DeleteThroughServices, admin.ModelAdmin):
    form = LicenseAdminForm
    list_display = ("__str__", "workspace", *LICENSE_TERMS)
    list_filter = ("kind", "workspace")
    search_fields = ("plan_name", "application__name")
    list_select_related = ("workspace", "application")

    def save_model(self, request: HttpRequest, obj: License, form: Any, change: bool) -> None:
        obj.workspace_id = obj.application.workspace_id
        super().save_model(request, obj, form, change)

    def delete_through_services(self, obj: License) -> None:
        services.license_delete(license=obj)


class AttributionRuleAdminForm(forms.ModelForm):
    class Meta:
        model = AttributionRule
        fields = ("provider", *AttributionRule.MATCH_FIELDS, "application", "license", "priority", "is_default")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Django's clean() returns cleaned_data
        application, license_ = data.get("application"), data.get("license")
        if application and license_ and license_.application_id != application.pk:
            self.add_error("license", "This license belongs to another application.")
        return data


@admin.register(AttributionRule)
class AttributionRuleAdmin(DeleteThroughServices, admin.ModelAdmin):
    form = AttributionRuleAdminForm
    list_display = ("__str__", "workspace", "provider", "priority", "application", "license", "is_default")
    list_display_links = ("__str__",)
    list_editable = ("priority",)
    list_filter = (ProviderListFilter, "application", "is_default", "workspace")
    list_select_related = ("workspace", "application", "license")
    search_fields = ("application__name", "model", "project", "account")
    ordering = ("workspace", "priority", "pk")

    def save_model(self, request: HttpRequest, obj: AttributionRule, form: Any, change: bool) -> None:
        obj.workspace_id = obj.application.workspace_id
        services.attribution_rule_save(rule=obj)

    def delete_through_services(self, obj: AttributionRule) -> None:
        services.attribution_rule_delete(rule=obj)


@admin.register(ReattributionJob)
class ReattributionJobAdmin(ReadOnlyAdmin):
    # claims and heartbeat_at: how often a worker started it, when its worker last wrote progress.
    list_display = (
        "pk", "workspace", "status", "done", "total", "progress", "claims", "heartbeat_at", "created_at",
        "finished_at", "error",
    )  # fmt: skip
    list_filter = ("status", "workspace")
    list_select_related = ("workspace",)

    @admin.display(description="progress")
    def progress(self, obj: ReattributionJob) -> str:
        return f"{obj.progress_percent}%"


@admin.register(UsageImport)
class UsageImportAdmin(ReadOnlyAdmin):
    list_display = (
        "pk", "workspace", "integration", "source", "status", "progress", "rows", "problems_total",
        "attempts", "updated_at", "created_by", "created_at", "finished_at",
    )  # fmt: skip
    list_filter = ("status", "workspace")
    list_select_related = ("workspace", "integration", "created_by")
    search_fields = ("source",)
    # The uploaded bytes stay out of every page (and out of every query of the list).
    exclude = ("data",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsageImport]:
        return super().get_queryset(request).defer("data")

    @admin.display(description="progress")
    def progress(self, obj: UsageImport) -> str:
        return f"{obj.progress_percent}%" if obj.is_active else obj.get_status_display()


# Overrides are edited on Company Settings → Pricing (which recomputes the estimates); here
# they are read-only, like the jobs that apply them.
@admin.register(PriceOverride)
class PriceOverrideAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "workspace",
        "provider",
        "kind",
        "model",
        "metric",
        "discount_percent",
        "price",
        "effective_from",
    )
    list_filter = ("kind", "workspace")
    list_select_related = ("workspace",)


@admin.register(PricingRecomputeJob)
class PricingRecomputeJobAdmin(ReadOnlyAdmin):
    list_display = (
        "pk", "workspace", "status", "attempt", "done", "total", "written", "price_data", "requested_price_data",
        "created_at", "finished_at", "error",
    )  # fmt: skip
    list_filter = ("status", "workspace")
    list_select_related = ("workspace",)
