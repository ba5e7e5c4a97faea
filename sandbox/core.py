"""The tiny request/response types shared by the sandbox app and its provider modules."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # below the provider's prefix, e.g. "/v1/organization/costs"
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def arg(self, name: str) -> str | None:
        """A single-valued query parameter (the last one wins, as in most frameworks)."""
        values = self.query.get(name)
        return values[-1] if values else None

    def args(self, name: str) -> list[str]:
        """A repeated parameter, accepting both `name=a&name=b` and `name[]=a&name[]=b`."""
        return [*self.query.get(name, []), *self.query.get(f"{name}[]", [])]


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})
