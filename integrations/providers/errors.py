"""The typed errors of the provider contract: what went wrong talking to a provider, in words
an admin can act on. Below the HTTP seam (integrations/http.py), which raises them, and the
contract (base.py, which re-exports them for connectors); see docs/architecture.md."""

from __future__ import annotations

from typing import Any, ClassVar


class ProviderError(Exception):
    """A failure talking to a provider. `category` is the IntegrationEvent category.

    `message` says what happened, `hint` what the admin can do about it. Neither may
    contain a secret. `permanent` errors will not fix themselves by retrying.
    """

    category: ClassVar[str] = "provider"
    permanent: ClassVar[bool] = False
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        http_status: int | None = None,
        request_id: str = "",
        field: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.http_status = http_status
        self.request_id = request_id
        self.field = field  # the credential or setting field at fault, when one is

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"{self.message}{status}"


class CredentialError(ProviderError):
    category = "credential"
    permanent = True
    default_hint = "The provider rejected the credential. Rotate it with a valid key."


class ScopeError(ProviderError):
    category = "scope"
    permanent = True
    default_hint = "The key lacks a scope the usage API needs. Create a key with that scope and rotate."


class PermissionDenied(ProviderError):
    category = "permission"
    permanent = True
    default_hint = "The key is valid but not allowed to read usage. Check its role or key type."


class RateLimited(ProviderError):
    category = "rate_limit"
    default_hint = "The provider is throttling requests. The next sync waits and retries automatically."

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class NetworkError(ProviderError):
    category = "network"
    default_hint = "The provider could not be reached (timeout or connection error). The sync retries with back-off."


class ProviderUnavailable(ProviderError):
    category = "provider"
    default_hint = "The provider returned a server error. The sync retries with back-off."


class ProviderResponseError(ProviderError):
    category = "provider"
    default_hint = (
        "The provider answered with data this app could not read. Nothing was stored from it; the next sync retries."
    )


class ConfigurationError(ProviderError):
    category = "configuration"
    permanent = True
    default_hint = "Check the integration's settings."
