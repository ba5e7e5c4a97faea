"""Admin building blocks every app's admin uses: a provider filter fed by the registry, a
read-only admin for rows the sync engine, importers and jobs write, and long text cut to fit a
list column."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from integrations.providers.registry import PROVIDERS


def cut(text: str, chars: int) -> str | SafeString:
    """Text for a list column that must stay inside 1,280 px: cut to `chars` with an ellipsis,
    the whole text on hover (and on the record's own page)."""
    if len(text) <= chars:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: chars - 1].rstrip())


class ProviderListFilter(admin.SimpleListFilter):
    """Provider choices come from the registry, not a static choices list."""

    title = "provider"
    parameter_name = "provider"
    field_path = "provider"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return sorted(((slug, p.name) for slug, p in PROVIDERS.items()), key=lambda item: item[1].lower())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(**{self.field_path: self.value()})
        return queryset


class BoundedDateChangeList(ChangeList):
    """Django finds the end of a date-hierarchy year, month or day by adding to it, and
    `?started_at__year=9999` overflows into a 500. Such a lookup is refused like any bad
    parameter (the admin's "invalid lookup" page) instead."""

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as error:
            raise IncorrectLookupParameters(error) from error


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the sync engine: viewable, never added, changed or deleted here.
    Their lists have a date hierarchy, held to the calendar by BoundedDateChangeList."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BoundedDateChangeList

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
