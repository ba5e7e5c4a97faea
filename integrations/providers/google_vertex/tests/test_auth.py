"""The service-account key: offline checks of the pasted file, and the token grant through
google-auth (vetted token_uri, no redirects, retries through the seam, typed errors, no leaks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    ProviderResponseError,
    RateLimited,
    ScopeError,
)
from integrations.providers.google_vertex.auth import KEY_HINT
from integrations.providers.google_vertex.tests import support
from integrations.providers.testing import assert_no_secret
from integrations.tests.netfakes import PUBLIC, ConnectRecorder, FakeDns
from sandbox import google_vertex as fake

TOKEN = support.TOKEN_PATH


def run(provider, credential, settings, window, http) -> list:
    return list(provider.fetch(credential, settings, window, http=http))


def raises(error_type, provider, credential, settings, window, http):
    with pytest.raises(error_type) as info:
        run(provider, credential, settings, window, http)
    assert_no_secret(info.value, provider.secret_values(credential))
    return info.value


# ---------------------------------------------------------------- the pasted file, offline
def _info(sandbox: Any, **changes: Any) -> str:
    info = fake.service_account_info(sandbox.url)
    info.update(changes)
    return json.dumps({k: v for k, v in info.items() if v is not None})


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda sb: "", "Paste the service account's JSON key file"),
        (lambda sb: "AIzaSyD-notarealkey0123456789abcdefghij", "This is an API key"),
        (lambda sb: fake.service_account_info(sb.url)["private_key"], "only the private key"),
        (lambda sb: "{'type': 'service_account'}", "not valid JSON"),
        (lambda sb: "[1, 2]", "not a JSON object"),
        (lambda sb: json.dumps(support.load("oauth_client_id.json")), "OAuth client ID file"),
        (lambda sb: json.dumps(support.load("authorized_user.json")), "a user's credentials"),
        (
            lambda sb: json.dumps({"type": "external_account", "audience": "//iam.googleapis.com/x"}),
            "workload identity",
        ),
        (lambda sb: _info(sb, type="impersonated_service_account"), "not 'service_account'"),
        (lambda sb: _info(sb, private_key=None), "lacks private_key"),
        (lambda sb: _info(sb, client_email="", token_uri=None), "lacks client_email, token_uri"),
        (
            lambda sb: _info(sb, private_key="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"),
            "could not be read",
        ),
        (lambda sb: _info(sb, client_email="doow-usage"), "not a service account e-mail"),
        (lambda sb: _info(sb, token_uri="oauth2.googleapis.com/token"), "token_uri is not a URL"),
    ],
)
def test_wrong_files_are_refused_offline_with_the_file_to_create(provider, sandbox, make, words: str) -> None:
    text = make(sandbox)
    with pytest.raises(ConfigurationError) as info:
        provider.check_credential({"service_account_json": text})
    assert words in info.value.message
    assert "Keys → Add key → Create new key → JSON" in info.value.hint
    assert info.value.field == "service_account_json"
    assert_no_secret(info.value, [s for s in provider.secret_values({"service_account_json": text}) if len(s) > 40])
    assert sandbox.requests() == []


def test_a_service_account_key_file_passes(provider, credential) -> None:
    provider.check_credential(credential)
    provider.check_credential({"service_account_json": "\n  " + credential["service_account_json"] + "\n"})


def test_secret_values_cover_the_key_in_every_form(provider, credential) -> None:
    secrets = provider.secret_values(credential)
    key = json.loads(credential["service_account_json"])["private_key"]
    assert credential["service_account_json"] in secrets and key in secrets and key.replace("\n", "\\n") in secrets
    assert all(line in secrets for line in key.splitlines()[1:-1])


# ---------------------------------------------------------------- the token grant
@pytest.mark.parametrize("key", ["deleted", "forged"])
def test_a_deleted_or_forged_key_is_a_credential_error(provider, vertex_settings, day, sandbox, sleeps, key) -> None:
    credential = support.credential(sandbox, key=key)
    http = HttpClient(secrets=provider.secret_values(credential), sleep=sleeps.append)
    error = raises(CredentialError, provider, credential, vertex_settings, day, http)
    assert "Invalid JWT Signature" in error.message and "deleted or disabled" in error.message
    assert error.http_status == 400 and error.hint == KEY_HINT and error.field == "service_account_json"
    assert [r["path"] for r in sandbox.requests()] == [TOKEN], "a refused key is not retried"


def test_a_deleted_service_account_is_a_credential_error(provider, vertex_settings, day, sandbox, sleeps) -> None:
    credential = support.credential(sandbox, email=fake.DELETED_ACCOUNT)
    http = HttpClient(secrets=provider.secret_values(credential), sleep=sleeps.append)
    error = raises(CredentialError, provider, credential, vertex_settings, day, http)
    assert "does not know this service account" in error.message


def test_recorded_invalid_grant_body(provider, credential, vertex_settings, day, sandbox, http) -> None:
    sandbox.fault(TOKEN, 400, body=support.load("token_error_invalid_signature.json"))
    raises(CredentialError, provider, credential, vertex_settings, day, http)


@pytest.mark.parametrize(
    ("token_uri", "words"),
    [("http://127.0.0.1:9/token", "https"), ("https://127.0.0.1/token", "private, loopback"),
     ("https://169.254.169.254/computeMetadata/v1/token", "metadata"), ("https://10.1.2.3/token", "private")],
)  # fmt: skip
def test_a_private_token_uri_is_refused_before_any_call(
    provider, vertex_settings, day, sandbox, token_uri, words
) -> None:
    credential = {"service_account_json": _info(sandbox, token_uri=token_uri)}
    provider.check_credential(credential)  # the shape is fine; where it points is checked at the call
    http = HttpClient(secrets=provider.secret_values(credential), allow_private=False, sleep=lambda s: None)
    error = raises(ConfigurationError, provider, credential, vertex_settings, day, http)
    assert words in error.message or words in error.hint
    assert sandbox.requests() == [] and http.calls == 0


def test_a_rebinding_token_uri_is_never_connected_at_loopback(
    provider, vertex_settings, day, sandbox, monkeypatch
) -> None:
    # Both checks before the grant see a public address; the name answers 127.0.0.1 afterwards.
    credential = {"service_account_json": _info(sandbox, token_uri="https://oauth2.example.test/token")}
    FakeDns({"oauth2.example.test": [[PUBLIC], [PUBLIC], ["127.0.0.1"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    http = HttpClient(
        secrets=provider.secret_values(credential), allow_private=False, max_attempts=1, sleep=lambda s: None
    )
    raises(ConfigurationError, provider, credential, vertex_settings, day, http)
    assert wire.attempts == []  # the transport's connection resolved once, saw loopback, refused
    assert sandbox.requests() == []


def test_a_redirecting_token_endpoint_is_not_followed(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    sandbox.fault(TOKEN, 302, headers={"Location": "http://169.254.169.254/steal"})
    error = raises(ConfigurationError, provider, credential, vertex_settings, day, http)
    assert "redirect" in error.message and error.http_status == 302
    assert len(sandbox.requests()) == 1


def test_token_429_with_retry_after_is_retried(
    provider, credential, vertex_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(TOKEN, 429, times=2, headers={"Retry-After": "1"})
    assert run(provider, credential, vertex_settings, day, http)
    assert sleeps == [1.0, 1.0] and len(sandbox.requests(TOKEN)) == 3


def test_token_429_without_retry_after_is_rate_limited(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    sandbox.fault(TOKEN, 429, times=5)
    error = raises(RateLimited, provider, credential, vertex_settings, day, http)
    assert error.retry_after is None and error.http_status == 429 and len(sandbox.requests()) == 1


def test_token_5xx_is_retried_with_backoff(provider, credential, vertex_settings, day, sandbox, http, sleeps) -> None:
    sandbox.fault(TOKEN, 503, times=2)
    assert run(provider, credential, vertex_settings, day, http)
    assert sleeps == [1.0, 2.0]


def test_token_temporarily_unavailable_is_retried_without_google_auth_sleeping(
    provider, credential, vertex_settings, day, sandbox, http, sleeps
) -> None:
    sandbox.fault(TOKEN, 400, body={"error": "temporarily_unavailable", "error_description": "try again"})
    assert run(provider, credential, vertex_settings, day, http)
    assert sleeps == [1.0]


def test_token_timeout_is_a_network_error(provider, credential, vertex_settings, day, sandbox, sleeps) -> None:
    http = HttpClient(secrets=provider.secret_values(credential), timeout=0.15, max_attempts=2, sleep=sleeps.append)
    sandbox.fault(TOKEN, 200, delay=0.5, times=2)
    error = raises(NetworkError, provider, credential, vertex_settings, day, http)
    assert "token endpoint" in error.message and len(sleeps) == 1


@pytest.mark.parametrize(
    ("status", "body", "error_type", "words"),
    [
        (400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 "
               "minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."},
         ConfigurationError, "clock"),
        (400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope"}, ScopeError, "read-only scope"),
        (401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}, CredentialError,
         "refused the service account key"),
        (200, {"token_type": "Bearer"}, ProviderResponseError, "without an access token"),
        (200, "<html>captive portal</html>", ProviderResponseError, "not a token response"),
        (404, "<html>Not Found</html>", ProviderResponseError, "refused the request"),
    ],
)  # fmt: skip
def test_token_endpoint_answers_are_typed(provider, credential, vertex_settings, day, sandbox, http, status, body,
                                          error_type, words) -> None:  # fmt: skip
    sandbox.fault(TOKEN, status, body=body)
    error = raises(error_type, provider, credential, vertex_settings, day, http)
    assert words in error.message and error.http_status == status


def test_a_token_error_echoing_key_material_is_redacted(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    line = json.loads(credential["service_account_json"])["private_key"].splitlines()[3]
    sandbox.fault(TOKEN, 400, body={"error": "invalid_grant", "error_description": f"bad key near {line}"})
    error = raises(CredentialError, provider, credential, vertex_settings, day, http)
    assert "[redacted]" in error.message


def test_the_token_is_cached_per_client_and_never_shown(
    provider, credential, vertex_settings, day, sandbox, http
) -> None:
    run(provider, credential, vertex_settings, day, http)
    run(provider, credential, vertex_settings, day, http)
    assert len(sandbox.requests(TOKEN)) == 1
    assert any(s.startswith("ya29.sandbox.") for s in http.secrets)
    other = HttpClient(secrets=provider.secret_values(credential), sleep=lambda s: None)
    run(provider, credential, vertex_settings, day, other)
    assert len(sandbox.requests(TOKEN)) == 2


def test_an_account_without_the_dataset_role_gets_a_token_but_no_rows(
    provider, vertex_settings, day, sandbox, sleeps
) -> None:
    from integrations.providers.base import PermissionDenied

    credential = support.credential(sandbox, email=fake.NO_ACCESS_ACCOUNT)
    http = HttpClient(secrets=provider.secret_values(credential), sleep=sleeps.append)
    error = raises(PermissionDenied, provider, credential, vertex_settings, day, http)
    assert error.field == "billing_table" and "BigQuery Data Viewer" in error.hint
