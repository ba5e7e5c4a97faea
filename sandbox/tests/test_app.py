"""The sandbox app itself: fault injection, the request log, control endpoints, the CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox.openai import ADMIN_KEY, ORGANIZATION_ID
from sandbox.testing import SandboxClient, SandboxServer

PROJECTS = "/openai/v1/organization/projects"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def get(sandbox, path: str = PROJECTS, **kwargs) -> requests.Response:
    return requests.get(sandbox.url + path, headers=AUTH, timeout=5, **kwargs)


def test_fault_applies_times_after_skipping(sandbox) -> None:
    sandbox.fault("/openai/v1/organization/", 503, times=2, after=1)
    assert [get(sandbox).status_code for _ in range(5)] == [200, 503, 503, 200, 200]


def test_fault_matches_by_path_prefix_only(sandbox) -> None:
    sandbox.fault("/openai/v1/organization/costs", 500)
    assert get(sandbox).status_code == 200
    assert get(sandbox, "/openai/v1/organization/costs", params={"start_time": 0, "end_time": 86400}).status_code == 500


def test_fault_default_body_is_the_providers_error_with_its_headers(sandbox) -> None:
    sandbox.fault(PROJECTS, 429, headers={"Retry-After": "3"})
    response = get(sandbox)
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["openai-organization"] == ORGANIZATION_ID and response.headers["x-request-id"]


def test_fault_raw_body_even_with_200(sandbox) -> None:
    sandbox.fault(PROJECTS, 200, body="<html>oops")
    response = get(sandbox)
    assert response.status_code == 200 and response.text == "<html>oops"
    with pytest.raises(ValueError):
        response.json()


def test_fault_json_body(sandbox) -> None:
    sandbox.fault(PROJECTS, 200, body={"object": "list", "data": "nope"})
    assert get(sandbox).json() == {"object": "list", "data": "nope"}


def test_delay_fault_stalls_then_serves(sandbox) -> None:
    sandbox.fault(PROJECTS, 200, delay=3.0)
    with pytest.raises(requests.Timeout):
        requests.get(sandbox.url + PROJECTS, headers=AUTH, timeout=0.1)
    started = time.monotonic()
    assert get(sandbox).status_code == 200  # the fault was used up by the stalled request
    # Served while the stalled one still sleeps (a margin wide enough for a loaded CI machine).
    assert time.monotonic() - started < 2.5


def test_reset_clears_faults_and_log(sandbox) -> None:
    sandbox.fault(PROJECTS, 500, times=10)
    get(sandbox)
    sandbox.reset()
    assert sandbox.requests() == []
    assert get(sandbox).status_code == 200


def test_request_log_has_query_and_status_but_never_the_key(sandbox) -> None:
    get(sandbox, params={"limit": 2, "group_by": ["a", "b"]})
    (entry,) = sandbox.requests()
    assert entry["method"] == "GET" and entry["path"] == PROJECTS
    assert entry["query"] == {"limit": ["2"], "group_by": ["a", "b"]}
    assert entry["status"] == 200 and entry["faulted"] is False
    raw = requests.get(sandbox.url + "/_sandbox/requests", timeout=5).text
    assert ADMIN_KEY not in raw and "authorization" not in raw.lower()


def test_request_log_filters_by_prefix(sandbox) -> None:
    get(sandbox)
    get(sandbox, "/openai/v1/organization/costs", params={"start_time": 0, "end_time": 86400})
    assert [e["path"] for e in sandbox.requests("/openai/v1/organization/costs")] == ["/openai/v1/organization/costs"]


def test_unknown_provider_is_404(sandbox) -> None:
    assert get(sandbox, "/nonesuch/v1/x").status_code == 404


def test_bad_fault_spec_is_refused(sandbox) -> None:
    with pytest.raises(RuntimeError, match="path_prefix"):
        sandbox.fault("no-slash", 500)
    with pytest.raises(RuntimeError, match="status"):
        sandbox.fault("/openai", 99)


def test_control_endpoints_list_providers_and_faults(sandbox) -> None:
    from sandbox.app import PROVIDERS

    assert requests.get(sandbox.url + "/_sandbox", timeout=5).json() == {"providers": sorted(PROVIDERS)}
    fault_id = sandbox.fault(PROJECTS, 500, times=3)
    (fault,) = requests.get(sandbox.url + "/_sandbox/faults", timeout=5).json()["faults"]
    assert fault["id"] == fault_id and fault["times"] == 3
    sandbox.clear_faults()
    assert requests.get(sandbox.url + "/_sandbox/faults", timeout=5).json() == {"faults": []}


def test_a_client_steers_a_server_it_did_not_start() -> None:
    with SandboxServer() as server:
        client = SandboxClient(server.url + "/")
        assert client.openai_base_url == server.url + "/openai/v1"
        client.fault(PROJECTS, 418)
        assert get(server).status_code == 418
        assert [e["status"] for e in client.requests()] == [418]


def test_python_dash_m_sandbox_serves_and_prints_its_url() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Sandbox serving on http://127.0.0.1:")
        url = line.split()[-1]
        body = requests.get(url + "/_sandbox", timeout=5).json()
        assert "openai" in body["providers"]
        assert json.loads(requests.get(url + PROJECTS, headers=AUTH, timeout=5).text)["object"] == "list"
    finally:
        process.terminate()
        process.wait(timeout=5)


# ---------------------------------------------------------------- dropped connections
def test_drop_reset_resets_the_connection_without_answering(sandbox) -> None:
    sandbox.fault(PROJECTS, 200, drop="reset")
    with pytest.raises(requests.ConnectionError):
        get(sandbox)
    assert get(sandbox).status_code == 200  # used up
    first, second = sandbox.requests()
    assert (first["faulted"], first["status"], first["dropped"]) == (True, None, "reset")
    assert second["status"] == 200 and "dropped" not in second


def test_drop_reset_is_a_reset_at_the_socket(sandbox) -> None:
    sandbox.fault(PROJECTS, 200, drop="reset")
    host, port = sandbox.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {PROJECTS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n".encode())
        with pytest.raises(ConnectionResetError):
            while sock.recv(4096):
                pass


def test_drop_body_sends_half_the_real_answer_then_closes(sandbox) -> None:
    full = get(sandbox).content
    sandbox.fault(PROJECTS, 200, drop="body")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # urllib3: IncompleteRead
        get(sandbox)
    raw = requests.get(sandbox.url + PROJECTS, headers=AUTH, timeout=5, stream=True)
    assert raw.content == full  # one fault, one request
    sandbox.fault(PROJECTS, 200, drop="body")
    host, port = sandbox.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {PROJECTS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):  # the server closes after half the body
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(full)}".encode() in head
    assert body == full[: len(full) // 2]


def test_drop_body_cuts_an_error_answer_too(sandbox) -> None:
    sandbox.fault(PROJECTS, 503, drop="body")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(sandbox)


def test_bad_drop_is_refused(sandbox) -> None:
    with pytest.raises(RuntimeError, match="drop"):
        sandbox.fault(PROJECTS, 200, drop="explode")


# ---------------------------------------------------------------- chaos
def _statuses(sandbox, n: int, *, timeout: float = 0.2) -> list[object]:
    """The answers to n requests; 0.2 s tells an injected hang from an answer, but a test whose
    chaos injects no hang passes a longer timeout (a slow machine is not a fault)."""
    seen: list[object] = []
    for _ in range(n):
        try:
            seen.append(requests.get(sandbox.url + PROJECTS, headers=AUTH, timeout=timeout).status_code)
        except requests.Timeout:
            seen.append("timeout")
        except requests.exceptions.ChunkedEncodingError:
            seen.append("short")
        except requests.ConnectionError:
            seen.append("reset")
    return seen


def test_chaos_injects_every_kind_at_about_the_rate_and_counts_them(sandbox) -> None:
    sandbox.chaos("/openai/", 0.5, seed=11, delay=0.4)
    seen = _statuses(sandbox, 60)
    stats = sandbox.chaos_stats()
    assert stats["requests"] == 60
    assert 18 <= stats["faults"] <= 42
    assert set(stats["injected"]) == {"reset", "short_body", "server_error", "rate_limit", "slow"}
    assert all(count > 0 for count in stats["injected"].values())
    assert seen.count("reset") == stats["injected"]["reset"]
    assert seen.count("short") == stats["injected"]["short_body"]
    assert seen.count("timeout") == stats["injected"]["slow"]
    assert seen.count(429) == stats["injected"]["rate_limit"]
    assert sum(seen.count(s) for s in (500, 502, 503)) == stats["injected"]["server_error"]
    assert seen.count(200) == 60 - stats["faults"]
    assert sum(1 for e in sandbox.requests() if e.get("chaos")) == stats["faults"]


def test_chaos_is_reproducible_from_its_seed(sandbox) -> None:
    runs = []
    for _ in range(2):
        sandbox.chaos("/openai/", 0.3, seed=5, kinds=["server_error", "rate_limit"], retry_after=["7"])
        runs.append(_statuses(sandbox, 30, timeout=10))
    assert runs[0] == runs[1] and set(runs[0]) - {200} and 200 in runs[0]
    assert sandbox.stop_chaos()["requests"] == 30
    assert sandbox.chaos_stats() is None
    assert _statuses(sandbox, 5) == [200] * 5


def test_chaos_leaves_other_paths_and_explicit_faults_first(sandbox) -> None:
    sandbox.chaos("/openai/v1/organization/costs", 1.0, kinds=["server_error"])
    assert get(sandbox).status_code == 200  # another path
    sandbox.fault("/openai/v1/organization/costs", 418)
    costs = "/openai/v1/organization/costs"
    assert get(sandbox, costs, params={"start_time": 0}).status_code == 418
    assert get(sandbox, costs, params={"start_time": 0}).status_code in (500, 502, 503)
    sandbox.reset()
    assert sandbox.chaos_stats() is None


def test_bad_chaos_spec_is_refused(sandbox) -> None:
    with pytest.raises(RuntimeError, match="rate"):
        sandbox.chaos("/openai/", 1.5)
    with pytest.raises(RuntimeError, match="kinds"):
        sandbox.chaos("/openai/", 0.5, kinds=["meteor"])
    with pytest.raises(RuntimeError, match="path_prefix"):
        sandbox.chaos("openai", 0.5)
