"""The Replicate connector against the running sandbox: true totals, pagination through `next`,
chunk boundaries, alignment, convergence of running predictions, and verify."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import ProviderResponseError, Window, align_down, align_up
from integrations.providers.replicate.schema import iso
from integrations.providers.replicate.tests.support import ACCOUNT_PATH, PREDICTIONS_PATH, days_ago, truth
from integrations.providers.testing import (
    assert_adjacent_windows_count_once,
    assert_totals_equal,
    fetch_list,
    first_busy_hour,
    sample_key,
    totals_by,
)
from sandbox import replicate as fake

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
USERNAME = fake.ACCOUNT["username"]


def prediction(pid: str, created, *, status: str = "succeeded", seconds: float | None = 1.5) -> dict[str, Any]:
    return {
        "id": pid,
        "model": "acme/test-model",
        "version": "hidden",
        "status": status,
        "created_at": iso(created),
        "metrics": {"predict_time": seconds} if seconds is not None else {},
    }


def test_fetch_reproduces_true_totals_per_model_deployment_hour_and_day(
    provider, credential, provider_settings, http, three_days
) -> None:
    samples = fetch_list(provider, credential, provider_settings, three_days, http)
    start, end = three_days.start, three_days.end
    assert_totals_equal(
        totals_by(samples, "model", "deployment"), truth(start, end, lambda r: (r.model, r.deployment)), "per model"
    )
    assert_totals_equal(totals_by(samples, "bucket_start"), truth(start, end, lambda r: (r.hour_start,)), "per hour")
    per_day: Counter = Counter()
    for s in samples:
        per_day[(s.metric, align_down(s.bucket_start, DAY))] += s.quantity
    assert_totals_equal(per_day, truth(start, end, lambda r: (align_down(r.hour_start, DAY),)), "per day")
    assert {s.account for s in samples} == {USERNAME}
    assert {(s.metric, s.unit) for s in samples} == {
        ("requests", "requests"),
        ("compute_seconds", "seconds"),
        ("input_tokens", "tokens"),
        ("output_tokens", "tokens"),
    }
    # Only the official per-token model reports token counts.
    assert {s.model for s in samples if s.metric.endswith("_tokens")} == set(fake.PER_TOKEN_MODELS)
    assert {s.deployment for s in samples} == {"", "doow-sandbox/invoice-ocr-prod"}
    keys = [sample_key(s) for s in samples]
    assert len(keys) == len(set(keys))


def test_pagination_follows_next_verbatim_to_the_end(
    provider, credential, provider_settings, http, sandbox, three_days
):
    samples = fetch_list(provider, credential, provider_settings, three_days, http)
    count = len(fake.truth_predictions(three_days.start, three_days.end))
    pages = sandbox.requests(PREDICTIONS_PATH)
    assert len(pages) == -(-count // fake.PAGE_SIZE) > 2
    first, *rest = pages
    window = {"created_after": [iso(three_days.start)], "created_before": [iso(three_days.end)]}
    assert first["query"] == window
    for page in rest:  # the cursor and the filters came from `next` itself
        assert page["query"]["cursor"] and {k: v for k, v in page["query"].items() if k != "cursor"} == window
    assert len({p["query"]["cursor"][0] for p in rest}) == len(rest)
    assert sum(s.quantity for s in samples if s.metric == "requests" and s.operation == "") == count
    assert len(sandbox.requests(ACCOUNT_PATH)) == 1


def test_prediction_created_on_a_chunk_boundary_lands_in_exactly_one_chunk(
    provider, credential, provider_settings, http
) -> None:
    boundary = days_ago(2)
    at_boundary = [p for p in fake.truth_predictions(boundary, boundary + HOUR) if p.created_at == boundary]
    assert at_boundary, "the sandbox puts a prediction on every UTC midnight"
    before = fetch_list(provider, credential, provider_settings, Window(days_ago(3), boundary), http)
    after = fetch_list(provider, credential, provider_settings, Window(boundary, days_ago(1)), http)
    assert all(s.bucket_start < boundary for s in before)
    assert any(s.bucket_start == boundary and s.model == at_boundary[0].model.name for s in after)
    assert_totals_equal(totals_by(before + after), truth(days_ago(3), days_ago(1)), "two chunks")


def test_unaligned_window_is_read_as_whole_hours(provider, credential, provider_settings, http, sandbox) -> None:
    # Starts 37 minutes into an hour with predictions, so that hour must come back whole
    first_hour = first_busy_hour(truth, days_ago(3) + timedelta(hours=10), days_ago(2))
    window = Window(first_hour + timedelta(minutes=37, seconds=5), days_ago(2) + timedelta(hours=5, minutes=20))
    samples = fetch_list(provider, credential, provider_settings, window, http)
    first = sandbox.requests(PREDICTIONS_PATH)[0]
    assert first["query"]["created_after"] == [iso(align_down(window.start))]
    assert first["query"]["created_before"] == [iso(align_up(window.end))]
    assert min(s.bucket_start for s in samples) == align_down(window.start)
    assert max(s.bucket_start for s in samples) < window.end
    assert_totals_equal(totals_by(samples), truth(align_down(window.start), align_up(window.end)))


def test_adjacent_unaligned_windows_never_double_count(provider, credential, provider_settings, http) -> None:
    assert_adjacent_windows_count_once(
        lambda window: fetch_list(provider, credential, provider_settings, window, http),
        truth,
        lambda start, end: truth(align_down(start), end),
    )


def test_running_predictions_converge_on_a_later_read(provider, credential, provider_settings, http) -> None:
    window = Window(days_ago(2), days_ago(1))
    early = window.end + timedelta(minutes=15)  # the nightly batch job created at 23:50 still runs
    with fake.clock(early):
        first = fetch_list(provider, credential, provider_settings, window, http)
    later = fetch_list(provider, credential, provider_settings, window, http)
    running = [
        p for p in fake.truth_predictions(window.start, window.end) if p.status_at(fake._us(early)) in fake.RUNNING
    ]
    assert running, "the nightly job should still be running 15 minutes after midnight"
    assert_totals_equal(totals_by(first), truth(window.start, window.end, now=early), "first read")
    assert_totals_equal(totals_by(later), truth(window.start, window.end), "after completion")

    def requests(samples):
        return totals_by(samples)[("requests",)]

    def seconds(samples):
        return totals_by(samples)[("compute_seconds",)]

    assert requests(first) == requests(later)
    assert seconds(later) - seconds(first) == sum(p.predict_time_at(fake._us(window.end + DAY)) for p in running)
    assert {sample_key(s) for s in first} == {sample_key(s) for s in later}, "same rows, replaced values"


# ---------------------------------------------------------------- defensive paging
def test_a_prediction_repeated_across_a_page_boundary_counts_once(
    provider, credential, provider_settings, http, sandbox, day
) -> None:
    a, b, c = (day.start + timedelta(hours=h) for h in (10.5, 10.3, 10.1))
    next_url = f"{provider_settings['base_url']}/predictions?cursor=abc"
    sandbox.fault(PREDICTIONS_PATH, 200, body={"next": next_url, "previous": None,
                                               "results": [prediction("a", a), prediction("b", b)]})  # fmt: skip
    sandbox.fault(PREDICTIONS_PATH, 200, body={"next": None, "previous": None,
                                               "results": [prediction("b", b), prediction("c", c)]})  # fmt: skip
    samples = [s for s in fetch_list(provider, credential, provider_settings, day, http) if s.stream != "trainings"]
    assert totals_by(samples) == {("requests",): 3, ("compute_seconds",): Decimal("4.5")}
    assert [r["query"] for r in sandbox.requests(PREDICTIONS_PATH)][1] == {"cursor": ["abc"]}


def test_walk_stops_once_a_page_reaches_before_the_window(
    provider, credential, provider_settings, http, sandbox, day
) -> None:
    # As if a proxy dropped the created_after filter: the older prediction ends the walk and is
    # not counted; the newer-than-window one is skipped.
    body = {
        "next": f"{provider_settings['base_url']}/predictions?cursor=more",
        "previous": None,
        "results": [
            prediction("new", day.end + timedelta(minutes=5)),
            prediction("in", day.start + timedelta(hours=3), seconds=2.0),
            prediction("old", day.start - timedelta(seconds=1)),
        ],
    }
    sandbox.fault(PREDICTIONS_PATH, 200, body=body)
    samples = [s for s in fetch_list(provider, credential, provider_settings, day, http) if s.stream != "trainings"]
    assert totals_by(samples) == {("requests",): 1, ("compute_seconds",): 2}
    assert len(sandbox.requests(PREDICTIONS_PATH)) == 1


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/v1/predictions?cursor=x", "http://127.0.0.2:1/replicate/v1/predictions?cursor=x"],
)
def test_next_pointing_at_another_host_is_not_followed(
    provider, credential, provider_settings, http, sandbox, day, next_url
) -> None:
    sandbox.fault(PREDICTIONS_PATH, 200, body={"next": next_url, "previous": None, "results": []})
    with pytest.raises(ProviderResponseError, match="another host"):
        fetch_list(provider, credential, provider_settings, day, http)
    assert http.calls == 2  # /account and the first page; nothing sent elsewhere


def test_a_next_that_repeats_is_a_response_error(provider, credential, provider_settings, http, sandbox, day) -> None:
    again = f"{provider_settings['base_url']}/predictions?cursor=again"
    sandbox.fault(PREDICTIONS_PATH, 200, times=5, body={"next": again, "previous": None, "results": []})
    with pytest.raises(ProviderResponseError, match="same next page"):
        fetch_list(provider, credential, provider_settings, day, http)
    assert len(sandbox.requests(PREDICTIONS_PATH)) == 2


# ---------------------------------------------------------------- verify
def test_verify_shows_the_account_and_probes_the_predictions_list(
    provider, credential, provider_settings, http, sandbox
) -> None:
    identity = provider.verify(credential, provider_settings, http=http)
    assert identity.account_id == USERNAME and identity.account_name == fake.ACCOUNT["name"]
    assert identity.summary == f"Replicate organization {USERNAME} ({fake.ACCOUNT['name']})"
    assert identity.details["account_type"] == "organization"
    assert "not scoped" in identity.details["token_access"]
    assert len(sandbox.requests(ACCOUNT_PATH)) == 1
    (probe,) = sandbox.requests(PREDICTIONS_PATH)
    assert set(probe["query"]) == {"created_after"}


def test_verify_of_a_user_account_without_a_name(provider, credential, provider_settings, http, sandbox) -> None:
    sandbox.fault(ACCOUNT_PATH, 200, body={"type": "user", "username": "ada"})
    identity = provider.verify(credential, provider_settings, http=http)
    assert (identity.account_id, identity.account_name, identity.summary) == ("ada", "ada", "Replicate user ada")


# ---------------------------------------------------------------- trainings
def test_trainings_are_read_newest_first_until_the_window_start(provider, credential, provider_settings, http, sandbox):
    """/trainings takes no date filter: the walk follows `next` until a page reaches before the
    window, and keeps only the trainings created in it, as operation "training" rows."""
    window = Window(days_ago(200), days_ago(190))
    samples = fetch_list(provider, credential, provider_settings, window, http)
    trained = [s for s in samples if s.operation == "training"]
    truth = fake.truth_training_usage(window.start, window.end)
    assert truth and sum(s.quantity for s in trained if s.metric == "requests") == sum(r.requests for r in truth)
    assert sum(s.quantity for s in trained if s.metric == "compute_seconds") == sum(r.compute_seconds for r in truth)
    assert {s.model for s in trained} == {r.model for r in truth} and {s.deployment for s in trained} == {""}
    assert {s.stream for s in trained} == {"trainings"}
    pages = sandbox.requests(PREDICTIONS_PATH.replace("/predictions", "/trainings"))
    # ~1 training a day over 200 days back from today: more than one page, never the whole history.
    assert 1 < len(pages) < 5 and "cursor" not in pages[0]["query"]
    older = fake.truth_trainings(window.start - timedelta(days=400), window.start)
    assert len(older) > 100 * len(pages)  # the walk stopped long before the account's first training
