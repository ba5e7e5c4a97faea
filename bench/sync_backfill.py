"""Benchmark: a 30-day OpenAI backfill against the local sandbox, then an idle re-sync, then a
re-sync after the sandbox withdrew a model (its rows in the re-read window are removed).

Prints rows stored and removed, provider calls, wall time, and database queries per chunk (the
store promises a constant number of queries per chunk, however many samples it holds: the
upsert, one SELECT of the rows the answer no longer holds, and a DELETE only when there are some).

    .venv/bin/python bench/sync_backfill.py            # SQLite in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/sync_backfill.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from bench.django_setup import start  # noqa: E402

start(read_env_file=True)

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from accounts.models import Workspace  # noqa: E402
from integrations import engine, services  # noqa: E402
from sandbox.testing import SandboxServer  # noqa: E402


def main() -> None:
    call_command("migrate", verbosity=0)
    with SandboxServer() as sandbox:
        workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        integration = services.integration_create(
            workspace=workspace,
            provider_slug="openai",
            credential={"api_key": sandbox.OPENAI_ADMIN_KEY},
            settings={"base_url": sandbox.openai_base_url},
        )
        for label in ("backfill (30 days)", "re-sync (restatement window)", "re-sync, a model withdrawn"):
            if label.endswith("withdrawn"):
                sandbox.change("openai", "withdraw_model", model="o3-mini-2025-01-31")
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                run = engine.integration_sync(integration_id=integration.pk)
                elapsed = time.perf_counter() - started
            sqls = [q["sql"].lstrip().upper() for q in queries.captured_queries]
            inserts = [q for q in sqls if q.startswith('INSERT INTO "USAGE_USAGERECORD"')]
            deletes = [q for q in sqls if q.startswith('DELETE FROM "USAGE_USAGERECORD"')]
            # The SELECT of rows the answers no longer hold: the one query a chunk pays for them.
            finding = [float(q["time"]) for q in queries.captured_queries
                       if q["sql"].lstrip().upper().startswith("SELECT") and '"store_batch"' in q["sql"]]  # fmt: skip
            print(
                f"{label:32} {run.status:8} chunks={run.chunks_done:3d} rows={run.rows_written:7d} "
                f"provider_calls={run.provider_calls:3d} time={elapsed:6.2f}s "
                f"rows/s={run.rows_written / elapsed:9.0f} queries={len(queries.captured_queries):4d} "
                f"usage_inserts_per_chunk={len(inserts) / max(run.chunks_done, 1):.1f} "
                f"removed={run.rows_removed:5d} usage_deletes={len(deletes):2d} "
                f"finding_ms_per_chunk={1000 * sum(finding) / max(len(finding), 1):.2f} "
                f"[{connection.vendor}]"
            )


if __name__ == "__main__":
    main()
