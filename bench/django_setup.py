"""Start Django for a benchmark script, before it imports any model.

The database is DATABASE_URL, or else a fresh SQLite file in a new temporary folder (the
folder is returned, for any other file the script wants to write). Debug settings, private
endpoints allowed (the sandbox is on 127.0.0.1), Celery in memory; `read_env_file=False`
keeps the demo's var/demo.env out of the run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def start(*, read_env_file: bool = False) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="doow-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ.update(DEBUG="true", DOOW_ALLOW_PRIVATE_ENDPOINTS="true", CELERY_BROKER_URL="memory://")
    if not read_env_file:
        os.environ["DOOW_ENV_FILE"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doow.settings")

    import django

    django.setup()
    return tmp
