"""The fake Fireworks account's deterministic data: stable, plausible, internally consistent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sandbox import fireworks as fw

DAY_START = datetime(2025, 3, 10, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)
HOUR = timedelta(hours=1)


def test_billing_truth_is_deterministic_and_daily() -> None:
    serverless = fw.truth_serverless(DAY_START, DAY_START + timedelta(days=3))
    assert serverless == fw.truth_serverless(DAY_START, DAY_START + timedelta(days=3))
    assert {r.day for r in serverless} == {DAY_START + timedelta(days=i) for i in range(3)}
    assert {r.model for r in serverless} == set(fw.SERVERLESS_MODELS)
    dedicated = fw.truth_dedicated(DAY_START, DAY_END)
    assert {r.deployment for r in dedicated} == set(fw.DEPLOYMENTS)
    assert all(r.accelerator_seconds % 3600 == 0 and r.accelerator_seconds <= 2 * 2 * 86400 for r in dedicated)


def test_a_day_is_the_sum_of_its_hours() -> None:
    hourly: Counter = Counter()
    for i in range(24):
        for row in fw.truth_serverless(DAY_START + i * HOUR, DAY_START + (i + 1) * HOUR):
            hourly[(row.model, "prompt")] += row.prompt_tokens
            hourly[(row.model, "completion")] += row.completion_tokens
    daily: Counter = Counter()
    for row in fw.truth_serverless(DAY_START, DAY_END):
        daily[(row.model, "prompt")] += row.prompt_tokens
        daily[(row.model, "completion")] += row.completion_tokens
    assert +hourly == +daily


def test_embeddings_have_no_completion_tokens_and_some_hours_are_idle() -> None:
    rows = fw.truth_serverless(DAY_START, DAY_START + timedelta(days=7))
    assert all(r.completion_tokens == 0 for r in rows if r.model in fw.EMBEDDING_MODELS)
    assert all(r.completion_tokens > 0 for r in rows if r.model not in fw.EMBEDDING_MODELS)
    hours = [DAY_START + i * HOUR for i in range(7 * 24)]
    busy = {hour for hour in hours if fw.truth_serverless(hour, hour + HOUR)}
    assert 0 < len(busy) < 7 * 24


def test_today_grows_as_hours_elapse() -> None:
    morning, evening = DAY_START + timedelta(hours=9, minutes=5), DAY_START + timedelta(hours=20)
    early = sum(r.prompt_tokens for r in fw.truth_serverless(DAY_START, DAY_END, now=morning))
    late = sum(r.prompt_tokens for r in fw.truth_serverless(DAY_START, DAY_END, now=evening))
    assert 0 < early < late
    assert fw.truth_serverless(morning, DAY_END, now=morning) == []
    assert fw.truth_dedicated(morning, DAY_END, now=morning) == []


def test_rates_are_constant_within_a_30_second_slot() -> None:
    at = datetime(2025, 3, 10, 9, 30, 0, tzinfo=UTC)
    assert fw.truth_rates(at) == fw.truth_rates(at + timedelta(seconds=29, microseconds=999_999))
    assert fw.truth_rates(at) != fw.truth_rates(at + timedelta(seconds=30))


def test_rates_are_plausible_and_stop_while_scaled_to_zero() -> None:
    seen_idle = seen_busy = False
    for i in range(48):
        at = DAY_START + i * HOUR + timedelta(minutes=17)
        for deployment_id, rates in fw.truth_rates(at).items():
            assert 0 <= rates.cached_prompt_tokens <= rates.prompt_tokens
            assert rates.prompt_tokens == rates.prompt_tokens.quantize(Decimal("0.01"))
            if rates.prompt_tokens == 0:
                seen_idle = True
                assert rates.requests == 0
            else:
                seen_busy = True
                assert rates.requests > 0
            assert deployment_id in {d.id for d in fw.DEPLOYMENTS}
    assert seen_idle and seen_busy


def test_two_deployments_share_a_base_model() -> None:
    models = Counter(d.base_model for d in fw.DEPLOYMENTS)
    assert max(models.values()) == 2
