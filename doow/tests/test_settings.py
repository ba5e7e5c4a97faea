"""Settings fail loudly: production (DEBUG off) refuses to start without real secrets, and
reads no env file unless DOOW_ENV_FILE names one."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from doow import demo

BASE_DIR = Path(__file__).resolve().parents[2]
CHECK = "import django; django.setup(); from django.conf import settings; print(settings.FERNET_KEYS[0][:4])"
# What a deployment would run with, as JSON on the last line of stdout.
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'DEBUG': s.DEBUG, 'PRIVATE': s.DOOW_ALLOW_PRIVATE_ENDPOINTS, 'SECRET_KEY': s.SECRET_KEY, "
    "'FERNET_KEYS': s.FERNET_KEYS, 'EMAIL_BACKEND': s.EMAIL_BACKEND, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS}))"
)
# Everything the settings read, so the parent's (test) environment cannot leak in.
SETTINGS_VARIABLES = (
    "DEBUG", "SECRET_KEY", "FERNET_KEYS", "DJANGO_SETTINGS_MODULE", "DOOW_ENV_FILE", "DOOW_ALLOW_PRIVATE_ENDPOINTS",
    "ALLOWED_HOSTS", "EMAIL_URL", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "SECURE_COOKIES",
    "BEHIND_TLS_PROXY", "TRUSTED_PROXY_COUNT", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "CSRF_TRUSTED_ORIGINS",
    "DATABASE_REPLICA_URL", "DOOW_RAW_RETENTION_MONTHS",
)  # fmt: skip


def run_with(
    env: dict[str, str], code: str = CHECK, cwd: Path = BASE_DIR, argv: list[str] | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    return subprocess.run(
        [sys.executable, *(argv or ["-c", code])],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(BASE_DIR), "DJANGO_SETTINGS_MODULE": "doow.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def shown(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "env, missing",
    [
        ({"DEBUG": "false"}, "SECRET_KEY, FERNET_KEYS"),
        ({"DEBUG": "false", "SECRET_KEY": "s" * 50}, "FERNET_KEYS"),
        ({"DEBUG": "false", "FERNET_KEYS": "k1"}, "SECRET_KEY"),
    ],
)
def test_debug_off_refuses_to_start_without_secrets(env, missing):
    result = run_with(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"DEBUG is off and {missing} is not set" in result.stderr


def test_debug_off_starts_with_secrets_and_uses_the_first_fernet_key():
    result = run_with({"DEBUG": "false", "SECRET_KEY": "s" * 50, "FERNET_KEYS": "newest,older"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "newe"


def test_bad_boolean_fails_loudly():
    result = run_with({"DEBUG": "maybe"})
    assert result.returncode != 0


# ------------------------------------------------------------------ env files
DEVELOPER_ENV = (
    "DEBUG=true\nSECRET_KEY=from-a-dot-env-file\nFERNET_KEYS=from-a-dot-env-file\nDOOW_ALLOW_PRIVATE_ENDPOINTS=true\n"
)


@pytest.fixture
def dot_env_in_checkout():
    """A developer's `.env` in the project root (the file the repository used to carry).
    Written only if there is none, and removed again; an existing one is left as it is."""
    path = BASE_DIR / ".env"
    created = not path.exists()
    if created:
        path.write_text(DEVELOPER_ENV)
    yield path
    if created:
        path.unlink()


def test_a_deployment_from_the_checkout_ignores_dot_env_files(dot_env_in_checkout, tmp_path):
    (tmp_path / ".env").write_text(DEVELOPER_ENV)  # and one in the working directory
    for cwd in (BASE_DIR, tmp_path):
        # No DEBUG set anywhere real: the app must not start in debug mode with dev keys…
        refused = run_with({}, cwd=cwd)
        assert refused.returncode != 0
        assert "DEBUG is off and SECRET_KEY, FERNET_KEYS is not set" in refused.stderr
        # …and with real secrets it runs with DEBUG and private endpoints off.
        settings = shown(run_with({"SECRET_KEY": "s" * 50, "FERNET_KEYS": "prod-key"}, SHOW, cwd=cwd))
        assert settings["DEBUG"] is False
        assert settings["PRIVATE"] is False
        assert settings["SECRET_KEY"] == "s" * 50 and settings["FERNET_KEYS"] == ["prod-key"]
        assert settings["ALLOWED_HOSTS"] == []


def test_doow_env_file_is_read_and_real_variables_win(tmp_path):
    env_file = tmp_path / "doow.env"
    env_file.write_text(DEVELOPER_ENV)
    settings = shown(run_with({"DOOW_ENV_FILE": str(env_file), "FERNET_KEYS": "from-the-environment"}, SHOW))
    assert settings["DEBUG"] is True and settings["PRIVATE"] is True
    assert settings["SECRET_KEY"] == "from-a-dot-env-file"
    assert settings["FERNET_KEYS"] == ["from-the-environment"]


def test_doow_env_file_naming_a_missing_file_fails_loudly(tmp_path):
    result = run_with({"DOOW_ENV_FILE": str(tmp_path / "missing.env"), "DEBUG": "true"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "missing.env" in result.stderr


def test_the_demo_writes_fresh_private_keys_per_machine_under_var(tmp_path):
    first, second = tmp_path / "a" / "demo.env", tmp_path / "b" / "demo.env"
    for path in (first, second):
        path.parent.mkdir()
        demo.write_env_file(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    one, two = (shown(run_with({"DOOW_ENV_FILE": str(p)}, SHOW)) for p in (first, second))
    assert one["DEBUG"] is True and one["PRIVATE"] is True
    assert one["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert len(one["SECRET_KEY"]) >= 50 and one["SECRET_KEY"] != two["SECRET_KEY"]
    assert one["FERNET_KEYS"] != two["FERNET_KEYS"]
    # Written once: later runs keep the keys that encrypted the demo's stored credentials.
    before = first.read_text()
    demo.write_env_file(first)
    assert first.read_text() == before
    assert demo.ENV_FILE == BASE_DIR / "var" / "demo.env"


# ------------------------------------------------------------------ check --deploy
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "Zq8-production-like-" + "Xw4Lr7Tn2Vb9Mc6Pd1Hk3Jf5Gs0Ay8Ue" * 2,
    "FERNET_KEYS": "production-fernet-key",
    "ALLOWED_HOSTS": "doow.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://doow.example.com",
    "SECURE_COOKIES": "true",
    "BEHIND_TLS_PROXY": "true",
}
HTTPS_ONLY = {
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_with(env, argv=["manage.py", "check", "--deploy", "--fail-level", "WARNING"])


def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = check_deploy({**PRODUCTION, **HTTPS_ONLY})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_https_enforcement_is_off_by_default_and_check_deploy_says_so():
    result = check_deploy(PRODUCTION)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "security.W004" in output and "security.W008" in output  # HSTS, SSL redirect
    settings = shown(
        run_with(
            {"DEBUG": "true"},
            SHOW.replace(
                "'ALLOWED_HOSTS': s.ALLOWED_HOSTS", "'HSTS': s.SECURE_HSTS_SECONDS, 'REDIRECT': s.SECURE_SSL_REDIRECT"
            ),
        )
    )
    assert settings["HSTS"] == 0 and settings["REDIRECT"] is False


def test_https_enforcement_through_a_tls_proxy(tmp_path):
    """With the settings on, plain http is redirected and https answers carry HSTS."""
    code = (
        "import django; django.setup(); from django.test import Client; c = Client(); "
        "r = c.get('/', HTTP_HOST='doow.example.com'); print(r.status_code, r.get('Location')); "
        "r = c.get('/', HTTP_HOST='doow.example.com', HTTP_X_FORWARDED_PROTO='https'); "
        "print(r.status_code, r.get('Location'), r.get('Strict-Transport-Security'))"
    )
    result = run_with({**PRODUCTION, **HTTPS_ONLY, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [
        "301 https://doow.example.com/",
        "302 /login/?next=/ max-age=31536000; includeSubDomains; preload",
    ]


BROKER_OPTIONS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps(s.CELERY_BROKER_TRANSPORT_OPTIONS))"
)


def test_redis_keeps_a_running_tasks_message_for_longer_than_the_longest_recompute():
    options = shown(run_with({"DEBUG": "true", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/5"}, BROKER_OPTIONS))
    assert options == {"visibility_timeout": 12 * 3600}


def test_the_embedded_broker_keeps_all_its_folders_under_var():
    options = shown(run_with({"DEBUG": "true"}, BROKER_OPTIONS))
    folders = {key: value for key, value in options.items() if key.endswith(("_folder", "_folder_in", "_folder_out"))}
    assert set(folders) == {"data_folder_in", "data_folder_out", "processed_folder", "control_folder"}
    for key, folder in folders.items():
        assert Path(folder).is_relative_to(BASE_DIR / "var" / "broker"), key
