"""verify() against the sandbox, which checks the signed token for real; every failure's
mapping; and fetch() refusing, since Authress has no usage API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.http import HttpClient
from integrations.providers.authress.schema import error_text, parse_account
from integrations.providers.authress.tests.support import load
from integrations.providers.base import (
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    Window,
)
from integrations.providers.testing import assert_no_secret
from sandbox import authress as fake

ACCOUNT_PATH = f"/authress/v1/accounts/{fake.ACCOUNT_ID}"


def verify(provider, access_key: str, settings, http: HttpClient):
    return provider.verify({"access_key": access_key}, settings, http=http)


def raises(error_type, provider, access_key, settings, http):
    with pytest.raises(error_type) as info:
        verify(provider, access_key, settings, http)
    assert_no_secret(info.value, [access_key, access_key.split(".")[-1]])
    return info.value


def test_verify_shows_the_account_and_the_service_client(
    provider, credential, authress_settings, http, sandbox
) -> None:
    identity = provider.verify(credential, authress_settings, http=http)
    assert identity.account_id == fake.ACCOUNT_ID
    assert identity.account_name == fake.ACCOUNT_NAME
    assert identity.summary == (
        f"Authress account {fake.ACCOUNT_ID} ({fake.ACCOUNT_NAME}) · service client {fake.CLIENT_ID} · "
        "usage is imported (no usage API)"
    )
    assert identity.details == {
        "service_client": fake.CLIENT_ID,
        "api_host": "127.0.0.1",
        "company": fake.COMPANY_NAME,
        "created": fake.CREATED_TIME,
    }
    (request,) = sandbox.requests("/authress/")
    assert request["path"] == ACCOUNT_PATH and request["status"] == 200


def test_a_pasted_v1_suffix_and_trailing_slash_are_tolerated(
    provider, credential, authress_settings, http, sandbox
) -> None:
    provider.verify(credential, {"base_url": authress_settings["base_url"] + "/v1/"}, http=http)
    assert [r["path"] for r in sandbox.requests("/authress/")] == [ACCOUNT_PATH]


def test_a_fresh_token_is_signed_for_every_verify(provider, credential, authress_settings, http, monkeypatch) -> None:
    # A clock far in the past signs a token that expired long ago: the sandbox refuses it.
    monkeypatch.setattr(provider, "now", lambda: datetime.now(UTC) - timedelta(hours=1))
    error = raises(CredentialError, provider, fake.ACCESS_KEY, authress_settings, http)
    assert "expired" in error.message
    monkeypatch.undo()
    assert provider.verify(credential, authress_settings, http=http).account_id == fake.ACCOUNT_ID


@pytest.mark.parametrize(
    ("access_key", "reason"),
    [
        (fake.UNKNOWN_KID_ACCESS_KEY, "Unknown signing key"),
        (fake.REVOKED_ACCESS_KEY, "The access key was deleted"),
        (fake.WRONG_SIGNATURE_ACCESS_KEY, "signature, issuer, audience or required claims are wrong"),
        (
            fake.access_key(fake.CLIENT_ID, fake.KEY_ID, "acc_someoneelse"),
            "signature, issuer, audience or required claims are wrong",
        ),
    ],
)
def test_tokens_the_sandbox_rejects_are_credential_errors(
    provider, authress_settings, http, access_key, reason
) -> None:
    error = raises(CredentialError, provider, access_key, authress_settings, http)
    assert error.http_status == 401 and error.request_id.startswith("authress-")
    assert (
        error.message.startswith("Authress rejected the service client token: Unauthorized.")
        and reason in error.message
    )
    assert "Service clients" in error.hint and "another account" in error.hint


def test_a_client_without_access_to_the_account_is_a_permission_error(provider, authress_settings, http) -> None:
    error = raises(PermissionDenied, provider, fake.NO_ACCESS_ACCESS_KEY, authress_settings, http)
    assert error.http_status == 403
    assert "Forbidden. The service client does not have permission" in error.message
    assert "give the service client access" in error.hint


def test_a_wrong_host_is_a_configuration_error_on_base_url(provider, credential, sandbox, http) -> None:
    settings = {"base_url": f"{sandbox.url}/authress/somewhere"}
    error = raises(ConfigurationError, provider, fake.ACCESS_KEY, settings, http)
    assert error.http_status == 404 and error.field == "base_url"
    assert "api-<region>.authress.io" in error.hint


def test_a_missing_host_fails_before_any_call(provider, credential, http, sandbox) -> None:
    error = raises(ConfigurationError, provider, fake.ACCESS_KEY, {"base_url": "  "}, http)
    assert error.field == "base_url" and "API host is missing" in error.message
    assert sandbox.requests() == []


def test_a_malformed_key_fails_before_any_call(provider, authress_settings, http, sandbox) -> None:
    raises(ConfigurationError, provider, "sc_1.kid_1.acc_1", authress_settings, http)
    assert sandbox.requests() == []


def test_429_is_retried_after_retry_after_then_succeeds(
    provider, credential, authress_settings, http, sleeps, sandbox
) -> None:
    sandbox.fault(ACCOUNT_PATH, 429, times=2, headers={"Retry-After": "2"})
    assert provider.verify(credential, authress_settings, http=http).account_id == fake.ACCOUNT_ID
    assert sleeps == [2.0, 2.0]


def test_429_without_retry_after_is_rate_limited_at_once(provider, authress_settings, http, sleeps, sandbox) -> None:
    sandbox.fault(ACCOUNT_PATH, 429)
    error = raises(RateLimited, provider, fake.ACCESS_KEY, authress_settings, http)
    assert error.retry_after is None and sleeps == []
    assert error.message == "Authress is throttling requests: Too many requests. Please retry later."


def test_5xx_is_retried_with_backoff_then_unavailable(provider, authress_settings, http, sleeps, sandbox) -> None:
    sandbox.fault(ACCOUNT_PATH, 503, times=10)
    error = raises(ProviderUnavailable, provider, fake.ACCESS_KEY, authress_settings, http)
    assert error.http_status == 503 and sleeps == [1.0, 2.0, 4.0]
    assert error.message == "Authress had a server error: The service had an error. Please retry."


def test_a_timeout_is_a_network_error(provider, credential, authress_settings, sandbox) -> None:
    sandbox.fault(ACCOUNT_PATH, 200, times=5, delay=0.3)
    http = HttpClient(secrets=[fake.ACCESS_KEY], timeout=0.05, max_attempts=2, sleep=lambda s: None)
    raises(NetworkError, provider, fake.ACCESS_KEY, authress_settings, http)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>gateway</html>", "not JSON"),
        ({"accountId": 42}, "account.accountId is not a string"),
        ({"name": "no id"}, "account.accountId is missing"),
        ({"accountId": "acc_x", "company": "Acme"}, "account.company is not an object"),
        ([1, 2], "the account is not an object"),
    ],
)
def test_unreadable_answers_are_response_errors(provider, authress_settings, http, sandbox, body, expected) -> None:
    sandbox.fault(ACCOUNT_PATH, 200, body=body)
    error = raises(ProviderResponseError, provider, fake.ACCESS_KEY, authress_settings, http)
    assert expected in error.message and error.http_status == 200 and error.request_id


def test_an_answer_for_another_account_is_a_warning(provider, credential, authress_settings, http, sandbox) -> None:
    sandbox.fault(ACCOUNT_PATH, 200, body={**fake.account_json(), "accountId": "acc_other"})
    identity = provider.verify(credential, authress_settings, http=http)
    assert identity.details["warnings"] == [
        f"The API host answered for account acc_other, but the key is for {fake.ACCOUNT_ID}."
    ]


def test_fetch_refuses_without_calling_anyone(provider, credential, authress_settings, http, sandbox) -> None:
    window = Window(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    with pytest.raises(ConfigurationError) as info:
        list(provider.fetch(credential, authress_settings, window, http=http))
    assert "no usage API" in info.value.message and "import" in info.value.hint
    assert sandbox.requests() == []


def test_the_recorded_account_parses() -> None:
    account = parse_account(load("account.json"))
    assert (account.account_id, account.name, account.company_name) == (
        "acc_fixture001",
        "Acme production",
        "Acme Corp",
    )
    assert account.created_time == "2023-05-06T07:08:09.000Z"


def test_a_nameless_account_is_fine() -> None:
    account = parse_account({"accountId": "acc_1", "name": None, "company": {}, "links": None})
    assert (account.name, account.company_name, account.created_time) == ("", "", "")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"errorCode": "X", "title": "Nope."}, "Nope."),
        ({"errorCode": "X"}, "X"),
        ({"message": "m"}, "m"),
        ("x", ""),
        ({}, ""),
    ],
)
def test_error_text(body, text) -> None:
    assert error_text(body) == text


# ---------------------------------------------------------------- custom domains
def test_a_custom_domain_account_needs_its_issuer_domain(provider, authress_settings, http, sandbox) -> None:
    """Authress accepts this client's tokens only when issued by the account's custom domain."""
    credential = {"access_key": fake.CUSTOM_DOMAIN_ACCESS_KEY}
    error = raises(CredentialError, provider, fake.CUSTOM_DOMAIN_ACCESS_KEY, authress_settings, http)
    assert "issuer" in str(error)  # the sandbox says what it checked
    for domain in (fake.CUSTOM_DOMAIN, f"https://{fake.CUSTOM_DOMAIN}/", f"  {fake.CUSTOM_DOMAIN.upper()}  "):
        identity = provider.verify(credential, {**authress_settings, "issuer_domain": domain}, http=http)
        assert identity.account_id == fake.ACCOUNT_ID
        assert identity.details["token_issuer"] == fake.CUSTOM_DOMAIN
    # The default issuer is no longer accepted for it, and the custom one not for a default client.
    raises(CredentialError, provider, fake.ACCESS_KEY, {**authress_settings, "issuer_domain": fake.CUSTOM_DOMAIN}, http)


@pytest.mark.parametrize(
    "domain",
    ["http://login.example.com", "login.example.com/v1", "login.example.com:8443", "https://user@login.example.com",
     "localhost", "login example.com", "login.example.com?x=1"],
)  # fmt: skip
def test_a_malformed_issuer_domain_fails_before_any_call(
    provider, credential, authress_settings, http, sandbox, domain
):
    with pytest.raises(ConfigurationError) as info:
        provider.verify(credential, {**authress_settings, "issuer_domain": domain}, http=http)
    assert info.value.field == "issuer_domain"
    assert sandbox.requests("/authress/") == []
