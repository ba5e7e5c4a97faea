"""Test support: recorded responses (fixtures/*.json, built from the documented shapes) with
the samples the connector must make of them, computed by hand; past windows; sandbox truth."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.base import UsageSample, Window
from integrations.providers.replicate import provider
from integrations.providers.replicate.schema import parse_prediction_page, usage_samples
from integrations.providers.testing import SandboxHooks, days_ago, fixture_loader
from sandbox import replicate as fake

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "acme-labs"
PATHS = fake.PREFIX + "/v1/"
PREDICTIONS_PATH = fake.PREFIX + "/v1/predictions"
ACCOUNT_PATH = fake.PREFIX + "/v1/account"


class ReplicateSandbox(SandboxHooks):
    """The sandbox's Replicate account, for the contract and failure tests."""

    provider = provider
    fault_prefix = PATHS

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_token": fake.API_TOKEN}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox.url + fake.PREFIX + "/v1"}

    def pagination_window(self) -> Window:
        # ~240 predictions a day at 100 per page: three days are several pages.
        return Window(days_ago(4), days_ago(1))


load = fixture_loader(FIXTURES)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _pair(hour: str, model: str, requests: int, seconds: str, deployment: str = "") -> list[UsageSample]:
    start = _at(hour)
    dims = {"account": ACCOUNT, "model": model, "deployment": deployment}
    return [
        UsageSample(start, start + timedelta(hours=1), "requests", Decimal(requests), **dims),
        UsageSample(start, start + timedelta(hours=1), "compute_seconds", Decimal(seconds), **dims),
    ]


# 02:00 — the flux prediction is still processing: 1 request, 0 compute seconds (yet); the
# invoice-ocr one at exactly 02:00:00 belongs to the 02:00 hour; the deployment's prediction is
# its own row. 00:00 — sdxl: a failed one (4.2 s counts), one canceled before it started (a
# request, no compute) and a succeeded one from the web; the oldest has no `model` field and
# is keyed by its version. The 01:00 hour is empty: no samples.
EXPECTED = [
    *_pair("2024-11-01T02:00", "black-forest-labs/flux-schnell", 1, "0"),
    *_pair("2024-11-01T02:00", "doow-sandbox/invoice-ocr", 1, "70.912004", "doow-sandbox/invoice-ocr-prod"),
    *_pair("2024-11-01T02:00", "doow-sandbox/invoice-ocr", 1, "11.5"),
    *_pair("2024-11-01T00:00", "stability-ai/sdxl", 3, "26.323456"),
    *_pair("2024-11-01T00:00", "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb7", 1, "0.012683"),
]


def parsed_page() -> list[UsageSample]:
    return usage_samples(parse_prediction_page(load("predictions_page.json")).results, account=ACCOUNT)


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [("predictions_page.json", parsed_page(), EXPECTED)]


def truth(start: datetime, end: datetime, key=lambda r: (), *, now: datetime | None = None) -> Counter:
    """The sandbox's true totals per (metric, *key(row)) for predictions created in [start, end)."""
    totals: Counter = Counter()
    for row in [*fake.truth_usage(start, end, now=now), *fake.truth_training_usage(start, end, now=now)]:
        totals[("requests", *key(row))] += Decimal(row.requests)
        totals[("compute_seconds", *key(row))] += row.compute_seconds
        if row.input_tokens is not None:  # per-token official models report counts
            totals[("input_tokens", *key(row))] += Decimal(row.input_tokens)
            totals[("output_tokens", *key(row))] += Decimal(row.output_tokens or 0)
    return totals
