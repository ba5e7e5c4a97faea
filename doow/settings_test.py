"""Test settings: the real settings module, with test-only environment defaults."""
import os
from pathlib import Path

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("FERNET_KEYS", "test-fernet-key-1")
os.environ.setdefault("DOOW_ALLOW_PRIVATE_ENDPOINTS", "true")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("EMAIL_URL", "memorymail://")  # mail.outbox (pytest-django sets it too)

from .settings import *  # noqa: E402,F403

# A process a test starts (a worker to kill, say) runs on the test's pinned clock: the test
# passes how far its clock is from the real one (conftest.clock_env), so the two agree however
# long the child takes to start.
if os.environ.get("DOOW_TEST_CLOCK_OFFSET"):
    import time
    from datetime import UTC, datetime

    import time_machine

    _offset = float(os.environ["DOOW_TEST_CLOCK_OFFSET"])
    time_machine.travel(datetime.fromtimestamp(time.time() + _offset, UTC), tick=True).start()

STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DOOW_MAX_RETRY_AFTER_SECONDS = 2
DOOW_HTTP_BACKOFF_SECONDS = 0.01
DOOW_HTTP_TIMEOUT_SECONDS = 5.0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory: tests that run a real worker process share the test database.
    # One file per test process, so concurrent runs never delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
# Whitenoise warns about a missing STATIC_ROOT on every request otherwise.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405
