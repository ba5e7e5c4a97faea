"""Every query one page runs, with its time, beside the page's server time (same request).

    BENCH_DB=bench_perf DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/page_queries.py /w/bench/usage/?by=model [more URLs…]

Reads a database loaded by bench/analytics.py (workspace "bench", its admin; run by `make bench`
after it, on its database, with the default URLs). A URL may start
with "htmx:" to send the request as htmx does. Prints, per URL, the median of --repeat requests
and the queries of the last one, slowest first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import analytics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="*", help="paths (default: the overview and three explorer views)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    analytics.prepare_database(reuse=True)
    analytics.setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username=analytics.ADMIN))
    print(f"load average {analytics._load()}")
    ws = analytics.WORKSPACE
    urls = args.urls or [
        f"/w/{ws}/",
        f"/w/{ws}/usage/",
        f"/w/{ws}/usage/?range=all&by=model",
        f"htmx:/w/{ws}/usage/?provider=anthropic",
    ]
    width = int(os.environ.get("SQL_WIDTH", "150"))
    for raw in urls:
        htmx = raw.startswith("htmx:")
        url = raw.removeprefix("htmx:")
        extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        client.get(url, **extra)  # warm-up
        times = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url, **extra)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        queries = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))
        in_db = sum(float(q["time"]) for q in queries)
        page = statistics.median(times)
        print(
            f"\n{raw}: page p50 {page * 1000:.0f} ms; last request: {len(queries)} queries, {in_db * 1000:.0f} ms in the database"
        )
        for q in queries:
            print(f"  {float(q['time']) * 1000:7.1f} ms  {q['sql'][:width]}")


if __name__ == "__main__":
    os.environ.setdefault("BENCH_DB", "doow_bench")
    main()
