"""How the Fireworks connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderResponseError,
    Window,
    align_down,
)
from integrations.providers.fireworks.connector import API_KEYS_URL
from integrations.providers.fireworks.tests.support import BILLING_PATH, HOUR, FireworksSandbox, load
from integrations.providers.testing import ProviderFailureTests, assert_no_secret, fetch_raises, refused_offline
from sandbox import fireworks as fw

ACCOUNT_PATHS = "/fireworks/v1/accounts/"
METRICS_PATH = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/metrics"


def raises(error_type, provider, key, settings, window, http, state=None):
    return fetch_raises(error_type, provider, {"api_key": key}, settings, window, http, state=state)


def client(key: str, sleeps: list[float], **kwargs: Any) -> HttpClient:
    return HttpClient(secrets=[key], sleep=sleeps.append, **kwargs)


# ---------------------------------------------------------------- credential, account, permission
def test_401_message_echoing_the_key_is_redacted(provider, credential, provider_settings, day, sandbox, http) -> None:
    key = credential["api_key"]
    sandbox.fault(ACCOUNT_PATHS, 401, body={"code": 16, "message": f"invalid API key {key}", "details": []})
    error = raises(CredentialError, provider, key, provider_settings, day, http)
    assert "invalid API key" in error.message


def test_key_of_another_account_is_permission_denied_with_fix(
    provider, provider_settings, day, sandbox, sleeps
) -> None:
    key = fw.OTHER_ACCOUNT_KEY
    error = raises(PermissionDenied, provider, key, provider_settings, day, client(key, sleeps))
    assert error.http_status == 403 and "refused access to this account" in error.message
    assert "account_id" in error.hint


def test_recorded_403_is_permission_denied(provider, credential, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(ACCOUNT_PATHS, 403, body=load("error_permission_denied.json"))
    error = raises(PermissionDenied, provider, credential["api_key"], provider_settings, day, http)
    assert "permission denied" in error.message


def test_unknown_account_is_a_configuration_error_on_account_id(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    settings = {**provider_settings, "account_id": "no-such-account"}
    error = raises(ConfigurationError, provider, credential["api_key"], settings, day, http)
    assert error.http_status == 404 and error.field == "account_id"


def test_verify_with_a_key_of_another_account_fails(provider, provider_settings, sandbox, sleeps) -> None:
    with pytest.raises(PermissionDenied) as info:
        provider.verify({"api_key": fw.OTHER_ACCOUNT_KEY}, provider_settings, http=client(fw.OTHER_ACCOUNT_KEY, sleeps))
    assert_no_secret(info.value, [fw.OTHER_ACCOUNT_KEY])


@pytest.mark.parametrize("account_id", ["", "   ", "accounts/", "acme/deployments/x", "../metrics", "a" * 200])
def test_bad_account_id_fails_before_any_call(
    provider, credential, provider_settings, day, sandbox, http, account_id
) -> None:
    error = raises(
        ConfigurationError, provider, credential["api_key"], {**provider_settings, "account_id": account_id}, day, http
    )
    assert error.field == "account_id"
    assert sandbox.requests() == []


# ---------------------------------------------------------------- rate limits and outages
# ---------------------------------------------------------------- unreadable answers
def test_wrong_shape_is_a_response_error_with_request_id(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    body = {"serverlessCosts": [{"modelName": "m", "promptTokens": 12.5, "startTime": "2026-11-01T00:00:00Z",
                                 "endTime": "2026-11-02T00:00:00Z"}]}  # fmt: skip
    sandbox.fault(BILLING_PATH, 200, body=body)
    error = raises(ProviderResponseError, provider, credential["api_key"], provider_settings, day, http)
    assert "promptTokens" in error.message and error.http_status == 200 and len(error.request_id) == 32


def test_400_is_a_response_error(provider, credential, provider_settings, day, sandbox, http) -> None:
    body = {"code": 3, "message": "invalid argument: end_time must not be more than 31 days after start_time"}
    sandbox.fault(BILLING_PATH, 400, body=body)
    error = raises(ProviderResponseError, provider, credential["api_key"], provider_settings, day, http)
    assert "31 days" in error.message and error.http_status == 400


# ---------------------------------------------------------------- the metrics scrape
def live(provider, clock) -> Window:
    """The chunk that reaches the present, the only one that scrapes."""
    end = align_down(clock() - provider.reporting_delay, HOUR)
    return Window(end - HOUR, end)


@pytest.mark.parametrize(
    ("status", "error_type"), [(401, CredentialError), (403, PermissionDenied)], ids=["401", "403"]
)
def test_metrics_refusing_the_key_fails_the_sync(
    provider, credential, provider_settings, sandbox, http, clock, status, error_type
) -> None:
    sandbox.fault(METRICS_PATH, status)
    state: dict[str, Any] = {}
    raises(error_type, provider, credential["api_key"], provider_settings, live(provider, clock), http, state)
    assert state == {}


def test_unreadable_metrics_are_a_response_error(provider, credential, provider_settings, sandbox, http, clock) -> None:
    sandbox.fault(METRICS_PATH, 200, body="<html>upstream proxy error</html>")
    state: dict[str, Any] = {}
    error = raises(
        ProviderResponseError, provider, credential["api_key"], provider_settings, live(provider, clock), http, state
    )
    assert "not Prometheus text" in error.message and len(error.request_id) == 32
    assert state == {}


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "Enter the Fireworks API key"),
        ("   ", "Enter the Fireworks API key"),
        ("fw_0123 456789abcdef", "spaces"),
        ("sk-ant-admin01-0123456789abcdefSECRET", "an Anthropic key"),
        ("sk-proj-0123456789abcdefSECRET", "an OpenAI key"),
        ("sk-or-v1-0123456789abcdefSECRET", "an OpenRouter key"),
        ("gsk_0123456789abcdefSECRET", "a Groq key"),
        ("r8_0123456789abcdefSECRET", "a Replicate token"),
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "sign-in token"),
    ],
)
def test_check_credential_rejects_wrong_keys_offline(provider, key: str, words: str) -> None:
    refused_offline(provider, "api_key", key, words)


@pytest.mark.parametrize(
    "key", ["  fw_3ZkL0123456789abcdefSECRET\n", "Zk3q0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"]
)
def test_check_credential_accepts_fireworks_keys(provider, key: str) -> None:
    # fw_… is what Fireworks shows; the prefix is not documented as a rule, so older keys pass too.
    provider.check_credential({"api_key": key})


# ---------------------------------------------------------------- the shared failure cases
class TestFireworksFailures(FireworksSandbox, ProviderFailureTests):
    retried_path = later_page_path = BILLING_PATH
    later_page_after = 2  # the second 31-day piece
    malformed_body = '{"serverlessCosts": ['
    storm_statuses = (503,)
    rejected = {"api_key": fw.REVOKED_KEY}
    words = {"rejected": "Fireworks rejected the API key", "no_wait": "rate limit exceeded"}
    hints = {"rejected": API_KEYS_URL}
    request_id = "^.{32}$"
