"""Where outbound connections may go: resolve a host once, vet every address, connect to a vetted one.

A URL check that resolves a name and then lets the HTTP library resolve it again to connect can
be beaten by DNS rebinding: the name answers a public address to the check and 127.0.0.1 (or
169.254.169.254) to the connect. So the check lives where the socket is made. The urllib3
connection classes here resolve their host through `resolve` (one lookup per new connection),
refuse the connection unless every address is acceptable, and connect to one of exactly those
addresses. Nothing else changes: the pool, the TLS server name (SNI), the certificate's host
name check and the Host header all keep the host name of the URL, as with any other connection;
only the TCP connect goes to the vetted address instead of a second lookup. A keep-alive
connection that is reused was vetted when it was made.

`PinnedAdapter` (a requests transport adapter) and `pin_pool_manager` (any urllib3 PoolManager,
e.g. botocore's) install these classes; integrations.http mounts the adapter on every HttpClient
session, so every request and every redirect hop of the seam is covered.

Acceptable means public: not loopback, private, link-local, shared (100.64/10), reserved,
multicast, unspecified, documentation, or a cloud metadata address; and an IPv6 address that
embeds an IPv4 address (IPv4-mapped ::ffff:0:0/96, 6to4 2002::/16, the NAT64 well-known prefix
64:ff9b::/96) is judged by the IPv4 address it leads to, so `64:ff9b::a9fe:a9fe` (169.254.169.254
through a NAT64 gateway) is refused while a DNS64 answer for a public IPv4 host still works on an
IPv6-only server. The local-use NAT64 prefix 64:ff9b:1::/48 and the deprecated IPv4-compatible
form (::a.b.c.d) are refused outright. With DOOW_ALLOW_PRIVATE_ENDPOINTS (development, tests,
the sandbox) addresses are resolved and pinned the same way but not vetted.

Limits: when an HTTP(S) proxy from the environment applies, the proxy connects on its own; the
host is then vetted before the request is handed to it, but the pin is the proxy's business.
A NAT64 gateway with an operator-chosen (network-specific) prefix cannot be recognised.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from integrations.providers.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack…
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the low 32 bits are the IPv4 address
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: embedding varies, never public
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), never routed


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, without duplicates.

    The one DNS lookup of the egress path: tests replace it (or socket.getaddrinfo) to play a
    resolver they control. Raises socket.gaierror when the name does not resolve.
    """
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]  # a literal needs no lookup
    except ValueError:
        pass
    addresses: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM):
        address = ipaddress.ip_address(_with_scope(sockaddr))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    return addresses


def _with_scope(sockaddr: tuple[Any, ...]) -> str:
    # An IPv6 sockaddr is (address, port, flowinfo, scope_id); keep a link-local scope to connect.
    text = str(sockaddr[0])
    if len(sockaddr) == 4 and sockaddr[3] and "%" not in text:
        return f"{text}%{sockaddr[3]}"
    return text


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, for the forms that embed one and are routed."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def is_forbidden(address: IPAddress) -> bool:
    """True unless `address` is an ordinary public unicast address."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return is_forbidden(embedded)
    if isinstance(address, ipaddress.IPv6Address) and (address in NAT64_LOCAL_USE or address in IPV4_COMPATIBLE):
        return True
    return (
        address in METADATA_ADDRESSES
        or not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def vet(host: str, addresses: list[IPAddress]) -> list[IPAddress]:
    """`addresses` if every one of them is acceptable, else ConfigurationError. All of them, not
    one: a name answering one public and one private address is refused, whichever is used."""
    if any(is_forbidden(address) for address in addresses):
        raise ConfigurationError(
            f"{host} resolves to a private, loopback, link-local, reserved or metadata address, which is not allowed.",
            hint="Use the provider's public API host, or set DOOW_ALLOW_PRIVATE_ENDPOINTS=true for local development.",
        )
    return addresses


# ---------------------------------------------------------------- urllib3
class PinnedConnectionMixin:
    """Mixed into a urllib3 HTTP(S)Connection: `_new_conn` resolves once, vets, and connects to
    a vetted address. Everything name-based (SNI, certificate check, Host) keeps `self.host`."""

    allow_private: ClassVar[bool] = False
    pinned_address: IPAddress | None = None  # the address this connection was made to

    def _new_conn(self) -> socket.socket:
        name: str = self._dns_host  # type: ignore[has-type]  # set by urllib3's HTTPConnection
        port: int = self.port  # type: ignore[attr-defined]
        try:
            addresses = resolve(name, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[attr-defined,arg-type]
        if not self.allow_private:
            vet(self.host, addresses)  # type: ignore[attr-defined]
        error: Exception | None = None
        for address in addresses:
            # urllib3 connects to `_dns_host`; pointed at the vetted address for this one call,
            # so its getaddrinfo sees a literal and makes no second lookup.
            self._dns_host = str(address)
            try:
                sock = super()._new_conn()  # type: ignore[misc]
            except (NewConnectionError, ConnectTimeoutError) as exc:
                error = exc  # like urllib3's own loop: try the next address
                continue
            finally:
                self._dns_host = name
            self.pinned_address = address
            return sock
        assert error is not None
        raise error


@functools.cache
def pinned_class(base: type, allow_private: bool) -> type:
    """`base` (a urllib3 connection pool or connection class) made to connect only to vetted
    addresses. Cached: one class per base and mode."""
    if issubclass(base, HTTPConnectionPool):
        connection = pinned_class(base.ConnectionCls, allow_private)
        return type(f"Pinned{base.__name__}", (base,), {"ConnectionCls": connection, "__module__": __name__})
    if not issubclass(base, HTTPConnection):
        raise TypeError(f"{base!r} is not a urllib3 connection or pool class")
    attrs = {"allow_private": allow_private, "__module__": __name__}
    return type(f"Pinned{base.__name__}", (PinnedConnectionMixin, base), attrs)


def pin_pool_manager(manager: PoolManager, *, allow_private: bool) -> None:
    """Make every pool `manager` creates from now on connect only to vetted addresses.

    Works on any PoolManager whose pool classes derive from urllib3's (requests', botocore's).
    Pools it already holds are closed, so no connection made before is reused.
    """
    manager.pool_classes_by_scheme = {
        scheme: pinned_class(pool, allow_private) for scheme, pool in manager.pool_classes_by_scheme.items()
    }
    manager.clear()


class PinnedAdapter(HTTPAdapter):
    """requests' transport adapter with pinned connections (see the module docstring)."""

    __attrs__ = [*HTTPAdapter.__attrs__, "allow_private"]

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        self.allow_private = allow_private  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        pin_pool_manager(self.poolmanager, allow_private=self.allow_private)

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> Any:  # fmt: skip
        if not self.allow_private and select_proxy(request.url, proxies):
            # A proxy connects on its own, so at least the name is vetted before it is handed over.
            parts = urlsplit(request.url)
            host = parts.hostname or ""
            try:
                addresses = resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
            except socket.gaierror as exc:
                raise requests.ConnectionError(f"Could not resolve {host}.", request=request) from exc
            vet(host, addresses)
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def pinned_session(*, allow_private: bool) -> requests.Session:
    """A requests Session whose http:// and https:// requests go through a PinnedAdapter."""
    session = requests.Session()
    mount(session, allow_private=allow_private)
    return session


def mount(session: requests.Session, *, allow_private: bool) -> None:
    adapter = PinnedAdapter(allow_private=allow_private)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
