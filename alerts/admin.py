from __future__ import annotations

from django.contrib import admin

from alerts.models import Alert, AnomalyRule, Budget


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
