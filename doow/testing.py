"""Helpers for tests that start real processes (a worker to kill, a second writer) or threads
racing each other against the test database. Imported by tests only; nothing in the product
uses it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import time_machine
from django.db import connection, connections
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

BASE_DIR = Path(__file__).resolve().parent.parent


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
