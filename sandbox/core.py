"""The tiny request/response types shared by the sandbox app and its provider modules, and the
helpers every fake derives its data with (a stable digest, Unix timestamps)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

R = TypeVar("R")


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


def digest(*parts: object) -> bytes:
    """A stable pseudo-random digest of `parts`: the fakes derive their data from it, so the
    same hour always holds the same usage."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def epoch(moment: datetime) -> int:
    """Whole seconds since 1970 (the Unix timestamps the provider APIs take and answer)."""
    return int(moment.timestamp())


def offset_time(raw: str, error: Callable[[str], Exception], *, invalid: str, no_offset: str) -> datetime:
    """`raw` read as an RFC 3339 date-time, which must carry its UTC offset: else `error(invalid)`
    is raised, or `error(no_offset)` for a date-time without one (each fake words its own)."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise error(invalid) from None
    if moment.tzinfo is None:
        raise error(no_offset)
    return moment


def from_epoch(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Changes(Generic[R]):
    """Edits to a fake provider's answer from now on, as a provider restates what it reported
    (a SKU renamed, a cost withdrawn, a model that no longer reports usage). Each edit maps a
    row to its new self, or to None to withdraw it. A module applies them in its truth
    functions, so responses and the truth tests compare against stay one. Thread-safe; the
    sandbox's reset clears them (a module exposes `clear_changes`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._edits: list[Callable[[R], R | None]] = []

    def add(self, edit: Callable[[R], R | None]) -> None:
        with self._lock:
            self._edits.append(edit)

    def apply(self, rows: Iterable[R]) -> list[R]:
        with self._lock:
            edits = list(self._edits)
        if not edits:
            return list(rows)
        kept: list[R] = []
        for row in rows:
            edited: R | None = row
            for edit in edits:
                if edited is None:
                    break
                edited = edit(edited)
            if edited is not None:
                kept.append(edited)
        return kept

    def clear(self) -> None:
        with self._lock:
            self._edits.clear()
