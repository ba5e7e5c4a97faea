"""The sandbox WSGI app: dispatch by path prefix, plus fault injection and a request log.

Faults answer with a status (and headers, body, a delay) or drop the connection: `drop:
"reset"` resets it before any answer, `drop: "body"` sends the answer's headers and half its
body and then closes it. Chaos (sandbox/chaos.py) injects such faults at random, from a seed.

Providers live under `/<slug>/…`; adding one is one module exposing `handle`, `error_body`
and `common_headers` (see `ProviderModule`) and one line in `PROVIDERS`. Test controls live
under `/_sandbox/…` and are plain HTTP, so a test process and the demo process are steered
the same way (sandbox.testing.SandboxClient wraps them): faults, the request log, and changes
(a provider's answer restated from then on, e.g. a model withdrawn; see sandbox.core.Changes).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sandbox.anthropic_analytics  # noqa: F401  (registers the analytics routes on `anthropic`)
from sandbox import anthropic, authress, azure_openai, fireworks, google_vertex, groq, openai, openrouter, replicate
from sandbox.chaos import Chaos, ChaosConfig
from sandbox.core import Request, Response, json_response

CONTROL_PREFIX = "/_sandbox"
DROPS = ("reset", "body")  # how a fault may cut the connection instead of answering in full
ABORT_KEY = "sandbox.abort"  # environ entry: resets the client's connection (set by our handler)
MAX_LOGGED_REQUESTS = 10_000  # the demo process runs for days; keep the log bounded


class ProviderModule(Protocol):
    def handle(self, request: Request) -> Response: ...

    def error_body(self, status: int) -> Any: ...  # the provider's error JSON for a fault

    def common_headers(self) -> dict[str, str]: ...  # headers every response of it carries


# One line per provider: the URL prefix is the slug.
PROVIDERS: dict[str, ProviderModule] = {
    "replicate": replicate,
    "authress": authress,
    "azure_openai": azure_openai,
    "openai": openai,  # a module satisfies the protocol structurally
    "openrouter": openrouter,
    "anthropic": anthropic,
    "groq": groq,
    "fireworks": fireworks,
    "google_vertex": google_vertex,
}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a fault may use any status, e.g. 529
        return "Unknown"


# ---------------------------------------------------------------- faults
@dataclass
class Fault:
    """Answer matching requests with `status` (or stall them), after letting `after` through."""

    id: int
    path_prefix: str
    status: int
    times: int = 1
    after: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # None: the provider's error JSON; str: sent raw; anything else: JSON
    delay: float | None = None
    drop: str | None = None  # "reset" or "body" (see the module docstring)
    seen: int = 0
    applied: int = 0
    chaos: str = ""  # the chaos kind that made this fault, for one request only

    @property
    def exhausted(self) -> bool:
        return self.applied >= self.times

    @property
    def passes_through(self) -> bool:
        # A pure delay fault (status 200, no body) stalls the request, then serves it normally;
        # so does a short-body fault, whose answer is then cut.
        return self.status == 200 and self.body is None


class SandboxApp:
    """The WSGI callable. All state (faults, request log) is per instance and thread-safe."""

    def __init__(self, providers: dict[str, ProviderModule] | None = None) -> None:
        self.providers = providers if providers is not None else PROVIDERS
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_fault_id = 1
        self._log: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self._chaos: Chaos | None = None

    # ------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = self._request(environ)
        drop = None
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            response = self._control(request)
        else:
            response, drop = self._serve(request)
        if drop == "reset":
            abort = environ.get(ABORT_KEY)
            if abort is not None:
                abort()  # closed with an RST once this request is done, not a polite FIN
            raise ConnectionResetError("sandbox fault: connection reset")  # wsgiref drops it silently
        reason = _reason(response.status)
        headers = {"Content-Length": str(len(response.body)), **response.headers}
        start_response(f"{response.status} {reason}", list(headers.items()))
        if drop == "body":
            # The full Content-Length is promised, half is sent, then the connection closes.
            return [response.body[: len(response.body) // 2]]
        return [response.body]

    @staticmethod
    def _request(environ: dict[str, Any]) -> Request:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        return Request(
            method=environ["REQUEST_METHOD"].upper(),
            path=environ.get("PATH_INFO") or "/",
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
        )

    def _serve(self, request: Request) -> tuple[Response, str | None]:
        """The answer, and how the connection is to be dropped (None: not at all)."""
        # Logged on arrival, completed on answer: a request stalled by a delay fault and answered
        # after a reset must not show up in the next test's log.
        entry = self._record(request)
        slug, _, rest = request.path.lstrip("/").partition("/")
        provider = self.providers.get(slug)
        fault = None
        if provider is None:
            response = json_response(
                404, {"error": {"message": f"No sandbox provider at /{slug}.", "type": "not_found"}}
            )
        else:
            fault = self._match_fault(request.path)
            entry["faulted"] = fault is not None
            if fault is not None and fault.chaos:
                entry["chaos"] = fault.chaos
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.drop == "reset":
                response = Response(0)
            elif fault is not None and not fault.passes_through:
                response = self._fault_response(provider, fault)
            else:
                response = provider.handle(
                    Request(request.method, "/" + rest, request.query, request.headers, request.body)
                )
        drop = fault.drop if fault is not None else None
        entry["status"] = None if drop == "reset" else response.status
        if drop:
            entry["dropped"] = drop
        return response, drop

    # ------------------------------------------------------------ faults
    def _match_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not path.startswith(fault.path_prefix):
                    continue
                if fault.seen < fault.after:
                    fault.seen += 1
                    continue
                fault.applied += 1
                return fault
            spec = self._chaos.draw(path) if self._chaos is not None else None
        if spec is None:
            return None
        return Fault(
            id=0,
            path_prefix=spec["path_prefix"],
            status=spec["status"],
            headers=spec.get("headers") or {},
            delay=spec.get("delay"),
            drop=spec.get("drop"),
            applied=1,
            chaos=spec["chaos"],
        )

    @staticmethod
    def _fault_response(provider: ProviderModule, fault: Fault) -> Response:
        headers = {**provider.common_headers(), **fault.headers}
        if fault.body is None:
            return json_response(fault.status, provider.error_body(fault.status), headers)
        if isinstance(fault.body, str):
            # Raw text, e.g. an HTML error page or truncated JSON, whatever the status.
            return Response(fault.status, fault.body.encode(), {"Content-Type": "application/json", **headers})
        return json_response(fault.status, fault.body, headers)

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        allowed = {"path_prefix", "status", "times", "after", "headers", "body", "delay", "drop"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if not isinstance(spec.get("path_prefix"), str) or not spec["path_prefix"].startswith("/"):
            raise ValueError("path_prefix must be a path starting with /")
        status = spec.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        if spec.get("drop") is not None and spec["drop"] not in DROPS:
            raise ValueError(f"drop must be one of {list(DROPS)} or null")
        with self._lock:
            fault = Fault(
                id=self._next_fault_id,
                path_prefix=spec["path_prefix"],
                status=status,
                times=int(spec.get("times", 1)),
                after=int(spec.get("after", 0)),
                headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
                body=spec.get("body"),
                delay=float(spec["delay"]) if spec.get("delay") is not None else None,
                drop=spec.get("drop"),
            )
            self._next_fault_id += 1
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------ chaos
    def start_chaos(self, spec: dict[str, Any]) -> dict[str, Any]:
        chaos = Chaos(ChaosConfig.from_spec(spec))
        with self._lock:
            self._chaos = chaos
            return chaos.stats()

    def chaos_stats(self) -> dict[str, Any] | None:
        with self._lock:
            return self._chaos.stats() if self._chaos is not None else None

    def stop_chaos(self) -> dict[str, Any] | None:
        with self._lock:
            chaos, self._chaos = self._chaos, None
            return chaos.stats() if chaos is not None else None

    # ------------------------------------------------------------ restatements
    def add_change(self, spec: dict[str, Any]) -> None:
        """Restate a provider's answer from now on: {"provider", "change", "args"}, where change
        is one of the module's CHANGES (e.g. openai withdraw_model) and args its keyword
        arguments (strings)."""
        unknown = set(spec) - {"provider", "change", "args"}
        if unknown:
            raise ValueError(f"unknown change fields: {sorted(unknown)}")
        module = self.providers.get(str(spec.get("provider")))
        known = getattr(module, "CHANGES", {})
        change = known.get(str(spec.get("change")))
        if change is None:
            raise ValueError(f"no change {spec.get('change')!r} for {spec.get('provider')!r} (known: {sorted(known)})")
        args = spec.get("args") or {}
        if not isinstance(args, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
            raise ValueError("args must map argument names to strings")
        change(**args)

    def clear_changes(self) -> None:
        """Undo every provider's restatements (sandbox.core.Changes): the deterministic data again."""
        for provider in self.providers.values():
            clear = getattr(provider, "clear_changes", None)
            if clear is not None:
                clear()

    # ------------------------------------------------------------ request log
    def _record(self, request: Request) -> dict[str, Any]:
        # Never the Authorization header, nor any other header: only what a test asserts on.
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "status": None,  # filled in when answered
            "faulted": False,
            "time": time.time(),
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._log]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # ------------------------------------------------------------ control endpoints
    def _create(self, what: str, spec: dict[str, Any]) -> dict[str, Any]:
        """What POST /_sandbox/faults, /chaos or /changes makes of the posted `spec`: the 201
        answer (a bad spec raises ValueError or TypeError)."""
        if what == "/faults":
            return {"id": self.add_fault(spec).id}
        if what == "/chaos":
            return {"chaos": self.start_chaos(spec)}
        self.add_change(spec)
        return {"changed": True}

    def _control(self, request: Request) -> Response:
        route = (request.method, request.path[len(CONTROL_PREFIX) :].rstrip("/") or "/")
        if route == ("GET", "/"):
            return json_response(200, {"providers": sorted(self.providers)})
        if request.method == "POST" and route[1] in ("/faults", "/chaos", "/changes"):
            try:
                spec = json.loads(request.body or b"{}")
                created = self._create(route[1], spec if isinstance(spec, dict) else {})
            except (ValueError, TypeError) as exc:
                return json_response(400, {"error": str(exc)})
            return json_response(201, created)
        if route == ("GET", "/faults"):
            with self._lock:
                return json_response(200, {"faults": [asdict(f) for f in self._faults]})
        if route == ("DELETE", "/faults"):
            self.clear_faults()
            return json_response(200, {"faults": []})
        if route == ("GET", "/requests"):
            return json_response(200, {"requests": self.requests()})
        if route == ("DELETE", "/requests"):
            self.clear_requests()
            return json_response(200, {"requests": []})
        if route == ("GET", "/chaos"):
            return json_response(200, {"chaos": self.chaos_stats()})
        if route == ("DELETE", "/chaos"):
            return json_response(200, {"chaos": self.stop_chaos()})
        if route == ("POST", "/reset"):
            self.stop_chaos()
            self.clear_faults()
            self.clear_requests()
            self.clear_changes()
            return json_response(200, {"reset": True})
        return json_response(404, {"error": f"no control endpoint {request.method} {request.path}"})


# ---------------------------------------------------------------- serving
class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stalled (delay-fault) request must not block shutdown
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aborted: set[socket.socket] = set()
        self._aborted_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out on a delay fault closes its socket before we answer: expected.
        pass

    def abort(self, connection: socket.socket) -> None:
        """Reset `connection` when its request is done: SO_LINGER 0 and no shutdown first."""
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._aborted_lock:
            self._aborted.add(connection)

    def shutdown_request(self, request: Any) -> None:
        with self._aborted_lock:
            aborted = request in self._aborted
            self._aborted.discard(request)
        if aborted:
            self.close_request(request)  # a shutdown(SHUT_WR) would send a FIN before the RST
        else:
            super().shutdown_request(request)


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        server = self.server
        if isinstance(server, ThreadingWSGIServer):
            environ[ABORT_KEY] = lambda: server.abort(self.connection)
        return environ


class QuietHandler(_Handler):
    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass


class VerboseHandler(_Handler):
    pass


def serve(
    host: str = "127.0.0.1", port: int = 0, *, app: SandboxApp | None = None, verbose: bool = False
) -> WSGIServer:
    """A threading WSGI server for the sandbox (not started: call serve_forever)."""
    handler = VerboseHandler if verbose else QuietHandler
    return make_server(host, port, app or SandboxApp(), server_class=ThreadingWSGIServer, handler_class=handler)
