"""Usage pages: the explorer, license consumption and exports (namespace `usage`)."""

from __future__ import annotations

from django.urls import path

from usage.views import explorer, licenses
from usage.views.export import usage_export

app_name = "usage"
urlpatterns: list = [
    path("", explorer.explorer, name="explorer"),
    path("licenses/", licenses.license_list, name="licenses"),
    path("licenses/<int:pk>/", licenses.license_detail, name="license"),
    path("export/", usage_export, name="export"),
]
