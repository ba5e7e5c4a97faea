"""Company Settings → Budgets, Anomaly rule and Webhook (namespace `alerts`, admins only) and the
notifications page (every member sees their own)."""

from __future__ import annotations

from django.urls import path

from alerts import views

app_name = "alerts"
urlpatterns = [
    path("settings/budgets/", views.budget_list, name="budgets"),
    path("settings/budgets/add/", views.budget_create, name="budget_add"),
    path("settings/budgets/<int:pk>/edit/", views.budget_edit, name="budget_edit"),
    path("settings/budgets/<int:pk>/delete/", views.budget_delete, name="budget_delete"),
    path("settings/budgets/<int:pk>/mute/", views.budget_mute, name="budget_mute"),
    path("settings/integrations/<int:pk>/mute-alerts/", views.integration_mute, name="integration_mute"),
    path("settings/anomaly-rule/", views.anomaly_rule, name="anomaly_rule"),
    path("settings/webhook/", views.webhook, name="webhook"),
    path("settings/webhook/delete/", views.webhook_delete, name="webhook_delete"),
    path("settings/webhook/test/", views.webhook_test, name="webhook_test"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
]
