"""Usage pages: the explorer, license consumption and exports (namespace `usage`)."""
from __future__ import annotations

from django.urls import path  # noqa: F401

app_name = "usage"
urlpatterns: list = []
