"""How the Anthropic connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.anthropic.connector import ADMIN_KEYS_URL, CREATE_ADMIN_KEY
from integrations.providers.anthropic.tests.support import (
    COSTS_PATH,
    USAGE_PATH,
    AnthropicSandbox,
    load,
)
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderResponseError,
    ProviderUnavailable,
    ScopeError,
)
from integrations.providers.testing import (
    CursorPagingTests,
    ProviderFailureTests,
    assert_no_secret,
    key_fetchers,
)
from sandbox import anthropic as fake

ORG_PATHS = "/anthropic/v1/organizations/"


run, raises = key_fetchers("api_key")


# ---------------------------------------------------------------- credential and permission
def test_401_message_echoing_the_key_is_redacted(provider, credential, provider_settings, day, sandbox, http) -> None:
    key = credential["api_key"]
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {key}"}}
    sandbox.fault(ORG_PATHS, 401, body=body)
    error = raises(CredentialError, provider, key, provider_settings, day, http)
    assert "invalid x-api-key" in error.message


def test_403_permission_error_is_permission_denied_with_fix(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    # On the legacy report: a 403 from the analytics report only sends the read there (test_analytics.py).
    sandbox.fault(USAGE_PATH, 403, body=load("error_permission.json"))
    error = raises(PermissionDenied, provider, credential["api_key"], provider_settings, day, http)
    assert not isinstance(error, ScopeError)
    assert error.http_status == 403 and error.request_id.startswith("req_")
    assert "does not have permission" in error.message
    assert "sk-ant-admin…" in error.hint and ADMIN_KEYS_URL in error.hint


def test_regular_api_key_never_reaches_the_network(provider, provider_settings, day, sandbox, sleeps) -> None:
    key = fake.API_KEY
    error = raises(
        PermissionDenied, provider, key, provider_settings, day, HttpClient(secrets=[key], sleep=sleeps.append)
    )
    assert "regular API key" in error.message and ADMIN_KEYS_URL in error.hint
    with pytest.raises(PermissionDenied):
        provider.verify({"api_key": key}, provider_settings, http=HttpClient(secrets=[key], sleep=sleeps.append))
    assert sandbox.requests() == []


def test_verify_detects_a_key_that_sees_the_organization_but_not_usage(
    provider, credential, provider_settings, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 403, body=load("error_permission.json"))
    with pytest.raises(PermissionDenied):
        provider.verify(credential, provider_settings, http=http)


# ---------------------------------------------------------------- rate limits and outages
def test_529_overloaded_storm_is_provider_unavailable(
    provider, credential, provider_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ORG_PATHS, 529, times=50)
    error = raises(ProviderUnavailable, provider, credential["api_key"], provider_settings, day, http)
    assert error.http_status == 529 and error.message == "Anthropic is overloaded: Overloaded"
    assert len(sleeps) == http.max_attempts - 1, "overloaded answers are retried with back-off first"


def test_404_is_a_configuration_error(provider, credential, provider_settings, day, http) -> None:
    settings = {"base_url": provider_settings["base_url"] + "/wrong-prefix"}
    error = raises(ConfigurationError, provider, credential["api_key"], settings, day, http)
    assert error.http_status == 404 and "base URL" in error.hint


# ---------------------------------------------------------------- unreadable answers
def test_wrong_shape_is_a_response_error_with_request_id(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    body = load("usage_page.json")
    del body["data"][0]["results"][0]["cache_creation"]  # only the decoy flat field is left
    sandbox.fault(USAGE_PATH, 200, body=body)
    error = raises(ProviderResponseError, provider, credential["api_key"], provider_settings, day, http)
    assert "cache_creation" in error.message
    assert error.http_status == 200 and error.request_id.startswith("req_")


def test_wrong_cost_amount_is_a_response_error(provider, credential, provider_settings, day, sandbox, http) -> None:
    body = load("cost_page.json")
    body["data"][0]["results"][0]["amount"] = "n/a"
    sandbox.fault(COSTS_PATH, 200, body=body)
    error = raises(ProviderResponseError, provider, credential["api_key"], provider_settings, day, http)
    assert "amount" in error.message


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("key", "error_type", "words"),
    [
        ("", ConfigurationError, "Enter the Anthropic Admin API key"),
        ("   ", ConfigurationError, "Enter the Anthropic Admin API key"),
        (fake.API_KEY, PermissionDenied, "regular API key (sk-ant-api03-…)"),
        ("sk-ant-oat01-0123456789abcdefSECRET", PermissionDenied, "Claude OAuth token"),
        ("sk-ant-sid01-0123456789abcdefSECRET", PermissionDenied, "not an Admin key"),
        ("sk-admin-0123456789abcdefSECRET", ConfigurationError, "looks like an OpenAI key"),
        ("sk-ant-admin01-0123 456789abcdefSECRET", ConfigurationError, "spaces"),
        ("0123456789abcdefSECRET", ConfigurationError, "does not look like an Anthropic key"),
    ],
)
def test_check_credential_rejects_wrong_key_types_offline(provider, key, error_type, words) -> None:
    with pytest.raises(error_type) as info:
        provider.check_credential({"api_key": key})
    assert words in info.value.message
    assert ADMIN_KEYS_URL in info.value.hint or "spaces" in words
    if key.strip():
        assert_no_secret(info.value, [key])


@pytest.mark.parametrize(
    "key", [fake.ADMIN_KEY, "  sk-ant-admin01-0123456789abcdefSECRET\n", "sk-ant-admin02-0123456789abcdef"]
)
def test_check_credential_accepts_admin_keys(provider, key) -> None:
    provider.check_credential({"api_key": key})


# ---------------------------------------------------------------- the shared failure cases
class TestAnthropicFailures(AnthropicSandbox, ProviderFailureTests, CursorPagingTests):
    retried_path = later_page_path = cursor_path = USAGE_PATH
    malformed_body = '{"data": ['
    rejected = {"api_key": fake.REVOKED_ADMIN_KEY}
    words = {
        "rejected": "Anthropic rejected the Admin key: invalid x-api-key",
        "rate_limited": "throttling",
        "unavailable": "Internal server error",
    }
    hints = {
        "rejected": f"regular API keys (sk-ant-api03-…) are refused too. {CREATE_ADMIN_KEY}",
        "rate_limited": "once a minute",
    }
    request_id = "^req_"

    def page(self, *, has_more: bool, cursor: str | None) -> dict:
        return {"data": [], "has_more": has_more, "next_page": cursor}
