"""Integrating metric rates between scrapes: the pure state machine, computed by hand."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from integrations.providers.fireworks.metrics import (
    Scrape,
    advance,
    metric_samples,
    with_note,
)

M, N = "accounts/fireworks/models/m", "accounts/fireworks/models/n"
GAP = timedelta(hours=6)


def at(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-01T{hhmm}:00").replace(tzinfo=UTC)


def rates(input_tokens: str, cached: str, requests: str) -> dict[str, Decimal]:
    return {
        "input_tokens": Decimal(input_tokens),
        "cached_input_tokens": Decimal(cached),
        "requests": Decimal(requests),
    }


def test_first_scrape_only_records_the_baseline() -> None:
    entry, hours = advance(None, Scrape(at("10:40"), {M: rates("100", "40", "2")}), max_gap=GAP)
    assert hours == {}
    assert entry == {
        "scraped_at": "2026-11-01T10:40:00+00:00",
        "rates": {M: {"cached_input_tokens": "40", "input_tokens": "100", "requests": "2"}},
        "open_hours": [],
    }


def test_second_scrape_integrates_the_mean_rate_over_each_hour_covered() -> None:
    entry, _ = advance(None, Scrape(at("10:40"), {M: rates("100", "40", "2")}), max_gap=GAP)
    entry, hours = advance(entry, Scrape(at("11:10"), {M: rates("300", "0", "1")}), max_gap=GAP)
    # mean rates 200 / 20 / 1.5 per second; 1200 s fall in the 10:00 hour, 600 s in the 11:00 hour.
    assert hours == {
        (at("10:00"), M, "input_tokens"): Decimal(240000),
        (at("10:00"), M, "cached_input_tokens"): Decimal(24000),
        (at("10:00"), M, "requests"): Decimal(1800),
        (at("11:00"), M, "input_tokens"): Decimal(120000),
        (at("11:00"), M, "cached_input_tokens"): Decimal(12000),
        (at("11:00"), M, "requests"): Decimal(900),
    }
    # Only the hour still filling stays open.
    assert {h for h, *_ in entry["open_hours"]} == {"2026-11-01T11:00:00+00:00"}


def test_an_open_hour_accumulates_and_is_emitted_whole() -> None:
    entry, _ = advance(None, Scrape(at("10:40"), {M: rates("100", "40", "2")}), max_gap=GAP)
    entry, _ = advance(entry, Scrape(at("11:10"), {M: rates("300", "0", "1")}), max_gap=GAP)
    entry, hours = advance(entry, Scrape(at("11:40"), {M: rates("100", "20", "1")}), max_gap=GAP)
    # mean rates 200 / 10 / 1 over 1800 s, added to the 11:00 hour's earlier 600 s.
    assert hours == {
        (at("11:00"), M, "input_tokens"): Decimal(120000 + 360000),
        (at("11:00"), M, "cached_input_tokens"): Decimal(12000 + 18000),
        (at("11:00"), M, "requests"): Decimal(900 + 1800),
    }


def test_a_scrape_ending_on_the_hour_leaves_nothing_open() -> None:
    entry, _ = advance(None, Scrape(at("10:00"), {M: rates("10", "0", "0")}), max_gap=GAP)
    entry, hours = advance(entry, Scrape(at("11:00"), {M: rates("10", "0", "0")}), max_gap=GAP)
    assert hours == {(at("10:00"), M, "input_tokens"): Decimal(36000)}
    assert entry["open_hours"] == []


def test_a_model_seen_in_one_scrape_only_counts_as_rate_zero_in_the_other() -> None:
    entry, _ = advance(None, Scrape(at("10:00"), {M: rates("10", "0", "0")}), max_gap=GAP)
    _, hours = advance(entry, Scrape(at("10:10"), {N: rates("30", "0", "0")}), max_gap=GAP)
    assert hours == {(at("10:00"), M, "input_tokens"): Decimal(3000), (at("10:00"), N, "input_tokens"): Decimal(9000)}


def test_a_scrape_at_the_same_instant_changes_nothing() -> None:
    entry, _ = advance(None, Scrape(at("10:40"), {M: rates("100", "40", "2")}), max_gap=GAP)
    entry, _ = advance(entry, Scrape(at("11:10"), {M: rates("300", "0", "1")}), max_gap=GAP)
    again, hours = advance(entry, Scrape(at("11:10"), {M: rates("999", "9", "9")}), max_gap=GAP)
    assert again == entry and hours == {}


@pytest.mark.parametrize(("later", "why"), [("10:30", "clock went backwards"), ("17:41", "gap longer than 6 h")])
def test_backwards_clock_or_long_gap_restarts_the_baseline(later: str, why: str) -> None:
    entry, _ = advance(None, Scrape(at("10:40"), {M: rates("100", "40", "2")}), max_gap=GAP)
    entry, hours = advance(entry, Scrape(at(later), {M: rates("300", "0", "1")}), max_gap=GAP)
    assert hours == {}, why
    assert entry["scraped_at"] == at(later).isoformat() and entry["open_hours"] == []
    assert entry["note"].startswith("Baseline restarted")


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "garbage",
        {},
        {"note": "Metrics not scraped: rate limited"},
        {"scraped_at": "not a time", "rates": {}},
        {"scraped_at": "2026-11-01T10:00:00+00:00", "rates": {M: {"input_tokens": "abc"}}},
        {"scraped_at": "2026-11-01T10:00:00+00:00", "rates": {}, "open_hours": [["x"]]},
    ],
)
def test_unreadable_state_restarts_from_a_baseline(stored) -> None:
    entry, hours = advance(stored, Scrape(at("10:40"), {M: rates("1", "0", "0")}), max_gap=GAP)
    assert hours == {} and entry["scraped_at"] == at("10:40").isoformat()


def test_state_is_json_and_never_mutated_in_place() -> None:
    entry, _ = advance(None, Scrape(at("10:40"), {M: rates("100.25", "40", "2")}), max_gap=GAP)
    entry, _ = advance(entry, Scrape(at("11:10"), {M: rates("300", "0", "1")}), max_gap=GAP)
    before = copy.deepcopy(entry)
    advance(entry, Scrape(at("11:40"), {M: rates("100", "20", "1")}), max_gap=GAP)
    assert entry == before
    assert json.loads(json.dumps(entry)) == entry


def test_a_note_keeps_the_baseline() -> None:
    entry, _ = advance(None, Scrape(at("10:00"), {M: rates("10", "0", "0")}), max_gap=GAP)
    noted = with_note(entry, "Metrics not scraped: rate limited")
    _, hours = advance(noted, Scrape(at("10:10"), {M: rates("10", "0", "0")}), max_gap=GAP)
    assert hours == {(at("10:00"), M, "input_tokens"): Decimal(6000)}


def test_estimates_become_derived_hourly_samples() -> None:
    (sample,) = metric_samples({(at("10:00"), M, "cached_input_tokens"): Decimal("12.5")}, account="acme")
    assert (sample.bucket_start, sample.bucket_end) == (at("10:00"), at("11:00"))
    assert (sample.metric, sample.quantity, sample.unit) == ("cached_input_tokens", Decimal("12.5"), "tokens")
    assert (sample.account, sample.model, sample.deployment, sample.provenance) == ("acme", M, "", "derived")
