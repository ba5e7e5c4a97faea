"""How the Groq connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderResponseError,
    ProviderUnavailable,
    ScopeError,
)
from integrations.providers.groq.connector import DEFAULT_BASE_URL, KEYS_URL
from integrations.providers.groq.tests.support import API, QUERY_PATH, GroqSandbox, load
from integrations.providers.testing import ProviderFailureTests, assert_no_secret, key_fetchers, refused_offline
from sandbox import groq as sandbox_groq

run, raises = key_fetchers("api_key")


KEY = sandbox_groq.ENTERPRISE_KEY


# ---------------------------------------------------------------- credential and tier
def test_401_message_echoing_the_key_is_redacted(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(API, 401, body={"error": {"message": f"Invalid API Key {KEY}", "type": "invalid_request_error"}})
    error = raises(CredentialError, provider, KEY, provider_settings, day, http)
    assert "Invalid API Key" in error.message


@pytest.mark.parametrize("call", ["fetch", "verify"])
def test_non_enterprise_key_gets_a_scope_error_explaining_the_tier(
    provider, provider_settings, day, sandbox, sleeps, call
):
    key = sandbox_groq.DEVELOPER_KEY
    http = HttpClient(secrets=[key], sleep=sleeps.append)
    with pytest.raises(ScopeError) as info:
        if call == "fetch":
            run(provider, key, provider_settings, day, http)
        else:
            provider.verify({"api_key": key}, provider_settings, http=http)
    error = info.value
    assert_no_secret(error, [key])
    assert error.http_status == 404 and "Enterprise tier only" in error.message
    assert "Enterprise" in error.hint and DEFAULT_BASE_URL in error.hint
    assert len(sandbox.requests()) == 1


def test_recorded_not_found_body_is_a_scope_error(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(API, 404, body=load("error_not_enterprise.json"))
    raises(ScopeError, provider, KEY, provider_settings, day, http)


def test_403_is_permission_denied(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(API, 403)
    error = raises(PermissionDenied, provider, KEY, provider_settings, day, http)
    assert not isinstance(error, ScopeError) and "may not read metrics" in error.message


# ---------------------------------------------------------------- rate limits and outages
# ---------------------------------------------------------------- refused queries and unreadable answers
def test_bad_data_is_a_response_error_naming_the_error_type(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERY_PATH, 400, body=load("error_bad_data.json"))
    error = raises(ProviderResponseError, provider, KEY, provider_settings, day, http)
    assert "refused the query (bad_data)" in error.message and "cannot parse" in error.message
    assert error.http_status == 400 and "request id" in error.hint
    assert len(sandbox.requests(QUERY_PATH)) == 1, "a refused query is not retried"


def test_execution_error_is_a_response_error(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERY_PATH, 422)
    error = raises(ProviderResponseError, provider, KEY, provider_settings, day, http)
    assert "(execution)" in error.message and error.http_status == 422


def test_query_timeout_is_provider_unavailable(provider, provider_settings, day, sandbox, http) -> None:
    body = {"status": "error", "errorType": "timeout", "error": "query timed out in query execution"}
    sandbox.fault(QUERY_PATH, 422, body=body)
    error = raises(ProviderUnavailable, provider, KEY, provider_settings, day, http)
    assert "(timeout)" in error.message


def test_error_envelope_with_200_is_a_response_error(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERY_PATH, 200, body=load("error_bad_data.json"))
    error = raises(ProviderResponseError, provider, KEY, provider_settings, day, http)
    assert "reported an error (bad_data)" in error.message and error.request_id.startswith("req_")


def test_partial_answer_is_provider_unavailable(provider, provider_settings, day, sandbox, http) -> None:
    body = {**load("query_range_tokens_in.json"), "isPartial": True}
    sandbox.fault(QUERY_PATH, 200, body=body)
    raises(ProviderUnavailable, provider, KEY, provider_settings, day, http)


def test_wrong_shape_is_a_response_error_with_request_id(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(QUERY_PATH, 200, body={"status": "success", "data": {"resultType": "vector", "result": []}})
    error = raises(ProviderResponseError, provider, KEY, provider_settings, day, http)
    assert "resultType" in error.message
    assert error.http_status == 200 and error.request_id.startswith("req_")


def test_wrong_label_values_shape_is_a_response_error(provider, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(API + "label/", 200, body={"status": "success", "data": {"names": []}})
    raises(ProviderResponseError, provider, KEY, provider_settings, day, http)


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "Enter the Groq API key"),
        ("   ", "Enter the Groq API key"),
        ("Bearer gsk_0123456789abcdefSECRET", "without 'Bearer '"),
        ("gsk_0123 456789abcdefSECRET", "spaces"),
        ("xai-0123456789abcdefSECRET", "xAI (Grok) key"),
        ("sk-proj-0123456789abcdefSECRET", "OpenAI or other provider's key"),
        ("0123456789abcdefSECRET", "does not look like a Groq API key"),
    ],
)
def test_check_credential_rejects_keys_that_are_not_groq_keys_offline(provider, key, words) -> None:
    error = refused_offline(provider, "api_key", key, words)
    assert KEYS_URL in error.hint or "spaces" in words or not key.strip()


def test_check_credential_accepts_groq_keys(provider) -> None:
    provider.check_credential({"api_key": "  gsk_0123456789abcdefSECRET\n"})


def test_missing_key_at_fetch_is_a_configuration_error(provider, provider_settings, day, http, sandbox) -> None:
    with pytest.raises(ConfigurationError):
        list(provider.fetch({}, provider_settings, day, http=http))
    assert sandbox.requests() == []


# ---------------------------------------------------------------- the shared failure cases
class TestGroqFailures(GroqSandbox, ProviderFailureTests):
    retried_path = later_page_path = QUERY_PATH
    later_page_after = 2  # the third metric's query fails
    malformed_body = '{"status": "success", "data": {"resultType": "matrix", "result": ['
    storm_statuses = (500, 503)
    rejected = {"api_key": sandbox_groq.REVOKED_KEY}
    words = {"rejected": "Invalid API Key"}
    hints = {"rejected": KEYS_URL}
    request_id = "^req_"
