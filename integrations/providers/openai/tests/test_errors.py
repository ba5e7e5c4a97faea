"""How the OpenAI connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderResponseError,
    ScopeError,
)
from integrations.providers.openai.connector import ADMIN_KEYS_URL
from integrations.providers.openai.tests.support import USAGE_PATH, OpenAISandbox, load
from integrations.providers.testing import (
    CursorPagingTests,
    ProviderFailureTests,
    assert_no_secret,
    key_fetchers,
)
from sandbox.openai import REVOKED_ADMIN_KEY

ORG_PATHS = "/openai/v1/organization/"
PROJECT_KEY = "sk-proj-sandbox-0123456789abcdefSECRET"


run, raises = key_fetchers("api_key")


# ---------------------------------------------------------------- credential and scope
def test_401_message_echoing_the_key_is_redacted(provider, credential, provider_settings, day, sandbox, http) -> None:
    key = credential["api_key"]
    body = {
        "error": {
            "message": f"Incorrect API key provided: {key}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    sandbox.fault(ORG_PATHS, 401, body=body)
    error = raises(CredentialError, provider, key, provider_settings, day, http)
    assert "Incorrect API key provided" in error.message


def test_project_key_gets_scope_error_with_fix(provider, provider_settings, day, sandbox, sleeps) -> None:
    key = sandbox.OPENAI_PROJECT_KEY
    error = raises(ScopeError, provider, key, provider_settings, day, HttpClient(secrets=[key], sleep=sleeps.append))
    assert error.http_status == 403
    assert "api.usage.read" in error.message and "project key" in error.message
    assert ADMIN_KEYS_URL in error.hint


def test_recorded_missing_scope_403_is_a_scope_error(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    sandbox.fault(ORG_PATHS, 403, body=load("error_missing_scope.json"))
    raises(ScopeError, provider, credential["api_key"], provider_settings, day, http)


def test_other_403_is_permission_denied(provider, credential, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(ORG_PATHS, 403)
    error = raises(PermissionDenied, provider, credential["api_key"], provider_settings, day, http)
    assert not isinstance(error, ScopeError)
    assert "Country, region, or territory not supported" in error.message


def test_verify_with_project_key_is_a_scope_error(provider, provider_settings, sandbox, sleeps) -> None:
    key = sandbox.OPENAI_PROJECT_KEY
    with pytest.raises(ScopeError) as info:
        provider.verify({"api_key": key}, provider_settings, http=HttpClient(secrets=[key], sleep=sleeps.append))
    assert_no_secret(info.value, [key])


def test_verify_detects_a_key_that_lists_projects_but_cannot_read_usage(
    provider, credential, provider_settings, sandbox, http
) -> None:
    sandbox.fault(USAGE_PATH, 403, body=load("error_missing_scope.json"))
    with pytest.raises(ScopeError):
        provider.verify(credential, provider_settings, http=http)


# ---------------------------------------------------------------- rate limits and outages
# ---------------------------------------------------------------- unreadable answers
def test_wrong_shape_is_a_response_error_with_request_id(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    sandbox.fault(
        USAGE_PATH,
        200,
        body={
            "object": "page",
            "data": [{"object": "bucket", "start_time": "yesterday", "end_time": 0, "results": []}],
        },
    )
    error = raises(ProviderResponseError, provider, credential["api_key"], provider_settings, day, http)
    assert "start_time" in error.message
    assert error.http_status == 200 and error.request_id.startswith("req_")


def test_wrong_cost_amount_is_a_response_error(provider, credential, provider_settings, day, sandbox, http) -> None:
    body = load("costs_page.json")
    body["data"][0]["results"][0]["amount"]["value"] = "n/a"
    sandbox.fault("/openai/v1/organization/costs", 200, body=body)
    error = raises(ProviderResponseError, provider, credential["api_key"], provider_settings, day, http)
    assert "amount.value" in error.message


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
    provider, credential, provider_settings, day, http, sandbox
) -> None:
    with pytest.raises(ConfigurationError):
        run(
            provider,
            credential["api_key"],
            {**provider_settings, "project_ids": "proj_a, not a project"},
            day,
            http,
        )
    assert sandbox.requests() == []


# ---------------------------------------------------------------- the shared failure cases
class TestOpenAIFailures(OpenAISandbox, ProviderFailureTests, CursorPagingTests):
    retried_path = later_page_path = cursor_path = USAGE_PATH
    malformed_body = '{"object": "page", "data": ['
    rejected = {"api_key": REVOKED_ADMIN_KEY}
    hints = {"rejected": ADMIN_KEYS_URL}
    request_id = "^req_"

    def page(self, *, has_more: bool, cursor: str | None) -> dict:
        return {"object": "page", "data": [], "has_more": has_more, "next_page": cursor}
