"""Fixtures shared by every app's tests, named for roles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from accounts.models import Membership, Workspace

PASSWORD = "correct-horse-battery-staple"

# Every test starts at this instant (the clock then runs on): no test may depend on the day or
# hour the suite happens to run. DOOW_TEST_CLOCK moves it (`make test-clocks` runs the suite at
# month ends, DST changes and both ends of the UTC day).
DEFAULT_TEST_CLOCK = "2026-12-06T12:00:00+00:00"


def pinned_instant() -> datetime:
    text = os.environ.get("DOOW_TEST_CLOCK") or DEFAULT_TEST_CLOCK
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"DOOW_TEST_CLOCK must carry a UTC offset, got {text!r}")
    return moment.astimezone(UTC)


def pytest_configure(config: pytest.Config) -> None:
    # Pinned from the start, so what test modules compute at import time (windows such as
    # "15 days ago") is computed on the pinned day too.
    config._doow_clock = time_machine.travel(pinned_instant(), tick=True)  # type: ignore[attr-defined]
    config._doow_clock.start()  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need PostgreSQL: skipped when the suite runs on another database."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://…)")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    clock = getattr(config, "_doow_clock", None)
    if clock is not None:
        clock.stop()


@pytest.fixture(autouse=True)
def pinned_clock(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """Wall-clock time (datetime.now, time.time, date.today) starts at the pinned instant in
    every test, in every thread of this process (the sandbox server's included; a child process through
    doow.testing.subprocess_env); monotonic
    clocks are untouched, so timeouts and leases measured with them behave normally.

    A test whose scenario is written for one instant (figures of a given month, say) says so
    with `@pytest.mark.clock("2026-12-06T12:00:00Z")`: it then runs at that instant whatever
    DOOW_TEST_CLOCK says, instead of leaning on the default."""
    marker = request.node.get_closest_marker("clock")
    moment = (
        datetime.fromisoformat(marker.args[0].replace("Z", "+00:00")).astimezone(UTC) if marker else pinned_instant()
    )
    with time_machine.travel(moment, tick=True):
        yield moment


@pytest.fixture
def workspace(db) -> Workspace:
    return Workspace.objects.create(name="Acme Corp", slug="acme")


@pytest.fixture
def other_workspace(db) -> Workspace:
    return Workspace.objects.create(name="Globex", slug="globex")


def _user(username: str, workspace: Workspace, role: str):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com")
    Membership.objects.create(user=user, workspace=workspace, role=role)
    return user


@pytest.fixture
def admin_user(workspace):
    return _user("ada", workspace, Membership.Role.ADMIN)


@pytest.fixture
def member_user(workspace):
    return _user("max", workspace, Membership.Role.MEMBER)


@pytest.fixture
def outsider_user(other_workspace):
    """An admin of another workspace: sees nothing of `workspace`."""
    return _user("olga", other_workspace, Membership.Role.ADMIN)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user) -> Client:  # overrides pytest-django's superuser client on purpose
    return _client(admin_user)


@pytest.fixture
def member_client(member_user) -> Client:
    return _client(member_user)


@pytest.fixture
def outsider_client(outsider_user) -> Client:
    return _client(outsider_user)


@pytest.fixture
def superuser_client(db) -> Client:
    """Signed in to the Django admin as a superuser (who belongs to no workspace)."""
    from django.contrib.auth import get_user_model

    return _client(get_user_model().objects.create_superuser(username="root", password="x", email="root@example.com"))


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator:
    from sandbox.testing import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server):
    """The local fake provider APIs, with faults cleared before and after each test."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def openai_integration(workspace, admin_user, sandbox):
    """An OpenAI integration pointed at the sandbox, not yet synced."""
    from integrations.testing import make_integration

    return make_integration(workspace, "OpenAI (sandbox)", credential={"api_key": sandbox.OPENAI_ADMIN_KEY},
                            settings={"base_url": sandbox.openai_base_url}, created_by=admin_user)  # fmt: skip
