"""The sandbox's deterministic data: stable, plausible, and costs consistent with tokens."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox.openai import COST_PLACES, DATA_START, MODELS, PRICES, PROJECTS, truth_costs, truth_usage

DAY_START = datetime(2025, 3, 10, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


def test_usage_is_deterministic_and_hourly() -> None:
    rows = truth_usage(DAY_START, DAY_END)
    assert rows == truth_usage(DAY_START, DAY_END)
    assert rows, "a past day has usage"
    assert all(r.hour_start.minute == 0 and DAY_START <= r.hour_start < DAY_END for r in rows)
    assert {r.project_id for r in rows} <= {p.id for p in PROJECTS}
    assert {r.model for r in rows} <= set(MODELS)


def test_usage_rows_are_internally_consistent() -> None:
    for row in truth_usage(DAY_START, DAY_START + timedelta(days=7)):
        assert row.num_model_requests > 0 and row.output_tokens > 0
        assert 0 <= row.input_cached_tokens + row.input_cache_write_tokens <= row.input_tokens


def test_some_hours_have_no_usage_at_all() -> None:
    busy = {r.hour_start for r in truth_usage(DAY_START, DAY_START + timedelta(days=7))}
    assert 0 < len(busy) < 7 * 24


def test_no_usage_for_hours_that_have_not_ended() -> None:
    now = datetime(2025, 3, 10, 14, 25, tzinfo=UTC)
    rows = truth_usage(DAY_START, DAY_END, now=now)
    assert max(r.hour_start for r in rows) <= datetime(2025, 3, 10, 13, tzinfo=UTC)
    assert truth_usage(now, now + timedelta(days=1), now=now) == []


def test_no_usage_before_the_organization_existed() -> None:
    assert truth_usage(DATA_START - timedelta(days=3), DATA_START) == []


def test_unaligned_start_counts_only_hours_starting_after_it() -> None:
    rows = truth_usage(DAY_START + timedelta(minutes=30), DAY_END)
    assert min(r.hour_start for r in rows) >= DAY_START + timedelta(hours=1)


def test_costs_are_tokens_times_prices() -> None:
    tokens: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in truth_usage(DAY_START, DAY_END):
        tokens[(r.project_id, r.model, "input")] += r.input_tokens - r.input_cached_tokens
        tokens[(r.project_id, r.model, "cached input")] += r.input_cached_tokens
        tokens[(r.project_id, r.model, "output")] += r.output_tokens
    rates = {"input": "input", "cached input": "cached_input", "output": "output"}
    costs = truth_costs(DAY_START, DAY_END)
    assert costs and all(c.day == DAY_START for c in costs)
    for cost in costs:
        model, kind = cost.line_item.split(", ")
        rate = getattr(PRICES[model], rates[kind])
        assert cost.amount == (Decimal(tokens[(cost.project_id, model, kind)]) * rate / 1_000_000).quantize(
            COST_PLACES, ROUND_HALF_UP
        )
    assert len(costs) == len([k for k, v in tokens.items() if v])


def test_todays_costs_cover_only_elapsed_hours() -> None:
    now = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    partial = sum(c.amount for c in truth_costs(DAY_START, DAY_END, now=now))
    full = sum(c.amount for c in truth_costs(DAY_START, DAY_END))
    assert 0 < partial < full
    assert truth_costs(DAY_END, DAY_END + timedelta(days=1), now=now) == []
