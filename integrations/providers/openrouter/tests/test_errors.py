"""How the OpenRouter connector reports each failure: typed errors, hints, retries, no secrets."""

from __future__ import annotations

import json
import time

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    ProviderResponseError,
    RateLimited,
    Window,
)
from integrations.providers.openrouter.connector import MANAGEMENT_KEYS_URL
from integrations.providers.openrouter.tests.support import (
    ACTIVITY_PATH,
    SANDBOX_PREFIX,
    OpenRouterSandbox,
    days_ago,
    load,
)
from integrations.providers.testing import ProviderFailureTests, assert_no_secret, key_fetchers, refused_offline
from sandbox.openrouter import INFERENCE_KEY, MANAGEMENT_KEY, REVOKED_KEY

ALL_PATHS = f"{SANDBOX_PREFIX}/"


run, raises = key_fetchers("api_key")


# ---------------------------------------------------------------- credential and key kind
def test_401_message_echoing_the_key_is_redacted(provider, credential, settings, day, sandbox, http) -> None:
    body = {"error": {"code": 401, "message": f"Invalid key {MANAGEMENT_KEY}"}}
    sandbox.fault(ACTIVITY_PATH, 401, body=body)
    error = raises(CredentialError, provider, MANAGEMENT_KEY, settings, day, http)
    assert "[redacted]" in error.message


def test_inference_key_is_a_permission_error_saying_which_key_to_create(
    provider, settings, day, sandbox, sleeps
) -> None:
    http = HttpClient(secrets=[INFERENCE_KEY], sleep=sleeps.append)
    error = raises(PermissionDenied, provider, INFERENCE_KEY, settings, day, http)
    assert error.category == "permission" and error.http_status == 403
    assert "inference API key" in error.message and "management key" in error.message
    assert MANAGEMENT_KEYS_URL in error.hint


def test_recorded_not_management_403_is_a_permission_error(provider, settings, day, sandbox, http) -> None:
    sandbox.fault(ACTIVITY_PATH, 403, body=load("error_not_management.json"))
    error = raises(PermissionDenied, provider, MANAGEMENT_KEY, settings, day, http)
    assert "inference API key" in error.message


def test_other_403_is_permission_denied_with_the_providers_words(provider, settings, day, sandbox, http) -> None:
    sandbox.fault(ACTIVITY_PATH, 403, body={"error": {"code": 403, "message": "Organization access revoked"}})
    error = raises(PermissionDenied, provider, MANAGEMENT_KEY, settings, day, http)
    assert error.message == "OpenRouter refused access: Organization access revoked"
    assert "management key of the account" in error.hint


def test_verify_with_an_inference_key_fails_on_the_key_kind_before_reading_activity(
    provider, settings, sandbox, sleeps
) -> None:
    http = HttpClient(secrets=[INFERENCE_KEY], sleep=sleeps.append)
    with pytest.raises(PermissionDenied) as info:
        provider.verify({"api_key": INFERENCE_KEY}, settings, http=http)
    assert "inference API key" in info.value.message and MANAGEMENT_KEYS_URL in info.value.hint
    assert_no_secret(info.value, [INFERENCE_KEY])
    assert [r["path"] for r in sandbox.requests()] == [f"{SANDBOX_PREFIX}/key"]


def test_verify_with_a_revoked_key_is_a_credential_error(provider, settings, sandbox, sleeps) -> None:
    with pytest.raises(CredentialError):
        provider.verify({"api_key": REVOKED_KEY}, settings, http=HttpClient(secrets=[REVOKED_KEY], sleep=sleeps.append))


# ---------------------------------------------------------------- rate limits and outages
def test_429_with_x_ratelimit_reset_header_in_epoch_ms(provider, settings, day, sandbox, http, sleeps) -> None:
    reset_ms = int((time.time() + 120) * 1000)
    sandbox.fault(ALL_PATHS, 429, headers={"X-RateLimit-Reset": str(reset_ms), "X-RateLimit-Remaining": "0"})
    error = raises(RateLimited, provider, MANAGEMENT_KEY, settings, day, http)
    assert error.retry_after is not None and 110 <= error.retry_after <= 120
    assert sleeps == [], "without Retry-After the seam does not retry; the engine waits"


def test_429_with_the_reset_in_the_error_metadata(provider, settings, day, sandbox, http) -> None:
    body = json.loads(json.dumps(load("error_rate_limited.json")).replace("RESET_MS", str(int(time.time() + 60))))
    sandbox.fault(ALL_PATHS, 429, body=body)
    error = raises(RateLimited, provider, MANAGEMENT_KEY, settings, day, http)
    assert error.retry_after is not None and 50 <= error.retry_after <= 60


# ---------------------------------------------------------------- unreadable answers and odd statuses
def test_wrong_shape_is_a_response_error_with_request_id(provider, settings, day, sandbox, http) -> None:
    sandbox.fault(ACTIVITY_PATH, 200, body={"data": [{"date": "2025-08-24", "usage": 1}]})
    error = raises(ProviderResponseError, provider, MANAGEMENT_KEY, settings, day, http)
    assert "requests" in error.message
    assert error.http_status == 200 and error.request_id.endswith("-FRA")


def test_400_for_a_day_inside_the_horizon_is_a_response_error(provider, settings, day, sandbox, http) -> None:
    sandbox.fault(ACTIVITY_PATH, 400, body={"error": {"code": 400, "message": "Invalid date"}})
    error = raises(ProviderResponseError, provider, MANAGEMENT_KEY, settings, day, http)
    assert error.message == "OpenRouter refused the request: Invalid date" and error.http_status == 400


@pytest.mark.parametrize("edge", [30, 1], ids=["oldest day", "newest day"])
def test_400_for_a_day_at_the_horizon_edge_is_skipped(provider, settings, sandbox, http, edge) -> None:
    # Our clock and OpenRouter's differ by seconds: at the edges the day may have just left
    # (or not yet entered) its horizon. That day is skipped; the rest is read.
    window = Window(days_ago(edge), days_ago(edge - 1))
    sandbox.fault(ACTIVITY_PATH, 400, body={"error": {"code": 400, "message": "Date out of range"}})
    assert run(provider, MANAGEMENT_KEY, settings, window, http) == []
    assert len(sandbox.requests(ACTIVITY_PATH)) == 1


def test_404_points_at_the_base_url(provider, settings, day, sandbox, http) -> None:
    error = raises(ConfigurationError, provider, MANAGEMENT_KEY, {"base_url": settings["base_url"] + "/v2"}, day, http)
    assert error.http_status == 404 and "/api/v1" in error.hint


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "Enter the OpenRouter management key"),
        ("   ", "Enter the OpenRouter management key"),
        ("sk-or-v1-0123 456789abcdefSECRET", "spaces"),
        ("sk-ant-admin01-0123456789abcdefSECRET", "an Anthropic key"),
        ("sk-proj-0123456789abcdefSECRET", "an OpenAI project key"),
        ("sk-admin-0123456789abcdefSECRET", "an OpenAI Admin key"),
        ("gsk_0123456789abcdefSECRET", "a Groq key"),
        ("0123456789abcdefSECRET", "does not look like an OpenRouter key"),
    ],
)
def test_check_credential_rejects_malformed_and_foreign_keys_offline(provider, key, words) -> None:
    refused_offline(provider, "api_key", key, words)


@pytest.mark.parametrize("key", [MANAGEMENT_KEY, INFERENCE_KEY, f"  {MANAGEMENT_KEY}\n"])
def test_check_credential_accepts_openrouter_keys_of_either_kind(provider, key) -> None:
    # Both kinds share the sk-or-v1- prefix: only verify (GET /key) can tell them apart.
    provider.check_credential({"api_key": key})


def test_missing_key_at_fetch_is_a_configuration_error(provider, settings, day, sandbox, http) -> None:
    with pytest.raises(ConfigurationError):
        run(provider, "", settings, day, http)
    assert sandbox.requests() == []


# ---------------------------------------------------------------- the shared failure cases
class TestOpenRouterFailures(OpenRouterSandbox, ProviderFailureTests):
    retried_path = later_page_path = ACTIVITY_PATH  # two days: one request per day
    malformed_body = '{"data": ['
    storm_statuses = (502,)
    rejected = {"api_key": REVOKED_KEY}
    words = {"rejected": "User not found", "no_wait": "Rate limit exceeded"}
    hints = {"rejected": MANAGEMENT_KEYS_URL}
    request_id = "-FRA$"  # Cloudflare's cf-ray is kept as the request id
