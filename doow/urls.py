from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("w/<slug:ws>/settings/integrations/", include("integrations.urls")),
    path("", include("accounts.urls")),
]
