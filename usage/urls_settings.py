"""Company Settings → Applications, Licenses, Attribution rules (namespace `inventory`)."""
from __future__ import annotations

from django.urls import path  # noqa: F401

app_name = "inventory"
urlpatterns: list = []
