"""Random transport faults at a fixed rate, reproducible from a seed.

While chaos is on, each provider request under `path_prefix` that no explicit fault claimed
draws from a seeded random generator: with probability `rate` it gets one fault of a kind
picked from `kinds`, described with the fields of an explicit fault (the `/_sandbox/faults`
vocabulary), so it behaves exactly like one:

| kind | what the client sees |
| --- | --- |
| `reset` | the connection is reset before any answer (`drop: reset`) |
| `short_body` | the real answer's headers, then half its body, then the connection closes (`drop: body`) |
| `server_error` | 500, 502 or 503 with the provider's error body |
| `rate_limit` | 429 with the provider's error body and a Retry-After picked from `retry_after` (None: no header) |
| `slow` | the real answer, after `delay` seconds (make it longer than the client's timeout) |

Draws happen in arrival order under the app's lock, so one client making the same requests
one after another meets the same faults on every run. `stats()` counts requests seen and faults
injected per kind. Turned on with `POST /_sandbox/chaos` (SandboxClient.chaos), read with
`GET /_sandbox/chaos`, turned off with `DELETE /_sandbox/chaos` or `POST /_sandbox/reset`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

KINDS: tuple[str, ...] = ("reset", "short_body", "server_error", "rate_limit", "slow")


@dataclass(frozen=True)
class ChaosConfig:
    path_prefix: str
    rate: float
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    delay: float = 1.0
    retry_after: tuple[str | None, ...] = ("0", "1", None)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ChaosConfig:
        allowed = {"path_prefix", "rate", "seed", "kinds", "delay", "retry_after"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown chaos fields: {sorted(unknown)}")
        prefix = spec.get("path_prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError("path_prefix must be a path starting with /")
        rate = spec.get("rate")
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError("rate must be a number from 0 to 1")
        kinds = tuple(spec.get("kinds") or KINDS)
        if not kinds or set(kinds) - set(KINDS):
            raise ValueError(f"kinds must be some of {list(KINDS)}")
        retry_after = tuple(spec["retry_after"]) if spec.get("retry_after") is not None else cls.retry_after
        if not retry_after or any(v is not None and not isinstance(v, str) for v in retry_after):
            raise ValueError("retry_after must be a list of header values (strings) or nulls")
        delay = float(spec.get("delay", 1.0))
        if not 0 < delay <= 60:
            raise ValueError("delay must be between 0 and 60 seconds")
        return cls(prefix, float(rate), int(spec.get("seed", 0)), kinds, delay, retry_after)


class Chaos:
    """The generator and the counts of one chaos session. Not thread-safe: the app calls `draw`
    under its own lock."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self.requests = 0
        self.injected: Counter[str] = Counter()

    def draw(self, path: str) -> dict[str, Any] | None:
        """A fault spec for this request, or None to serve it normally."""
        if not path.startswith(self.config.path_prefix):
            return None
        self.requests += 1
        if self._random.random() >= self.config.rate:
            return None
        kind = self._random.choice(self.config.kinds)
        self.injected[kind] += 1
        spec: dict[str, Any] = {"path_prefix": path, "status": 200, "chaos": kind}
        if kind == "reset":
            spec["drop"] = "reset"
        elif kind == "short_body":
            spec["drop"] = "body"
        elif kind == "server_error":
            spec["status"] = self._random.choice((500, 502, 503))
        elif kind == "rate_limit":
            spec["status"] = 429
            retry_after = self._random.choice(self.config.retry_after)
            spec["headers"] = {"Retry-After": retry_after} if retry_after is not None else {}
        else:  # slow
            spec["delay"] = self.config.delay
        return spec

    def stats(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "requests": self.requests,
            "injected": {kind: self.injected.get(kind, 0) for kind in self.config.kinds},
            "faults": sum(self.injected.values()),
        }
