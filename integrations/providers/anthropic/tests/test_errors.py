"""How the Anthropic connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.anthropic.connector import ADMIN_KEYS_URL
from integrations.providers.anthropic.tests.support import (
    COSTS_PATH,
    USAGE_PATH,
    days_ago,
    load,
)
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    ScopeError,
    Window,
)
from integrations.providers.testing import assert_no_secret
from sandbox import anthropic as fake

ORG_PATHS = "/anthropic/v1/organizations/"


@pytest.fixture
def day() -> Window:
    return Window(days_ago(2), days_ago(1))


def run(provider, key: str, settings, window, http) -> list:
    return list(provider.fetch({"api_key": key}, settings, window, http=http))


def raises(error_type, provider, key, settings, window, http):
    with pytest.raises(error_type) as info:
        run(provider, key, settings, window, http)
    assert_no_secret(info.value, [key])
    return info.value


# ---------------------------------------------------------------- credential and permission
def test_401_marks_credential_rejected(provider, anthropic_settings, day, sandbox, sleeps) -> None:
    key = fake.REVOKED_ADMIN_KEY
    error = raises(CredentialError, provider, key, anthropic_settings, day, HttpClient(secrets=[key], sleep=sleeps.append))
    assert error.http_status == 401
    assert error.message == "Anthropic rejected the Admin key: invalid x-api-key"
    assert error.request_id.startswith("req_")
    assert ADMIN_KEYS_URL in error.hint and "sk-ant-api03-" in error.hint
    assert len(sandbox.requests()) == 1, "a rejected key is not retried"


def test_401_message_echoing_the_key_is_redacted(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    key = admin_credential["api_key"]
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {key}"}}
    sandbox.fault(ORG_PATHS, 401, body=body)
    error = raises(CredentialError, provider, key, anthropic_settings, day, http)
    assert "invalid x-api-key" in error.message


def test_403_permission_error_is_permission_denied_with_fix(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    sandbox.fault(ORG_PATHS, 403, body=load("error_permission.json"))
    error = raises(PermissionDenied, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert not isinstance(error, ScopeError)
    assert error.http_status == 403 and error.request_id.startswith("req_")
    assert "does not have permission" in error.message
    assert "sk-ant-admin…" in error.hint and ADMIN_KEYS_URL in error.hint


def test_regular_api_key_never_reaches_the_network(provider, anthropic_settings, day, sandbox, sleeps) -> None:
    key = fake.API_KEY
    error = raises(PermissionDenied, provider, key, anthropic_settings, day, HttpClient(secrets=[key], sleep=sleeps.append))
    assert "regular API key" in error.message and ADMIN_KEYS_URL in error.hint
    with pytest.raises(PermissionDenied):
        provider.verify({"api_key": key}, anthropic_settings, http=HttpClient(secrets=[key], sleep=sleeps.append))
    assert sandbox.requests() == []


def test_verify_detects_a_key_that_sees_the_organization_but_not_usage(
    provider, admin_credential, anthropic_settings, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 403, body=load("error_permission.json"))
    with pytest.raises(PermissionDenied):
        provider.verify(admin_credential, anthropic_settings, http=http)


# ---------------------------------------------------------------- rate limits and outages
def test_429_with_retry_after_is_retried_then_succeeds(
    provider, admin_credential, anthropic_settings, day, sandbox, http, sleeps
) -> None:
    expected = run(provider, admin_credential["api_key"], anthropic_settings, day, http)
    sandbox.reset()
    sandbox.fault(USAGE_PATH, 429, times=2, headers={"retry-after": "1"})
    assert run(provider, admin_credential["api_key"], anthropic_settings, day, http) == expected
    assert sleeps == [1.0, 1.0]


def test_429_storm_beyond_the_budget_is_rate_limited(
    provider, admin_credential, anthropic_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ORG_PATHS, 429, times=50, headers={"retry-after": "1"})
    error = raises(RateLimited, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert error.retry_after == 1.0 and error.http_status == 429
    assert "throttling" in error.message and "once a minute" in error.hint
    assert len(sandbox.requests()) == http.max_attempts
    assert sleeps == [1.0] * (http.max_attempts - 1)


def test_429_asking_for_a_long_wait_is_not_slept_through(
    provider, admin_credential, anthropic_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ORG_PATHS, 429, headers={"retry-after": "600"})
    error = raises(RateLimited, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert error.retry_after == 600.0
    assert sleeps == [] and len(sandbox.requests()) == 1


def test_429_without_retry_after_is_rate_limited_for_the_engine_to_back_off(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    sandbox.fault(ORG_PATHS, 429)
    error = raises(RateLimited, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert error.retry_after is None and len(sandbox.requests()) == 1


def test_500_is_retried_with_backoff_then_succeeds(
    provider, admin_credential, anthropic_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(USAGE_PATH, 500, times=2)
    assert run(provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert sleeps == [1.0, 2.0]


def test_500_storm_is_provider_unavailable(provider, admin_credential, anthropic_settings, day, sandbox, http) -> None:
    sandbox.fault(ORG_PATHS, 500, times=50)
    error = raises(ProviderUnavailable, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert error.http_status == 500 and error.request_id.startswith("req_")
    assert "Internal server error" in error.message


def test_529_overloaded_storm_is_provider_unavailable(
    provider, admin_credential, anthropic_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ORG_PATHS, 529, times=50)
    error = raises(ProviderUnavailable, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert error.http_status == 529 and error.message == "Anthropic is overloaded: Overloaded"
    assert len(sleeps) == http.max_attempts - 1, "overloaded answers are retried with back-off first"


def test_failure_on_a_later_page_fails_the_fetch(provider, admin_credential, anthropic_settings, sandbox, http) -> None:
    window = Window(days_ago(10), days_ago(1))  # two usage pages
    sandbox.fault(USAGE_PATH, 502, after=1, times=50)
    raises(ProviderUnavailable, provider, admin_credential["api_key"], anthropic_settings, window, http)


def test_timeout_is_a_network_error(provider, admin_credential, anthropic_settings, day, sandbox, sleeps) -> None:
    key = admin_credential["api_key"]
    http = HttpClient(secrets=[key], timeout=0.15, max_attempts=2, sleep=sleeps.append)
    sandbox.fault(ORG_PATHS, 200, delay=0.5, times=2)
    error = raises(NetworkError, provider, key, anthropic_settings, day, http)
    assert "Timed out" in error.message


def test_one_timeout_is_retried(provider, admin_credential, anthropic_settings, day, sandbox, sleeps) -> None:
    key = admin_credential["api_key"]
    http = HttpClient(secrets=[key], timeout=0.15, backoff=1.0, sleep=sleeps.append)
    sandbox.fault(USAGE_PATH, 200, delay=0.5)
    assert run(provider, key, anthropic_settings, day, http)
    assert sleeps == [1.0]


def test_404_is_a_configuration_error(provider, admin_credential, anthropic_settings, day, http) -> None:
    settings = {"base_url": anthropic_settings["base_url"] + "/wrong-prefix"}
    error = raises(ConfigurationError, provider, admin_credential["api_key"], settings, day, http)
    assert error.http_status == 404 and "base URL" in error.hint


# ---------------------------------------------------------------- unreadable answers
def test_malformed_json_is_a_response_error(provider, admin_credential, anthropic_settings, day, sandbox, http) -> None:
    sandbox.fault(USAGE_PATH, 200, body='{"data": [')
    error = raises(ProviderResponseError, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert "not JSON" in error.message


def test_wrong_shape_is_a_response_error_with_request_id(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    body = load("usage_page.json")
    del body["data"][0]["results"][0]["cache_creation"]  # only the decoy flat field is left
    sandbox.fault(USAGE_PATH, 200, body=body)
    error = raises(ProviderResponseError, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert "cache_creation" in error.message
    assert error.http_status == 200 and error.request_id.startswith("req_")


def test_wrong_cost_amount_is_a_response_error(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    body = load("cost_page.json")
    body["data"][0]["results"][0]["amount"] = "n/a"
    sandbox.fault(COSTS_PATH, 200, body=body)
    error = raises(ProviderResponseError, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert "amount" in error.message


def test_has_more_without_a_cursor_is_a_response_error(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 200, body={"data": [], "has_more": True, "next_page": None})
    raises(ProviderResponseError, provider, admin_credential["api_key"], anthropic_settings, day, http)


def test_a_cursor_that_repeats_is_a_response_error(
    provider, admin_credential, anthropic_settings, day, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 200, times=5, body={"data": [], "has_more": True, "next_page": "page_again"})
    raises(ProviderResponseError, provider, admin_credential["api_key"], anthropic_settings, day, http)
    assert len(sandbox.requests(USAGE_PATH)) == 2


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


@pytest.mark.parametrize("key", [fake.ADMIN_KEY, "  sk-ant-admin01-0123456789abcdefSECRET\n", "sk-ant-admin02-0123456789abcdef"])
def test_check_credential_accepts_admin_keys(provider, key) -> None:
    provider.check_credential({"api_key": key})
