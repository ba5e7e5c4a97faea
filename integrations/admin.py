"""Operator views of integrations, sync runs and events.

The encrypted `credential` is never shown nor editable here: it is excluded from every form,
and integrations are created through the pages or `manage.py connect`, which verify and
encrypt. Actions call the services, like the pages do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from doow.admin import ProviderListFilter, ReadOnlyAdmin, cut
from doow.templatetags.formats import compact, duration
from integrations import services
from integrations.models import Integration, IntegrationEvent, SyncRun

RECENT = 10


class IntegrationProviderListFilter(ProviderListFilter):
    """For models that reach the provider through their integration."""

    field_path = "integration__provider"


def _changelist(model: type[Model], **filters: Any) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return f"{url}?{query}" if query else url


def _change(obj: Any) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _recent_table(headings: tuple[str, ...], rows: Iterable[tuple[Any, ...]], all_url: str, all_label: str) -> str:
    """The latest few runs or events of an integration: each row is (its change page, the text
    linking there, the other cells), then a link to all of them."""
    head = format_html_join("", "<th>{}</th>", ((heading,) for heading in headings))
    body = format_html_join(
        "",
        "<tr>{}{}</tr>",
        (
            (
                format_html('<td><a href="{}">{}</a></td>', url, text),
                format_html_join("", "<td>{}</td>", ((c,) for c in cells)),
            )
            for url, text, *cells in rows
        ),
    )
    return format_html(
        '<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table><a href="{}">{}</a>', head, body, all_url, all_label
    )


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "provider", "status", "health", "last_sync_at", "data_through", "next_sync_at")
    list_filter = (ProviderListFilter, "status", "account_share", "workspace")
    search_fields = ("name",)
    list_select_related = ("workspace",)
    # `credential` is deliberately absent from every list below: exclude keeps it out of the form.
    exclude = ("credential", "lock_token")
    fields = (
        "workspace",
        "provider",
        "name",
        "status",
        "health",
        "credential_hint",
        "identity",
        "provider_state",  # the connector's memory, e.g. which Anthropic report served each window
        "keys_version",  # the connector keys the stored rows were written with
        "keys_reread",  # the history re-read after a connector upgrade, while under way
        "verified_at",
        "account_key",
        "account_share",
        "settings",
        "sync_interval",
        "backfill_days",
        "last_sync_at",
        "last_success_at",
        "next_sync_at",
        "data_through",
        "consecutive_failures",
        "consecutive_credential_failures",
        "last_error_category",
        "last_error_message",
        "lock_expires_at",
        "created_by",
        "created_at",
        "updated_at",
        "recent_sync_runs",
        "recent_events",
    )
    # Only scheduling knobs are edited here; settings go through the pages, which vet URLs.
    readonly_fields = tuple(f for f in fields if f not in ("name", "sync_interval", "backfill_days"))
    actions = ("sync_now", "pause", "resume")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Creating needs verification and encryption: the pages or `manage.py connect`.
        return False

    @admin.display(description="Last outcome")
    def health(self, obj: Integration) -> str:
        if obj.pk is None:
            return "-"
        health = obj.health
        return f"{health.label}: {health.detail}" if health.detail else health.label

    @admin.display(description="Recent sync runs")
    def recent_sync_runs(self, obj: Integration) -> str:
        if obj.pk is None:
            return "-"
        return _recent_table(
            ("Run", "Started", "Trigger", "Status", "Rows", "Error"),
            (
                (_change(r), f"#{r.pk}", r.started_at, r.get_trigger_display(), r.get_status_display(),
                 r.rows_written, r.error_category)
                for r in obj.sync_runs.all()[:RECENT]
            ),
            _changelist(SyncRun, integration__id__exact=obj.pk),
            "All sync runs",
        )  # fmt: skip

    @admin.display(description="Recent events")
    def recent_events(self, obj: Integration) -> str:
        if obj.pk is None:
            return "-"
        return _recent_table(
            ("When", "Level", "Category", "Message"),
            (
                (_change(e), e.created_at, e.get_level_display(), e.get_category_display(), e.message)
                for e in obj.events.all()[:RECENT]
            ),
            _changelist(IntegrationEvent, integration__id__exact=obj.pk),
            "All events",
        )

    @admin.action(description="Sync now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        queued, refused = 0, []
        for integration in queryset:
            try:
                services.integration_request_sync(integration=integration)
            except services.SyncNotAllowed as exc:
                refused.append(str(exc))
            else:
                queued += 1
        if queued:
            self.message_user(request, f"Sync requested for {queued} integration(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, f"Not synced: {reason}", messages.WARNING)

    @admin.action(description="Pause")
    def pause(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        paused = 0
        for integration in queryset.filter(status__in=[Integration.Status.ACTIVE, Integration.Status.ERROR]):
            services.integration_pause(integration=integration, reason=f"Paused by {request.user} in the admin.")
            paused += 1
        self.message_user(request, f"Paused {paused} integration(s).", messages.SUCCESS)

    @admin.action(description="Resume")
    def resume(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        resumed = 0
        for integration in queryset.filter(status=Integration.Status.PAUSED):
            services.integration_resume(integration=integration)
            resumed += 1
        self.message_user(request, f"Resumed {resumed} integration(s).", messages.SUCCESS)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    # Fits 1,280 px beside the filters: the window as one cell, rows written/removed as one; the
    # trigger (a filter) and the provider calls are on the run's page.
    list_display = ("pk", "integration", "status", "started_at", "took", "window", "rows", "error_category")
    list_display_links = ("pk", "integration")
    list_filter = (
        "status",
        "trigger",
        IntegrationProviderListFilter,
        ("integration__workspace", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("integration",)
    search_fields = ("integration__name", "integration__workspace__name", "error")
    date_hierarchy = "started_at"

    @admin.display(description="duration")
    def took(self, run: SyncRun) -> str:
        return duration(run.duration.total_seconds()) if run.duration else "—"

    @admin.display(description="window (UTC)", ordering="window_start")
    def window(self, run: SyncRun) -> str:
        if not run.window_start or not run.window_end:
            return "—"
        return f"{run.window_start.astimezone(UTC):%Y-%m-%d %H:%M} → {run.window_end.astimezone(UTC):%Y-%m-%d %H:%M}"

    @admin.display(description="rows", ordering="rows_written")
    def rows(self, run: SyncRun) -> str:
        written = compact(run.rows_written)
        return f"{written} (−{compact(run.rows_removed)})" if run.rows_removed else written


# Events of one integration: the integration's change page links here with
# ?integration__id__exact=<pk> (a list filter of every integration would not fit 10,000 of them).
EVENT_MESSAGE_CHARS = 140


@admin.register(IntegrationEvent)
class IntegrationEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "integration", "workspace", "level", "category", "short_message", "http_status")
    list_filter = (
        "category",
        "level",
        IntegrationProviderListFilter,
        ("integration__workspace", admin.RelatedOnlyFieldListFilter),
        ("integration", admin.RelatedOnlyFieldListFilter),  # only integrations that have events
    )
    list_select_related = ("integration", "integration__workspace")
    # Message and hint, the provider's request id, and whose event it is.
    search_fields = (
        "message",
        "hint",
        "request_id",
        "integration__name",
        "integration__workspace__name",
        "integration__workspace__slug",
    )
    date_hierarchy = "created_at"

    @admin.display(description="workspace", ordering="integration__workspace__name")
    def workspace(self, event: IntegrationEvent) -> str:
        return event.integration.workspace.name

    @admin.display(description="message")
    def short_message(self, event: IntegrationEvent) -> str:
        """The list stays inside 1,280 px: long messages are cut, the whole one is on hover and
        on the event's page."""
        return cut(event.message, EVENT_MESSAGE_CHARS)
