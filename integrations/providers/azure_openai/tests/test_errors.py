"""How the Azure OpenAI connector reports each ARM / Azure Monitor failure: typed errors,
hints naming the fix, retries (429 + Retry-After, 529, 5xx), and no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
)
from integrations.providers.testing import assert_no_secret
from sandbox import azure_openai as sandbox_azure

ARM = "/azure_openai/arm/"
EASTUS = sandbox_azure.ACCOUNTS[0]
METRICS_PATH = ARM.rstrip("/") + EASTUS.id + support.METRICS_SUFFIX
SECRETS = [sandbox_azure.CLIENT_SECRET, sandbox_azure.NO_ROLE_CLIENT_SECRET]


def raises(error_type, provider, credential, settings, window, http):
    with pytest.raises(error_type) as info:
        list(provider.fetch(credential, settings, window, http=http))
    assert_no_secret(info.value, SECRETS)
    return info.value


# ---------------------------------------------------------------- roles and settings
def test_app_without_a_role_gets_permission_denied_with_the_command_to_fix_it(
    provider, azure_settings, day, sandbox, http
) -> None:
    credential = support.credential(sandbox_azure.NO_ROLE_CLIENT_ID, sandbox_azure.NO_ROLE_CLIENT_SECRET)
    error = raises(PermissionDenied, provider, credential, azure_settings, day, http)
    assert error.http_status == 403 and error.request_id
    assert "Microsoft.CognitiveServices/accounts/read" in error.message
    assert f"az role assignment create --assignee {sandbox_azure.NO_ROLE_CLIENT_ID}" in error.hint
    assert f"--scope /subscriptions/{sandbox_azure.SUBSCRIPTION_ID}" in error.hint and "Monitoring Reader" in error.hint
    assert len(sandbox.requests(ARM)) == 1, "a 403 is not retried"


def test_verify_catches_a_role_that_lists_accounts_but_cannot_read_metrics(
    provider, credential, azure_settings, sandbox, http
) -> None:
    sandbox.fault(METRICS_PATH, 403, body=support.load("arm_error_authorization_failed.json"))
    with pytest.raises(PermissionDenied) as info:
        provider.verify(credential, azure_settings, http=http)
    assert "Microsoft.Insights/metrics/read" in info.value.message and "Monitoring Reader" in info.value.hint


def test_unknown_subscription_is_a_configuration_error(provider, credential, sandbox, day, http) -> None:
    settings = support.settings(sandbox, subscription_id="11111111-2222-4333-8444-555555555555")
    error = raises(ConfigurationError, provider, credential, settings, day, http)
    assert (error.http_status, error.field) == (404, "subscription_id")
    assert "could not be found" in error.message and "az account show" in error.hint


def test_invalid_subscription_id_from_arm_is_a_configuration_error(
    provider, credential, azure_settings, sandbox, day, http
) -> None:
    body = {
        "error": {
            "code": "InvalidSubscriptionId",
            "message": "The provided subscription identifier 'x' is malformed or invalid.",
        }
    }
    sandbox.fault(ARM, 400, body=body)
    error = raises(ConfigurationError, provider, credential, azure_settings, day, http)
    assert (error.http_status, error.field) == (400, "subscription_id")


def test_token_from_another_tenant_names_tenant_id(provider, credential, azure_settings, sandbox, day, http) -> None:
    body = {
        "error": {"code": "InvalidAuthenticationTokenTenant", "message": "The access token is from the wrong issuer."}
    }
    sandbox.fault(ARM, 401, body=body)
    error = raises(CredentialError, provider, credential, azure_settings, day, http)
    assert error.field == "tenant_id" and "InvalidAuthenticationTokenTenant" in error.message
    assert "tenant" in error.hint


def test_arm_401_is_a_credential_error(provider, credential, azure_settings, sandbox, day, http) -> None:
    sandbox.fault(ARM, 401)
    error = raises(CredentialError, provider, credential, azure_settings, day, http)
    assert error.http_status == 401 and "InvalidAuthenticationToken" in error.message and error.hint


# ---------------------------------------------------------------- throttling and outages
def test_arm_429_with_retry_after_is_retried_then_succeeds(
    provider, credential, azure_settings, day, sandbox, http, sleeps
) -> None:
    expected = list(provider.fetch(credential, azure_settings, day, http=http))
    sandbox.reset()
    sandbox.fault(support.ACCOUNTS_PATH, 429, times=2, headers={"Retry-After": "1"})
    fresh = HttpClient(secrets=SECRETS, sleep=sleeps.append, backoff=1.0)
    assert list(provider.fetch(credential, azure_settings, day, http=fresh)) == expected
    assert sleeps == [1.0, 1.0]


def test_429_storm_is_rate_limited(provider, credential, azure_settings, day, sandbox, http, sleeps) -> None:
    sandbox.fault(METRICS_PATH, 429, times=50, headers={"Retry-After": "2"})
    error = raises(RateLimited, provider, credential, azure_settings, day, http)
    assert error.retry_after == 2.0 and error.http_status == 429 and "throttled" in error.message
    assert sleeps == [2.0] * (http.max_attempts - 1)


def test_429_asking_for_a_long_wait_ends_the_fetch_at_once(
    provider, credential, azure_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(ARM, 429, headers={"Retry-After": "120"})
    error = raises(RateLimited, provider, credential, azure_settings, day, http)
    assert error.retry_after == 120.0 and sleeps == []


def test_429_without_retry_after_is_rate_limited_for_the_engine_to_back_off(
    provider, credential, azure_settings, day, sandbox, http
) -> None:
    sandbox.fault(ARM, 429)
    assert raises(RateLimited, provider, credential, azure_settings, day, http).retry_after is None


def test_metrics_529_is_retried_with_backoff_then_succeeds(
    provider, credential, azure_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(METRICS_PATH, 529, times=2)
    samples = list(provider.fetch(credential, azure_settings, day, http=http))
    assert samples and sleeps == [1.0, 2.0]


def test_metrics_529_storm_is_rate_limited(provider, credential, azure_settings, day, sandbox, http) -> None:
    sandbox.fault(METRICS_PATH, 529, times=50)
    error = raises(RateLimited, provider, credential, azure_settings, day, http)
    assert error.http_status == 529 and "busy" in error.message


def test_500_storm_is_provider_unavailable(provider, credential, azure_settings, day, sandbox, http) -> None:
    sandbox.fault(ARM, 500, times=50)
    error = raises(ProviderUnavailable, provider, credential, azure_settings, day, http)
    assert error.http_status == 500 and error.request_id


def test_token_endpoint_outage_is_provider_unavailable(
    provider, credential, azure_settings, day, sandbox, http
) -> None:
    sandbox.fault(support.TOKEN_PATH, 503, times=50)
    raises(ProviderUnavailable, provider, credential, azure_settings, day, http)


def test_failure_on_a_later_account_fails_the_fetch(provider, credential, azure_settings, day, sandbox, http) -> None:
    west_metrics = ARM.rstrip("/") + sandbox_azure.ACCOUNTS[3].id + support.METRICS_SUFFIX
    sandbox.fault(west_metrics, 502, times=50)
    raises(ProviderUnavailable, provider, credential, azure_settings, day, http)


def test_timeout_is_a_network_error(provider, credential, azure_settings, day, sandbox, sleeps) -> None:
    http = HttpClient(secrets=SECRETS, timeout=0.15, max_attempts=2, sleep=sleeps.append)
    sandbox.fault(METRICS_PATH, 200, delay=0.5, times=2)
    raises(NetworkError, provider, credential, azure_settings, day, http)


# ---------------------------------------------------------------- unreadable answers
def test_malformed_metrics_json_is_a_response_error_with_the_request_id(
    provider, credential, azure_settings, day, sandbox, http
) -> None:
    sandbox.fault(METRICS_PATH, 200, body='{"value": [')
    error = raises(ProviderResponseError, provider, credential, azure_settings, day, http)
    assert error.http_status == 200 and error.request_id


def test_wrong_metrics_shape_is_a_response_error(provider, credential, azure_settings, day, sandbox, http) -> None:
    sandbox.fault(METRICS_PATH, 200, body={"value": [{"name": {"value": "GeneratedTokens"}, "timeseries": {}}]})
    error = raises(ProviderResponseError, provider, credential, azure_settings, day, http)
    assert "timeseries is not a list" in error.message and error.request_id


def test_token_response_without_a_token_is_a_response_error(
    provider, credential, azure_settings, day, sandbox, http
) -> None:
    sandbox.fault(support.TOKEN_PATH, 200, body={"token_type": "Bearer", "expires_in": 3599})
    error = raises(ProviderResponseError, provider, credential, azure_settings, day, http)
    assert "access_token" in error.message


def test_metrics_bad_request_is_a_response_error(provider, credential, azure_settings, day, sandbox, http) -> None:
    body = {"error": {"code": "BadRequest", "message": "Failed to find metric configuration for provider."}}
    # Refused with all metrics, without the prompt-cache ones, and with the Azure OpenAI ones alone.
    sandbox.fault(METRICS_PATH, 400, body=body, times=3)
    error = raises(ProviderResponseError, provider, credential, azure_settings, day, http)
    assert "Failed to find metric configuration" in error.message
