"""The demo's process supervision (doow.demo.Services): a signal to the demo's main process
alone stops every process it started, grandchildren (a Celery pool's children) included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

# A stand-in for the demo's main process: two services, each of which starts a child of its
# own (as the Celery worker starts its pool) and ignores SIGTERM like a worker in a long warm
# shutdown would; every pid is printed, then it waits like the demo does.
SUPERVISOR = r"""
import os, sys, time
from doow.demo import Services
service = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)
services = Services(grace=1.0)
services.stop_on_signals()
for name in ("web", "worker"):
    proc = services.start(name, [sys.executable, "-u", "-c", service], env=dict(os.environ))
    print(proc.pid, flush=True)
print("ready", flush=True)
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
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in pids if _alive(pid)] == []
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        main.kill()
        main.wait()
