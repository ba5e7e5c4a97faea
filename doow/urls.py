from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("w/<slug:ws>/settings/integrations/", include("integrations.urls")),
    path("w/<slug:ws>/settings/", include("usage.urls_settings")),
    path("w/<slug:ws>/", include("alerts.urls")),
    path("w/<slug:ws>/usage/", include("usage.urls")),
    path("", include("accounts.urls")),
]
