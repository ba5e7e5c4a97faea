"""Settings, all read from the environment (12-factor) through django-environ.

Every variable is listed in the README. Development defaults are safe: with DEBUG off the
app refuses to start without a real SECRET_KEY and FERNET_KEYS.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # the embedded defaults (SQLite file, filesystem broker) live here

env = environ.Env()
# An env file is read only when DOOW_ENV_FILE names one (`make demo` writes var/demo.env and
# passes it to its processes); real environment variables win. Nothing is read from the code
# directory by default: a deployment from a checkout must never pick up a developer's file.
ENV_FILE = os.environ.get("DOOW_ENV_FILE", "")
if ENV_FILE:
    if not Path(ENV_FILE).is_file():
        raise ImproperlyConfigured(f"DOOW_ENV_FILE names {ENV_FILE!r}, which is not a file.")
    env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-insecure-secret-key-never-use-in-production"
_DEV_FERNET_KEY = "dev-insecure-fernet-key-never-use-in-production"

SECRET_KEY = env.str("SECRET_KEY", default="")
# Newest first: new values are encrypted with the first key, any key decrypts.
FERNET_KEYS = env.list("FERNET_KEYS", default=[])
if not DEBUG:
    missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("FERNET_KEYS", FERNET_KEYS)) if not value]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off and {', '.join(missing)} is not set. Set it in the environment "
            "(see README → Configuration), or set DEBUG=true for local development."
        )
SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY
FERNET_KEYS = FERNET_KEYS or [_DEV_FERNET_KEY]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Custom provider URLs (base_url / endpoint_url) must be https and public unless this is on.
DOOW_ALLOW_PRIVATE_ENDPOINTS = env.bool("DOOW_ALLOW_PRIVATE_ENDPOINTS", default=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "csp",
    "accounts",
    "integrations",
    "usage",
    "alerts",
    "doow",  # project-wide template tags (doow/templatetags/formats.py, page_helpers.py)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # GET/HEAD requests may read usage figures from the replica (doow/db_router.py).
    "doow.db_router.ReplicaReadsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "doow.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.workspaces",
            ],
        },
    },
]

WSGI_APPLICATION = "doow.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # Web, worker and beat share one file.
    # - WAL: readers never block the writer and the writer never blocks readers. In SQLite's
    #   default rollback journal a commit waits for every open read to end, so one slow
    #   reader (a streaming CSV export, a slow page) held up every commit past the busy
    #   timeout ("database is locked" in pages, the worker and beat), and a waiting commit
    #   in turn held up new reads. synchronous=NORMAL is the setting WAL is meant to run
    #   with: a power cut may lose the last commits, never corrupt the file.
    # - timeout: a writer waits this long for another writer's (short) transaction.
    # - IMMEDIATE: an atomic block takes the write lock when it begins; a transaction that
    #   read first and then wants to write can fail at once, without waiting, if another
    #   writer committed meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
# A read replica of the primary (PostgreSQL streaming replication): pages read the usage
# tables from it; writes, tasks, beat and commands use the primary (doow/db_router.py).
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
DATABASE_ROUTERS: list[str] = []
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASE_ROUTERS = ["doow.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it refuses a locked-out (username, address) pair before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files served at the site root by WhiteNoise (/favicon.ico, which browsers ask for on every page).
WHITENOISE_ROOT = BASE_DIR / "static" / "root"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Outgoing mail (password reset): EMAIL_URL such as smtp+tls://user:password@host:587, or
# consolemail:// to print mails instead of sending them (the demo does).
_EMAIL_CONFIG = env.email_url("EMAIL_URL", default="smtp://localhost:25")
globals().update({key: value for key, value in _EMAIL_CONFIG.items() if key.startswith("EMAIL_") and value is not None})
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Links in mails sent by workers (alerts), which have no request to take the host from.
DOOW_BASE_URL = env.str("DOOW_BASE_URL", default="http://localhost:8000")
# Uploaded files stay in memory (up to the import limit) and go into the database, never to
# a temporary file on the web host: a worker on another host imports them (usage/uploads.py).
FILE_UPLOAD_HANDLERS = ["usage.uploads.MemoryOnlyUploadHandler"]

SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# HTTPS enforcement (off by default: the embedded default serves plain http on localhost).
# Behind a TLS proxy, SECURE_SSL_REDIRECT needs BEHIND_TLS_PROXY, or every request redirects.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# How many reverse proxies in front of the app append the address they received from to
# X-Forwarded-For. 0: the header is ignored (a client could forge it) and the connection's
# address counts. See accounts/throttling.py.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if BEHIND_TLS_PROXY else 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")

# Sign-in throttling (django-axes): 10 failures for one username from one address pause that
# pair, and only that pair, for 15 minutes; the real user elsewhere is never locked out.
# Failures during the pause are not counted, so it ends 15 minutes after the 10th.
# Staff lift it early with `manage.py axes_reset` (or axes_reset_username / axes_reset_ip) or
# by deleting the access attempt in Django admin.
AXES_FAILURE_LIMIT = 10
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttling.lockout_response"

# Content-Security-Policy (django-csp): scripts, styles, images, fonts and fetches from this
# origin only, and nothing inline — no <script> blocks, no on…= handlers, no style=
# attributes in templates (doow/tests/test_security_headers.py checks them; chart data travels
# in json_script blocks, which never execute). Django admin's own pages need nothing more.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Celery. The default broker is kombu's filesystem transport: no server to install.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "store_processed": False,
        # Exchange tables (celery.exchange, celery.pidbox.exchange); kombu's default is a
        # `control/` folder in the working directory, i.e. the code directory.
        "control_folder": str(_BROKER_DIR / "control"),
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    # Redis hands an unacknowledged message (acks_late) to another worker after the visibility
    # timeout (kombu's default: an hour) even while its first worker is alive. An estimate
    # recompute runs for hours on a large workspace: well above the longest one. Every job's
    # worker writes a heartbeat, and a redelivered recompute whose worker is alive (its heartbeat
    # is fresh) does nothing (an import, re-attribution or rebuild restarts: each is idempotent,
    # and its message coming back is how a killed pool child's job restarts at once). A job whose worker is really lost (no progress for
    # doow.jobs.HEARTBEAT_STALE) does not wait for this: beat's `resend-lost-jobs` (imports,
    # re-attribution, rollup rebuilds; every 5 minutes) and `recompute-prices-if-changed`
    # (recomputes; hourly) hand it to another worker, and its own late redelivery finds it
    # claimed again or finished and does nothing.
    else {"visibility_timeout": 12 * 3600}
    if CELERY_BROKER_URL.startswith(("redis", "rediss"))
    else {}
)
for _option in ("data_folder_in", "processed_folder", "control_folder"):
    if CELERY_BROKER_TRANSPORT_OPTIONS.get(_option):
        Path(CELERY_BROKER_TRANSPORT_OPTIONS[_option]).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
# A task's message is acknowledged only once the task has run, and a pool child killed
# mid-task (OOM, kill -9: WorkerLostError) puts its message back on the queue instead of
# acknowledging it. Every task is safe to run twice. A killed sync still holds its lease,
# so its redelivery finds it busy: beat's dispatcher resumes it once the lease lapses.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Bulk work has a queue of its own, so hours of recomputing estimates never hold up the
# minute's sync dispatch or the alert checks (their messages expire). A worker started without
# -Q consumes every queue listed here (the demo's, `celery -A doow worker`); production runs
# one for `celery` and one for `pricing` (README, Production deployment).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery", routing_key="celery"), Queue("pricing", routing_key="pricing"))
CELERY_TASK_ROUTES = {
    "usage.tasks.recompute_prices": {"queue": "pricing"},
    # The hourly check only queues recomputes: on `celery`, never behind the recompute backlog.
    "usage.tasks.recompute_prices_if_changed": {"queue": "celery"},
}
# The beat schedule lives here and only here; the DatabaseScheduler installs it in the database.
# Each entry: the task, every how many seconds, and when an unstarted run expires (seconds).
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": every, "options": {"expires": expires}}
    for name, task, every, expires in (
        ("dispatch-due-syncs", "integrations.tasks.dispatch_due_syncs", 60.0, 55),
        ("expire-usage-imports", "usage.tasks.expire_usage_imports", 3600.0, 3300),
        ("resend-lost-jobs", "usage.tasks.resend_lost_jobs", 300.0, 270),
        ("manage-usage-partitions", "usage.tasks.manage_usage_partitions", 86400.0, 82800),
        ("evaluate-alerts", "alerts.tasks.evaluate_alerts", 900.0, 840),
        ("recompute-prices-if-changed", "usage.tasks.recompute_prices_if_changed", 3600.0, 3300),
    )
}

# The most workspaces beat's hourly check queues a full-history estimate recompute for (after a
# genai-prices upgrade, say); the others wait for the next hours (usage/pricing/services.py).
DOOW_PRICING_RECOMPUTES_PER_HOUR = env.int("DOOW_PRICING_RECOMPUTES_PER_HOUR", default=20)
if DOOW_PRICING_RECOMPUTES_PER_HOUR < 1:
    raise ImproperlyConfigured("DOOW_PRICING_RECOMPUTES_PER_HOUR must be 1 or more.")

# The AWS account Doow's own credentials belong to: printed in the trust policy admins paste.
DOOW_AWS_ACCOUNT_ID = env.str("DOOW_AWS_ACCOUNT_ID", default="")

# Raw usage rows (the hourly table) are kept this many whole months before the current one;
# 0 keeps them forever. Daily rollups are kept regardless (usage/partitions.py).
DOOW_RAW_RETENTION_MONTHS = env.int("DOOW_RAW_RETENTION_MONTHS", default=0)
if DOOW_RAW_RETENTION_MONTHS < 0:
    raise ImproperlyConfigured("DOOW_RAW_RETENTION_MONTHS must be 0 (keep forever) or more.")

# Sync engine tuning (seconds).
DOOW_SYNC_LOCK_SECONDS = env.int("DOOW_SYNC_LOCK_SECONDS", default=900)
# The most days one provider fetch reads before its chunks are stored (memory held per sync; a
# failure late in a span re-reads the span). Providers read less where their API says so.
DOOW_MAX_FETCH_SPAN_DAYS = env.int("DOOW_MAX_FETCH_SPAN_DAYS", default=31)
DOOW_MAX_RETRY_AFTER_SECONDS = env.int("DOOW_MAX_RETRY_AFTER_SECONDS", default=30)
DOOW_HTTP_TIMEOUT_SECONDS = env.float("DOOW_HTTP_TIMEOUT_SECONDS", default=30.0)
# First back-off step after a 5xx or timeout; doubles per attempt.
DOOW_HTTP_BACKOFF_SECONDS = env.float("DOOW_HTTP_BACKOFF_SECONDS", default=1.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
