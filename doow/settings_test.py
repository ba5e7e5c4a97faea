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

from .settings import *  # noqa: F403

# A process a test starts (a worker to kill, say) runs on the test's pinned clock: the test
# passes how far its clock is from the real one (doow.testing.subprocess_env), so the two agree however
# long the child takes to start.
if os.environ.get("DOOW_TEST_CLOCK_OFFSET"):
    import time
    from datetime import UTC, datetime

    import time_machine

    _offset = float(os.environ["DOOW_TEST_CLOCK_OFFSET"])
    time_machine.travel(datetime.fromtimestamp(time.time() + _offset, UTC), tick=True).start()

# A test that runs a real worker on the filesystem broker gives it (and itself) a private
# broker directory, so it never reads the demo's queue or another test run's.
if os.environ.get("DOOW_TEST_BROKER_DIR") and CELERY_BROKER_URL.startswith("filesystem"):  # noqa: F405
    from doow.testing import filesystem_broker_options

    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(Path(os.environ["DOOW_TEST_BROKER_DIR"]))

STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DOOW_MAX_RETRY_AFTER_SECONDS = 2
DOOW_HTTP_BACKOFF_SECONDS = 0.01
DOOW_HTTP_TIMEOUT_SECONDS = 5.0
# A test worker whose pool child is killed reports WorkerLostError (and requeues the task)
# after 1 s instead of 10.
CELERY_WORKER_LOST_WAIT = 1.0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory: tests that run a real worker process share the test database.
    # One file per test process, so concurrent runs never delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
    # A test that proves writers never fail under load may wait less than production does.
    if os.environ.get("DOOW_TEST_SQLITE_TIMEOUT"):
        DATABASES["default"]["OPTIONS"]["timeout"] = float(os.environ["DOOW_TEST_SQLITE_TIMEOUT"])  # noqa: F405
# A second database alias standing for a read replica: a database of its own (not a mirror), so
# a test can tell which alias a query went to (doow/tests/test_db_router.py). The router is off
# unless a test turns it on; pytest-django creates this database only for tests that ask for it.
if "replica" not in DATABASES:  # noqa: F405
    DATABASES["replica"] = {**DATABASES["default"], "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {}))}  # noqa: F405
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
        DATABASES["replica"]["TEST"] = {"NAME": str(VAR_DIR / f"test-replica-{os.getpid()}.sqlite3")}  # noqa: F405
    else:
        DATABASES["replica"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_replica"}  # noqa: F405
# Whitenoise warns about a missing STATIC_ROOT on every request otherwise.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405
