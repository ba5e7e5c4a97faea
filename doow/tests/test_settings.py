"""Settings fail loudly: production (DEBUG off) refuses to start without real secrets."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
CHECK = "import django; django.setup(); from django.conf import settings; print(settings.FERNET_KEYS[0][:4])"


def run_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "FERNET_KEYS", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=BASE_DIR,
        # DOOW_ENV_FILE="": a developer's .env (make demo writes one) must not count here.
        env={**clean, "DOOW_ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "doow.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


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
