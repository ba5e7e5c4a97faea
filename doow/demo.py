"""`make demo`: set everything up and run web + Celery worker + beat + the provider sandbox.

    python -m doow.demo            # runs until Ctrl-C
    python -m doow.demo --smoke    # starts everything, waits for the first scheduled sync to
                                   # succeed and the login page to answer, then stops (CI)

First run writes var/demo.env (DEBUG, fresh SECRET_KEY and FERNET_KEYS, private endpoints
allowed so the integrations can point at the local sandbox, e-mail printed on the console):
keys of this machine only, never shared through the repository. The demo and the processes it
starts read it through DOOW_ENV_FILE; so can a developer's own commands:
`DOOW_ENV_FILE=var/demo.env python manage.py …`. Every run prints the admin login.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import Workspace
    from integrations.models import Integration

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = BASE_DIR / "var" / "demo.env"


def write_env_file(path: Path = ENV_FILE) -> None:
    """This machine's development settings, created once (the keys must outlive a run: they
    decrypt the demo credentials stored in var/db.sqlite3)."""
    if path.exists():
        return
    from cryptography.fernet import Fernet

    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private (0600) from the start: it holds this machine's keys.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(
            "# Written by `make demo` for local development on this machine. Never use these values in production.\n"
            "DEBUG=true\n"
            f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
            f"FERNET_KEYS={Fernet.generate_key().decode()}\n"
            "DOOW_ALLOW_PRIVATE_ENDPOINTS=true\n"
            "# Password-reset mails are printed by the web process instead of being sent.\n"
            "EMAIL_URL=consolemail://\n"
        )
    print(f"wrote {path} with fresh development keys")


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # local URL
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{url} answered HTTP {exc.code}") from None
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.3)


def seed(sandbox_url: str) -> tuple[str, str]:
    """Demo workspace, its admin (new password each run) and one integration per provider the
    sandbox fakes. Returns the login."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Workspace
    from sandbox.demo import demo_integrations

    workspace, _ = Workspace.objects.get_or_create(slug="acme", defaults={"name": "Acme Corp"})
    user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@acme.example"})
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    user.is_staff = user.is_superuser = True  # the demo admin may also open Django admin
    user.save()
    Membership.objects.update_or_create(workspace=workspace, user=user, defaults={"role": Membership.Role.ADMIN})
    for spec in demo_integrations(sandbox_url):
        integration = workspace.integrations.filter(provider=spec["provider"], name=spec["name"]).first()
        if integration is None:
            connect(workspace, spec, created_by=user)
        elif integration.settings != spec["settings"]:
            # The sandbox port may differ between runs.
            integration.settings = spec["settings"]
            integration.save(update_fields=["settings"])
    return user.username, password


def connect(workspace: Workspace, spec: dict[str, Any], *, created_by: Any = None) -> Integration:
    """Connect one of `sandbox.demo.demo_integrations` in `workspace`, verified as the Connect
    form does; returns the Integration."""
    from integrations import services

    return services.integration_create(
        workspace=workspace,
        provider_slug=spec["provider"],
        name=spec["name"],
        credential=spec["credential"],
        settings=spec["settings"],
        created_by=created_by,
    )


class Services:
    """The demo's child processes, each in a process group of its own, so that stopping one
    stops everything it started too (the Celery worker's pool children, say): a SIGINT, SIGTERM
    or SIGHUP to the demo's main process alone stops them all, not only a signal to the whole
    process group (Ctrl-C in a terminal)."""

    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.processes[name] = subprocess.Popen(command, env=env, start_new_session=True)
        return self.processes[name]

    def stop_on_signals(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            print(f"\n{signal.Signals(signum).name}: stopping…", flush=True)
            self.stop()
            sys.exit(128 + signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, handler)

    def wait_any(self) -> list[str]:
        """Block until one child exits; return the names of those that did."""
        while all(p.poll() is None for p in self.processes.values()):
            time.sleep(1)
        return [n for n, p in self.processes.items() if p.poll() is not None]

    def _signal_groups(self, signum: int) -> None:
        for proc in self.processes.values():
            try:
                os.killpg(proc.pid, signum)  # the group's id is the child's pid (start_new_session)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """SIGTERM every group (a warm shutdown for the worker), SIGKILL what is left after the grace."""
        self._signal_groups(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        self._signal_groups(signal.SIGKILL)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="stop once the first scheduled sync succeeded")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("DEMO_SANDBOX_PORT", "8765")))
    args = parser.parse_args()

    os.chdir(BASE_DIR)
    sys.path.insert(0, str(BASE_DIR))
    write_env_file()
    # Read by the settings of this process and of every process started below (they inherit it).
    os.environ["DOOW_ENV_FILE"] = str(ENV_FILE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doow.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    print("database migrated")

    python = sys.executable
    sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
    web_url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    commands = {
        "sandbox": [python, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(args.sandbox_port)],
        "web": [python, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"],
        "worker": [python, "-m", "celery", "-A", "doow", "worker", "--loglevel", "INFO", "--concurrency", "2"],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "doow",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(BASE_DIR / "var" / "celerybeat-schedule"),
        ],
    }
    services = Services()
    services.stop_on_signals()
    try:
        services.start("sandbox", commands["sandbox"], env=env)
        wait_for(f"{sandbox_url}/_sandbox/requests")
        username, password = seed(sandbox_url)
        started = time.time()
        if args.smoke:
            from django.utils import timezone

            from integrations.models import Integration

            # Make the demo integrations due now, so the smoke test waits for beat, not the clock.
            Integration.objects.filter(workspace__slug="acme", status="active").exclude(next_sync_at=None).update(
                next_sync_at=timezone.now()
            )
        for name in ("web", "worker", "beat"):
            services.start(name, commands[name], env=env)
        wait_for(f"{web_url}/login/")
        print(
            "\n"
            f"  Doow is running at {web_url}/\n"
            f"  Log in as {username} / {password}\n"
            f"  Company Settings → Integrations: {web_url}/w/acme/settings/integrations/\n"
            f"  Django admin: {web_url}/admin/\n"
            f"  Provider sandbox: {sandbox_url}/ (local fakes of the providers' usage APIs)\n"
            "  Press Ctrl-C to stop.\n",
            flush=True,
        )
        if args.smoke:
            smoke(started)
            return
        dead = services.wait_any()
        raise SystemExit(f"stopped because {', '.join(dead)} exited")
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        services.stop()


def smoke(started: float, timeout: float = 240.0) -> None:
    """Wait until beat → dispatcher → worker has synced every demo integration that syncs."""
    from datetime import UTC, datetime

    from integrations.models import Integration, SyncRun

    since = datetime.fromtimestamp(started, tz=UTC)
    expected = [i for i in Integration.objects.filter(workspace__slug="acme") if i.provider_obj.fetches_usage]
    deadline = time.monotonic() + timeout
    pending = {i.pk: i for i in expected}
    while pending and time.monotonic() < deadline:
        for pk, integration in list(pending.items()):
            run = (
                SyncRun.objects.filter(integration_id=pk, started_at__gte=since, trigger=SyncRun.Trigger.SCHEDULE)
                .exclude(status=SyncRun.Status.RUNNING)
                .first()
            )
            if run is None:
                continue
            if run.status != SyncRun.Status.SUCCESS:
                raise SystemExit(
                    f"smoke: {integration.name}: the scheduled sync failed: {run.error_category} {run.error}"
                )
            rows = integration.usage_records.count()
            print(f"smoke: {integration.name}: scheduled sync #{run.pk} stored {rows} usage rows", flush=True)
            if rows == 0:
                raise SystemExit(f"smoke: {integration.name}: the sync stored no usage")
            del pending[pk]
        time.sleep(1)
    if pending:
        names = ", ".join(i.name for i in pending.values())
        raise SystemExit(f"smoke: no scheduled sync finished within {timeout:.0f}s for: {names}")
    print(f"smoke: OK, {len(expected)} integrations synced by beat and the worker", flush=True)
    smoke_pricing_queue(timeout=timeout)


def smoke_pricing_queue(timeout: float) -> None:
    """The worker consumes the `pricing` queue too: a recompute of the demo's estimates (what
    saving an override asks for) finishes."""
    from accounts.models import Workspace
    from usage.pricing.services import pricing_recompute_request

    job = pricing_recompute_request(workspace=Workspace.objects.get(slug="acme"))
    deadline = time.monotonic() + timeout
    while job.is_active and time.monotonic() < deadline:
        time.sleep(1)
        job.refresh_from_db()
    if job.status != job.Status.DONE:
        raise SystemExit(
            f"smoke: price recompute #{job.pk} on the pricing queue did not finish: {job.status} {job.error}"
        )
    print(f"smoke: OK, price recompute #{job.pk} on the pricing queue priced {job.done} usage rows", flush=True)


if __name__ == "__main__":
    main()
