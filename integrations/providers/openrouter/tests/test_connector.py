"""The OpenRouter connector against the running sandbox: true totals,
one request for three days or more (a day per request for two, and near midnight),
the 30-day horizon, alignment, re-reads that never double count, and verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.providers.base import Window
from integrations.providers.openrouter import OpenRouterProvider
from integrations.providers.openrouter.tests.support import (
    ACTIVITY_PATH,
    SANDBOX_PREFIX,
    days_ago,
    load,
    truth,
)
from integrations.providers.testing import assert_totals_equal, fetch_list, read_twice, stored_totals, totals_by
from sandbox.openrouter import CREATOR_USER_ID, KEY_LABEL, TOTAL_CREDITS, truth_activity

DAY = timedelta(days=1)


def asked_dates(sandbox) -> list[str]:
    """The days asked for by name; "all" for a request without `date` (the whole horizon)."""
    return [r["query"].get("date", ["all"])[0] for r in sandbox.requests(ACTIVITY_PATH)]


def test_fetch_reproduces_true_totals_per_model_endpoint_and_day(
    provider, credential, settings, http, four_days
) -> None:
    samples = fetch_list(provider, credential, settings, four_days, http)
    start, end = four_days.start, four_days.end
    assert_totals_equal(totals_by(samples, "model"), truth(start, end, lambda r: (r.model_permaslug,)), "per model")
    assert_totals_equal(
        totals_by(samples, "endpoint", "deployment"),
        truth(start, end, lambda r: (r.endpoint_id, r.provider_name)),
        "per endpoint and provider",
    )
    assert_totals_equal(
        totals_by(samples, "bucket_start"),
        truth(start, end, lambda r: (datetime(r.date.year, r.date.month, r.date.day, tzinfo=UTC),)),
        "per day",
    )
    assert {(s.metric, s.unit) for s in samples} == {
        ("input_tokens", "tokens"), ("output_tokens", "tokens"), ("requests", "requests"), ("cost", "USD"), ("byok_cost", "USD")
    }  # fmt: skip
    rows = truth_activity(start, end)
    assert any(r.reasoning_tokens for r in rows), "the sandbox serves reasoning tokens"
    assert sum(s.quantity for s in samples if s.metric == "output_tokens") == sum(r.completion_tokens for r in rows)


def test_two_days_are_one_dated_request_per_day_in_order(provider, credential, settings, http, sandbox) -> None:
    window = Window(days_ago(3), days_ago(1))  # the regular sync's re-read
    samples = fetch_list(provider, credential, settings, window, http)
    assert asked_dates(sandbox) == [days_ago(3).date().isoformat(), days_ago(2).date().isoformat()]
    assert all(r["query"] == {"date": [r["query"]["date"][0]]} for r in sandbox.requests(ACTIVITY_PATH))
    assert [s.bucket_start for s in samples] == sorted(s.bucket_start for s in samples)
    assert all(s.bucket_end - s.bucket_start == DAY for s in samples)
    assert_totals_equal(totals_by(samples), truth(window.start, window.end), "two days")


def test_three_days_or_more_are_one_request_without_date(
    provider, credential, settings, http, sandbox, four_days
) -> None:
    samples = fetch_list(provider, credential, settings, four_days, http)
    assert [r["query"] for r in sandbox.requests(ACTIVITY_PATH)] == [{}]
    assert [s.bucket_start for s in samples] == sorted(s.bucket_start for s in samples)
    assert {s.bucket_start for s in samples} == {four_days.start + i * DAY for i in range(4)}  # none outside
    assert_totals_equal(totals_by(samples), truth(four_days.start, four_days.end), "four days of the horizon")


@pytest.mark.parametrize("offset", [timedelta(minutes=3), -timedelta(minutes=3)])
def test_near_utc_midnight_each_day_is_asked_for_by_name(credential, settings, http, sandbox, offset) -> None:
    # OpenRouter's clock may already (or still) serve another 30 days than ours: no whole-horizon read.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    near = OpenRouterProvider(clock=lambda: midnight + offset)
    first, last = near._history()
    window = Window(
        datetime(first.year, first.month, first.day, tzinfo=UTC) + 10 * DAY,
        datetime(last.year, last.month, last.day, tzinfo=UTC),
    )
    fetch_list(near, credential, settings, window, http)
    assert asked_dates(sandbox) == [
        (window.start + i * DAY).date().isoformat() for i in range((window.end - window.start).days)
    ]


def test_days_beyond_the_30_day_horizon_and_today_are_skipped_without_a_request(
    provider, credential, settings, http, sandbox
) -> None:
    window = Window(days_ago(45), days_ago(-1))  # 45 days back up to the end of today
    samples = fetch_list(provider, credential, settings, window, http)
    assert asked_dates(sandbox) == ["all"]  # one request serves the whole horizon
    assert all(r["status"] == 200 for r in sandbox.requests())
    assert min(s.bucket_start for s in samples) == days_ago(30)
    assert max(s.bucket_start for s in samples) == days_ago(1)
    assert_totals_equal(totals_by(samples), truth(window.start, window.end), "the whole horizon")


def test_a_window_wholly_outside_the_horizon_is_empty_and_makes_no_request(
    provider, credential, settings, http, sandbox
) -> None:
    assert fetch_list(provider, credential, settings, Window(days_ago(60), days_ago(40)), http) == []
    assert fetch_list(provider, credential, settings, Window(days_ago(0), days_ago(0) + timedelta(hours=5)), http) == []
    assert sandbox.requests() == []


def test_horizon_follows_the_clock(credential, settings, http, sandbox) -> None:
    # Three days later by our clock: the first three days of the window left the horizon.
    later = OpenRouterProvider(clock=lambda: datetime.now(UTC) + 3 * DAY)
    fetch_list(later, credential, settings, Window(days_ago(30), days_ago(25)), http)
    assert asked_dates(sandbox) == [(days_ago(27) + i * DAY).date().isoformat() for i in range(2)]


def test_unaligned_window_is_read_as_whole_days(provider, credential, settings, http, sandbox) -> None:
    window = Window(days_ago(3) + timedelta(hours=10, minutes=37), days_ago(1) + timedelta(hours=5))
    samples = fetch_list(provider, credential, settings, window, http)
    assert asked_dates(sandbox) == ["all"]  # three days touched: one request
    assert all(s.bucket_start.hour == 0 and s.bucket_start.minute == 0 for s in samples)
    assert_totals_equal(totals_by(samples), truth(days_ago(3), days_ago(0)), "the whole days touched")


def test_adjacent_and_repeated_windows_never_double_count(provider, credential, settings, http) -> None:
    middle = days_ago(3) + timedelta(hours=13)
    first = fetch_list(provider, credential, settings, Window(days_ago(5), middle), http)
    second = fetch_list(provider, credential, settings, Window(middle, days_ago(1)), http)
    again = fetch_list(provider, credential, settings, Window(days_ago(3), days_ago(1)), http)  # a restatement re-read
    stored = stored_totals(first, second, again)  # the usage store's semantics: same key → replace, never add
    assert read_twice(first, second), "the day around `middle` is read twice"
    assert_totals_equal(stored, truth(days_ago(5), days_ago(1)), "stored totals")


def test_a_server_ignoring_the_date_filter_stores_only_the_asked_day(
    provider, credential, settings, http, sandbox, day
) -> None:
    body = load("activity_month.json")  # two rows of the asked day, one of the day before
    for row, offset in zip(body["data"], (0, 0, 1), strict=True):
        row["date"] = (day.start - offset * DAY).date().isoformat()
    sandbox.fault(ACTIVITY_PATH, 200, body=body)
    samples = fetch_list(provider, credential, settings, day, http)
    assert {s.bucket_start for s in samples} == {day.start}
    assert {s.deployment for s in samples} == {"Anthropic", "Amazon Bedrock"}
    assert totals_by(samples)[("input_tokens",)] == 30000 + 6000


def test_empty_window_makes_no_request(provider, credential, settings, http, sandbox) -> None:
    moment = days_ago(2) + timedelta(hours=12)
    assert fetch_list(provider, credential, settings, Window(moment, moment), http) == []
    assert sandbox.requests() == []


# ---------------------------------------------------------------- verify
def test_verify_describes_the_management_key(provider, credential, settings, http, sandbox) -> None:
    identity = provider.verify(credential, settings, http=http)
    yesterday = days_ago(1).date()
    rows = truth_activity(days_ago(1), days_ago(0))
    assert identity.account_id == CREATOR_USER_ID and identity.account_name == KEY_LABEL
    assert identity.summary.startswith(f"Management key “{KEY_LABEL}” · {len(rows)} endpoints used on {yesterday}")
    assert f"of ${TOTAL_CREDITS:,.2f} credits used" in identity.summary
    details = identity.details
    assert details["is_management_key"] is True
    assert details["history"] == {"first_day": days_ago(30).date().isoformat(), "last_day": yesterday.isoformat()}
    assert details["yesterday"] == {"endpoints": len(rows), "requests": sum(r.requests for r in rows)}
    assert details["credits"]["total_credits"] == "500.0" and "warnings" not in details
    assert [r["path"] for r in sandbox.requests()] == [
        f"{SANDBOX_PREFIX}/key", f"{SANDBOX_PREFIX}/activity", f"{SANDBOX_PREFIX}/credits"
    ]  # fmt: skip
    assert sandbox.requests(ACTIVITY_PATH)[0]["query"] == {"date": [yesterday.isoformat()]}


def test_verify_without_the_key_kind_flag_relies_on_the_activity_probe(
    provider, credential, settings, http, sandbox
) -> None:
    body = load("key_management.json")
    del body["data"]["is_management_key"], body["data"]["is_provisioning_key"]
    sandbox.fault(f"{SANDBOX_PREFIX}/key", 200, body=body)
    identity = provider.verify(credential, settings, http=http)
    assert identity.details["is_management_key"] is None
    assert len(sandbox.requests(ACTIVITY_PATH)) == 1


def test_verify_reports_unreadable_credits_as_a_warning(provider, credential, settings, http, sandbox) -> None:
    sandbox.fault(f"{SANDBOX_PREFIX}/credits", 200, body={"data": {"total_credits": "lots"}})
    identity = provider.verify(credential, settings, http=http)
    assert "credits" not in identity.details and "credits used" not in identity.summary
    (warning,) = identity.details["warnings"]
    assert warning.startswith("Credits could not be read: OpenRouter returned an unexpected response")
