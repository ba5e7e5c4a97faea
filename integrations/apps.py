from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed

# fernet_fields caches its keys on the field instance; these are the cached attributes.
_FERNET_CACHE = ("keys", "fernet_keys", "fernet")


def reset_fernet_cache(**kwargs) -> None:
    """Make the credential field pick up the current FERNET_KEYS (after a change in tests or a rotation)."""
    if kwargs.get("setting", "FERNET_KEYS") not in ("FERNET_KEYS", "FERNET_USE_HKDF"):
        return
    from integrations.models import Integration

    field = Integration._meta.get_field("credential")
    for name in _FERNET_CACHE:
        field.__dict__.pop(name, None)


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        setting_changed.connect(reset_fernet_cache, dispatch_uid="integrations-fernet-cache")
