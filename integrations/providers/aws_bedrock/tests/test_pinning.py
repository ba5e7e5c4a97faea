"""boto3 resolves host names itself: for a custom endpoint_url it must connect to the vetted
address all the same, and keep the endpoint's host name for TLS, the Host header and SigV4.

The network is the test's own (integrations/tests/netfakes.py): a resolver it controls, a
connect layer that records and refuses, a local TLS server. Nothing outside is contacted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from integrations.http import HttpClient
from integrations.providers.aws_bedrock.aws import open_session
from integrations.providers.aws_bedrock.tests.fakes import CALLER_XML
from integrations.providers.aws_bedrock.tests.support import KEY_ACCOUNT, KEY_ID, SECRET
from integrations.providers.base import ConfigurationError, NetworkError, Window
from integrations.tests.netfakes import PUBLIC, Answer, ConnectRecorder, FakeDns, TlsServer, make_tls_identity

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WINDOW = Window(NOW - timedelta(hours=3), NOW)


def _fetch(provider, credential, http, endpoint_url: str) -> list:
    settings = {"regions": "us-east-1", "endpoint_url": endpoint_url}
    return list(provider.fetch(credential, settings, WINDOW, http=http))


def test_a_rebinding_endpoint_never_gets_botocore_to_connect_to_loopback(
    provider, key_credential, aws_env, monkeypatch
):
    # The check resolves first (public); the name answers 127.0.0.1 from then on.
    dns = FakeDns({"aws.example.test": [[PUBLIC], ["127.0.0.1"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    http = HttpClient(secrets=[SECRET], max_attempts=1, allow_private=False)
    with pytest.raises(ConfigurationError) as info:
        _fetch(provider, key_credential, http, "https://aws.example.test")
    assert "aws.example.test" in info.value.message
    assert wire.attempts == []  # botocore's connection resolved, saw loopback, and never connected
    assert dns.lookups == ["aws.example.test", "aws.example.test"]  # the check, then the connection


def test_botocore_connects_to_the_address_it_vetted(provider, key_credential, aws_env, monkeypatch):
    FakeDns({"aws.example.test": [[PUBLIC]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    http = HttpClient(secrets=[SECRET], max_attempts=1, allow_private=False)
    with pytest.raises(NetworkError):  # the public address refuses: nothing outside is contacted
        _fetch(provider, key_credential, http, "https://aws.example.test")
    assert wire.attempts == [(PUBLIC, 443)]


def test_default_aws_endpoints_are_not_pinned(provider, key_credential, aws_env, monkeypatch):
    # A VPC endpoint may resolve AWS's own names to private addresses: those stay allowed.
    FakeDns({"sts.us-east-1.amazonaws.com": [["10.0.5.5"]], "sts.amazonaws.com": [["10.0.5.5"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    http = HttpClient(secrets=[SECRET], max_attempts=1, allow_private=False)
    with pytest.raises(NetworkError):
        _fetch(provider, key_credential, http, "")
    assert wire.addresses == ["10.0.5.5"]


def test_a_pinned_aws_connection_keeps_the_host_name_for_tls_host_and_sigv4(
    key_credential, aws_env, monkeypatch, tmp_path
):
    identity = make_tls_identity(tmp_path, ["aws.example.test"])  # no IP in the certificate
    monkeypatch.setenv("AWS_CA_BUNDLE", str(identity.ca_path))
    caller = Answer(200, CALLER_XML.encode(), {"Content-Type": "text/xml"})
    with TlsServer(identity, answer=lambda seen: caller) as server:
        FakeDns({"aws.example.test": [["127.0.0.1"]]}).install(monkeypatch)
        endpoint = f"https://aws.example.test:{server.port}"
        http = HttpClient(secrets=[SECRET], max_attempts=1, allow_private=True)
        aws = open_session(
            boto3.session.Session, key_credential, endpoint=endpoint, http=http, region="us-east-1", duration=900
        )
        answer = aws.call(aws.client("sts", "us-east-1"), "get_caller_identity", "sts:GetCallerIdentity")
    assert answer["Account"] == KEY_ACCOUNT
    assert server.server_names == ["aws.example.test"]
    seen = server.requests[0]
    assert seen.headers["host"] == f"aws.example.test:{server.port}"

    # AWS checks the signature against the Host it receives: recompute it from what arrived.
    authorization = seen.headers["authorization"]
    signed = re.search(r"SignedHeaders=([^,]+)", authorization).group(1).split(";")
    assert "host" in signed
    request = AWSRequest(method=seen.method, url=endpoint + seen.path, data=seen.body,
                         headers={name: seen.headers[name] for name in signed})  # fmt: skip
    request.context["timestamp"] = seen.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(KEY_ID, SECRET), "sts", "us-east-1")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert authorization.endswith(f"Signature={expected}")
