"""A network the test controls: a resolver whose answers it writes, and a record of every
connection the code under test tries. Nothing here ever reaches an outside address: names are
answered from a table (IP literals are parsed locally, never looked up), and connections to the
port under test are recorded and refused before any packet leaves.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

_REAL_GETADDRINFO = socket.getaddrinfo
_REAL_CONNECT = socket.socket.connect


@dataclass
class FakeDNS:
    """name -> answers. A name with several answer lists gives them in turn (the last one for
    ever after): what a rebinding attacker's DNS server with a zero TTL does."""

    answers: dict[str, list[Sequence[str]]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def add(self, name: str, *answers: Sequence[str]) -> None:
        self.answers[name.lower().rstrip(".")] = list(answers)

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # socket's signature
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        try:  # an IP literal (also 2130706433, 0x7f000001, 0177.0.0.1, 127.1): parsed, never sent to DNS
            return _REAL_GETADDRINFO(host_text, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        name = host_text.lower().rstrip(".")
        self.asked.append(name)
        if name not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        turns = self.answers[name]
        addresses = turns.pop(0) if len(turns) > 1 else turns[0]
        port_number = int(port or 0) if not isinstance(port, str) or port.isdigit() else 443
        results = []
        for address in addresses:
            if ipaddress.ip_address(address).version == 6:
                results.append(
                    (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number, 0, 0))
                )
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number)))
        return [r for r in results if family in (0, socket.AF_UNSPEC, r[0])]


@dataclass
class Connections:
    """Every connect() to `port`, recorded and refused; other ports (the test database, a
    broker) are left alone."""

    port: int
    tried: list[tuple[str, int]] = field(default_factory=list)

    def connect(self, sock: socket.socket, address) -> None:  # a socket address
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == self.port:
            self.tried.append((str(address[0]), int(address[1])))
            raise ConnectionRefusedError(111, "Connection refused (by the test's network)")
        return _REAL_CONNECT(sock, address)

    def non_global(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port in self.tried if not ipaddress.ip_address(host.split("%")[0]).is_global]


def controlled_network(monkeypatch, port: int) -> tuple[FakeDNS, Connections]:  # pytest's monkeypatch
    """Install both for the rest of the test (monkeypatch undoes them at its end)."""
    dns, connections = FakeDNS(), Connections(port)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connections.connect(sock, address))
    return dns, connections
