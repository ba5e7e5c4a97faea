"""Signing in: offline credential checks, Entra ID's token errors, and the per-sync token cache."""

from __future__ import annotations

import pytest

from integrations.http import HttpClient
from integrations.providers.azure_openai import bearer_token
from integrations.providers.azure_openai.auth import SECRET_HINT
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    PermissionDenied,
    Window,
)
from integrations.providers.testing import assert_no_secret
from sandbox import azure_openai as sandbox_azure

TOKEN_PATH = support.TOKEN_PATH


def token_kwargs(sandbox, **overrides):
    return {
        "login_url": sandbox.url + "/azure_openai/login",
        "tenant_id": sandbox_azure.TENANT_ID,
        "client_id": sandbox_azure.CLIENT_ID,
        "client_secret": sandbox_azure.CLIENT_SECRET,
        **overrides,
    }


def verify_error(provider, credential, sandbox, error_type):
    http = HttpClient(secrets=[credential["client_secret"]], sleep=lambda s: None)
    with pytest.raises(error_type) as info:
        provider.verify(credential, support.settings(sandbox), http=http)
    assert_no_secret(info.value, [credential["client_secret"]])
    return info.value


# ---------------------------------------------------------------- offline checks
@pytest.mark.parametrize(
    ("change", "error_type", "field", "text"),
    [
        ({"client_secret": "3f2504e0-4f89-41d3-9a0c-0305e82c3301"}, ConfigurationError, "client_secret", "Secret ID"),
        ({"client_secret": "0123456789abcdef0123456789ABCDEF"}, PermissionDenied, "client_secret", "resource key"),
        ({"client_secret": "abc 8Q~def"}, ConfigurationError, "client_secret", "no spaces"),
        ({"client_secret": ""}, ConfigurationError, "client_secret", "Value"),
        ({"client_id": "doow-usage-sync"}, ConfigurationError, "client_id", "GUID"),
        ({"tenant_id": "not a tenant"}, ConfigurationError, "tenant_id", "tenant"),
        ({"tenant_id": "common"}, ConfigurationError, "tenant_id", "common"),
        ({"tenant_id": ""}, ConfigurationError, "tenant_id", "tenant"),
    ],
)
def test_wrong_credential_shapes_are_caught_before_any_call(
    provider, sandbox, azure_settings, http, change, error_type, field, text
) -> None:
    credential = {**support.credential(), **change}
    with pytest.raises(error_type) as info:
        provider.check_credential(credential)
    assert info.value.field == field and text in info.value.message + info.value.hint
    with pytest.raises(error_type):
        list(provider.fetch(credential, azure_settings, Window(support.days_ago(2), support.days_ago(1)), http=http))
    assert sandbox.requests() == []


def test_valid_shapes_pass(provider) -> None:
    provider.check_credential(support.credential())
    provider.check_credential({**support.credential(), "tenant_id": "contoso.onmicrosoft.com"})


# ---------------------------------------------------------------- Entra ID token errors
def test_wrong_secret_is_a_credential_error_naming_the_fix(provider, sandbox) -> None:
    error = verify_error(
        provider, support.credential(secret="sbx8Q~NotTheSecret0000000000000000000000"), sandbox, CredentialError
    )
    assert error.http_status == 401 and error.field == "client_secret"
    assert "AADSTS7000215" in error.message and "Trace ID" not in error.message
    assert error.hint == SECRET_HINT and "Value (not its Secret ID)" in error.hint
    assert error.request_id, "the token endpoint's x-ms-request-id is kept"
    assert len(sandbox.requests()) == 1, "a rejected secret is not retried"


def test_expired_secret(provider, sandbox) -> None:
    error = verify_error(
        provider, support.credential(secret=sandbox_azure.EXPIRED_CLIENT_SECRET), sandbox, CredentialError
    )
    assert "expired" in error.message and "AADSTS7000222" in error.message and error.field == "client_secret"


def test_unknown_app(provider, sandbox) -> None:
    error = verify_error(
        provider, support.credential(client_id="11111111-2222-4333-8444-555555555555"), sandbox, CredentialError
    )
    assert error.http_status == 400 and error.field == "client_id"
    assert "AADSTS700016" in error.message and "Application (client) ID" in error.hint


def test_unknown_tenant(provider, sandbox) -> None:
    credential = {**support.credential(), "tenant_id": "99999999-8888-4777-8666-555555555555"}
    error = verify_error(provider, credential, sandbox, CredentialError)
    assert error.http_status == 400 and error.field == "tenant_id"
    assert "AADSTS90002" in error.message and "az account show --query tenantId" in error.hint


@pytest.mark.parametrize(
    ("fixture", "status", "field"),
    [
        ("token_error_invalid_secret.json", 401, "client_secret"),
        ("token_error_unknown_app.json", 400, "client_id"),
        ("token_error_unknown_tenant.json", 400, "tenant_id"),
    ],
)
def test_recorded_token_errors(provider, credential, sandbox, fixture, status, field) -> None:
    sandbox.fault(TOKEN_PATH, status, body=support.load(fixture))
    error = verify_error(provider, credential, sandbox, CredentialError)
    assert (error.http_status, error.field) == (status, field)
    assert "\r" not in error.message and "Correlation ID" not in error.message


def test_a_token_error_echoing_the_secret_is_redacted(provider, credential, sandbox) -> None:
    body = {
        "error": "invalid_client",
        "error_codes": [7000215],
        "error_description": f"AADSTS7000215: Invalid client secret provided: {credential['client_secret']}.",
    }
    sandbox.fault(TOKEN_PATH, 401, body=body)
    error = verify_error(provider, credential, sandbox, CredentialError)
    assert "[redacted]" in error.message


def test_a_blocked_app_is_permission_denied(provider, credential, sandbox) -> None:
    body = {
        "error": "access_denied",
        "error_codes": [53003],
        "error_description": "AADSTS53003: Access has been blocked by Conditional Access policies.",
    }
    sandbox.fault(TOKEN_PATH, 403, body=body)
    error = verify_error(provider, credential, sandbox, PermissionDenied)
    assert "Conditional Access" in error.message


# ---------------------------------------------------------------- the token cache
def test_one_token_per_sync_however_many_chunks(provider, credential, azure_settings, http, sandbox) -> None:
    for day in (3, 2):
        list(
            provider.fetch(
                credential, azure_settings, Window(support.days_ago(day), support.days_ago(day - 1)), http=http
            )
        )
    assert len(sandbox.requests(TOKEN_PATH)) == 1
    # A new HttpClient is a new sync: it signs in again.
    list(
        provider.fetch(
            credential,
            azure_settings,
            Window(support.days_ago(2), support.days_ago(1)),
            http=HttpClient(sleep=lambda s: None),
        )
    )
    assert len(sandbox.requests(TOKEN_PATH)) == 2


def test_token_is_renewed_before_it_expires(sandbox, http) -> None:
    now = [1_000.0]
    kwargs = token_kwargs(sandbox, clock=lambda: now[0])
    token = bearer_token(http, **kwargs)
    now[0] += sandbox_azure.TOKEN_LIFETIME - 301  # still outside the 5-minute margin
    assert bearer_token(http, **kwargs) == token
    assert len(sandbox.requests(TOKEN_PATH)) == 1
    now[0] += 2
    bearer_token(http, **kwargs)
    assert len(sandbox.requests(TOKEN_PATH)) == 2


def test_another_secret_gets_its_own_token(sandbox, http) -> None:
    bearer_token(http, **token_kwargs(sandbox))
    bearer_token(
        http,
        **token_kwargs(
            sandbox, client_id=sandbox_azure.NO_ROLE_CLIENT_ID, client_secret=sandbox_azure.NO_ROLE_CLIENT_SECRET
        ),
    )
    assert len(sandbox.requests(TOKEN_PATH)) == 2


def test_the_access_token_is_redacted_from_errors(sandbox, http) -> None:
    token = bearer_token(http, **token_kwargs(sandbox))
    assert token in http.secrets
    assert token not in http.redact(f"upstream said: {token}")
    (request,) = sandbox.requests(TOKEN_PATH)
    assert request["method"] == "POST" and request["query"] == {}, "the secret travels in the body, never the URL"


def test_a_wrong_login_url_is_a_configuration_error(provider, credential, sandbox) -> None:
    settings = {**support.settings(sandbox), "login_url": sandbox.url + "/azure_openai/nowhere"}
    with pytest.raises(ConfigurationError) as info:
        provider.verify(credential, settings, http=HttpClient(secrets=[credential["client_secret"]]))
    assert info.value.http_status == 404
