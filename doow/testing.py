"""Helpers for tests that start real processes (a worker to kill, a second writer) or threads
racing each other against the test database. Imported by tests only; nothing in the product
uses it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import time_machine
from celery.exceptions import AlwaysEagerIgnored
from django.conf import settings
from django.db import connection, connections
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from kombu import Connection

from doow.celery import app

BASE_DIR = Path(__file__).resolve().parent.parent
# Generous for a loaded 2-core machine: a worker boots in a few seconds when the machine is idle.
BOOT_TIMEOUT = 60


def database_url() -> str:
    """The URL of the database this test runs on (the test database, not the configured one)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def filesystem_broker_options(folder: Path) -> dict[str, Any]:
    """Kombu's filesystem-transport options for a private broker in `folder`, its queue/,
    processed/ and control/ folders made: what a test that runs a real worker gives the worker
    (doow/settings_test.py reads DOOW_TEST_BROKER_DIR) and its own connection."""
    for name in ("queue", "processed", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }


def real_time() -> float:
    """Wall-clock seconds since the epoch as the operating system tells them, under time_machine too."""
    return time_machine.escape_hatch.time.time() if time_machine.escape_hatch.is_travelling() else time.time()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a process that works on this test's database, on this test's clock.

    The clock travels as an offset from the real clock (DOOW_TEST_CLOCK_OFFSET, read by
    doow/settings_test.py), not as an instant: a worker takes seconds to boot, and a lease or a
    due time compared across the two processes must agree.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "doow.settings_test",
        "DATABASE_URL": database_url(),
        "DOOW_TEST_CLOCK_OFFSET": f"{timezone.now().timestamp() - real_time():.6f}",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Broker:
    """The broker a real worker started by a test consumes from (Redis on this run's db when the
    suite runs with Redis, else kombu's filesystem transport in a private directory), and ways
    to send it tasks."""

    def __init__(self, tmp_path: Path) -> None:
        if settings.CELERY_BROKER_URL.startswith("redis"):
            self.url = settings.CELERY_BROKER_URL
            self.options: dict[str, Any] = {}
            self.env = {"CELERY_BROKER_URL": self.url}
        else:
            folder = tmp_path / "broker"
            self.url = "filesystem://"
            self.options = filesystem_broker_options(folder)
            self.env = {"CELERY_BROKER_URL": self.url, "DOOW_TEST_BROKER_DIR": str(folder)}

    def connection(self) -> Connection:
        return Connection(self.url, transport_options=self.options)

    def purge(self) -> None:
        with self.connection() as conn:
            conn.SimpleQueue(app.conf.task_default_queue).clear()

    def send(self, task: str, **options: Any) -> None:
        """Send `task` with `options` (its expiry, say), as beat sends it."""
        with self.connection() as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore", AlwaysEagerIgnored)  # the test process itself is eager
            app.send_task(task, connection=conn, **options)

    @contextmanager
    def enqueuing(self) -> Iterator[None]:
        """The tasks this test process enqueues (a service's `enqueue_on_commit`) go to this
        broker, as a web process's do, instead of running eagerly in the test."""
        conf = app.conf
        saved = {name: conf[name] for name in ("task_always_eager", "broker_write_url", "broker_transport_options")}
        # The write URL: the broker URL of the environment (CELERY_BROKER_URL) wins over conf's.
        conf.update(task_always_eager=False, broker_write_url=self.url, broker_transport_options=self.options)
        _forget_broker_connections()
        try:
            yield
        finally:
            conf.update(saved)
            _forget_broker_connections()


def _forget_broker_connections() -> None:
    """Celery keeps its connection and producer pools for the broker it first connected to: drop
    them (as Celery itself does after a fork) so the next message goes to the broker now configured."""
    app._pool = None
    app.amqp._producer_pool = None


class Worker:
    """`celery -A doow worker` (one pool child) in its own process group, on this test's database
    and clock (`env`: more of its environment), its output in the file `log`."""

    def __init__(self, broker: Broker, log: Path, **env: str) -> None:
        self.log = log
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "doow",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                self.name,
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=BASE_DIR,
            env=subprocess_env(CELERY_TASK_ALWAYS_EAGER="false", **broker.env, **env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg takes the pool child too
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def received(self, task: str) -> list[str]:
        """Ids of the `task` messages this worker received, in order (a redelivery repeats one)."""
        return re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] received", self.output())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while " ready." not in self.output():
            assert self.proc.poll() is None, f"the worker exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"the worker never became ready:\n{self.output()}"
            time.sleep(0.2)

    def pool_children(self) -> list[int]:
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # fields[1] is the parent pid
                children.append(int(stat.parent.name))
        return children

    def kill_pool_child(self) -> None:
        """SIGKILL the pool child (the task it runs dies with it), not the main process: the main
        process sees WorkerLostError after CELERY_WORKER_LOST_WAIT and, with
        task_reject_on_worker_lost, puts the message back instead of acknowledging it."""
        children = self.pool_children()
        assert len(children) == 1, children
        os.kill(children[0], signal.SIGKILL)

    def kill_everything(self) -> None:
        """SIGKILL the main process and its pool child at once, as a lost machine would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown: SIGTERM to the main process only, which lets its pool child finish.
        (SIGTERM to the whole group would kill the child first: its task, even one that has
        just finished, then counts as lost and is requeued.)"""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._out.close()


@contextmanager
def running_workers() -> Iterator[list[Worker]]:
    """Collects the workers a test starts and stops whichever are still alive at the end."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def wait_for(condition: Callable[[], object], what: str, timeout: float, logs: list[Worker]) -> None:
    """Poll `condition` until it holds; past `timeout` seconds fail, with the workers' output."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            output = "\n".join(w.output()[-4000:] for w in logs)
            pytest.fail(f"timed out waiting for {what}; worker output:\n{output}")
        time.sleep(0.1)


def race(work: Callable[[], None], threads: int, rounds: int = 1) -> list[BaseException]:
    """Run `work` in `threads` threads, `rounds` times each, every round started together (a
    barrier); each thread closes its database connections when done. What they raised."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(rounds):
                barrier.wait(timeout=10)
                work()
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connections.close_all()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=60)
    return errors


def url_patterns(urlconf: str) -> list[URLPattern]:
    """Every URL pattern of `urlconf`, included ones too: tests that walk a URLconf cover a new
    URL without being edited."""

    def walk(patterns: list) -> list[URLPattern]:
        found: list[URLPattern] = []
        for entry in patterns:
            found.extend(walk(entry.url_patterns) if isinstance(entry, URLResolver) else [entry])
        return found

    return walk(get_resolver(urlconf).url_patterns)
