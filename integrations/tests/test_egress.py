"""SSRF: the seam connects to the address it vetted, never to a second DNS answer.

Every test here plays the network itself (integrations/tests/netfakes.py): a resolver it
controls, a connect layer that records and refuses, and a local TLS server. No outside address
is ever contacted.
"""

from __future__ import annotations

import ipaddress

import pytest
import requests

from integrations import egress, services
from integrations.http import HttpClient, check_endpoint
from integrations.models import Integration
from integrations.providers.base import ConfigurationError, NetworkError
from integrations.tests.netfakes import PUBLIC, PUBLIC_2, Answer, ConnectRecorder, FakeDns, TlsServer, make_tls_identity


def _client(*, allow_private: bool = False, ca: str | None = None, **kwargs) -> HttpClient:
    session = requests.Session()
    session.trust_env = False  # neither the host's proxies nor its REQUESTS_CA_BUNDLE (it beats session.verify)
    if ca:
        session.verify = ca
    return HttpClient(allow_private=allow_private, session=session, sleep=lambda s: None, **kwargs)


# ---------------------------------------------------------------- which addresses are refused
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "203.0.113.9", "100.100.100.200",
        "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",  # IPv4-mapped
        "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b::a00:1",  # NAT64 to metadata, loopback, private
        "64:ff9b:1::808:808",  # local-use NAT64: never public
        "2002:a9fe:a9fe::1", "2002:7f00:1::1", "2002:c0a8:101::1",  # 6to4 around forbidden IPv4s
        "::127.0.0.1", "::8.8.8.8",  # deprecated IPv4-compatible
        "2001::1",  # Teredo
    ],
)  # fmt: skip
def test_private_reserved_metadata_and_ipv4_embedding_addresses_are_forbidden(address):
    assert egress.is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", [PUBLIC, "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed_including_nat64_and_6to4_of_a_public_ipv4(address):
    assert not egress.is_forbidden(ipaddress.ip_address(address))


def test_nat64_metadata_address_is_refused_when_saved(workspace, settings, monkeypatch):
    settings.DOOW_ALLOW_PRIVATE_ENDPOINTS = False
    FakeDns({}).install(monkeypatch)  # a literal needs no lookup; nothing else may resolve
    with pytest.raises(ConfigurationError) as excinfo:
        services.integration_create(
            workspace=workspace,
            provider_slug="openai",
            credential={"api_key": "sk-admin-guard-test-0000000000"},
            settings={"base_url": "https://[64:ff9b::a9fe:a9fe]/v1"},
        )
    assert excinfo.value.field == "base_url" and "metadata" in excinfo.value.message
    assert not Integration.objects.exists()


def test_nat64_metadata_address_is_refused_when_connecting(monkeypatch):
    FakeDns({}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    with pytest.raises(ConfigurationError):
        _client().request("GET", "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/")
    assert wire.attempts == []


def test_a_name_answering_one_public_and_one_private_address_is_refused(monkeypatch):
    FakeDns({"api.example.test": [[PUBLIC, "10.0.0.8"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    with pytest.raises(ConfigurationError):
        check_endpoint("https://api.example.test/v1", allow_private=False)
    with pytest.raises(ConfigurationError):
        _client().request("GET", "https://api.example.test/v1/usage")
    assert wire.attempts == []


# ---------------------------------------------------------------- rebinding
def test_rebinding_name_is_connected_at_the_address_that_was_checked(monkeypatch):
    # The name answers a public address to the first lookup and 127.0.0.1 to every later one.
    dns = FakeDns({"api.example.test": [[PUBLIC], ["127.0.0.1"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    with pytest.raises(NetworkError):  # the public address refuses (no test touches the outside)
        _client(max_attempts=1).request("GET", "https://api.example.test/v1/usage")
    assert wire.attempts == [(PUBLIC, 443)]
    assert dns.lookups == ["api.example.test"]  # resolved once: no second lookup to connect


def test_a_retry_resolves_again_and_is_vetted_again(monkeypatch):
    FakeDns({"api.example.test": [[PUBLIC], ["127.0.0.1"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    with pytest.raises(ConfigurationError):  # the second connection's answer is loopback: refused
        _client(max_attempts=3).request("GET", "https://api.example.test/v1/usage")
    assert wire.addresses == [PUBLIC]


def test_a_redirect_hop_to_a_rebinding_name_is_connected_at_its_checked_address(monkeypatch, tmp_path):
    identity = make_tls_identity(tmp_path, ["api.example.test"])
    redirect = Answer(302, b"", {"Location": "https://rebind.example.test/v1/next"})
    with TlsServer(identity, answer=lambda seen: redirect) as server:
        FakeDns({"api.example.test": [[PUBLIC]], "rebind.example.test": [[PUBLIC_2], ["127.0.0.1"]]}).install(
            monkeypatch
        )
        # The first hop's public address is routed to the local TLS server; everything else refused.
        wire = ConnectRecorder(routes={PUBLIC: ("127.0.0.1", server.port)}).install(monkeypatch)
        with pytest.raises(NetworkError):
            _client(ca=str(identity.ca_path), max_attempts=1).request("GET", "https://api.example.test/v1/start")
    assert [seen.path for seen in server.requests] == ["/v1/start"]
    assert wire.attempts == [(PUBLIC, 443), (PUBLIC_2, 443)]
    assert "127.0.0.1" not in wire.addresses


def test_a_redirect_to_a_private_address_is_refused_before_connecting(monkeypatch, tmp_path):
    identity = make_tls_identity(tmp_path, ["api.example.test"])
    redirect = Answer(307, b"", {"Location": "https://169.254.169.254/latest/meta-data/"})
    with TlsServer(identity, answer=lambda seen: redirect) as server:
        FakeDns({"api.example.test": [[PUBLIC]]}).install(monkeypatch)
        wire = ConnectRecorder(routes={PUBLIC: ("127.0.0.1", server.port)}).install(monkeypatch)
        with pytest.raises(ConfigurationError):
            _client(ca=str(identity.ca_path)).request("GET", "https://api.example.test/v1/start")
    assert wire.addresses == [PUBLIC]


# ---------------------------------------------------------------- TLS keeps the host name
def test_a_pinned_connection_still_checks_the_certificate_against_the_host_name(monkeypatch, tmp_path):
    identity = make_tls_identity(tmp_path, ["api.example.test"])  # no IP in the certificate
    with TlsServer(identity, answer=lambda seen: Answer(body=b'{"hello": "world"}')) as server:
        FakeDns({"api.example.test": [["127.0.0.1"]]}).install(monkeypatch)
        client = _client(allow_private=True, ca=str(identity.ca_path))
        assert client.request("GET", f"https://api.example.test:{server.port}/v1/hello").json() == {"hello": "world"}
    assert server.server_names == ["api.example.test"]  # SNI: the host name, not 127.0.0.1
    assert server.requests[0].headers["host"] == f"api.example.test:{server.port}"


def test_a_certificate_for_another_name_is_refused_on_a_pinned_connection(monkeypatch, tmp_path):
    identity = make_tls_identity(tmp_path, ["other.example.test"])
    with TlsServer(identity) as server:
        FakeDns({"api.example.test": [["127.0.0.1"]]}).install(monkeypatch)
        with pytest.raises(NetworkError):
            _client(allow_private=True, ca=str(identity.ca_path), max_attempts=1).request(
                "GET", f"https://api.example.test:{server.port}/v1/hello"
            )
        assert server.requests == []


def test_a_certificate_from_an_untrusted_ca_is_refused(monkeypatch, tmp_path):
    identity = make_tls_identity(tmp_path, ["api.example.test"])
    with TlsServer(identity) as server:
        FakeDns({"api.example.test": [["127.0.0.1"]]}).install(monkeypatch)
        with pytest.raises(NetworkError):  # the system CAs do not know the test CA
            _client(allow_private=True, max_attempts=1).request(
                "GET", f"https://api.example.test:{server.port}/v1/hello"
            )
        assert server.requests == []


# ---------------------------------------------------------------- development mode
def test_private_endpoints_allowed_still_reach_a_local_server(sandbox):
    client = _client(allow_private=True)
    response = client.request("GET", sandbox.url + "/_sandbox/")
    assert response.status_code == 200


# ---------------------------------------------------------------- an operator's proxy
def test_through_a_proxy_the_host_is_vetted_before_it_is_handed_over(monkeypatch):
    FakeDns({"api.example.test": [["10.0.0.8"]], "proxy.internal.test": [["10.9.9.9"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    client = _client(max_attempts=1)
    client.session.proxies = {"https": "http://proxy.internal.test:3128"}
    with pytest.raises(ConfigurationError):
        client.request("GET", "https://api.example.test/v1/usage")
    assert wire.attempts == []


def test_a_proxy_on_a_private_address_still_carries_requests_to_public_hosts(monkeypatch):
    # The proxy is the operator's own (private addresses are normal for it); it connects onward.
    FakeDns({"api.example.test": [[PUBLIC]], "proxy.internal.test": [["10.9.9.9"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    client = _client(max_attempts=1)
    client.session.proxies = {"https": "http://proxy.internal.test:3128"}
    with pytest.raises(NetworkError):  # the test network refuses the proxy's address
        client.request("GET", "https://api.example.test/v1/usage")
    assert wire.attempts == [("10.9.9.9", 3128)]
