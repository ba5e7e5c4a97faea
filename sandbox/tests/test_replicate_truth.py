"""The fake Replicate account's deterministic data: stable, plausible, with the fixed daily
predictions the tests rely on (a chunk-boundary one and a long nightly job)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sandbox import replicate as fake

DAY = datetime(2025, 3, 10, tzinfo=UTC)
NEXT = DAY + timedelta(days=1)
LATER = datetime(2025, 4, 1, tzinfo=UTC)


def us(moment: datetime) -> int:
    return fake._us(moment)


def test_predictions_are_deterministic_and_newest_first() -> None:
    predictions = fake.truth_predictions(DAY, NEXT)
    assert predictions == fake.truth_predictions(DAY, NEXT)
    assert 100 < len(predictions) < 600, "a day needs several pages of 100"
    keys = [(p.created_us, p.id) for p in predictions]
    assert keys == sorted(keys, reverse=True)
    assert len({p.id for p in predictions}) == len(predictions)
    assert all(DAY <= p.created_at < NEXT for p in predictions)


def test_every_day_has_a_prediction_on_its_first_microsecond_and_a_late_nightly_job() -> None:
    for day in (DAY, NEXT, LATER):
        predictions = fake.truth_predictions(day, day + timedelta(days=1))
        assert sum(p.created_at == day for p in predictions) >= 1  # random ones may sit there too
        (nightly,) = [p for p in predictions if p.created_at == day + timedelta(hours=23, minutes=50)]
        assert 35 * 60 <= nightly.predict_us / 1e6 <= 45 * 60
        assert nightly.status_at(us(day + timedelta(days=1, minutes=15))) == "processing"
        assert nightly.status_at(us(day + timedelta(days=1, hours=1))) == "succeeded"


def test_a_mix_of_models_outcomes_sources_and_idle_hours() -> None:
    predictions = fake.truth_predictions(DAY, DAY + timedelta(days=7))
    assert {p.model.name for p in predictions} == {m.name for m in fake.MODELS}
    assert Counter(p.outcome for p in predictions).keys() == {"succeeded", "failed", "canceled"}
    assert {p.source for p in predictions} == {"api", "web"}
    assert any(p.deployment for p in predictions) and any(not p.deployment for p in predictions)
    assert any(p.started_us is None for p in predictions), "some are canceled before they start"
    hours = {p.created_us // 3_600_000_000 for p in predictions if p.created_us % 86_400_000_000}
    assert len(hours) < 7 * 24


def test_status_and_predict_time_follow_the_clock() -> None:
    p = next(p for p in fake.truth_predictions(DAY, NEXT) if p.started_us is not None and p.outcome == "succeeded")
    assert p.status_at(p.created_us) == "starting" and p.predict_time_at(p.created_us) is None
    assert p.status_at(p.started_us) == "processing" and p.predict_time_at(p.started_us) is None
    assert (
        p.status_at(p.completed_us) == "succeeded"
        and p.predict_time_at(p.completed_us) == Decimal(p.predict_us) / 10**6
    )


def test_usage_rows_add_up_the_predictions() -> None:
    predictions = fake.truth_predictions(DAY, NEXT)
    rows = fake.truth_usage(DAY, NEXT)
    assert sum(r.requests for r in rows) == len(predictions)
    assert sum(r.compute_seconds for r in rows) == sum(Decimal(p.predict_us or 0) / 10**6 for p in predictions)
    assert all(r.running == 0 for r in rows)
    assert all(r.hour_start.minute == 0 and DAY <= r.hour_start < NEXT for r in rows)


def test_usage_seen_early_has_running_predictions_and_less_compute() -> None:
    early = NEXT + timedelta(minutes=15)
    seen_early, final = fake.truth_usage(DAY, NEXT, now=early), fake.truth_usage(DAY, NEXT)
    assert sum(r.requests for r in seen_early) == sum(r.requests for r in final)
    assert sum(r.running for r in seen_early) >= 1
    assert sum(r.compute_seconds for r in seen_early) < sum(r.compute_seconds for r in final)


def test_nothing_before_the_account_existed_or_after_now() -> None:
    assert fake.truth_predictions(fake.DATA_START - timedelta(days=2), fake.DATA_START) == []
    now = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
    assert all(p.created_at <= now for p in fake.truth_predictions(DAY, NEXT, now=now))
    assert fake.truth_predictions(now + timedelta(seconds=1), NEXT, now=now) == []
