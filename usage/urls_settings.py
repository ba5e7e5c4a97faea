"""Company Settings → Applications, Licenses, Attribution rules, Pricing (namespace `usage_settings`).

Mounted at w/<ws>/settings/; admins only (members 403, outsiders 404).
"""

from __future__ import annotations

from django.urls import path

from usage.pricing import views as pricing
from usage.views import settings as views

app_name = "usage_settings"
urlpatterns = [
    path("applications/", views.application_list, name="applications"),
    path("applications/add/", views.application_create, name="application_add"),
    path("applications/<int:pk>/edit/", views.application_edit, name="application_edit"),
    path("applications/<int:pk>/delete/", views.application_delete, name="application_delete"),
    path("teams/add/", views.team_create, name="team_add"),
    path("teams/<int:pk>/edit/", views.team_edit, name="team_edit"),
    path("teams/<int:pk>/delete/", views.team_delete, name="team_delete"),
    path("licenses/", views.license_list, name="licenses"),
    path("licenses/add/", views.license_create, name="license_add"),
    path("licenses/<int:pk>/edit/", views.license_edit, name="license_edit"),
    path("licenses/<int:pk>/delete/", views.license_delete, name="license_delete"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/add/", views.rule_create, name="rule_add"),
    path("rules/progress/", views.reattribution_status, name="reattribution"),
    path("rules/preview/", views.rule_preview_view, name="rule_preview"),
    path("rules/<int:pk>/edit/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("rules/<int:pk>/move/", views.rule_move, name="rule_move"),
    path("unattributed/", views.unattributed, name="unattributed"),
    path("pricing/", pricing.pricing, name="pricing"),
    path("pricing/overrides/add/", pricing.pricing_override_add, name="pricing_override_add"),
    path("pricing/overrides/<int:pk>/delete/", pricing.pricing_override_delete, name="pricing_override_delete"),
    path("pricing/progress/", pricing.pricing_progress, name="pricing_progress"),
]
