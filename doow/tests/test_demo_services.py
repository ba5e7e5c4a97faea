"""The demo's process supervision (doow.demo.Services): a signal to the demo's main process
alone stops every process it started, grandchildren (a Celery pool's children) included —
first with a stand-in supervisor, then with `python -m doow.demo` itself (web, worker, beat
and sandbox)."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

# A stand-in for the demo's main process: two services, each of which starts a child of its
# own (as the Celery worker starts its pool) and ignores SIGTERM like a worker in a long warm
# shutdown would; every pid is printed, then it waits like the demo does. The processes share
# one pipe, so each line goes out in one write(2) (print() writes the newline separately, and
# under -u two pids could run together on one line).
SUPERVISOR = r"""
import os, sys, time
from doow.demo import Services
service = (
    "import os, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "os.write(1, f'{child.pid}\\n'.encode())\n"
    "time.sleep(600)\n"
)
services = Services(grace=1.0)
services.stop_on_signals()
for name in ("web", "worker"):
    proc = services.start(name, [sys.executable, "-u", "-c", service], env=dict(os.environ))
    os.write(1, f"{proc.pid}\n".encode())
os.write(1, b"ready\n")
services.wait_any()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _left_alive(pids: Iterable[int], *, within: float) -> list[int]:
    """The processes still alive once `within` seconds have passed (sooner if none is)."""
    pids = list(pids)
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def _kill(main: subprocess.Popen, pids: Iterable[int]) -> None:
    """Whatever the test left behind: the processes it started, by their ids."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    main.kill()
    main.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_demo_process_alone_stops_every_process_it_started(signum):
    main = subprocess.Popen(
        [sys.executable, "-u", "-c", SUPERVISOR],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        for line in main.stdout:
            if line.strip() == "ready":
                break
            pids.append(int(line))
        deadline = time.monotonic() + 20
        while len(pids) < 4 and time.monotonic() < deadline:  # the grandchildren print as they start
            line = main.stdout.readline()
            if line.strip().isdigit():
                pids.append(int(line))
        assert len(pids) == 4, pids
        assert all(_alive(pid) for pid in pids)
        main.send_signal(signum)  # to the main process only, not its group
        main.wait(timeout=20)
        assert _left_alive(pids, within=10) == []
    finally:
        _kill(main, pids)


# ---------------------------------------------------------------- the real demo
ROLES = {"sandbox": "-m sandbox", "web": "runserver", "worker": "celery -A doow worker", "beat": "celery -A doow beat"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _descendants(root: int) -> dict[int, str]:
    """Every living process under `root`, by pid, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        try:
            found[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending.extend(children.get(pid, []))
    return found


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # our own loopback demo
            return True
    except (OSError, urllib.error.URLError):
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_real_demo_stops_web_worker_beat_and_sandbox(signum, tmp_path):
    """`python -m doow.demo` itself (its own database and an in-memory broker, so it shares
    nothing with a demo a developer runs): once it says it is running, a signal to its main
    process alone leaves none of the processes it started, the worker's pool included."""
    web_port, sandbox_port = _free_port(), _free_port()
    # Not this test process's environment: the test settings put their own keys, DEBUG and
    # broker in it. The demo reads var/demo.env like `make demo`; only the database and broker
    # are its own.
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update(
        DJANGO_SETTINGS_MODULE="doow.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        CELERY_BROKER_URL="memory://",
        PYTHONUNBUFFERED="1",
    )
    main = subprocess.Popen(
        [sys.executable, "-u", "-m", "doow.demo", "--port", str(web_port), "--sandbox-port", str(sandbox_port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in main.stdout], daemon=True).start()
    started: dict[int, str] = {}
    try:
        output: list[str] = []
        deadline = time.monotonic() + 240
        while not any("Doow is running" in line for line in output):
            assert time.monotonic() < deadline and main.poll() is None, "".join(output[-40:])
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        deadline = time.monotonic() + 60  # the worker's pool children start a moment later
        while time.monotonic() < deadline:
            started = _descendants(main.pid)
            roles = {role for role, words in ROLES.items() for cmd in started.values() if words in cmd}
            if roles == set(ROLES) and sum("worker" in cmd for cmd in started.values()) >= 2:
                break
            time.sleep(0.5)
        assert {role for role, words in ROLES.items() for cmd in started.values() if words in cmd} == set(ROLES)
        assert sum("celery -A doow worker" in cmd for cmd in started.values()) >= 2, started  # with its pool
        assert _answers(f"http://127.0.0.1:{web_port}/login/") and _answers(
            f"http://127.0.0.1:{sandbox_port}/_sandbox/requests"
        )

        main.send_signal(signum)  # to the main process only, not its group
        assert main.wait(timeout=60) != 0
        assert {pid: started[pid] for pid in _left_alive(started, within=20)} == {}
        assert not _answers(f"http://127.0.0.1:{web_port}/login/")
        assert not _answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/requests")
    finally:
        _kill(main, started)
