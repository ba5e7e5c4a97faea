"""Cross-model operations on integrations. Views, admin actions, tasks and commands call these.

The sync engine and the dispatcher are in integrations/engine.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import Workspace
from doow.jobs import enqueue_on_commit

# The event log lives below the engine, the sync guard on the model; callers may keep naming them here.
from integrations.events import (
    integration_record_error,
    integration_record_event,
)
from integrations.http import check_endpoint
from integrations.models import Integration, IntegrationEvent, IntegrationQuerySet, SyncNotAllowed, SyncRun
from integrations.providers.base import (
    ConfigurationError,
    FormField,
    Identity,
    Provider,
    ProviderError,
    SetupStep,
)
from integrations.providers.registry import get_provider

logger = logging.getLogger(__name__)


class DuplicateAccount(ConfigurationError):
    """The provider account is already read by a live integration of the workspace."""

    def __init__(self, message: str, *, existing: list[Integration], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.existing = existing


@dataclass(frozen=True)
class DuplicateGroup:
    """Live integrations reading one provider account as a whole: only `counted` is added
    to totals until an admin pauses, disconnects or splits the others."""

    account_key: str
    account_label: str
    counted: Integration
    others: list[Integration]


# ------------------------------------------------------------------ helpers
def _refuse_unknown(
    provider: Provider, given: Mapping[str, Any], fields: Iterable[FormField], what: str, known: str
) -> None:
    """ConfigurationError naming the keys of `given` that none of the provider's `fields` is."""
    names = {f.name for f in fields}
    unknown = set(given) - names
    if unknown:
        raise ConfigurationError(
            f"Unknown {what} for {provider.name}: {', '.join(sorted(unknown))}.",
            hint=f"Known {known}: {', '.join(sorted(names)) or 'none'}.",
        )


def _clean_credential(provider: Provider, credential: Mapping[str, Any]) -> dict[str, str]:
    """The provider's declared credential fields, stripped and non-empty, every required one
    present (else ConfigurationError): for a new integration and a rotated key alike."""
    _refuse_unknown(provider, credential, provider.credential_fields, "credential field(s)", "credential fields")
    clean = {k: str(v).strip() for k, v in credential.items() if v not in (None, "")}
    missing = [f.label for f in provider.credential_fields if f.required and not clean.get(f.name)]
    if missing:
        raise ConfigurationError(f"Missing credential field(s): {', '.join(missing)}.", hint=provider.credential_help)
    return clean


def integration_clean_settings(*, provider: Provider, settings: Mapping[str, Any]) -> dict[str, str]:
    """Keep the provider's declared settings only, and vet every URL setting."""
    _refuse_unknown(provider, settings, provider.setting_fields, "setting(s)", "settings")
    clean = {k: str(v).strip() for k, v in settings.items() if str(v).strip()}
    for name in provider.url_settings:
        if clean.get(name):
            try:
                check_endpoint(clean[name])
            except ProviderError as error:
                error.field = name
                raise
    return clean


def account_key(provider: Provider, identity: Identity) -> str:
    """The provider account a verified credential reads, comparable across integrations:
    "<provider>:<account id>" case-folded; "" when the provider names no account (nothing
    can then be told apart)."""
    account = (identity.account_id or "").strip().casefold()
    return f"{provider.slug}:{account}"[:255] if account else ""


def _account_label(integration: Integration) -> str:
    identity = integration.identity or {}
    account = str(identity.get("account_id") or integration.account_key.partition(":")[2])
    name = str(identity.get("account_name") or "")
    return f"{name} ({account})" if name and name != account else account


def _names(integrations: list[Integration]) -> str:
    # Plain names, as the connect contract words it: "already connected as NAME".
    names = [i.name for i in integrations]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def integration_account_readers(*, workspace: Workspace, key: str, exclude_pk: int | None = None) -> list[Integration]:
    """Live integrations of `workspace` counted for the account `key` (duplicates left out)."""
    if not key:
        return []
    readers = (
        workspace.integrations.live().filter(account_key=key).exclude(account_share=Integration.AccountShare.DUPLICATE)
    )
    if exclude_pk is not None:
        readers = readers.exclude(pk=exclude_pk)
    return list(readers.order_by("created_at", "pk"))


def integration_account_peers(*, integration: Integration) -> list[Integration]:
    """The workspace's other integrations (disconnected ones aside) that read the same
    provider account: the overlap an integration's page shows."""
    if not integration.account_key:
        return []
    peers = integration.workspace.integrations.live().filter(account_key=integration.account_key)
    return list(peers.exclude(pk=integration.pk).order_by("created_at", "pk"))


def integration_duplicate_groups(*, workspace: Workspace) -> list[DuplicateGroup]:
    """Accounts that two or more live integrations read as a whole (no admin chose to split
    or mark one a duplicate): their usage would be added twice. Oldest first in each group."""
    live = workspace.integrations.live().exclude(account_key="").filter(account_share=Integration.AccountShare.WHOLE)
    by_key: dict[str, list[Integration]] = {}
    for integration in live.order_by("created_at", "pk"):
        by_key.setdefault(integration.account_key, []).append(integration)
    return [
        DuplicateGroup(account_key=key, account_label=_account_label(group[0]), counted=group[0], others=group[1:])
        for key, group in sorted(by_key.items())
        if len(group) > 1
    ]


def counted_integrations(workspace: Workspace) -> IntegrationQuerySet:
    """The workspace's integrations whose usage totals may add: every account once.

    Pages and exports that sum usage filter with it:
    `workspace.usage_records.filter(integration__in=counted_integrations(workspace))`.
    """
    return workspace.integrations.counted()


def _credential_seed(workspace: Workspace, provider: Provider) -> str:
    """Stable per workspace and provider, unguessable without SECRET_KEY: a value a provider
    generates from it (an AWS external id) is the same on every try, yet no admin can pick
    another company's (that would be the confused-deputy attack external ids exist to stop)."""
    # Primary keys are never reused (AUTOINCREMENT on SQLite, sequences on PostgreSQL).
    return salted_hmac(
        "integrations.credential-seed", f"{workspace.pk}:{provider.slug}", algorithm="sha256"
    ).hexdigest()


def integration_setup_instructions(
    *, provider: Provider, workspace: Workspace | None = None, integration: Integration | None = None
) -> list[SetupStep]:
    """What the admin sets up at the provider, with generated values (an external id) filled in:
    the integration's stored ones, or those a new integration in `workspace` would get."""
    if integration is not None:
        return provider.setup_instructions(integration.get_credential(), integration.settings)
    if workspace is not None:
        return provider.setup_instructions(
            provider.prepare_credential({}, seed=_credential_seed(workspace, provider)), {}
        )
    return provider.setup_instructions()


# ------------------------------------------------------------------ lifecycle
def integration_create(
    *,
    workspace: Workspace,
    provider_slug: str,
    credential: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    name: str = "",
    created_by: Any = None,
    verify: bool = True,
    allow_duplicate: bool = False,
) -> Integration:
    """Create an integration; unless told not to, verify the credential first (raises ProviderError).

    A verified account that a live integration of the workspace already reads is refused
    (DuplicateAccount) unless `allow_duplicate`: the admin says the new one reads another
    part of it (other projects), so it is created as SPLIT, counted, and the overlap shown."""
    provider = get_provider(provider_slug)
    credential = _clean_credential(provider, credential)
    credential = provider.prepare_credential(credential, seed=_credential_seed(workspace, provider))
    clean_settings = integration_clean_settings(provider=provider, settings=settings or {})
    provider.check_credential(credential)
    identity: Identity | None = None
    if verify:
        identity = provider.verify(credential, clean_settings, http=provider.http_client(credential))
    key = account_key(provider, identity) if identity is not None else ""
    readers = integration_account_readers(workspace=workspace, key=key)
    if readers and not allow_duplicate:
        raise DuplicateAccount(
            f"This {provider.name} account ({identity.account_id}) is already connected as {_names(readers)}.",  # type: ignore[union-attr]  # readers need a key
            hint="Open that integration instead. If each reads a different part of the account (other "
            "projects, say), choose to read only part of it: both are then counted, and the overlap "
            "is shown on both pages.",
            existing=readers,
        )
    now = timezone.now()
    integration = Integration(
        workspace=workspace,
        provider=provider.slug,
        name=name.strip() or provider.name,
        settings=clean_settings,
        created_by=created_by,
        next_sync_at=now if provider.fetches_usage else None,
        account_key=key,
        account_share=Integration.AccountShare.SPLIT if readers else Integration.AccountShare.WHOLE,
    )
    integration.set_credential(credential)
    if identity is not None:
        integration.identity = identity.as_dict()
        integration.verified_at = now
    integration.full_clean(exclude=["credential", "created_by"])
    integration.save()
    summary = f" {identity.summary}" if identity and identity.summary else ""
    if readers:
        summary += f" It reads part of an account also read by {_names(readers)}; both are counted."
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.CONFIGURATION,
        message=f"Connected {provider.name}.{summary}",
        hint=(
            f"The first sync reads the last {integration.backfill_days} days."
            if provider.fetches_usage
            else f"{provider.usage_source_note} Import usage on the integration page."
        ),
    )
    # Its usage goes to an application of the vendor (created if missing) until rules say otherwise.
    from usage.services import attribution_ensure_default

    attribution_ensure_default(workspace=workspace, provider=provider)
    return integration


def integration_verify(*, integration: Integration) -> Identity:
    """Test connection: store what the credential can see, or record why it failed (and re-raise)."""
    if integration.status == Integration.Status.DISCONNECTED:
        raise ConfigurationError(
            "This integration is disconnected: its credential was deleted.",
            hint="Add the provider again with a new key to resume syncing.",
        )
    provider = integration.provider_obj
    credential = integration.get_credential()
    try:
        provider.check_credential(credential)
        identity = provider.verify(credential, integration.settings, http=provider.http_client(credential))
    except ProviderError as error:
        event = integration_record_error(integration, error)
        _record_test_outcome(integration, error=error, message=event.message)
        raise
    now = timezone.now()
    key = account_key(provider, identity)
    Integration.objects.filter(pk=integration.pk).update(identity=identity.as_dict(), verified_at=now, account_key=key)
    integration.identity, integration.verified_at, integration.account_key = identity.as_dict(), now, key
    _record_test_outcome(integration, error=None)
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.CONFIGURATION,
        message=f"Connection test passed. {identity.summary}".strip(),
    )
    return identity


def _record_test_outcome(integration: Integration, *, error: ProviderError | None, message: str = "") -> None:
    """A Test connection is an outcome like a sync's: the badge must not say "Connected"
    after a refused test, nor keep an old failure after a passing one. A permanent refusal
    needs attention; a throttled or unreachable provider is retried. A paused integration
    stays paused (only its last error changes)."""
    changes: dict[str, Any]
    if error is not None:
        changes = {"last_error_category": error.category, "last_error_message": message}
        if integration.is_connected and error.permanent:
            changes["status"] = Integration.Status.ERROR
    elif integration.is_connected and (
        integration.last_error_category or integration.status == Integration.Status.ERROR
    ):
        changes = {"last_error_category": "", "last_error_message": ""}
        if integration.status == Integration.Status.ERROR:
            # The key works again: sync soon, so the data catches up and the badge is confirmed.
            changes.update(status=Integration.Status.ACTIVE, consecutive_failures=0, next_sync_at=timezone.now())
    else:
        return
    Integration.objects.filter(pk=integration.pk).update(**changes)
    for name, value in changes.items():
        setattr(integration, name, value)


def integration_rotate_credential(
    *, integration: Integration, credential: Mapping[str, Any], verify: bool = True
) -> Integration:
    """Replace the secret (verified first); a paused-for-credential integration resumes."""
    provider = integration.provider_obj
    credential = _clean_credential(provider, credential)
    credential = provider.prepare_credential(
        credential, previous=integration.get_credential(), seed=_credential_seed(integration.workspace, provider)
    )
    provider.check_credential(credential)
    identity = (
        provider.verify(credential, integration.settings, http=provider.http_client(credential)) if verify else None
    )
    integration.set_credential(dict(credential))
    integration.consecutive_credential_failures = 0  # a new key starts with a clean record
    if identity is not None:
        integration.identity = identity.as_dict()
        integration.verified_at = timezone.now()
        integration.account_key = account_key(provider, identity)
    if integration.status in (
        Integration.Status.ERROR,
        Integration.Status.PAUSED,
    ) and integration.last_error_category in (
        "credential",
        "scope",
        "permission",
    ):
        integration.status = Integration.Status.ACTIVE
        integration.consecutive_failures = 0
        integration.last_error_category = integration.last_error_message = ""
        integration.next_sync_at = timezone.now()
    integration.save()
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.CREDENTIAL,
        message="Credential rotated." + (" The new key was verified." if identity else ""),
    )
    return integration


def integration_update(
    *,
    integration: Integration,
    name: str,
    settings: Mapping[str, Any],
    sync_interval: timedelta,
    backfill_days: int,
) -> Integration:
    provider = integration.provider_obj
    integration.name = name.strip() or provider.name
    integration.settings = integration_clean_settings(provider=provider, settings=settings)
    integration.sync_interval = sync_interval
    integration.backfill_days = backfill_days
    integration.save(update_fields=["name", "settings", "sync_interval", "backfill_days", "updated_at"])
    return integration


def integration_pause(*, integration: Integration, reason: str = "Paused by an admin.") -> None:
    if not integration.is_connected:
        raise SyncNotAllowed(
            f"{integration.name} is {integration.get_status_display().lower()}; only connected integrations can be paused."
        )
    Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.PAUSED, next_sync_at=None)
    integration.status = Integration.Status.PAUSED
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.SYNC,
        message=reason,
        hint="Scheduled syncs are stopped until the integration is resumed.",
    )


def integration_resume(*, integration: Integration) -> None:
    if integration.status == Integration.Status.DISCONNECTED:
        raise SyncNotAllowed("A disconnected integration has no credential; add the provider again to resume syncing.")
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        status=Integration.Status.ACTIVE, next_sync_at=now, consecutive_failures=0, consecutive_credential_failures=0
    )
    integration.status = Integration.Status.ACTIVE
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.SYNC,
        message="Resumed; the next sync starts within a minute.",
    )


def integration_disconnect(*, integration: Integration, keep_data: bool) -> None:
    """Forget the credential. Keep the usage (and the integration row, disconnected) or delete all."""
    if not keep_data:
        integration.delete()
        return
    integration.credential = "{}"
    integration.credential_hint = ""
    integration.status = Integration.Status.DISCONNECTED
    integration.next_sync_at = None
    integration.save(update_fields=["credential", "credential_hint", "status", "next_sync_at", "updated_at"])
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.CONFIGURATION,
        message="Disconnected. The credential was deleted; usage already stored was kept.",
    )


def integration_request_sync(*, integration: Integration) -> None:
    """Sync now: enqueue once the current transaction commits."""
    integration.check_can_sync()
    enqueue_on_commit("integrations.tasks.sync_integration", integration.pk, SyncRun.Trigger.MANUAL)


# ------------------------------------------------------------------ one account, counted once
RESOLUTIONS = ("pause", "disconnect", "split")


def integration_resolve_duplicate(*, integration: Integration, resolution: str) -> str:
    """The one-click fixes for an integration that reads an account another one already
    counts: "pause" or "disconnect" it (keeping its usage, which is no longer counted), or
    "split" (each reads a different part: both counted, the overlap shown). Returns what
    was done, for the page."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"Unknown resolution {resolution!r}")
    peers = integration_account_peers(integration=integration)
    # Name the integration(s) reading the whole account: the one whose count stands.
    others = [p for p in peers if p.account_share == Integration.AccountShare.WHOLE] or peers
    names = _names(others) if others else "another integration"
    if resolution == "split":
        Integration.objects.filter(pk=integration.pk).update(account_share=Integration.AccountShare.SPLIT)
        integration.account_share = Integration.AccountShare.SPLIT
        done = f"{integration.name} reads part of the account it shares with {names}: both are counted."
    else:
        Integration.objects.filter(pk=integration.pk).update(account_share=Integration.AccountShare.DUPLICATE)
        integration.account_share = Integration.AccountShare.DUPLICATE
        reason = f"It reads the same account as {names}, so its usage is no longer counted."
        if resolution == "pause" and integration.is_connected:
            integration_pause(integration=integration, reason=f"Paused. {reason}")
            return f"Paused {integration.name}. {reason}"  # the pause's event says it
        elif resolution == "disconnect" and integration.status != Integration.Status.DISCONNECTED:
            integration_disconnect(integration=integration, keep_data=True)
            done = f"Disconnected {integration.name}. {reason}"
        else:
            done = f"{integration.name}: {reason}"
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.CONFIGURATION,
        message=done,
    )
    return done


def integration_count_again(*, integration: Integration) -> None:
    """Undo "not counted": the integration reads the whole account again (a duplicate
    group, if the other one is still live, shows on the list)."""
    Integration.objects.filter(pk=integration.pk).update(account_share=Integration.AccountShare.WHOLE)
    integration.account_share = Integration.AccountShare.WHOLE
    integration_record_event(
        integration=integration,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.CONFIGURATION,
        message=f"{integration.name} is counted again as reading its whole account.",
    )
