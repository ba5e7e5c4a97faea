"""Fireworks deployment metrics: parse the Prometheus text, integrate its rates between scrapes.

The metrics endpoint serves per-second rates (1-minute windows, refreshed every 30 s) for
dedicated deployments only. A rate is not a count, so the usage of the interval between two
scrapes is *estimated*: the mean of the two rates × the elapsed seconds (a trapezoid), spread
evenly over the hourly buckets the interval covers. The previous scrape and the still-open hour
live in the connector state the engine persists with each chunk; an hour is re-emitted with its
whole running estimate each time it grows, because the store replaces a key, never adds to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from integrations.providers.base import ProviderResponseError, UsageSample, align_down
from integrations.providers.fireworks.schema import HOUR

# The documented series (rates per second, summed per deployment) and the metric each feeds.
SERIES: dict[str, str] = {
    "tokens_prompt_total:sum_by_deployment": "input_tokens",
    "tokens_cached_prompt_total:sum_by_deployment": "cached_input_tokens",
    "request_counter_total:sum_by_deployment": "requests",
}
QUANTUM = Decimal("0.001")  # estimates are kept to a thousandth of a token / request

Rates = dict[str, dict[str, Decimal]]  # base_model -> our metric -> per-second rate
HourKey = tuple[datetime, str, str]  # (hour start, base_model, metric)


@dataclass(frozen=True)
class Scrape:
    at: datetime
    rates: Rates


def _bad(what: str) -> ProviderResponseError:
    return ProviderResponseError(f"Fireworks returned unexpected metrics: {what}.")


def parse_metrics(text: str) -> Rates:
    """Rates per base model, summed over its deployments (the series we do not read are ignored)."""
    try:
        families = list(text_string_to_metric_families(text))
    except Exception:  # the parser raises ValueError, and other errors on some garbage
        raise ProviderResponseError("Fireworks returned a metrics body that is not Prometheus text.") from None
    rates: Rates = {}
    for family in families:
        for sample in family.samples:
            metric = SERIES.get(sample.name)
            if metric is None:
                continue
            model = (sample.labels.get("base_model") or "").strip()
            if not model:
                raise _bad(f"a {sample.name} series has no base_model label")
            value = float(sample.value)
            if math.isnan(value):  # no traffic in the rate window: nothing to add
                continue
            if math.isinf(value) or value < 0:
                raise _bad(f"{sample.name} for {model} is not a finite, non-negative rate")
            per_model = rates.setdefault(model, {})
            per_model[metric] = per_model.get(metric, Decimal(0)) + Decimal(str(value))
    return rates


def integrate(previous: Scrape, current: Scrape) -> dict[HourKey, Decimal]:
    """Estimated quantities per hour for [previous.at, current.at): mean rate × seconds in the hour."""
    overlaps: list[tuple[datetime, Decimal]] = []
    hour = align_down(previous.at, HOUR)
    while hour < current.at:
        span = min(current.at, hour + HOUR) - max(previous.at, hour)
        overlaps.append((hour, Decimal(span.days * 86400 + span.seconds) + Decimal(span.microseconds) / 1_000_000))
        hour += HOUR
    out: dict[HourKey, Decimal] = {}
    for model in sorted(set(previous.rates) | set(current.rates)):
        for metric in SERIES.values():
            # A model missing from one scrape (deployment created or deleted) counts as rate 0 there.
            mean = (
                previous.rates.get(model, {}).get(metric, Decimal(0))
                + current.rates.get(model, {}).get(metric, Decimal(0))
            ) / 2
            if not mean:
                continue
            for start, seconds in overlaps:
                if seconds > 0:
                    out[(start, model, metric)] = (mean * seconds).quantize(QUANTUM)
    return out


# ---------------------------------------------------------------- state
def _dump(scrape: Scrape, open_hours: dict[HourKey, Decimal], note: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "scraped_at": scrape.at.isoformat(),
        "rates": {m: {k: str(v) for k, v in sorted(r.items())} for m, r in sorted(scrape.rates.items())},
        "open_hours": [[h.isoformat(), m, k, str(q)] for (h, m, k), q in sorted(open_hours.items())],
    }
    if note:
        entry["note"] = note
    return entry


def _load(entry: Any) -> tuple[Scrape, dict[HourKey, Decimal]] | None:
    """The stored baseline, or None when there is none or it is unreadable (then we start over)."""
    if not isinstance(entry, dict) or "scraped_at" not in entry:
        return None
    try:
        at = datetime.fromisoformat(entry["scraped_at"]).astimezone(UTC)
        rates = {str(m): {str(k): Decimal(v) for k, v in r.items()} for m, r in entry.get("rates", {}).items()}
        open_hours = {
            (datetime.fromisoformat(h).astimezone(UTC), str(m), str(k)): Decimal(q)
            for h, m, k, q in entry.get("open_hours", [])
        }
    except (TypeError, ValueError, AttributeError, InvalidOperation):
        return None
    return Scrape(at, rates), open_hours


def advance(entry: Any, current: Scrape, *, max_gap: timedelta) -> tuple[dict[str, Any], dict[HourKey, Decimal]]:
    """The new state entry after `current`, and the hourly estimates to (re-)emit.

    The first scrape, a scrape after a gap longer than `max_gap` (a mean of two rates hours
    apart says nothing about what happened in between) or a clock that went backwards only
    record a baseline. A scrape at the same instant as the previous one changes nothing.
    """
    loaded = _load(entry)
    if loaded is None:
        return _dump(current, {}), {}
    previous, open_hours = loaded
    elapsed = current.at - previous.at
    if elapsed == timedelta(0):
        return entry, {}
    if elapsed < timedelta(0) or elapsed > max_gap:
        note = f"Baseline restarted at {current.at:%Y-%m-%d %H:%M:%S}Z: {elapsed} since the previous scrape."
        return _dump(current, {}, note), {}
    hours = dict(open_hours)
    for key, quantity in integrate(previous, current).items():
        hours[key] = hours.get(key, Decimal(0)) + quantity
    # Hours that ended by `current.at` get nothing more; only the hour now filling stays open.
    still_open = {key: q for key, q in hours.items() if key[0] + HOUR > current.at}
    return _dump(current, still_open), hours


def with_note(entry: Any, note: str) -> dict[str, Any]:
    """The entry unchanged (baseline kept) but for a note saying why this sync did not scrape."""
    return {**(entry if isinstance(entry, dict) else {}), "note": note}


def metric_samples(hours: dict[HourKey, Decimal], *, account: str) -> list[UsageSample]:
    return [
        UsageSample(start, start + HOUR, metric, quantity, account=account, model=model, provenance="derived")
        for (start, model, metric), quantity in sorted(hours.items())
    ]
