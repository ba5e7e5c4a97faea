"""Workspaces (companies) and their memberships."""

from __future__ import annotations

from django.contrib import admin

from accounts.models import Membership, Workspace
from accounts.throttling import AdminSignInForm


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (MembershipInline,)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and "time_zone" in form.changed_data:
            from usage.rollup_jobs import rollup_rebuild_request

            rollup_rebuild_request(workspace=obj)  # every local day moved: rebuild the rollups


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "workspace", "role", "created_at")
    list_filter = ("role", "workspace")
    search_fields = ("user__username", "user__email", "workspace__name", "workspace__slug")
    raw_id_fields = ("user",)
    list_select_related = ("user", "workspace")


# Django admin's sign-in form says when django-axes has paused sign-in (accounts/throttling.py).
admin.site.login_form = AdminSignInForm
# The model lists get the page's whole width (at 1,280 px a list beside the nav sidebar and its
# filters had ~630 px, so messages wrapped a word a line); the home page and the breadcrumbs
# still lead everywhere.
admin.site.enable_nav_sidebar = False
