"""The credential: ciphertext at rest, re-encrypted by rotate_fernet_keys, and shown nowhere."""

from __future__ import annotations

import io
import logging
import re
import traceback
from collections.abc import Iterator

import pytest
from cryptography.fernet import InvalidToken
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import URLPattern, reverse

from integrations.apps import reset_fernet_cache
from integrations.models import Integration, IntegrationEvent, SyncRun
from usage.models import UsageRecord

# Distinctive, and accepted by the sandbox (any sk-admin-… key that is not the revoked one).
KEY = "sk-admin-doowLEAKPROBE-Qz4Wm8Xr2Lp6Nv0Tj3Hk7Bd5"
# Pieces that must not show up either: the part after the prefix and a run from its middle.
# (The last four characters are the admin-facing hint, so they are not searched for alone.)
FRAGMENTS = (KEY, KEY[len("sk-admin-") : -4], KEY[18:34])
NEW_KEY = "fernet-key-2026-rotation-new"
ROGUE_KEY = "fernet-key-nobody-has-anymore"


def assert_no_secret(text: str, where: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"the credential (or part of it) appears in {where}"


@pytest.fixture
def fernet_keys() -> Iterator[None]:
    """Tests that override FERNET_KEYS: the field starts and ends on the settings in force
    (integrations.apps resets fernet_fields' cache whenever FERNET_KEYS changes)."""
    reset_fernet_cache()
    yield
    reset_fernet_cache()


def raw_credential(pk: int) -> bytes:
    table = connection.ops.quote_name(Integration._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT credential FROM {table} WHERE id = %s", [pk])  # our table name
        return bytes(cursor.fetchone()[0])


def connect(*args: str) -> int:
    out = io.StringIO()
    call_command("connect", *args, stdout=out)
    assert_no_secret(out.getvalue(), "connect output")
    return int(out.getvalue().strip().splitlines()[-1])


def connect_offline(workspace_slug: str = "acme", key: str = KEY) -> int:
    return connect("openai", "--workspace", workspace_slug, "--credential", f"api_key={key}", "--no-verify")


# ------------------------------------------------------------------ at rest
def test_the_credential_is_ciphertext_in_the_database(db):
    pk = connect_offline()
    stored = raw_credential(pk)
    for fragment in FRAGMENTS:
        assert fragment.encode() not in stored
    assert stored.startswith(b"gAAAAA")  # a Fernet token
    assert Integration.objects.get(pk=pk).get_credential() == {"api_key": KEY}


def test_rotate_fernet_keys_reencrypts_with_the_newest_key(db, fernet_keys):
    old_key = settings.FERNET_KEYS[0]
    first, second = connect_offline(), connect_offline("globex", KEY.replace("Qz4", "Yy9"))
    before = raw_credential(first)

    with override_settings(FERNET_KEYS=[NEW_KEY]):
        with pytest.raises(InvalidToken):  # the new key alone cannot read what the old one wrote
            Integration.objects.get(pk=first)

    with override_settings(FERNET_KEYS=[NEW_KEY, old_key]):
        out = io.StringIO()
        call_command("rotate_fernet_keys", stdout=out)
        assert "Re-encrypted 2 credential(s)" in out.getvalue()
        assert_no_secret(out.getvalue(), "rotate output")
        assert Integration.objects.get(pk=first).get_credential() == {"api_key": KEY}

    assert raw_credential(first) != before
    assert KEY.encode() not in raw_credential(first)
    with override_settings(FERNET_KEYS=[NEW_KEY]):  # the old key removed
        assert Integration.objects.get(pk=first).get_credential() == {"api_key": KEY}
        assert Integration.objects.get(pk=second).get_credential()["api_key"].startswith("sk-admin-doowLEAKPROBE-Yy9")


def test_rotate_reports_an_undecryptable_credential_by_id_and_rotates_the_rest(db, fernet_keys):
    old_key = settings.FERNET_KEYS[0]
    good = connect_offline()
    with override_settings(FERNET_KEYS=[ROGUE_KEY]):
        lost = connect_offline("globex")
    lost_ciphertext = raw_credential(lost)

    out, err = io.StringIO(), io.StringIO()
    with override_settings(FERNET_KEYS=[NEW_KEY, old_key]), pytest.raises(CommandError) as excinfo:
        call_command("rotate_fernet_keys", stdout=out, stderr=err)
    assert excinfo.value.returncode == 1
    assert f"ids: {lost}" in str(excinfo.value)
    assert f"Integration {lost}: credential cannot be decrypted" in err.getvalue()
    assert "Re-encrypted 1 credential(s)" in out.getvalue()
    for text in (out.getvalue(), err.getvalue(), str(excinfo.value)):
        assert_no_secret(text, "rotate output")
        assert lost_ciphertext.decode() not in text
    assert raw_credential(lost) == lost_ciphertext  # left as it was

    with override_settings(FERNET_KEYS=[NEW_KEY]):
        assert Integration.objects.get(pk=good).get_credential() == {"api_key": KEY}


# ------------------------------------------------------------------ shown nowhere
def _page_urls(workspace_slug: str, integration_pk: int) -> list[str]:
    """Every integrations page whose URL arguments we can fill in."""
    from integrations import urls

    values = {"ws": workspace_slug, "pk": integration_pk, "provider": "openai"}
    found = []
    for pattern in urls.urlpatterns:
        if not isinstance(pattern, URLPattern) or not pattern.name:
            continue
        names = re.findall(r"<(?:\w+:)?(\w+)>", str(pattern.pattern))
        if all(n in values for n in names):
            found.append(reverse(f"integrations:{pattern.name}", kwargs={n: values[n] for n in ["ws", *names]}))
    return found


def _admin_urls(integration: Integration) -> list[str]:
    urls = [
        reverse("admin:index"),
        reverse("admin:integrations_integration_changelist"),
        reverse("admin:integrations_integration_change", args=[integration.pk]),
        reverse("admin:integrations_syncrun_changelist"),
        reverse("admin:integrations_integrationevent_changelist"),
        reverse("admin:usage_usagerecord_changelist"),
        reverse("admin:accounts_workspace_change", args=[integration.workspace_id]),
    ]
    urls += [
        reverse("admin:integrations_syncrun_change", args=[pk])
        for pk in integration.sync_runs.values_list("pk", flat=True)
    ]
    urls += [
        reverse("admin:integrations_integrationevent_change", args=[pk])
        for pk in integration.events.values_list("pk", flat=True)
    ]
    urls += [
        reverse("admin:usage_usagerecord_change", args=[pk])
        for pk in integration.usage_records.values_list("pk", flat=True)[:3]
    ]
    return urls


def _log_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def test_the_secret_appears_nowhere_across_connect_sync_and_failures(sandbox, admin_user, caplog):
    caplog.set_level(logging.DEBUG)
    pk = connect(
        "openai",
        "--workspace",
        "acme",
        "--credential",
        f"api_key={KEY}",
        "--setting",
        f"base_url={sandbox.openai_base_url}",
    )
    outputs: list[str] = []

    def run(*args: str) -> None:
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("sync", str(pk), "--since", "2025-03-01", "--until", "2025-03-01", stdout=out, stderr=err)
        except CommandError as exc:
            outputs.append(str(exc))
        outputs.extend([out.getvalue(), err.getvalue()])

    run()
    assert UsageRecord.objects.filter(integration_id=pk).exists()
    for status, body in ((401, None), (403, None), (429, None), (200, "{not json")):
        sandbox.fault("/openai/v1/organization/usage", status, times=10, body=body)
        run()
        sandbox.clear_faults()
    # a wrong key type carrying the secret's body, and a rejected key, refused at connect
    for bad in (KEY.replace("sk-admin-", "sk-proj-"), KEY.replace("sk-admin-", "sk-")):
        with pytest.raises(CommandError) as excinfo:
            connect(
                "openai",
                "--workspace",
                "acme",
                "--credential",
                f"api_key={bad}",
                "--setting",
                f"base_url={sandbox.openai_base_url}",
            )
        outputs.append(str(excinfo.value))

    runs = SyncRun.objects.filter(integration_id=pk)
    assert runs.filter(status=SyncRun.Status.FAILED).count() == 4
    assert set(runs.values_list("error_category", flat=True)) >= {"credential", "permission", "rate_limit", "provider"}
    for text in outputs:
        assert_no_secret(text, "command output")
    for record in caplog.records:
        assert_no_secret(_log_text(record), f"log record {record.name}")
    for message, hint in IntegrationEvent.objects.values_list("message", "hint"):
        assert_no_secret(message + hint, "an event")
    for error in runs.values_list("error", flat=True):
        assert_no_secret(error, "a sync run's error")
    integration = Integration.objects.get(pk=pk)
    assert_no_secret(
        integration.last_error_message + str(integration.identity) + str(integration.settings), "the integration row"
    )

    export = io.StringIO()
    call_command("export_usage", "--workspace", "acme", stdout=export)
    assert export.getvalue().count("\n") > 1
    assert_no_secret(export.getvalue(), "the export")

    superuser = get_user_model().objects.create_superuser(username="root", password="x", email="root@example.com")
    staff = Client()
    staff.force_login(superuser)
    for url in _admin_urls(integration):
        response = staff.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response.content.decode(), url)

    pages = Client(raise_request_exception=False)
    pages.force_login(admin_user)
    urls = _page_urls("acme", pk)
    assert reverse("integrations:detail", kwargs={"ws": "acme", "pk": pk}) in urls
    for url in urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = pages.get(url, headers=headers)
            body = response.content.decode(errors="replace")
            assert_no_secret(body, f"{url} (HTTP {response.status_code})")
    for name in ("list", "detail", "edit", "rotate"):
        url = reverse(f"integrations:{name}", kwargs={"ws": "acme"} if name == "list" else {"ws": "acme", "pk": pk})
        assert pages.get(url).status_code == 200, url
