"""Test support: recorded responses (fixtures/*.json, built from the documented Prometheus
shapes) with the samples the connector must make of them, computed by hand; past windows; and
the sandbox's true totals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.base import UsageSample, Window
from integrations.providers.groq import provider
from integrations.providers.groq.schema import hourly_samples, parse_matrix
from integrations.providers.testing import SandboxHooks, days_ago, fixture_loader
from sandbox import groq as sandbox_groq
from sandbox.groq import HourRow, truth_hourly

FIXTURES = Path(__file__).parent / "fixtures"
API = "/groq" + sandbox_groq.PREFIX + "/api/v1/"
QUERY_PATH = API + "query_range"
SPAN = (datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 11, 1, 2, tzinfo=UTC))  # the recorded query's hours
ABC, DEF = "project_01jabc", "project_01jdef"
BIG, SMALL = "llama-3.3-70b-versatile", "llama-3.1-8b-instant"
# our metric -> the HourRow field holding its true hourly total
TRUTH_FIELDS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "requests": "requests"}


class GroqSandbox(SandboxHooks):
    """The sandbox's Groq Enterprise organisation, for the contract and failure tests."""

    provider = provider
    fault_prefix = API

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": sandbox_groq.ENTERPRISE_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox_groq.base_url(sandbox.url)}

    def pagination_window(self) -> Window:
        # three days: three one-day queries for each of the three metrics
        return Window(days_ago(4), days_ago(1))


load = fixture_loader(FIXTURES)


def _hour(h: int) -> datetime:
    return SPAN[0] + timedelta(hours=h)


def _sample(h: int, metric: str, quantity: int, project: str, model: str) -> UsageSample:
    return UsageSample(
        _hour(h), _hour(h + 1), metric, Decimal(quantity), project=project, model=model, provenance="derived"
    )


# Hand-computed from the fixtures (points at 00:05 … 01:00 belong to hour 00, 01:05 … 02:00 to 01):
# - tokens in, abc/70b, 00: 10.5×300 + 0.0015×300 ×2 + 0.001×300 (the 01:00 point, "1.0e-03")
#   = 3151.2 → 3151 (rounding every point would give 3150); NaN skipped.
# - tokens in, abc/70b, 01: +Inf skipped, 2×300 + 0.25×300 = 675; the 02:05 point is hour 02,
#   outside the span: ignored.
# - tokens in, def/8b, 00: 1×300 = 300 (float timestamps; -Inf, a negative rate and a repeated
#   point skipped). The series with no values gives nothing.
# - tokens out, abc/70b: hour 00 is 3 × 0.0005×300 = 0.45 → 0: no sample; hour 01 "1.5e-01" → 45.
# - requests, abc/70b, 00: (0.5 + 0.4985)×300 for 200 + 2 × 0.0015×300 for 429 = 300.45 → 300
#   (rounding per status code would give 300 + 1); 01: 0.01×300 = 3 for 500.
EXPECTED = [
    _sample(0, "input_tokens", 3151, ABC, BIG),
    _sample(1, "input_tokens", 675, ABC, BIG),
    _sample(0, "input_tokens", 300, DEF, SMALL),
    _sample(1, "output_tokens", 45, ABC, BIG),
    _sample(0, "requests", 300, ABC, BIG),
    _sample(1, "requests", 3, ABC, BIG),
]


def parsed_fixture_samples() -> list[UsageSample]:
    results = {
        "input_tokens": parse_matrix(load("query_range_tokens_in.json")),
        "output_tokens": parse_matrix(load("query_range_tokens_out.json")),
        "requests": parse_matrix(load("query_range_requests.json")),
    }
    return hourly_samples(results, *SPAN)


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [("query_range_*.json", parsed_fixture_samples(), EXPECTED)]


def true_totals(
    start: datetime, end: datetime, key: Callable[[HourRow], tuple[Any, ...]] = lambda r: ()
) -> Counter[tuple[Any, ...]]:
    """The sandbox's true totals per (metric, *key(row)) for the hours starting in [start, end)."""
    totals: Counter[tuple[Any, ...]] = Counter()
    for row in truth_hourly(start, end):
        for metric, field in TRUTH_FIELDS.items():
            if getattr(row, field):
                totals[(metric, *key(row))] += Decimal(getattr(row, field))
    return totals
