"""Drive the sandbox from tests: start it in a thread, inject faults, read the request log.

`SandboxClient` talks to any running sandbox over its `/_sandbox/…` control endpoints (so a
demo started with `python -m sandbox` is steered exactly like the test server);
`SandboxServer` is a client that also runs the server, on 127.0.0.1 and a free port.

    with SandboxServer() as sandbox:
        sandbox.fault("/openai/v1/organization/costs", 429, headers={"Retry-After": "1"})
        ...
        assert len(sandbox.requests("/openai/v1/organization/usage")) == 2
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sandbox import openai
from sandbox.app import SandboxApp, serve


def cursor_pages(read: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a `has_more` / `next_page` listing (the OpenAI and Anthropic admin APIs):
    `read(params)` answers one page's JSON; the cursor goes back as the `page` parameter."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = read({**params, **({"page": cursor} if cursor else {})})
        pages.append(body)
        if not body["has_more"]:
            return pages
        cursor = body["next_page"]


class SandboxClient:
    OPENAI_ADMIN_KEY = openai.ADMIN_KEY
    OPENAI_PROJECT_KEY = openai.PROJECT_KEY
    OPENAI_REVOKED_KEY = openai.REVOKED_ADMIN_KEY
    OPENAI_ORGANIZATION_ID = openai.ORGANIZATION_ID
    OPENAI_PREFIX = "/openai/v1"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    @property
    def openai_base_url(self) -> str:
        return self.url + self.OPENAI_PREFIX

    # ------------------------------------------------------------ controls
    def fault(
        self,
        path_prefix: str,
        status: int,
        *,
        times: int = 1,
        after: int = 0,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float | None = None,
        drop: str | None = None,
    ) -> int:
        """Answer the next `times` requests whose path starts with `path_prefix` (after letting
        `after` of them through) with `status`, `headers` and `body` (None: the provider's error
        JSON; a str is sent raw, e.g. to fake malformed JSON). With `delay`, stall that long
        first; a delay with status 200 and no body then serves the request normally.
        With `drop="reset"` the connection is reset instead of answered; with `drop="body"`
        the answer (the real one for status 200 and no body) is cut after half its body.
        Returns the fault's id."""
        spec = {
            "path_prefix": path_prefix,
            "status": status,
            "times": times,
            "after": after,
            "headers": headers or {},
            "body": body,
            "delay": delay,
            "drop": drop,
        }
        return int(self._call("POST", "/_sandbox/faults", spec)["id"])

    def chaos(
        self,
        path_prefix: str,
        rate: float,
        *,
        seed: int = 0,
        kinds: list[str] | None = None,
        delay: float = 1.0,
        retry_after: list[str | None] | None = None,
    ) -> dict[str, Any]:
        """Inject random transport faults into `rate` of the requests under `path_prefix`,
        reproducibly from `seed` (see sandbox/chaos.py for the kinds). Replaces any chaos
        already on; explicit faults still come first. Returns the (empty) counts."""
        spec: dict[str, Any] = {"path_prefix": path_prefix, "rate": rate, "seed": seed, "delay": delay}
        if kinds is not None:
            spec["kinds"] = kinds
        if retry_after is not None:
            spec["retry_after"] = retry_after
        return self._call("POST", "/_sandbox/chaos", spec)["chaos"]

    def chaos_stats(self) -> dict[str, Any] | None:
        """Requests seen and faults injected per kind since chaos was turned on (None: off)."""
        return self._call("GET", "/_sandbox/chaos")["chaos"]

    def stop_chaos(self) -> dict[str, Any] | None:
        """Turn chaos off; returns its final counts."""
        return self._call("DELETE", "/_sandbox/chaos")["chaos"]

    def change(self, provider: str, change: str, **args: str) -> None:
        """Restate `provider`'s answer from now on with one of its module's CHANGES, e.g.
        change("openai", "withdraw_model", model="o3-mini-2025-01-31"); reset() undoes it.
        Works against any running sandbox (the demo's too), not only one in this process."""
        self._call("POST", "/_sandbox/changes", {"provider": provider, "change": change, "args": args})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def requests(self, path_prefix: str = "") -> list[dict[str, Any]]:
        """Requests received since the last reset, oldest first: dicts with method, path,
        query (name -> list of values), status, faulted, time. Headers are never logged."""
        entries = self._call("GET", "/_sandbox/requests")["requests"]
        return [e for e in entries if e["path"].startswith(path_prefix)]

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sandbox/requests")

    def reset(self) -> None:
        """Clear faults, chaos, the request log and every provider's restatements (changes)."""
        self._call("POST", "/_sandbox/reset")

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # our own local server
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"sandbox control {method} {path} failed: {exc.code} {exc.read()[:300]!r}") from None


class SandboxServer(SandboxClient):
    """A sandbox served from a background thread for the duration of a `with` block."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__("")
        self.host = host
        self.port = port
        self.app = SandboxApp()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        self._server = serve(self.host, self.port, app=self.app)
        self.port = self._server.server_port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="sandbox"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
