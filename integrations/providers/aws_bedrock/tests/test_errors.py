"""Every failure mapping: botocore's error codes through Stubber (throttling, access denied per
action, rejected keys, 5xx, paging and partial data), and the wire through a local endpoint
(an HTML page, a bare 503, a server that never answers, a closed port)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.parsers import ResponseParserError

from integrations.http import HttpClient
from integrations.providers.aws_bedrock.aws import translate
from integrations.providers.aws_bedrock.tests.fakes import FakeEndpoint, series
from integrations.providers.aws_bedrock.tests.support import (
    EXTERNAL_ID,
    HOUR,
    KEY_ACCOUNT,
    ROLE_ARN,
    SECRET,
    days_ago,
)
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

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
H0 = days_ago(1)
WINDOW = Window(H0, H0 + 3 * HOUR)
SETTINGS = {"regions": "us-east-1"}


def run(provider, credential, http, window=WINDOW, settings=SETTINGS):
    return list(provider.fetch(credential, settings, window, http=http))


def expect(error_type, provider, credential, http, **kwargs):
    with pytest.raises(error_type) as info:
        run(provider, credential, http, **kwargs)
    assert_no_secret(info.value, [SECRET, *http.secrets])
    return info.value


# ---------------------------------------------------------------- Stubber: error codes
@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException"])
def test_throttling_is_rate_limited(stubbed, stubbed_provider, key_credential, http, code):
    stubbed.caller()
    stubbed.models(MODEL)
    stubbed.error("cloudwatch", "get_metric_data", code, 400, "Rate exceeded")
    error = expect(RateLimited, stubbed_provider, key_credential, http)
    assert error.retry_after is None and error.http_status == 400 and error.request_id == "req-0123"
    assert "cloudwatch:GetMetricData" in error.message


@pytest.mark.parametrize(
    ("operation", "action"),
    [("list_metrics", "cloudwatch:ListMetrics"), ("get_metric_data", "cloudwatch:GetMetricData")],
)
def test_access_denied_names_the_missing_action(stubbed, stubbed_provider, key_credential, http, operation, action):
    stubbed.caller()
    if operation == "get_metric_data":
        stubbed.models(MODEL)
    stubbed.error("cloudwatch", operation, "AccessDenied", 403, f"User is not authorized to perform: {action}")
    error = expect(PermissionDenied, stubbed_provider, key_credential, http)
    assert error.category == "permission" and error.http_status == 403
    assert f"lacks {action}" in error.hint and "IAM user" in error.hint


def test_refused_assume_role_shows_the_exact_trust_policy(stubbed, stubbed_provider, role_credential, http):
    stubbed.error("sts", "assume_role", "AccessDenied", 403, "not authorized to perform: sts:AssumeRole")
    stubbed.caller("999988887777")  # Doow's own account, looked up for the hint
    error = expect(PermissionDenied, stubbed_provider, role_credential, http)
    assert "sts:AssumeRole" in error.message
    assert "arn:aws:iam::999988887777:root" in error.hint and EXTERNAL_ID in error.hint and ROLE_ARN in error.hint
    assert stubbed.sessions[0] == {}  # the role is assumed with Doow's own default credentials


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"])
def test_rejected_access_key_is_a_credential_error(stubbed, stubbed_provider, key_credential, http, code):
    stubbed.error("sts", "get_caller_identity", code, 403, "The security token included in the request is invalid.")
    error = expect(CredentialError, stubbed_provider, key_credential, http)
    assert error.permanent and "access key" in error.message and "rotate" in error.hint


def test_rejected_own_credentials_are_the_operators_problem(stubbed, stubbed_provider, role_credential, http):
    stubbed.error("sts", "assume_role", "InvalidClientTokenId", 403)
    error = expect(ConfigurationError, stubbed_provider, role_credential, http)
    assert "Doow server" in error.message and "AWS_ACCESS_KEY_ID" in error.hint


@pytest.mark.parametrize(("code", "status"), [("ServiceUnavailable", 503), ("InternalFailure", 500), ("Whatever", 502)])
def test_server_errors_are_provider_unavailable(stubbed, stubbed_provider, key_credential, http, code, status):
    stubbed.caller()
    stubbed.error("cloudwatch", "list_metrics", code, status)
    error = expect(ProviderUnavailable, stubbed_provider, key_credential, http)
    assert error.http_status == status and not error.permanent


def test_secrets_in_an_aws_message_are_redacted(stubbed, stubbed_provider, key_credential, http):
    stubbed.error("sts", "get_caller_identity", "SignatureDoesNotMatch", 403, f"signature of {SECRET} does not match")
    error = expect(CredentialError, stubbed_provider, key_credential, http)
    assert "[redacted]" in error.message


def test_assumed_session_token_is_redacted(stubbed, stubbed_provider, role_credential, http):
    stubbed.assume_role()
    stubbed.error("cloudwatch", "list_metrics", "ValidationError", 400, "bad token tmp-session-token-" + "t" * 60)
    error = expect(ProviderResponseError, stubbed_provider, role_credential, http)
    assert "tmp-session-token" not in error.message and "tmp-secret" not in repr(error)
    # The role's temporary credentials made the CloudWatch session.
    assert stubbed.sessions[1]["aws_session_token"].startswith("tmp-session-token-")


# ---------------------------------------------------------------- Stubber: paging and partial data
def test_next_token_pages_and_omitted_periods(stubbed, stubbed_provider, key_credential, http):
    stubbed.caller()
    stubbed.models(MODEL, next_token="lm-2")
    stubbed.models()  # an empty last page
    h = [H0 + i * HOUR for i in range(3)]
    # Page 1: Invocations for hours 0 and 2 (hour 1 idle: omitted); page 2 continues the
    # token series. Cache metrics never report: no cache samples at all.
    stubbed.data(
        [series("m0_0", [(h[0], 3.0), (h[2], 1.0)], "PartialData"), series("m0_1", [(h[0], 100.0)], "PartialData")],
        "gmd-2",
    )
    stubbed.data([series("m0_1", [(h[2], 40.0)]), series("m0_2", [(h[0], 30.0), (h[2], 5.0)])])
    stubbed.mantle()  # bedrock-mantle: nothing listed
    samples = run(stubbed_provider, key_credential, http)
    got = {(s.bucket_start, s.metric): s.quantity for s in samples}
    assert got == {
        (h[0], "requests"): 3, (h[0], "input_tokens"): 100, (h[0], "output_tokens"): 30,
        (h[2], "requests"): 1, (h[2], "input_tokens"): 40, (h[2], "output_tokens"): 5,
    }  # fmt: skip
    assert {s.account for s in samples} == {KEY_ACCOUNT}
    stubbed.cloudwatch.assert_no_pending_responses()


def test_partial_data_without_a_next_token_stores_nothing(stubbed, stubbed_provider, key_credential, http):
    stubbed.caller()
    stubbed.models(MODEL)
    stubbed.data([series("m0_0", [(H0, 3.0)], "PartialData")])
    error = expect(ProviderResponseError, stubbed_provider, key_credential, http)
    assert "partial data" in error.message


@pytest.mark.parametrize(
    ("status", "error_type"), [("Forbidden", PermissionDenied), ("InternalError", ProviderUnavailable)]
)
def test_series_status_codes(stubbed, stubbed_provider, key_credential, http, status, error_type):
    stubbed.caller()
    stubbed.models(MODEL)
    stubbed.data([series("m0_0", [], status)])
    expect(error_type, stubbed_provider, key_credential, http)


def test_unknown_query_id_and_repeated_tokens_are_response_errors(stubbed, stubbed_provider, key_credential, http):
    stubbed.caller()
    stubbed.models(MODEL)
    stubbed.data([series("zz_9", [(H0, 1.0)])])
    assert "unknown query id" in expect(ProviderResponseError, stubbed_provider, key_credential, http).message

    stubbed.caller()
    stubbed.models(MODEL, next_token="same")
    stubbed.models(MODEL, next_token="same")
    assert "repeated" in expect(ProviderResponseError, stubbed_provider, key_credential, http).message


def test_unparsable_reply_maps_to_response_error() -> None:
    error = translate(ResponseParserError("bad cbor"), action="cloudwatch:ListMetrics", region="us-east-1")
    assert isinstance(error, ProviderResponseError) and "cloudwatch:ListMetrics in us-east-1" in error.message


# ---------------------------------------------------------------- the wire
def _keys_via(endpoint_url: str, provider, key_credential, http, error_type):
    return expect(error_type, provider, key_credential, http, settings={**SETTINGS, "endpoint_url": endpoint_url})


def test_an_html_page_is_not_taken_for_zero_usage(provider, key_credential, http, aws_env):
    html = b"<html>upstream proxy error</html>"
    with FakeEndpoint(200, html) as fake:  # STS (XML) cannot parse it
        error = _keys_via(fake.url, provider, key_credential, http, ProviderResponseError)
    assert "sts:GetCallerIdentity" in error.message and "unreadable" in error.message
    with FakeEndpoint(200, html, sts_ok=True) as fake:  # CloudWatch (CBOR) parses it to {}: no models?
        error = _keys_via(fake.url, provider, key_credential, http, ProviderResponseError)
    assert "no AWS request id" in error.message


def test_bare_503_is_provider_unavailable(provider, key_credential, http, aws_env):
    with FakeEndpoint(503, b"") as fake:
        error = _keys_via(fake.url, provider, key_credential, http, ProviderUnavailable)
    assert error.http_status == 503 and fake.requests == 1  # one attempt: the HttpClient's budget


def test_a_server_that_never_answers_times_out(provider, key_credential, aws_env):
    http = HttpClient(secrets=[SECRET], max_attempts=1, timeout=0.3)
    with FakeEndpoint(200, b"", delay=5) as fake:
        error = _keys_via(fake.url, provider, key_credential, http, NetworkError)
    assert error.message.startswith("Timed out")


def test_a_closed_port_is_a_network_error(provider, key_credential, http, aws_env):
    with FakeEndpoint() as fake:
        url = fake.url  # the port is free again once the server is closed
    error = _keys_via(url, provider, key_credential, http, NetworkError)
    assert error.message.startswith("Could not connect")


def test_no_own_aws_credentials_is_a_configuration_error(provider, role_credential, http, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with FakeEndpoint(500) as fake:
        error = _keys_via(fake.url, provider, role_credential, http, ConfigurationError)
    assert fake.requests == 0 and "no usable AWS credentials" in error.message


def test_private_endpoint_url_is_refused_without_the_development_switch(provider, key_credential, aws_env):
    http = HttpClient(secrets=[SECRET], max_attempts=1, allow_private=False)
    with FakeEndpoint() as fake:
        error = _keys_via(fake.url, provider, key_credential, http, ConfigurationError)
    assert fake.requests == 0 and "https" in error.message


def test_an_empty_or_reversed_window_makes_no_call(stubbed, stubbed_provider, key_credential, http):
    assert run(stubbed_provider, key_credential, http, window=Window(H0, H0)) == []
    assert stubbed.sessions == [] and http.calls == 0
    assert WINDOW.end - WINDOW.start == timedelta(hours=3)
