from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path, reverse_lazy
from django.views import View

from accounts import views
from accounts.throttling import SignInForm
from usage.views.overview import overview

app_name = "accounts"


def _auth_page(route: str, view: type[View[Any]], name: str, template: str = "", **options: Any) -> URLPattern:
    """Django's auth `view` at `route`, named `name`, on the template accounts/<template or name>.html."""
    return path(route, view.as_view(template_name=f"accounts/{template or name}.html", **options), name=name)


urlpatterns = [
    _auth_page(
        "login/", auth_views.LoginView, "login", authentication_form=SignInForm, redirect_authenticated_user=True
    ),
    # Django's LogoutView accepts POST only: a link or an image tag cannot sign anyone out.
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Password reset, Django's own views: the answer to "send me a link" is the same whether or
    # not an account uses the address, so the form cannot be used to find out who has one.
    _auth_page(
        "password-reset/",
        auth_views.PasswordResetView,
        "password_reset",
        "password_reset_form",
        email_template_name="accounts/password_reset_email.txt",
        subject_template_name="accounts/password_reset_subject.txt",
        success_url=reverse_lazy("accounts:password_reset_done"),
    ),
    _auth_page("password-reset/sent/", auth_views.PasswordResetDoneView, "password_reset_done"),
    _auth_page(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView,
        "password_reset_confirm",
        success_url=reverse_lazy("accounts:password_reset_complete"),
    ),
    _auth_page("password-reset/done/", auth_views.PasswordResetCompleteView, "password_reset_complete"),
    path("w/<slug:ws>/settings/general/", views.settings_general, name="settings_general"),
    path("w/<slug:ws>/settings/general/rebuild/", views.settings_general_rebuild, name="settings_general_rebuild"),
    # The workspace home is the spend overview (usage/views/overview.py): sign-in lands there.
    path("w/<slug:ws>/", overview, name="workspace"),
    path("", views.home, name="home"),
]
