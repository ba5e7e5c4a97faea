"""A network the test controls: a resolver, the connect layer, and a local TLS server.

Nothing here touches an outside address. `FakeDns` replaces socket.getaddrinfo (the lookup the
seam, urllib3 and botocore all end in): names in its table answer what the test says, in turn,
so a name can answer a public address first and 127.0.0.1 next (DNS rebinding); an IP literal
is answered as itself; any other name does not resolve. `ConnectRecorder` replaces urllib3's
create_connection (where every connection of requests and botocore is made): it resolves the
way urllib3 does, records the address it was asked to connect to, and refuses, unless the test
routes that address to a local server. `TlsServer` is an https server on 127.0.0.1 with a
certificate for chosen host names, signed by a CA made for the test; it records the TLS server
name (SNI) and the requests it got.

    dns = FakeDns({"api.example.test": [["93.184.215.14"], ["127.0.0.1"]]}).install(monkeypatch)
    wire = ConnectRecorder().install(monkeypatch)
    ...
    assert wire.addresses == ["93.184.215.14"]

The standing faults-and-attacks suite reuses these for its SSRF matrix.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest
import urllib3.util.connection
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A public address for a name to answer with. It is never contacted: tests that use it refuse
# (or reroute to a local server) every connection through ConnectRecorder.
PUBLIC = "93.184.215.14"
PUBLIC_2 = "93.184.215.15"


# ---------------------------------------------------------------- DNS
class FakeDns:
    """socket.getaddrinfo for names the test chose; each name's answers are served in turn and
    the last one repeats. `lookups` lists every name looked up, in order."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str]]]) -> None:
        self.answers = {name.lower(): [list(a) for a in seq] for name, seq in answers.items()}
        self.served: dict[str, int] = {}
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Self:
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        return self

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> list:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            pass
        else:  # a literal: the system answers without any lookup
            return self._real(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        key = name.lower().rstrip(".")
        self.lookups.append(key)
        if key not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, f"FakeDns has no answer for {name}")
        seq = self.answers[key]
        turn = self.served.get(key, 0)
        self.served[key] = turn + 1
        port_number = int(port or 0)
        infos = []
        for address in seq[min(turn, len(seq) - 1)]:
            ip = ipaddress.ip_address(address)
            if ip.version == 6:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port_number, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port_number)))
        if family in (socket.AF_INET, socket.AF_INET6):
            infos = [info for info in infos if info[0] == family]
        return infos


# ---------------------------------------------------------------- the connect layer
class ConnectRecorder:
    """urllib3's create_connection, recorded: each attempt's resolved (address, port) is kept in
    `attempts`; an address in `routes` is connected to the local (host, port) it maps to, every
    other one is refused."""

    def __init__(self, routes: dict[str, tuple[str, int]] | None = None) -> None:
        self.routes = dict(routes or {})
        self.attempts: list[tuple[str, int]] = []
        self._real = urllib3.util.connection.create_connection

    @property
    def addresses(self) -> list[str]:
        return [address for address, _ in self.attempts]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Self:
        monkeypatch.setattr(urllib3.util.connection, "create_connection", self.create_connection)
        return self

    def create_connection(self, address: tuple[str, int], timeout: Any = None, source_address: Any = None,
                          socket_options: Any = None) -> socket.socket:  # fmt: skip
        host, port = address
        # Resolved as urllib3 does, so a caller that hands over a name gets whatever the
        # resolver says now; that is the address recorded.
        _, _, _, _, sockaddr = socket.getaddrinfo(host.strip("[]"), port, 0, socket.SOCK_STREAM)[0]
        resolved = str(sockaddr[0])
        self.attempts.append((resolved, int(port)))
        if resolved in self.routes:
            return self._real(self.routes[resolved], timeout, source_address, socket_options)
        raise ConnectionRefusedError(f"test network: connection to {resolved}:{port} refused")


# ---------------------------------------------------------------- TLS
@dataclass
class TlsIdentity:
    ca_path: Path  # the CA bundle a client trusts
    cert_path: Path
    key_path: Path


def make_tls_identity(directory: Path, names: Sequence[str]) -> TlsIdentity:
    """A CA and a server certificate for `names` (DNS names only, no IP). Valid for decades:
    OpenSSL checks them against the real clock, not the test's pinned one."""
    not_before = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    not_after = dt.datetime(2099, 12, 31, tzinfo=dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Doow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    identity = TlsIdentity(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    identity.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    identity.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    identity.key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return identity


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class TlsServer:
    """An https server on 127.0.0.1 presenting `identity`'s certificate. `answer(request)` gives
    each response; `server_names` are the SNI names clients sent, `requests` what they asked."""

    def __init__(self, identity: TlsIdentity, answer: Callable[[Seen], Answer] | None = None) -> None:
        self.answer = answer or (lambda seen: Answer())
        self.server_names: list[str | None] = []
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length) if length else b"")  # fmt: skip
                server.requests.append(seen)
                reply = server.answer(seen)
                self.send_response(reply.status)
                for name, value in {**reply.headers, "Content-Length": str(len(reply.body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(identity.cert_path, identity.key_path)
        context.sni_callback = lambda sslobj, name, ctx: self.server_names.append(name)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
