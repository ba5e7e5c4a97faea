"""Benchmark: what pricing a chunk adds to a sync (usage/pricing/estimate.py).

Builds N hourly usage samples (4 token metrics + requests per key, over real model ids of five
providers and 10 projects), then times, on the same samples: the one-time load of genai-prices' data, the estimate (grouping, price
lookup, cost: pricing_estimate_samples), and usage_prepare_samples of the usage alone (the
attribution and statement building every chunk already pays; the physical reference of the
same run), plus a bare loop of one Decimal multiply-add per sample (the least a price
computation can cost in Python).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/pricing_estimates.py [--samples 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from bench.django_setup import start  # noqa: E402

start()

from django.core.management import call_command  # noqa: E402

from accounts.models import Workspace  # noqa: E402
from integrations.models import Integration  # noqa: E402
from integrations.providers.base import UsageSample  # noqa: E402
from usage.pricing.estimate import pricing_estimate_samples  # noqa: E402
from usage.pricing.prices import Overrides  # noqa: E402
from usage.store import usage_prepare_samples  # noqa: E402

MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "o3-mini-2025-01-31", "gpt-4.1-2025-04-14", "gpt-5-mini",
          "unknown-model-a", "unknown-model-b")  # fmt: skip
METRICS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "requests")


def make_samples(n: int) -> list[UsageSample]:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    out: list[UsageSample] = []
    i = 0
    while len(out) < n:
        hour = start + timedelta(hours=i // (len(MODELS) * 10))
        model, project = MODELS[i % len(MODELS)], f"proj_{i // len(MODELS) % 10}"
        for j, metric in enumerate(METRICS):
            out.append(UsageSample(hour, hour + timedelta(hours=1), metric, Decimal(1000 + i * 7 + j), account="org",
                                   project=project, model=model, stream="usage_completions"))  # fmt: skip
        i += 1
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    workspace, _ = Workspace.objects.get_or_create(slug="bench-pricing", defaults={"name": "Bench pricing"})
    integration = Integration.objects.filter(workspace=workspace).first() or Integration.objects.create(
        workspace=workspace, provider="openai", name="bench", settings={}
    )
    samples = make_samples(args.samples)
    print(
        f"{len(samples):,} usage samples ({len(samples) // len(METRICS):,} keys), database {os.environ['DATABASE_URL'].split(':')[0]}"
    )

    t = time.perf_counter()
    pricing_estimate_samples(integration=integration, samples=samples[: len(METRICS)], overrides=Overrides())
    load_s = time.perf_counter() - t  # genai-prices' data (1.6 MB of Python) loads on first use
    t = time.perf_counter()
    estimates = pricing_estimate_samples(integration=integration, samples=samples, overrides=Overrides())
    estimate_s = time.perf_counter() - t
    t = time.perf_counter()
    usage_prepare_samples(integration=integration, samples=samples)
    prepare_s = time.perf_counter() - t
    t = time.perf_counter()
    total, price = Decimal(0), Decimal("0.0000025")
    for s in samples:
        total += s.quantity * price
    loop_s = time.perf_counter() - t
    per = 1e6 / len(samples)
    print(f"price data load (once a process): {load_s:8.3f} s")
    print(
        f"estimate (group, look up, price): {estimate_s:8.3f} s  {estimate_s * per:6.2f} µs/sample  → {len(estimates):,} estimates"
    )
    print(f"prepare usage (reference)       : {prepare_s:8.3f} s  {prepare_s * per:6.2f} µs/sample")
    print(f"bare Decimal loop (floor)       : {loop_s:8.3f} s  {loop_s * per:6.2f} µs/sample")
    print(f"estimate / prepare              : {estimate_s / prepare_s:8.2f} ×")


if __name__ == "__main__":
    main()
