"""The pure half of the connector: recorded pages parsed into typed objects, broken shapes
rejected by name, and predictions mapped to hourly samples by hand-computed expectations."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from integrations.providers.base import ProviderResponseError, align_down, align_up
from integrations.providers.replicate.schema import (
    Prediction,
    iso,
    parse_account,
    parse_prediction_page,
    parse_time,
    usage_samples,
)
from integrations.providers.replicate.tests.support import EXPECTED, load, parsed_page

T = datetime(2024, 11, 1, 10, tzinfo=UTC)


def test_recorded_page_parses_to_the_hand_computed_samples() -> None:
    assert Counter(parsed_page()) == Counter(EXPECTED)


def test_recorded_page_fields() -> None:
    page = parse_prediction_page(load("predictions_page.json"))
    assert page.next and page.next.startswith("https://api.replicate.com/v1/predictions?")
    assert len(page.results) == 7
    running, deployed, *_rest, oldest = page.results
    assert running.status == "processing" and not running.finished and running.predict_time is None
    assert deployed.deployment == "doow-sandbox/invoice-ocr-prod"
    assert deployed.predict_time == Decimal("70.912004")
    assert deployed.created_at == datetime(2024, 11, 1, 2, 10, 4, 500000, tzinfo=UTC)
    assert oldest.model == "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb7"  # no model field: the version


def test_parse_account() -> None:
    account = parse_account(load("account.json"))
    assert (account.username, account.name, account.type) == ("acme-labs", "Acme Labs", "organization")
    assert parse_account({"username": "ada"}).name == ""


def test_last_page_and_empty_page() -> None:
    assert parse_prediction_page({"next": None, "previous": None, "results": []}).next is None
    assert parse_prediction_page({"results": [], "next": ""}).next is None


def _page(mutate):
    body = copy.deepcopy(load("predictions_page.json"))
    mutate(body)
    return body


BROKEN = {
    "results missing": lambda b: b.pop("results"),
    "results an object": lambda b: b.update(results={}),
    "next a number": lambda b: b.update(next=3),
    "prediction not an object": lambda b: b["results"].append("oops"),
    "id missing": lambda b: b["results"][0].pop("id"),
    "status missing": lambda b: b["results"][0].pop("status"),
    "status a number": lambda b: b["results"][0].update(status=1),
    "created_at missing": lambda b: b["results"][0].pop("created_at"),
    "created_at garbage": lambda b: b["results"][0].update(created_at="yesterday"),
    "created_at unix": lambda b: b["results"][0].update(created_at=1730419200),
    "model a number": lambda b: b["results"][0].update(model=7),
    "deployment an object": lambda b: b["results"][1].update(deployment={"name": "x"}),
    "metrics a list": lambda b: b["results"][1].update(metrics=[1]),
    "predict_time a bool": lambda b: b["results"][1]["metrics"].update(predict_time=True),
    "predict_time text": lambda b: b["results"][1]["metrics"].update(predict_time="fast"),
    "predict_time negative": lambda b: b["results"][1]["metrics"].update(predict_time=-1.5),
    "predict_time NaN": lambda b: b["results"][1]["metrics"].update(predict_time="NaN"),
}


@pytest.mark.parametrize("mutate", BROKEN.values(), ids=BROKEN.keys())
def test_broken_shapes_raise_response_error(mutate) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_prediction_page(_page(mutate))


@pytest.mark.parametrize("body", [None, [], "text", {"username": ""}, {"username": 3}])
def test_broken_account_raises_response_error(body) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_account(body)


def test_tolerated_variations() -> None:
    body = _page(lambda b: None)
    body["results"][1]["metrics"]["predict_time"] = "70.912004"  # a numeric string
    body["results"][2]["metrics"] = None
    body["results"][3].pop("metrics")
    body["results"][4]["deployment"] = None
    body["results"][5]["created_at"] = "2024-11-01T00:12:45.918273"  # naive: UTC
    body["results"][6]["version"] = "hidden"
    body["results"][6]["status"] = "aborted"  # a status added later is final, not running
    body["results"][0]["unknown_field"] = {"x": 1}
    page = parse_prediction_page(body)
    assert page.results[1].predict_time == Decimal("70.912004")
    assert page.results[2].predict_time is None and page.results[3].predict_time is None
    assert page.results[5].created_at == datetime(2024, 11, 1, 0, 12, 45, 918273, tzinfo=UTC)
    assert page.results[6].model == "" and page.results[6].finished


def test_parse_time_converts_offsets_to_utc() -> None:
    assert parse_time("2024-11-01T02:00:00+02:00", "t") == datetime(2024, 11, 1, tzinfo=UTC)
    assert parse_time("2024-11-01T00:00:00.9072441Z", "t").microsecond == 907244


def _p(minute: int, status: str, seconds: str | None, model: str = "m/a", deployment: str = "") -> Prediction:
    return Prediction(
        f"id{minute}{status}", T + timedelta(minutes=minute), status, model, deployment,
        Decimal(seconds) if seconds is not None else None,
    )  # fmt: skip


def test_running_predictions_are_requests_without_compute() -> None:
    samples = usage_samples(
        [_p(1, "starting", None), _p(2, "processing", "3.0"), _p(3, "succeeded", "1.25"), _p(4, "canceled", None)],
        account="acc",
    )
    got = {s.metric: s.quantity for s in samples}
    # A processing prediction that already shows a predict_time is not counted until it is final.
    assert got == {"requests": Decimal(4), "compute_seconds": Decimal("1.25")}


def test_samples_are_hourly_per_model_and_deployment_in_time_order() -> None:
    predictions = [
        _p(125, "succeeded", "2", "m/b"),
        _p(61, "failed", "0.5", "m/a", "acme/prod"),
        _p(60, "succeeded", "1", "m/a"),
        _p(59, "succeeded", "4", "m/a"),
        _p(0, "succeeded", "3", "m/a"),
    ]
    samples = usage_samples(predictions, account="acc")
    assert [(s.bucket_start - T, s.model, s.deployment, s.metric, s.quantity) for s in samples] == [
        (timedelta(0), "m/a", "", "requests", 2),
        (timedelta(0), "m/a", "", "compute_seconds", 7),
        (timedelta(hours=1), "m/a", "", "requests", 1),
        (timedelta(hours=1), "m/a", "", "compute_seconds", 1),
        (timedelta(hours=1), "m/a", "acme/prod", "requests", 1),
        (timedelta(hours=1), "m/a", "acme/prod", "compute_seconds", Decimal("0.5")),
        (timedelta(hours=2), "m/b", "", "requests", 1),
        (timedelta(hours=2), "m/b", "", "compute_seconds", 2),
    ]
    assert {(s.unit, s.account, s.provenance) for s in samples} == {
        ("requests", "acc", "reported"), ("seconds", "acc", "reported")
    }  # fmt: skip
    assert all(s.bucket_end - s.bucket_start == timedelta(hours=1) for s in samples)


def test_helpers() -> None:
    moment = datetime(2024, 11, 1, 10, 37, 5, 250000, tzinfo=UTC)
    assert align_down(moment) == datetime(2024, 11, 1, 10, tzinfo=UTC)
    assert align_up(moment) == datetime(2024, 11, 1, 11, tzinfo=UTC)
    assert align_up(T) == T == align_down(T)
    assert iso(T) == "2024-11-01T10:00:00Z"
    assert iso(moment) == "2024-11-01T10:37:05.250000Z"
    assert iso(datetime(2024, 11, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == "2024-11-01T10:00:00Z"


def test_token_counts_in_metrics_become_token_rows() -> None:
    """Official models billed per token report input_token_count / output_token_count."""
    page = {"next": None, "results": [
        {"id": "a", "model": "meta/llama", "status": "succeeded", "created_at": "2026-11-01T10:05:00Z",
         "metrics": {"predict_time": 1.5, "input_token_count": 120, "output_token_count": 30.0}},
        {"id": "b", "model": "meta/llama", "status": "succeeded", "created_at": "2026-11-01T10:45:00Z",
         "metrics": {"predict_time": 0.5, "input_token_count": 80}},
        {"id": "c", "model": "acme/sdxl", "status": "succeeded", "created_at": "2026-11-01T10:10:00Z",
         "metrics": {"predict_time": 2}},
    ]}  # fmt: skip
    samples = usage_samples(parse_prediction_page(page).results, account="acc")
    got = {(s.model, s.metric): s.quantity for s in samples}
    assert got == {
        ("meta/llama", "requests"): 2, ("meta/llama", "compute_seconds"): 2,
        ("meta/llama", "input_tokens"): 200, ("meta/llama", "output_tokens"): 30,
        ("acme/sdxl", "requests"): 1, ("acme/sdxl", "compute_seconds"): 2,  # no counts reported: no token rows
    }  # fmt: skip
    for bad in (-1, 1.5, True, "12"):
        broken = copy.deepcopy(page)
        broken["results"][0]["metrics"]["input_token_count"] = bad
        with pytest.raises(ProviderResponseError, match="input_token_count"):
            parse_prediction_page(broken)
