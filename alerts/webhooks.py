"""The outgoing webhook: one per workspace, a signed JSON POST per told alert change.

Payload (docs/alerts.md, `version` 1) is built here once per change and sent as exactly those
bytes on every attempt; `X-Doow-Signature: sha256=<hex HMAC-SHA256 of the raw body under the
workspace's secret>`. The URL is held to the provider base URL rules (integrations.http.
check_endpoint) when it is saved, and every connection resolves, vets and connects to the vetted
address (integrations.egress), so a name that rebinds to a private address after the save is
refused at send time. Redirects are not followed.

`webhook_attempt` makes one attempt and logs it (WebhookDelivery); the Celery task
alerts.tasks.deliver_webhook retries it with exponential back-off on network errors, 5xx and 429,
never on another 4xx, at most WEBHOOK_MAX_ATTEMPTS times.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from alerts.models import Alert, Webhook, WebhookDelivery
from doow.jobs import enqueue_on_commit
from integrations import egress
from integrations.http import USER_AGENT, _setting_allow_private, check_endpoint, parse_retry_after
from integrations.providers.base import ConfigurationError, NetworkError

logger = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
SIGNATURE_HEADER = "X-Doow-Signature"
WEBHOOK_MAX_ATTEMPTS = 5
# Seconds before retry n (1-based): 30, 60, 120, 240; a 429's Retry-After is honoured up to an hour.
WEBHOOK_BACKOFF_SECONDS = 30
WEBHOOK_MAX_DELAY_SECONDS = 3600
# The delivery log keeps this long; older attempts are deleted as new ones are logged.
DELIVERY_LOG_DAYS = 90
SECRET_PREFIX = "whsec_"


class WebhookURLError(ValueError):
    """The URL is not acceptable (scheme, credentials, or a private/loopback/metadata address)."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def validate_url(url: str) -> None:
    """The provider base URL rules: https and public unless DOOW_ALLOW_PRIVATE_ENDPOINTS."""
    try:
        check_endpoint(url)
    except ConfigurationError as error:
        raise WebhookURLError(error.message) from None
    except NetworkError as error:
        raise WebhookURLError(error.message) from None


# ------------------------------------------------------------------ settings
def webhook_save(*, workspace: Workspace, url: str) -> tuple[Webhook, str]:
    """Create the workspace's webhook, or replace the one it has, with `url` and a new secret.
    Returns the webhook and the secret, which is never shown again."""
    validate_url(url)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook, _ = Webhook.objects.update_or_create(
        workspace=workspace,
        defaults={"url": url, "secret": secret, "secret_hint": secret[-4:], "created_at": timezone.now()},
    )
    return webhook, secret


def webhook_delete(*, workspace: Workspace) -> None:
    Webhook.objects.filter(workspace=workspace).delete()


# ------------------------------------------------------------------ payloads
def _absolute(path: str) -> str:
    return settings.DOOW_BASE_URL.rstrip("/") + path


def alert_payload(workspace: Workspace, alert: Alert, event: str, *, now: datetime) -> dict[str, Any]:
    ws = workspace.slug
    links = {"notifications": _absolute(reverse("alerts:notifications", kwargs={"ws": ws}))}
    if alert.kind == Alert.Kind.BUDGET:
        links["budgets"] = _absolute(reverse("alerts:budgets", kwargs={"ws": ws}))
    elif alert.kind == Alert.Kind.INTEGRATION and alert.integration_id:
        links["integration"] = _absolute(reverse("integrations:detail", kwargs={"ws": ws, "pk": alert.integration_id}))
    elif alert.kind == Alert.Kind.ANOMALY and alert.numbers.get("explorer"):
        links["explorer"] = alert.numbers["explorer"]
    return {
        "version": PAYLOAD_VERSION,
        "id": str(uuid.uuid4()),
        "event": f"alert.{event}",
        "created_at": now.isoformat(),
        "workspace": {"slug": ws, "name": workspace.name},
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "key": alert.key,
            "state": alert.state,
            "level": alert.level,
            "title": alert.title,
            "opened_at": alert.opened_at.isoformat(),
            "changed_at": alert.changed_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "numbers": alert.numbers,
        },
        "links": links,
    }


def ping_payload(workspace: Workspace, *, now: datetime) -> dict[str, Any]:
    return {
        "version": PAYLOAD_VERSION,
        "id": str(uuid.uuid4()),
        "event": "ping",
        "created_at": now.isoformat(),
        "workspace": {"slug": workspace.slug, "name": workspace.name},
        "alert": None,
        "links": {"webhook": _absolute(reverse("alerts:webhook", kwargs={"ws": workspace.slug}))},
    }


def encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def webhook_enqueue(*, webhook_id: int, payload: dict[str, Any], alert_id: int | None = None) -> None:
    """Queue delivery of `payload` to a webhook once the current transaction commits."""
    enqueue_on_commit(
        "alerts.tasks.deliver_webhook", webhook_id, encode(payload), payload["id"], payload["event"], alert_id
    )


# ------------------------------------------------------------------ sending
@dataclass(frozen=True)
class Attempt:
    delivery: WebhookDelivery | None  # None: the webhook is gone (deleted or replaced by nothing)
    retry: bool
    retry_after: float | None = None


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """The wait before attempt `attempt + 1`."""
    wait = WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, WEBHOOK_MAX_DELAY_SECONDS)


def _session(allow_private: bool) -> requests.Session:
    return egress.pinned_session(allow_private=allow_private)


def webhook_attempt(
    *, webhook_id: int, body: str, delivery_id: str, event: str, alert_id: int | None, attempt: int
) -> Attempt:
    """POST `body` once to the webhook and log the attempt. Retry on a network error, 5xx or
    429 while attempts remain; never on a refused address or another 4xx."""
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    if webhook is None:
        return Attempt(None, retry=False)
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(webhook.secret, raw),
        "X-Doow-Event": event,
        "X-Doow-Delivery": delivery_id,
    }
    allow_private = _setting_allow_private()
    status: int | None = None
    error = ""
    retryable = False
    retry_after: float | None = None
    started = time.monotonic()
    try:
        scheme = urlsplit(webhook.url).scheme
        if scheme not in ("http", "https") or (scheme != "https" and not allow_private):
            raise ConfigurationError("Webhook URLs must use https.")
        with _session(allow_private) as session:
            response = session.post(
                webhook.url,
                data=raw,
                headers=headers,
                timeout=settings.DOOW_HTTP_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            retryable, error = True, "Rate limited"
        elif status >= 500:
            retryable, error = True, f"Server error {status}"
        elif status >= 300:
            error = "Redirects are not followed" if 300 <= status < 400 else f"Refused with {status}"
    except ConfigurationError as exc:  # the address is not acceptable (vetted at connect time)
        error = f"Refused: {exc.message}"
    except requests.Timeout:
        retryable, error = True, "Timed out"
    except requests.ConnectionError:
        retryable, error = True, "Could not connect"
    except requests.RequestException as exc:
        error = f"Request failed: {type(exc).__name__}"
    duration = int((time.monotonic() - started) * 1000)
    retry = retryable and attempt < WEBHOOK_MAX_ATTEMPTS
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        delivery_id=delivery_id,
        event=event,
        alert_id=alert_id if alert_id and Alert.objects.filter(pk=alert_id).exists() else None,
        attempt=attempt,
        status_code=status,
        duration_ms=duration,
        error=error[:500],
        will_retry=retry,
        created_at=timezone.now(),
    )
    WebhookDelivery.objects.filter(
        webhook=webhook, created_at__lt=delivery.created_at - timedelta(days=DELIVERY_LOG_DAYS)
    ).delete()
    if error:
        logger.info(
            "webhook delivery %s of workspace %s attempt %s: %s", delivery_id, webhook.workspace_id, attempt, error
        )
    return Attempt(delivery, retry=retry, retry_after=retry_after)
