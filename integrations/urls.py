"""Company Settings → Integrations, under w/<ws>/settings/integrations/ (admins only)."""

from __future__ import annotations

from django.urls import path

from integrations import views

app_name = "integrations"
urlpatterns = [
    path("", views.integration_list, name="list"),
    path("add/<slug:provider>/", views.integration_add, name="add"),
    path("providers/<slug:provider>/docs/", views.provider_docs, name="provider_docs"),
    path("<int:pk>/", views.integration_detail, name="detail"),
    # Sections of the detail page, each refreshable on its own by htmx.
    path("<int:pk>/summary/", views.integration_summary, name="summary"),
    path("<int:pk>/usage/", views.integration_usage, name="usage"),
    path("<int:pk>/runs/", views.integration_runs, name="runs"),
    path("<int:pk>/events/", views.integration_events, name="events"),
    path("<int:pk>/sync/status/", views.integration_sync_status, name="sync_status"),
    path("<int:pk>/import/<int:job>/", views.integration_import_status, name="import_status"),
    # Actions.
    path("<int:pk>/sync/", views.integration_sync_now, name="sync"),
    path("<int:pk>/test/", views.integration_test, name="test"),
    path("<int:pk>/pause/", views.integration_pause_view, name="pause"),
    path("<int:pk>/resume/", views.integration_resume_view, name="resume"),
    path("<int:pk>/import/", views.integration_import_usage, name="import_usage"),
    path("<int:pk>/duplicate/", views.integration_resolve_duplicate_view, name="resolve_duplicate"),
    path("<int:pk>/count-again/", views.integration_count_again_view, name="count_again"),
    # Forms on their own pages.
    path("<int:pk>/edit/", views.integration_edit, name="edit"),
    path("<int:pk>/rotate/", views.integration_rotate, name="rotate"),
    path("<int:pk>/disconnect/", views.integration_disconnect_view, name="disconnect"),
]
