"""How the OpenAI connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
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
from integrations.providers.openai.connector import ADMIN_KEYS_URL
from integrations.providers.openai.tests.support import days_ago, load
from integrations.providers.testing import assert_no_secret

ORG_PATHS = "/openai/v1/organization/"
USAGE_PATH = "/openai/v1/organization/usage/completions"
PROJECT_KEY = "sk-proj-sandbox-0123456789abcdefSECRET"


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


# ---------------------------------------------------------------- credential and scope
def test_401_marks_credential_rejected(provider, openai_settings, day, sandbox, sleeps) -> None:
    key = sandbox.OPENAI_REVOKED_KEY
    error = raises(CredentialError, provider, key, openai_settings, day, HttpClient(secrets=[key], sleep=sleeps.append))
    assert error.http_status == 401
    assert error.request_id.startswith("req_")
    assert ADMIN_KEYS_URL in error.hint
    assert len(sandbox.requests()) == 1, "a rejected key is not retried"


def test_401_message_echoing_the_key_is_redacted(
    provider, admin_credential, openai_settings, day, sandbox, http
) -> None:
    key = admin_credential["api_key"]
    body = {
        "error": {
            "message": f"Incorrect API key provided: {key}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    sandbox.fault(ORG_PATHS, 401, body=body)
    error = raises(CredentialError, provider, key, openai_settings, day, http)
    assert "Incorrect API key provided" in error.message


def test_project_key_gets_scope_error_with_fix(provider, openai_settings, day, sandbox, sleeps) -> None:
    key = sandbox.OPENAI_PROJECT_KEY
    error = raises(ScopeError, provider, key, openai_settings, day, HttpClient(secrets=[key], sleep=sleeps.append))
    assert error.http_status == 403
    assert "api.usage.read" in error.message and "project key" in error.message
    assert ADMIN_KEYS_URL in error.hint


def test_recorded_missing_scope_403_is_a_scope_error(
    provider, admin_credential, openai_settings, day, sandbox, http
) -> None:
    sandbox.fault(ORG_PATHS, 403, body=load("error_missing_scope.json"))
    raises(ScopeError, provider, admin_credential["api_key"], openai_settings, day, http)


def test_other_403_is_permission_denied(provider, admin_credential, openai_settings, day, sandbox, http) -> None:
    sandbox.fault(ORG_PATHS, 403)
    error = raises(PermissionDenied, provider, admin_credential["api_key"], openai_settings, day, http)
    assert not isinstance(error, ScopeError)
    assert "Country, region, or territory not supported" in error.message


def test_verify_with_project_key_is_a_scope_error(provider, openai_settings, sandbox, sleeps) -> None:
    key = sandbox.OPENAI_PROJECT_KEY
    with pytest.raises(ScopeError) as info:
        provider.verify({"api_key": key}, openai_settings, http=HttpClient(secrets=[key], sleep=sleeps.append))
    assert_no_secret(info.value, [key])


def test_verify_detects_a_key_that_lists_projects_but_cannot_read_usage(
    provider, admin_credential, openai_settings, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 403, body=load("error_missing_scope.json"))
    with pytest.raises(ScopeError):
        provider.verify(admin_credential, openai_settings, http=http)


# ---------------------------------------------------------------- rate limits and outages
def test_429_with_retry_after_is_retried_then_succeeds(
    provider, admin_credential, openai_settings, day, sandbox, http, sleeps
) -> None:
    expected = run(provider, admin_credential["api_key"], openai_settings, day, http)
    sandbox.reset()
    sandbox.fault(USAGE_PATH, 429, times=2, headers={"Retry-After": "1"})
    assert run(provider, admin_credential["api_key"], openai_settings, day, http) == expected
    assert sleeps == [1.0, 1.0]


def test_429_storm_beyond_the_budget_is_rate_limited(
    provider, admin_credential, openai_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ORG_PATHS, 429, times=50, headers={"Retry-After": "1"})
    error = raises(RateLimited, provider, admin_credential["api_key"], openai_settings, day, http)
    assert error.retry_after == 1.0 and error.http_status == 429
    assert len(sandbox.requests()) == http.max_attempts
    assert sleeps == [1.0] * (http.max_attempts - 1)


def test_429_asking_for_a_long_wait_is_not_slept_through(
    provider, admin_credential, openai_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ORG_PATHS, 429, headers={"Retry-After": "600"})
    error = raises(RateLimited, provider, admin_credential["api_key"], openai_settings, day, http)
    assert error.retry_after == 600.0
    assert sleeps == [] and len(sandbox.requests()) == 1


def test_429_without_retry_after_is_rate_limited_for_the_engine_to_back_off(
    provider, admin_credential, openai_settings, day, sandbox, http
) -> None:
    sandbox.fault(ORG_PATHS, 429)
    error = raises(RateLimited, provider, admin_credential["api_key"], openai_settings, day, http)
    assert error.retry_after is None


def test_500_is_retried_with_backoff_then_succeeds(
    provider, admin_credential, openai_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(USAGE_PATH, 500, times=2)
    assert run(provider, admin_credential["api_key"], openai_settings, day, http)
    assert sleeps == [1.0, 2.0]


def test_500_storm_is_provider_unavailable(provider, admin_credential, openai_settings, day, sandbox, http) -> None:
    sandbox.fault(ORG_PATHS, 500, times=50)
    error = raises(ProviderUnavailable, provider, admin_credential["api_key"], openai_settings, day, http)
    assert error.http_status == 500 and error.request_id.startswith("req_")


def test_failure_on_a_later_page_fails_the_fetch(provider, admin_credential, openai_settings, sandbox, http) -> None:
    window = Window(days_ago(10), days_ago(1))  # two usage pages
    sandbox.fault(USAGE_PATH, 502, after=1, times=50)
    raises(ProviderUnavailable, provider, admin_credential["api_key"], openai_settings, window, http)


def test_timeout_is_a_network_error(provider, admin_credential, openai_settings, day, sandbox, sleeps) -> None:
    key = admin_credential["api_key"]
    http = HttpClient(secrets=[key], timeout=0.15, max_attempts=2, sleep=sleeps.append)
    sandbox.fault(ORG_PATHS, 200, delay=0.5, times=2)
    error = raises(NetworkError, provider, key, openai_settings, day, http)
    assert "Timed out" in error.message


def test_one_timeout_is_retried(provider, admin_credential, openai_settings, day, sandbox, sleeps) -> None:
    key = admin_credential["api_key"]
    http = HttpClient(secrets=[key], timeout=0.15, backoff=1.0, sleep=sleeps.append)
    sandbox.fault(USAGE_PATH, 200, delay=0.5)
    assert run(provider, key, openai_settings, day, http)
    assert sleeps == [1.0]


# ---------------------------------------------------------------- unreadable answers
def test_malformed_json_is_a_response_error(provider, admin_credential, openai_settings, day, sandbox, http) -> None:
    sandbox.fault(USAGE_PATH, 200, body='{"object": "page", "data": [')
    error = raises(ProviderResponseError, provider, admin_credential["api_key"], openai_settings, day, http)
    assert "not JSON" in error.message


def test_wrong_shape_is_a_response_error_with_request_id(
    provider, admin_credential, openai_settings, day, sandbox, http
) -> None:
    sandbox.fault(
        USAGE_PATH,
        200,
        body={
            "object": "page",
            "data": [{"object": "bucket", "start_time": "yesterday", "end_time": 0, "results": []}],
        },
    )
    error = raises(ProviderResponseError, provider, admin_credential["api_key"], openai_settings, day, http)
    assert "start_time" in error.message
    assert error.http_status == 200 and error.request_id.startswith("req_")


def test_wrong_cost_amount_is_a_response_error(provider, admin_credential, openai_settings, day, sandbox, http) -> None:
    body = load("costs_page.json")
    body["data"][0]["results"][0]["amount"]["value"] = "n/a"
    sandbox.fault("/openai/v1/organization/costs", 200, body=body)
    error = raises(ProviderResponseError, provider, admin_credential["api_key"], openai_settings, day, http)
    assert "amount.value" in error.message


def test_has_more_without_a_cursor_is_a_response_error(
    provider, admin_credential, openai_settings, day, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 200, body={"object": "page", "data": [], "has_more": True, "next_page": None})
    raises(ProviderResponseError, provider, admin_credential["api_key"], openai_settings, day, http)


def test_a_cursor_that_repeats_is_a_response_error(
    provider, admin_credential, openai_settings, day, sandbox, http
) -> None:
    sandbox.fault(
        USAGE_PATH, 200, times=5, body={"object": "page", "data": [], "has_more": True, "next_page": "page_again"}
    )
    raises(ProviderResponseError, provider, admin_credential["api_key"], openai_settings, day, http)
    assert len(sandbox.requests(USAGE_PATH)) == 2


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("key", "error_type", "words"),
    [
        ("", ConfigurationError, "Enter the OpenAI Admin API key"),
        ("   ", ConfigurationError, "Enter the OpenAI Admin API key"),
        (PROJECT_KEY, ScopeError, "project API key"),
        ("sk-svcacct-0123456789abcdefSECRET", PermissionDenied, "service-account key"),
        ("sk-0123456789abcdefSECRET", PermissionDenied, "user or legacy API key"),
        ("sk-admin-0123 456789abcdefSECRET", ConfigurationError, "spaces"),
        ("0123456789abcdefSECRET", ConfigurationError, "does not look like an OpenAI key"),
    ],
)
def test_check_credential_rejects_wrong_key_types_offline(provider, key, error_type, words) -> None:
    with pytest.raises(error_type) as info:
        provider.check_credential({"api_key": key})
    assert words in info.value.message
    assert ADMIN_KEYS_URL in info.value.hint or error_type is ConfigurationError
    if key.strip():
        assert_no_secret(info.value, [key])


def test_check_credential_accepts_admin_keys(provider) -> None:
    provider.check_credential({"api_key": "  sk-admin-0123456789abcdefSECRET\n"})


def test_bad_project_ids_setting_is_a_configuration_error(
    provider, admin_credential, openai_settings, day, http, sandbox
) -> None:
    with pytest.raises(ConfigurationError):
        run(
            provider,
            admin_credential["api_key"],
            {**openai_settings, "project_ids": "proj_a, not a project"},
            day,
            http,
        )
    assert sandbox.requests() == []
