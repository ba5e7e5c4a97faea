from __future__ import annotations

from django.contrib import admin

from alerts.models import Alert, AnomalyRule, Budget, Webhook, WebhookDelivery


@admin.register(AnomalyRule)
class AnomalyRuleAdmin(admin.ModelAdmin):
    list_display = ("workspace", "enabled", "ratio", "mads", "min_amount")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "scope", "amount", "currency")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("title", "workspace", "kind", "state", "level", "changed_at")
    list_filter = ("kind", "state")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Nothing is edited here and the secret is never shown: it is made (and shown once) by
    Company Settings → Webhook."""

    list_display = ("workspace", "url", "secret_hint", "created_at")
    fields = ("workspace", "url", "secret_hint", "created_at")
    # Read only: a URL saved here would skip the address check made on save (it would still be
    # refused at send time, but the admin would not be told).
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "webhook", "event", "status_code", "attempt", "duration_ms", "error")
    list_filter = ("event",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
