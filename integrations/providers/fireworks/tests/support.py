"""Test support: recorded responses (fixtures/, built from the documented shapes) with the samples
the connector must make of them, computed by hand; past windows; a settable clock; and the
sandbox's true totals and true metric estimates, computed independently of the connector."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.providers.base import UsageSample, Window
from integrations.providers.fireworks import provider
from integrations.providers.fireworks.metrics import (
    Scrape,
    advance,
    metric_samples,
    parse_metrics,
)
from integrations.providers.fireworks.schema import (
    dedicated_samples,
    parse_billing_usage,
    serverless_samples,
)
from integrations.providers.testing import SandboxHooks, days_ago, fixture_loader
from sandbox import fireworks as fw

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "acme"
BILLING_PATH = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/billingUsage"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
LLAMA = "accounts/fireworks/models/llama-v3p3-70b-instruct"
CODER = "accounts/fireworks/models/qwen2p5-coder-32b-instruct"


class FireworksSandbox(SandboxHooks):
    """The sandbox's Fireworks account, for the contract and failure tests."""

    provider = provider
    fault_prefix = "/fireworks/v1/accounts/"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"api_key": fw.API_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": sandbox.url + "/fireworks", "account_id": fw.ACCOUNT_ID}

    def pagination_window(self) -> Window:
        # 40 days: billingUsage takes at most 31 days per request, so each usage type needs two.
        return Window(days_ago(41), days_ago(1))


class FakeClock:
    """A clock tests set and advance; shared by the connector and the in-process sandbox."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


load = fixture_loader(FIXTURES)


def load_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _day(date: str, metric: str, quantity: str, **dims: str) -> UsageSample:
    start = _at(date)
    return UsageSample(start, start + DAY, metric, Decimal(quantity), account=ACCOUNT, **dims)


# Two rows of deepseek on 11-01 add up; the embedding row names its model only in `group` and
# has no completionTokens (proto3 leaves a 0 out): output 0. Only the kimi row carries
# cachedPromptTokens, so only it yields cached_input_tokens. The API key comes from the group
# map (api_key_id; the deprecated top-level apiKeyId agrees): the deepseek rows have none.
EXPECTED_SERVERLESS = [
    _day("2026-11-01", "input_tokens", "1250", model="accounts/fireworks/models/deepseek-v3"),
    _day("2026-11-01", "output_tokens", "300", model="accounts/fireworks/models/deepseek-v3"),
    _day(
        "2026-11-01", "input_tokens", "900", model="accounts/fireworks/models/nomic-embed-text-v1p5", api_key="key_def"
    ),
    _day(
        "2026-11-01", "output_tokens", "0", model="accounts/fireworks/models/nomic-embed-text-v1p5", api_key="key_def"
    ),
    _day("2026-11-02", "input_tokens", "886211", model="accounts/fireworks/models/kimi-k2-instruct", api_key="key_abc"),
    _day("2026-11-02", "output_tokens", "8272", model="accounts/fireworks/models/kimi-k2-instruct", api_key="key_abc"),
    _day(
        "2026-11-02",
        "cached_input_tokens",
        "762880",
        model="accounts/fireworks/models/kimi-k2-instruct",
        api_key="key_abc",
    ),
]

# The second row has no deploymentId (taken from group.deployment_name), no placement and ends
# mid-day (a partial day): it is still keyed on its whole UTC day.
EXPECTED_DEDICATED = [
    _day("2026-11-01", "compute_seconds", "172800", deployment="chat-us", model=LLAMA,
         resource="NVIDIA_H100_80GB", region="US"),
    _day("2026-11-01", "compute_seconds", "3600.5", deployment="coder", model=CODER, resource="NVIDIA_A100_80GB"),
]  # fmt: skip

# metrics.txt: chat-us and chat-eu share LLAMA (summed); coder's cached rate is NaN (skipped).
EXPECTED_RATES = {
    LLAMA: {"input_tokens": Decimal("2000.0"), "cached_input_tokens": Decimal("600.25"), "requests": Decimal("2.5")},
    CODER: {"input_tokens": Decimal(100), "requests": Decimal("0.25")},
}


def _hour(start: str, metric: str, quantity: str, model: str) -> UsageSample:
    at = _at(start)
    return UsageSample(at, at + HOUR, metric, Decimal(quantity), account=ACCOUNT, model=model, provenance="derived")


# The same rates scraped at 10:45 and 11:15: 900 s in each hour at the (unchanged) mean rate.
EXPECTED_ESTIMATES = [
    _hour(hour, metric, quantity, model)
    for hour in ("2026-11-01T10:00", "2026-11-01T11:00")
    for model, metric, quantity in (
        (LLAMA, "input_tokens", "1800000"),
        (LLAMA, "cached_input_tokens", "540225"),
        (LLAMA, "requests", "2250"),
        (CODER, "input_tokens", "90000"),
        (CODER, "requests", "225"),
    )
]


def parsed_serverless() -> list[UsageSample]:
    return serverless_samples(parse_billing_usage(load("billing_serverless.json")).serverless, account=ACCOUNT)


def parsed_dedicated() -> list[UsageSample]:
    return dedicated_samples(parse_billing_usage(load("billing_dedicated.json")).dedicated, account=ACCOUNT)


def parsed_estimates() -> list[UsageSample]:
    rates = parse_metrics(load_text("metrics.txt"))
    entry, _ = advance(None, Scrape(_at("2026-11-01T10:45"), rates), max_gap=timedelta(hours=6))
    _, hours = advance(entry, Scrape(_at("2026-11-01T11:15"), rates), max_gap=timedelta(hours=6))
    return metric_samples(hours, account=ACCOUNT)


def cases() -> list[tuple[str, list[UsageSample], list[UsageSample]]]:
    return [
        ("billing_serverless.json", parsed_serverless(), EXPECTED_SERVERLESS),
        ("billing_dedicated.json", parsed_dedicated(), EXPECTED_DEDICATED),
        ("metrics.txt (two scrapes)", parsed_estimates(), EXPECTED_ESTIMATES),
    ]


# ---------------------------------------------------------------- the sandbox's truth
def billing_truth(
    start: datetime, end: datetime, *, now: datetime | None = None, key: Callable[[Any], tuple[Any, ...]] = lambda r: ()
) -> Counter:
    """True billing totals per (metric, *key(row)); rows are ServerlessDay, DedicatedDay or
    TrainingDay (whose GPU seconds are compute_seconds too)."""
    totals: Counter = Counter()
    for row in fw.truth_serverless(start, end, now=now):
        totals[("input_tokens", *key(row))] += Decimal(row.prompt_tokens)
        totals[("output_tokens", *key(row))] += Decimal(row.completion_tokens)
    for row in fw.truth_dedicated(start, end, now=now):
        totals[("compute_seconds", *key(row))] += Decimal(row.accelerator_seconds)
    for row in fw.truth_training(start, end, now=now):
        totals[("training_tokens", *key(row))] += Decimal(row.training_tokens)
        if row.accelerator_seconds:
            totals[("compute_seconds", *key(row))] += Decimal(row.accelerator_seconds)
    return totals


def rates_by_model(at: datetime) -> dict[str, dict[str, Decimal]]:
    """The sandbox's rates at `at`, summed per base model, keyed by our metric names."""
    out: dict[str, dict[str, Decimal]] = {}
    for deployment in fw.DEPLOYMENTS:
        rates = fw.truth_rates(at)[deployment.id]
        per_model = out.setdefault(deployment.base_model, Counter())
        per_model["input_tokens"] += rates.prompt_tokens
        per_model["cached_input_tokens"] += rates.cached_prompt_tokens
        per_model["requests"] += rates.requests
    return out


def expected_estimates(t0: datetime, t1: datetime) -> dict[tuple[datetime, str, str], Decimal]:
    """(hour, model, metric) -> mean of the two scrapes' rates × seconds of [t0, t1) in that hour."""
    r0, r1 = rates_by_model(t0), rates_by_model(t1)
    out: dict[tuple[datetime, str, str], Decimal] = {}
    hour = t0.replace(minute=0, second=0, microsecond=0)
    while hour < t1:
        seconds = Decimal(int((min(t1, hour + HOUR) - max(t0, hour)).total_seconds()))
        for model in r0:
            for metric in ("input_tokens", "cached_input_tokens", "requests"):
                mean = (r0[model][metric] + r1[model][metric]) / 2
                if mean:
                    out[(hour, model, metric)] = mean * seconds
        hour += HOUR
    return out
