"""Authress: verifies a service-client access key; API call volume arrives by CSV import."""

from __future__ import annotations

from integrations.providers.authress.connector import AuthressProvider, classify_error

provider = AuthressProvider()

__all__ = ["AuthressProvider", "classify_error", "provider"]
