"""The SSRF matrix: provider URLs that must never be fetched, through a resolver the test
controls (faults/network.py), with private endpoints disallowed as in production.

check_endpoint must refuse every loopback, private, link-local, metadata, unique-local,
unspecified, reserved, multicast and NAT64 address, whether the URL names it or a name resolves
to it (among public answers, too), and in every spelling of an IP literal; public addresses
pass. The add form refuses such a base URL before anything connects. A name that answers
public and then loopback (DNS rebinding) must never be connected to on loopback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.urls import reverse

from faults import figures
from faults.network import controlled_network
from integrations.http import check_endpoint
from integrations.models import Integration
from integrations.providers.base import ConfigurationError, NetworkError

PUBLIC_V4, PUBLIC_V6 = "8.8.8.8", "2606:4700:4700::1111"  # answers of the fake resolver: never contacted
PORT = 8443  # every URL below uses it, so the connection record sees only the code under test


@dataclass(frozen=True)
class Endpoint:
    label: str
    host: str  # a name answered by the fake resolver, or an IP literal as written in a URL
    answers: tuple[str, ...] = ()  # for a name

    @property
    def url(self) -> str:
        return f"https://{self.host}:{PORT}/v1"


def by_name(label: str, *answers: str) -> Endpoint:
    return Endpoint(label, re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".test", answers)


REFUSED: tuple[Endpoint, ...] = (
    by_name("loopback", "127.0.0.1"),
    by_name("loopback elsewhere in 127/8", "127.45.6.7"),
    by_name("IPv6 loopback", "::1"),
    Endpoint("localhost", "localhost", ("127.0.0.1", "::1")),
    by_name("RFC1918 10/8", "10.1.2.3"),
    by_name("RFC1918 172.16/12", "172.31.255.254"),
    by_name("RFC1918 192.168/16", "192.168.0.10"),
    by_name("link-local", "169.254.10.20"),
    by_name("IPv6 link-local", "fe80::1"),
    by_name("cloud metadata", "169.254.169.254"),
    Endpoint("GCP metadata name", "metadata.google.internal", ("169.254.169.254",)),
    by_name("AWS IPv6 metadata", "fd00:ec2::254"),
    by_name("unique-local fc00/7", "fc00::1"),
    by_name("unique-local fd", "fd12:3456:789a::1"),
    by_name("unspecified", "0.0.0.0"),
    by_name("IPv6 unspecified", "::"),
    by_name("this network 0/8", "0.1.2.3"),
    by_name("carrier-grade NAT", "100.64.0.1"),
    by_name("reserved 240/4", "240.0.0.1"),
    by_name("broadcast", "255.255.255.255"),
    by_name("IPv4-mapped loopback", "::ffff:127.0.0.1"),
    by_name("IPv4-mapped metadata", "::ffff:169.254.169.254"),
    by_name("documentation", "192.0.2.1"),
    by_name("IPv6 documentation", "2001:db8::1"),
    by_name("benchmarking", "198.18.0.1"),
    by_name("discard-only", "100::1"),
    by_name("Teredo", "2001::1"),
    by_name("public then private", PUBLIC_V4, "10.0.0.1"),
    by_name("public v4 and link-local v6", PUBLIC_V4, "fe80::1"),
    Endpoint("loopback literal", "127.0.0.1"),
    Endpoint("IPv6 loopback literal", "[::1]"),
    Endpoint("decimal loopback", "2130706433"),
    Endpoint("hexadecimal loopback", "0x7f000001"),
    Endpoint("octal loopback", "0177.0.0.1"),
    Endpoint("short loopback", "127.1"),
    Endpoint("zero", "0"),
    Endpoint("metadata literal", "169.254.169.254"),
    Endpoint("IPv6 metadata literal", "[fd00:ec2::254]"),
    Endpoint("IPv4-mapped literal", "[::ffff:7f00:1]"),
)
MULTICAST: tuple[Endpoint, ...] = (
    by_name("multicast", "224.0.0.1"),
    by_name("site multicast", "239.255.255.250"),
    by_name("IPv6 multicast", "ff02::1"),
    Endpoint("IPv6 multicast literal", "[ff05::2]"),
)
NAT64: tuple[Endpoint, ...] = (
    Endpoint("NAT64 metadata literal", "[64:ff9b::a9fe:a9fe]"),
    by_name("NAT64 loopback", "64:ff9b::7f00:1"),
    by_name("local-use NAT64", "64:ff9b:1::a9fe:a9fe"),
)
ALLOWED: tuple[Endpoint, ...] = (
    by_name("public", PUBLIC_V4, PUBLIC_V6),
    Endpoint("public literal", PUBLIC_V4),
    Endpoint("public IPv6 literal", f"[{PUBLIC_V6}]"),
)
MALFORMED = ("http://public.test/v1", "https://user:secret@public.test/v1", "ftp://public.test/v1", "https:///v1")


@pytest.fixture
def network(monkeypatch, settings):
    """Production's rule (no private endpoints), the fake resolver and the connection record."""
    settings.DOOW_ALLOW_PRIVATE_ENDPOINTS = False
    dns, connections = controlled_network(monkeypatch, PORT)
    for endpoint in (*REFUSED, *MULTICAST, *NAT64, *ALLOWED):
        if endpoint.answers:
            dns.add(endpoint.host, endpoint.answers)
    dns.add("public.test", (PUBLIC_V4,))
    return dns, connections


def refuse(endpoint_url: str) -> ConfigurationError:
    figures.add("ssrf_addresses")
    with pytest.raises(ConfigurationError) as excinfo:
        check_endpoint(endpoint_url)
    assert not isinstance(excinfo.value, NetworkError)  # refused for its address, not for failing to resolve
    figures.add("ssrf_refused")
    return excinfo.value


@pytest.mark.parametrize("endpoint", REFUSED, ids=lambda e: e.label)
def test_check_endpoint_refuses_private_addresses(network, endpoint):
    assert "private" in refuse(endpoint.url).message
    assert not network[1].tried


@pytest.mark.parametrize("endpoint", MULTICAST, ids=lambda e: e.label)
def test_check_endpoint_refuses_multicast(network, endpoint):
    refuse(endpoint.url)


@pytest.mark.parametrize("endpoint", NAT64, ids=lambda e: e.label)
def test_check_endpoint_refuses_nat64(network, endpoint):
    refuse(endpoint.url)


@pytest.mark.parametrize("url", MALFORMED)
def test_check_endpoint_refuses_plain_http_credentials_and_other_schemes(network, url):
    refuse(url)


@pytest.mark.parametrize("endpoint", ALLOWED, ids=lambda e: e.label)
def test_check_endpoint_lets_public_addresses_through(network, endpoint):
    """The control: the same resolver and rules pass a public endpoint, so the refusals above
    are about the addresses."""
    figures.add("ssrf_addresses")
    check_endpoint(endpoint.url)


def test_the_add_form_refuses_a_base_url_resolving_to_metadata_before_connecting(world, network):
    _dns, connections = network
    client = world.client(world.victim.admin)
    form = {"name": "Sneaky", "credential_api_key": "sk-admin-ssrf-0123456789abcdef01234567",
            "setting_base_url": f"https://cloud-metadata.test:{PORT}/v1"}  # fmt: skip
    before = Integration.objects.count()
    figures.add("ssrf_addresses")
    response = client.post(reverse("integrations:add", kwargs={"ws": "victim", "provider": "openai"}), form)
    assert response.status_code == 200
    assert response.context["form"].errors.get("setting_base_url"), response.context["form"].errors
    assert Integration.objects.count() == before
    assert not connections.tried
    figures.add("ssrf_refused")


def _aws_env(monkeypatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_CONFIG_FILE", "/nonexistent"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
                        ("AWS_EC2_METADATA_DISABLED", "true"), ("AWS_MAX_ATTEMPTS", "1")):  # fmt: skip
        monkeypatch.setenv(name, value)


REBIND_FORMS = {
    "openai": {"credential_api_key": "sk-admin-rebind-0123456789abcdef01234567", "setting_base_url": "https://{host}:{port}/v1"},
    "aws_bedrock": {"credential_access_key_id": "AKIAREBINDREBIND0001", "credential_secret_access_key": "r" * 40,
                    "setting_regions": "us-east-1", "setting_endpoint_url": "https://{host}:{port}"},
}  # fmt: skip


@pytest.mark.parametrize("provider", REBIND_FORMS)
def test_a_name_rebinding_to_loopback_is_never_connected_to(world, network, monkeypatch, provider):
    """The name answers a public address the first `n` times it is asked and loopback after
    that; whichever `n`, nothing may connect to loopback (the address checked must be the one
    connected to, on every request and redirect; boto3 resolves for itself)."""
    dns, connections = network
    _aws_env(monkeypatch)
    client = world.client(world.victim.admin)
    for n in range(1, 5):
        host = f"rebind-{n}.test"
        dns.add(host, *[(PUBLIC_V4,)] * n, ("127.0.0.1",))
        form = {"name": f"Rebind {n}", **{k: v.format(host=host, port=PORT) for k, v in REBIND_FORMS[provider].items()}}
        figures.add("ssrf_addresses")
        client.post(reverse("integrations:add", kwargs={"ws": "victim", "provider": provider}), form)
    assert connections.tried, "nothing even tried to connect: the test proves nothing"
    assert not connections.non_global(), f"connected to {connections.non_global()} after checking a public answer"
