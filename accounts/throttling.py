"""Sign-in throttling with django-axes: what the client's address is, and what a locked-out
person sees.

Axes counts failed sign-ins per (username, client address) and refuses that pair for
AXES_COOLOFF_TIME after AXES_FAILURE_LIMIT failures (doow/settings.py). Both sign-in forms
(/login/ and /admin/login/) say so in the form itself, and the answer is HTTP 429.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from ipware import get_client_ip


def client_ip(request: HttpRequest) -> str | None:
    """The address a sign-in attempt came from (AXES_CLIENT_IP_CALLABLE).

    With no trusted proxy (TRUSTED_PROXY_COUNT=0) it is the connection's own address and
    X-Forwarded-For is ignored: anyone can write that header, and honouring it would let an
    attacker pick a fresh address for every guess. Behind N proxies that each append the address
    they received from, the client is the N-th entry from the right of X-Forwarded-For; whatever
    a client put before it is ignored.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return request.META.get("REMOTE_ADDR")
    address, _routable = get_client_ip(
        request,
        proxy_order="left-most",
        # ipware counts the proxies listed inside the header; the last one is REMOTE_ADDR.
        proxy_count=proxies - 1,
        request_header_order=("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"),
        strict=False,
    )
    return address


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed sign-in attempts for this username from your network address. Signing in "
        f"with it from here is paused for {minutes} minutes; try again after that. An administrator "
        "can lift the pause sooner."
    )


class LockoutMessageMixin:
    """Says "paused" instead of "wrong password" once axes has refused the attempt.

    Axes' backend refuses a locked-out pair before the password is checked, and its failure
    handler marks the request (`axes_locked_out`) on the attempt that reaches the limit.
    """

    request: HttpRequest | None

    def get_invalid_login_error(self) -> ValidationError:
        if getattr(self.request, "axes_locked_out", False):
            return ValidationError(lockout_message(), code="locked_out")
        return super().get_invalid_login_error()  # type: ignore[misc]


class SignInForm(LockoutMessageMixin, AuthenticationForm):
    pass


class AdminSignInForm(LockoutMessageMixin, AdminAuthenticationForm):
    pass


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the sign-in page the view already rendered (its form carries the
    message above), answered as 429 Too Many Requests."""
    if isinstance(original_response, HttpResponse):
        original_response.status_code = 429
        return original_response
    return HttpResponse(lockout_message(), status=429, content_type="text/plain; charset=utf-8")
