"""A provider that echoes a key back, in whatever encoding, never gets it onto a page, an event,
a run or a log: redaction in the HTTP seam (integrations/http.py)."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from integrations.http import redact
from integrations.models import Integration, IntegrationEvent, SyncRun

# A key with characters that encoding changes ("+" and "/" as in base64), as in the issue.
KEY = "sk-admin-AUDIT+leak/Qz4Wm8Xr2Lp6Nv0Tj3Hk7Bd5"
BODY = KEY[len("sk-admin-") : -4]  # "AUDIT+leak/…" without the prefix and the 4-character hint
USAGE = "/openai/v1/organization/usage"


def forms_of(secret: str) -> dict[str, str]:
    """The ways a provider has been seen (or could plausibly be seen) to echo a string."""
    return {
        "plain": secret,
        "percent-encoded": quote(secret, safe=""),
        "percent-encoded, / kept": quote(secret),
        "form-encoded": quote_plus(secret),
        "percent-encoded, lower-case hex": quote(secret, safe="").replace("%2B", "%2b").replace("%2F", "%2f"),
        "percent-encoded twice": quote(quote(secret, safe=""), safe=""),
        "JSON string": json.dumps(secret),
        "JSON, / escaped": json.dumps(secret).replace("/", "\\/"),
        "JSON, \\u escapes": secret.replace("+", "\\u002B").replace("/", "\\u002f"),
    }


def fragments_of(secret: str) -> list[str]:
    """What must not be left of the secret, whatever the encoding: its distinctive middle."""
    middle = secret[len("sk-admin-") : -4]
    return [form for form in forms_of(middle).values()] + ["Qz4Wm8Xr2Lp6", "AUDIT"]


def assert_clean(text: str, where: str, secret: str = KEY) -> None:
    for fragment in fragments_of(secret):
        assert fragment not in text, f"{fragment!r} (part of the key) appears in {where}"


@pytest.mark.parametrize("form", list(forms_of(KEY)))
def test_every_encoding_of_a_known_secret_is_redacted(form):
    echoed = forms_of(KEY)[form]
    text = redact(f"Incorrect API key provided: {echoed}. See https://platform.openai.com/account/api-keys.", [KEY])
    assert (
        text
        == "Incorrect API key provided: "
        + ('"[redacted]"' if echoed.startswith('"') else "[redacted]")
        + ". See https://platform.openai.com/account/api-keys."
    )


@pytest.mark.parametrize("form", list(forms_of(KEY)))
def test_every_encoding_of_a_token_we_were_not_told_is_redacted(form):
    text = redact(f"key {forms_of(KEY)[form]} was revoked")
    assert_clean(text, "the redacted text")
    assert text.startswith("key ") and text.endswith(" was revoked")


def test_secrets_with_newlines_and_quotes_are_redacted_when_json_escaped():
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    for echoed in (json.dumps(pem), json.dumps(json.dumps({"private_key": pem})), quote(pem)):
        text = redact(f"could not parse {echoed}", [pem])
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in text, echoed


def test_ordinary_text_and_urls_survive():
    text = "Rate limit reached for org-123 on https://api.openai.com/v1/organization/usage?start_time=1%2B2 (tokens per min)."
    assert redact(text, [KEY]) == text
    assert redact("Authorization: Bearer%20abc%2Bdef.ghi") == "Authorization: Bearer%20[redacted]"


# ---------------------------------------------------------------- through the seam, into what people see
ECHOES = {
    "the key, percent-encoded": f"Incorrect API key provided: {quote(KEY, safe='')}.",
    "the key in a URL": f"Request to https://api.openai.com/v1/organization/usage?api_key={quote_plus(KEY)}&limit=7 was refused.",
    "the key in nested JSON": "upstream said: " + json.dumps({"key": KEY}).replace("/", "\\/").replace("+", "\\u002b"),
}


@pytest.mark.parametrize("echo", list(ECHOES))
def test_an_echoed_key_never_reaches_the_event_the_run_the_page_or_the_log(
    echo, sandbox, admin_user, admin_client, caplog
):
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    call_command(
        "connect", "openai", "--workspace", "acme", "--credential", f"api_key={KEY}",
        "--setting", f"base_url={sandbox.openai_base_url}", stdout=out,
    )  # fmt: skip
    pk = int(out.getvalue().strip().splitlines()[-1])
    sandbox.fault(
        USAGE,
        401,
        times=10,
        body={"error": {"message": ECHOES[echo], "type": "invalid_request_error", "code": "invalid_api_key"}},
    )

    with pytest.raises(CommandError) as failure:
        call_command("sync", str(pk), "--since", "2026-11-01", "--until", "2026-11-01", stdout=io.StringIO())

    run = SyncRun.objects.get(integration_id=pk)
    assert run.status == SyncRun.Status.FAILED and run.error_category == "credential"
    event = IntegrationEvent.objects.filter(integration_id=pk, category="credential").latest("pk")
    assert "[redacted]" in event.message  # the provider's words are kept, the key is not
    integration = Integration.objects.get(pk=pk)
    assert_clean(str(failure.value), "the command's error")
    assert_clean(event.message + event.hint, "the event")
    assert_clean(run.error, "the sync run")
    assert_clean(integration.last_error_message, "the integration")
    page = admin_client.get(reverse("integrations:detail", kwargs={"ws": "acme", "pk": pk}))
    assert page.status_code == 200 and "[redacted]" in page.content.decode()
    assert_clean(page.content.decode(), "the integration page")
    staff = Client()
    staff.force_login(type(admin_user).objects.create_superuser("root", "root@example.com", "x"))
    admin_page = staff.get(reverse("admin:integrations_integrationevent_change", args=[event.pk]))
    assert admin_page.status_code == 200
    assert_clean(admin_page.content.decode(), "the event in Django admin")
    for record in caplog.records:
        assert_clean(record.getMessage() + repr(record.args), f"log record {record.name}")
