"""The Fireworks connector against the running sandbox: true totals, 31-day request splitting,
alignment, verify, and the metrics scrape (only for the chunk reaching the present)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import (
    DIMENSIONS,
    UsageSample,
    Window,
    align_down,
    align_up,
)
from integrations.providers.fireworks.tests.support import (
    DAY,
    HOUR,
    billing_truth,
    days_ago,
    expected_estimates,
)
from integrations.providers.testing import assert_totals_equal, totals_by
from sandbox import fireworks as fw

BILLING_PATH = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/billingUsage"
METRICS_PATH = f"/fireworks/v1/accounts/{fw.ACCOUNT_ID}/metrics"


def fetch(provider, credential, settings, window, http, state=None) -> list[UsageSample]:
    return list(provider.fetch(credential, settings, window, http=http, state=state))


def key(s: UsageSample) -> tuple[Any, ...]:
    return (s.bucket_start, s.bucket_end, s.metric, *(getattr(s, d) for d in DIMENSIONS))


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def live_window(now) -> Window:
    """The engine's last chunk: it ends at the latest hour boundary older than the reporting delay."""
    end = align_down(now - timedelta(minutes=15), HOUR)
    return Window(end - 3 * HOUR, end)


# ---------------------------------------------------------------- billing
def test_fetch_reproduces_true_totals_per_model_deployment_and_day(
    provider, credential, provider_settings, http, three_days
) -> None:
    samples = fetch(provider, credential, provider_settings, three_days, http)
    start, end = three_days.start, three_days.end
    tokens = [s for s in samples if s.metric != "compute_seconds"]
    compute = [s for s in samples if s.metric == "compute_seconds"]

    def model_of(row) -> str:  # a ServerlessDay names its model, a DedicatedDay its deployment's
        return row.deployment.base_model if hasattr(row, "deployment") else row.model

    assert_totals_equal(totals_by(samples, "model"), billing_truth(start, end, key=lambda r: (model_of(r),)))
    assert_totals_equal(totals_by(samples, "bucket_start"), billing_truth(start, end, key=lambda r: (r.day,)))
    compute_truth: Counter = Counter()
    for row in fw.truth_dedicated(start, end):
        d = row.deployment
        compute_truth[("compute_seconds", d.id, d.base_model, d.accelerator_type, d.placement)] += (
            row.accelerator_seconds
        )
    for row in fw.truth_training(start, end):  # GPU-billed fine-tuning, on no deployment
        if row.accelerator_seconds:
            compute_truth[("compute_seconds", "", row.model, fw.TRAINING_ACCELERATOR, "")] += row.accelerator_seconds
    assert_totals_equal(totals_by(compute, "deployment", "model", "resource", "region"), compute_truth)
    assert all(s.deployment == "" and s.resource == "" for s in tokens)
    assert {s.operation for s in compute if not s.deployment} == {"training"}
    assert {s.account for s in samples} == {fw.ACCOUNT_ID}
    assert {s.provenance for s in samples} == {"reported"}
    assert all(
        s.bucket_end - s.bucket_start == DAY and s.bucket_start == align_down(s.bucket_start, DAY) for s in samples
    )


def test_billing_is_read_in_pieces_of_at_most_31_days(provider, credential, provider_settings, http, sandbox) -> None:
    window = Window(days_ago(41), days_ago(1))
    samples = fetch(provider, credential, provider_settings, window, http)
    requests = sandbox.requests(BILLING_PATH)
    assert [r["query"]["usageType"][0] for r in requests] == ["SERVERLESS", "DEDICATED_DEPLOYMENT", "TRAINING"] * 2
    spans = [(r["query"]["startTime"][0], r["query"]["endTime"][0]) for r in requests[::3]]
    assert spans == [(iso(days_ago(41)), iso(days_ago(10))), (iso(days_ago(10)), iso(days_ago(1)))]
    for r in requests:
        assert r["query"]["timezone"] == ["UTC"]
        expected = {
            "SERVERLESS": ["model_name", "api_key_id", "api_key_name"],
            "DEDICATED_DEPLOYMENT": ["deployment_name", "accelerator_type"],
            "TRAINING": [],  # no grouping documented for training: rows come per base model
        }[r["query"]["usageType"][0]]
        assert r["query"].get("groupBy", []) == expected
    assert_totals_equal(totals_by(samples), billing_truth(window.start, window.end), "totals over two pieces")
    keys = [key(s) for s in samples]
    assert len(keys) == len(set(keys))


def test_unaligned_window_is_read_as_whole_days(provider, credential, provider_settings, http, sandbox) -> None:
    window = Window(days_ago(3) + timedelta(hours=10, minutes=37), days_ago(1) + timedelta(hours=5, minutes=20))
    samples = fetch(provider, credential, provider_settings, window, http)
    first = sandbox.requests(BILLING_PATH)[0]["query"]
    assert first["startTime"] == [iso(align_down(window.start, DAY))]
    assert first["endTime"] == [iso(align_up(window.end, DAY))]
    assert {s.bucket_start for s in samples} == {days_ago(3), days_ago(2), days_ago(1)}
    assert_totals_equal(totals_by(samples), billing_truth(days_ago(3), days_ago(0)), "the whole days touched")


def test_adjacent_unaligned_windows_never_double_count(provider, credential, provider_settings, http) -> None:
    start, middle, end = days_ago(3) + timedelta(minutes=20), days_ago(2) + timedelta(hours=13), days_ago(1)
    store: dict[tuple[Any, ...], Decimal] = {}
    for window in (Window(start, middle), Window(middle, end)):
        for s in fetch(provider, credential, provider_settings, window, http):  # the store: same key → replace
            assert store.get(key(s), s.quantity) == s.quantity, f"the same day read twice disagrees: {key(s)}"
            store[key(s)] = s.quantity
    stored: Counter = Counter()
    for k, quantity in store.items():
        stored[(k[2],)] += quantity
    assert_totals_equal(stored, billing_truth(days_ago(3), end), "stored totals")


def test_empty_window_makes_no_request(provider, credential, provider_settings, http, sandbox) -> None:
    moment = days_ago(1)
    assert fetch(provider, credential, provider_settings, Window(moment, moment), http, state={}) == []
    assert sandbox.requests() == []


def test_account_id_may_be_given_as_a_resource_name(provider, credential, provider_settings, http, sandbox) -> None:
    settings = {**provider_settings, "account_id": f" accounts/{fw.ACCOUNT_ID} "}
    assert fetch(provider, credential, settings, Window(days_ago(2), days_ago(1)), http)
    assert {r["path"] for r in sandbox.requests()} == {BILLING_PATH}


def test_verify_summarises_the_account(provider, credential, provider_settings, http, sandbox) -> None:
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.account_id == fw.ACCOUNT_ID
    assert identity.summary == (
        f"Fireworks account {fw.ACCOUNT_ID} · last 7 days: 3 serverless models, 3 dedicated deployments"
    )
    assert identity.details["deployments"] == sorted(d.id for d in fw.DEPLOYMENTS)
    assert identity.details["serverless_models"] == sorted(fw.SERVERLESS_MODELS)
    assert len(sandbox.requests(BILLING_PATH)) == 3 and sandbox.requests(METRICS_PATH) == []


# ---------------------------------------------------------------- metrics
@pytest.mark.parametrize("minute", [3, 34, 52])  # where in the hour the first sync runs
def test_live_chunk_scrapes_records_a_baseline_then_integrates(
    provider, credential, provider_settings, http, sandbox, clock, minute
) -> None:
    state: dict[str, Any] = {}
    clock.at = align_down(clock.at, HOUR) - 2 * HOUR + timedelta(minutes=minute, seconds=11)
    t0 = clock()
    first = fetch(provider, credential, provider_settings, live_window(t0), http, state)
    assert [s for s in first if s.provenance == "derived"] == [], "the first scrape only records a baseline"
    assert state["metrics"]["scraped_at"] == t0.isoformat()

    t1 = clock.advance(minutes=25, seconds=7)
    # The engine computes each sync's window when it runs: the second sync's last chunk.
    second = fetch(provider, credential, provider_settings, live_window(t1), http, state)
    derived = {(s.bucket_start, s.model, s.metric): s.quantity for s in second if s.provenance == "derived"}
    assert derived == expected_estimates(t0, t1)
    assert all(
        s.bucket_end - s.bucket_start == HOUR and s.deployment == "" for s in second if s.provenance == "derived"
    )
    assert len(sandbox.requests(METRICS_PATH)) == 2
    # The billing part is what a fetch without a scrape reads for the same window.
    plain = fetch(provider, credential, provider_settings, live_window(t1), http)
    assert sorted(map(key, (s for s in second if s.provenance == "reported"))) == sorted(map(key, plain))


def test_backfill_chunks_never_scrape(provider, credential, provider_settings, http, sandbox, clock) -> None:
    state: dict[str, Any] = {}
    end = live_window(clock()).end
    fetch(provider, credential, provider_settings, Window(end - 2 * DAY, end - DAY), http, state)
    fetch(
        provider, credential, provider_settings, Window(end - 2 * HOUR, end - HOUR - timedelta(minutes=1)), http, state
    )
    assert state == {} and sandbox.requests(METRICS_PATH) == []


def test_without_state_nothing_is_scraped(provider, credential, provider_settings, http, sandbox, clock) -> None:
    fetch(provider, credential, provider_settings, live_window(clock()), http)
    assert sandbox.requests(METRICS_PATH) == []


def test_metrics_rate_limit_skips_the_scrape_but_keeps_billing(
    provider, credential, provider_settings, http, sandbox, clock, sleeps
) -> None:
    state: dict[str, Any] = {}
    window = live_window(clock())
    for _ in range(fw.METRICS_LIMIT):  # the budget: a baseline, then scrapes at the same instant
        fetch(provider, credential, provider_settings, window, http, state)
    baseline = dict(state["metrics"])
    limited = fetch(provider, credential, provider_settings, window, http, state)
    assert sandbox.requests(METRICS_PATH)[-1]["status"] == 429
    assert limited and all(s.provenance == "reported" for s in limited)
    assert "Metrics not scraped" in state["metrics"]["note"] and "429" in state["metrics"]["note"]
    assert state["metrics"]["scraped_at"] == baseline["scraped_at"], "the baseline is kept"
    assert sleeps == [], "a Retry-After beyond the seam's budget is not slept through"

    t1 = clock.advance(seconds=61)  # the window has passed: the next scrape integrates 61 s
    recovered = fetch(provider, credential, provider_settings, window, http, state)
    derived = {(s.bucket_start, s.model, s.metric): s.quantity for s in recovered if s.provenance == "derived"}
    assert derived == expected_estimates(clock() - timedelta(seconds=61), t1)
    assert "note" not in state["metrics"]


def test_metrics_outage_skips_the_scrape(provider, credential, provider_settings, http, sandbox, clock) -> None:
    state: dict[str, Any] = {}
    sandbox.fault(METRICS_PATH, 503, times=10)
    samples = fetch(provider, credential, provider_settings, live_window(clock()), http, state)
    assert samples and all(s.provenance == "reported" for s in samples)
    assert "503" in state["metrics"]["note"] and "scraped_at" not in state["metrics"]


# ---------------------------------------------------------------- rows without startTime/endTime
def test_rows_without_times_are_placed_on_the_requested_day(
    provider, credential, provider_settings, http, sandbox
) -> None:
    """A billing row without startTime/endTime no longer fails the sync: a multi-day piece is
    read again one UTC day at a time (timezone=UTC), and each row keys on the day it was asked for."""
    window = Window(days_ago(4), days_ago(1))
    fw.omit_row_times()
    body = http.decode_json(
        http.request(
            "GET",
            provider_settings["base_url"] + f"/v1/accounts/{fw.ACCOUNT_ID}/billingUsage",
            headers={"Authorization": f"Bearer {fw.API_KEY}"},
            params={"startTime": iso(window.start), "endTime": iso(window.end), "usageType": "SERVERLESS"},
        )
    )
    assert body["serverlessCosts"] and all("startTime" not in r and "endTime" not in r for r in body["serverlessCosts"])
    sandbox.clear_requests()

    samples = fetch(provider, credential, provider_settings, window, http)
    assert_totals_equal(totals_by(samples, "bucket_start", "model"), billing_truth(
        window.start, window.end, key=lambda r: (r.day, r.deployment.base_model if hasattr(r, "deployment") else r.model)
    ))  # fmt: skip
    keys = [key(s) for s in samples]
    assert len(keys) == len(set(keys))
    spans = [(r["query"]["usageType"][0], r["query"]["startTime"][0], r["query"]["endTime"][0])
             for r in sandbox.requests(BILLING_PATH)]  # fmt: skip
    days = [(iso(window.start + i * DAY), iso(window.start + (i + 1) * DAY)) for i in range(3)]
    for usage_type in ("SERVERLESS", "DEDICATED_DEPLOYMENT", "TRAINING"):
        assert [s[1:] for s in spans if s[0] == usage_type] == [(iso(window.start), iso(window.end)), *days]


def test_a_one_day_window_with_undated_rows_needs_no_second_request(
    provider, credential, provider_settings, http, sandbox
) -> None:
    window = Window(days_ago(2), days_ago(1))
    fw.omit_row_times()
    samples = fetch(provider, credential, provider_settings, window, http)
    assert_totals_equal(totals_by(samples), billing_truth(window.start, window.end))
    assert {s.bucket_start for s in samples} == {window.start}
    assert len(sandbox.requests(BILLING_PATH)) == 3
