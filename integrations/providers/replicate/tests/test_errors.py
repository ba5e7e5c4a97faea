"""How the Replicate connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderResponseError,
    RateLimited,
)
from integrations.providers.replicate.connector import TOKENS_URL
from integrations.providers.replicate.tests.support import (
    ACCOUNT_PATH,
    PATHS,
    PREDICTIONS_PATH,
    ReplicateSandbox,
    load,
)
from integrations.providers.testing import ProviderFailureTests, assert_no_secret, key_fetchers, refused_offline
from sandbox import replicate as fake

run, raises = key_fetchers("api_token")


def client(token: str, sleeps: list[float], **kwargs) -> HttpClient:
    return HttpClient(secrets=[token], sleep=sleeps.append, backoff=1.0, **kwargs)


# ---------------------------------------------------------------- credential and permission
def test_401_with_a_plain_detail_body(provider, credential, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(PATHS, 401, body={"detail": "You did not pass a valid authentication token"})
    error = raises(CredentialError, provider, credential["api_token"], provider_settings, day, http)
    assert error.message == "Replicate rejected the API token: You did not pass a valid authentication token"


def test_401_echoing_the_token_is_redacted(provider, credential, provider_settings, day, sandbox, http) -> None:
    token = credential["api_token"]
    sandbox.fault(PATHS, 401, body={"title": f"Bad token {token}", "detail": f"Token {token} is invalid"})
    error = raises(CredentialError, provider, token, provider_settings, day, http)
    assert "[redacted]" in error.message


def test_403_is_permission_denied_with_a_fix(provider, provider_settings, day, sleeps) -> None:
    token = fake.FORBIDDEN_TOKEN
    error = raises(PermissionDenied, provider, token, provider_settings, day, client(token, sleeps))
    assert error.http_status == 403
    assert "You do not have permission to perform this action." in error.message
    assert TOKENS_URL in error.hint


def test_verify_with_a_token_that_cannot_list_predictions_fails(provider, provider_settings, sleeps) -> None:
    token = fake.FORBIDDEN_TOKEN
    with pytest.raises(PermissionDenied) as info:
        provider.verify({"api_token": token}, provider_settings, http=client(token, sleeps))
    assert_no_secret(info.value, [token])


def test_verify_with_a_revoked_token_is_a_credential_error(provider, provider_settings, sleeps) -> None:
    with pytest.raises(CredentialError):
        provider.verify({"api_token": fake.REVOKED_TOKEN}, provider_settings, http=client(fake.REVOKED_TOKEN, sleeps))


def test_wrong_base_url_is_a_configuration_error(provider, credential, sandbox, day, http) -> None:
    settings = {"base_url": sandbox.url + fake.PREFIX + "/v2"}
    error = raises(ConfigurationError, provider, credential["api_token"], settings, day, http)
    assert error.http_status == 404 and "base URL" in error.hint


def test_an_invalid_cursor_is_a_response_error(provider, credential, provider_settings, day, sandbox, http) -> None:
    next_url = f"{provider_settings['base_url']}/predictions?cursor=not-a-cursor"
    sandbox.fault(PREDICTIONS_PATH, 200, body={"next": next_url, "previous": None, "results": []})
    error = raises(ProviderResponseError, provider, credential["api_token"], provider_settings, day, http)
    assert error.http_status == 404 and "Invalid cursor" in error.message


# ---------------------------------------------------------------- rate limits and outages
def test_429_without_retry_after_takes_the_wait_from_the_throttle_message(
    provider, credential, provider_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(PREDICTIONS_PATH, 429, body=load("error_throttled.json"))
    error = raises(RateLimited, provider, credential["api_token"], provider_settings, day, http)
    assert error.retry_after == 7.0  # "Expected available in 7 seconds." — for the engine's next try
    assert sleeps == [] and len(sandbox.requests(PREDICTIONS_PATH)) == 1


# ---------------------------------------------------------------- unreadable answers
def test_wrong_shape_is_a_response_error_with_request_id(
    provider, credential, provider_settings, day, sandbox, http
) -> None:
    sandbox.fault(PREDICTIONS_PATH, 200, body={"next": None, "results": [{"id": "x", "status": "succeeded"}]})
    error = raises(ProviderResponseError, provider, credential["api_token"], provider_settings, day, http)
    assert "created_at" in error.message
    assert error.http_status == 200 and error.request_id.endswith("-SJC")


def test_wrong_account_shape_is_a_response_error(provider, credential, provider_settings, day, sandbox, http) -> None:
    sandbox.fault(ACCOUNT_PATH, 200, body=["doow-sandbox"])
    raises(ProviderResponseError, provider, credential["api_token"], provider_settings, day, http)


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("", "Enter the Replicate API token"),
        ("   ", "Enter the Replicate API token"),
        ("Bearer " + fake.API_TOKEN, "without the 'Bearer '"),
        ("r8_Sandbox Doow0123456789abcdefghiSECRET", "spaces"),
        (fake.API_TOKEN[:-3], "40 characters long; this one has 37"),
        ("r8_SandboxDoow0123456789abcdefghij$ECRET", "characters a Replicate token never has"),
        ("sk-proj-0123456789abcdefSECRET", "an OpenAI key"),
        ("sk-ant-admin01-0123456789abcdefSECRET", "an Anthropic key"),
        ("sk-or-v1-0123456789abcdefSECRET", "an OpenRouter key"),
        ("hf_0123456789abcdefSECRET", "a Hugging Face token"),
        ("0123456789abcdef0123456789abcdef01234567", "does not look like a Replicate API token"),
    ],
)
def test_check_credential_rejects_wrong_tokens_offline(provider, token, words) -> None:
    refused_offline(provider, "api_token", token, words)


def test_check_credential_accepts_a_replicate_token(provider) -> None:
    provider.check_credential({"api_token": f"  {fake.API_TOKEN}\n"})


# ---------------------------------------------------------------- the shared failure cases
class TestReplicateFailures(ReplicateSandbox, ProviderFailureTests):
    retried_path = later_page_path = PREDICTIONS_PATH
    malformed_body = '{"next": null, "results": ['
    storm_statuses = (503,)
    no_wait_429_body = {"detail": "Request was throttled."}  # the sandbox's own names a wait
    rejected = {"api_token": fake.REVOKED_TOKEN}
    # problem+json: title and detail both reach the message; the Cloudflare ray id is kept.
    words = {
        "rejected": "Unauthenticated: You did not pass a valid authentication token",
        "rate_limited": "Request was throttled",
        "unavailable": "Service Unavailable",
    }
    hints = {"rejected": TOKENS_URL}
    request_id = "-SJC$"
