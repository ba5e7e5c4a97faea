"""The pure parsing and mapping functions, on recorded fixtures and on broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import ProviderResponseError
from integrations.providers.openrouter.schema import (
    activity_samples,
    parse_activity,
    parse_credits,
    parse_key,
)
from integrations.providers.openrouter.tests import support


def test_day_fixture_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed("activity_day.json")) == Counter(support.EXPECTED_DAY)


def test_reasoning_tokens_are_not_added_to_output_tokens() -> None:
    items = parse_activity(support.load("activity_day.json"))
    r1 = [i for i in items if i.model == "deepseek/deepseek-r1"]
    assert [i.reasoning_tokens for i in r1] == [900, 650]  # > 0: the case that matters
    output = {s.model: s.quantity for s in activity_samples(items) if s.metric == "output_tokens"}
    assert output["deepseek/deepseek-r1"] == 1500 + 800  # completion tokens only
    assert output["openai/o4-mini-2025-04-16"] == 410  # not 410 + 320


def test_byok_rows_cost_the_credits_spent_not_the_byok_inference() -> None:
    items = parse_activity(support.load("activity_day.json"))
    (o4,) = [i for i in items if i.model == "openai/o4-mini-2025-04-16"]
    assert o4.byok_usage_inference == Decimal("0.0188")
    (cost,) = [s for s in activity_samples([o4]) if s.metric == "cost"]
    assert cost.quantity == Decimal("0.00094") and cost.unit == "USD"
    # The BYOK spend is stored beside it, as its own metric (billed by the customer's own key).
    (byok,) = [s for s in activity_samples([o4]) if s.metric == "byok_cost"]
    assert byok.quantity == Decimal("0.0188") and byok.unit == "USD"
    others = [i for i in items if i.model != "openai/o4-mini-2025-04-16"]
    assert not [s for s in activity_samples(others) if s.metric == "byok_cost"]  # no BYOK, no row


def test_month_fixture_keeps_every_day_unless_told_which() -> None:
    assert Counter(support.parsed("activity_month.json")) == Counter(support.EXPECTED_MONTH)
    only = support.parsed("activity_month.json", days={date(2025, 8, 24)})
    assert Counter(only) == Counter(s for s in support.EXPECTED_MONTH if s.bucket_start.day == 24)


def test_samples_are_daily_and_in_day_order() -> None:
    samples = support.parsed("activity_month.json")
    assert [s.bucket_start.day for s in samples] == sorted(s.bucket_start.day for s in samples)
    assert all((s.bucket_end - s.bucket_start).days == 1 and s.bucket_start.hour == 0 for s in samples)
    assert {s.account for s in samples} == {""} and {s.project for s in samples} == {""}


def test_empty_activity_is_no_samples() -> None:
    assert parse_activity({"data": []}) == ()
    assert activity_samples(()) == []


def test_management_key_fixture() -> None:
    key = parse_key(support.load("key_management.json"))
    assert key.is_management_key is True and key.label == "doow-usage-sync"
    assert key.limit is None and key.usage == Decimal("25.5") and key.usage_daily == Decimal("0.75")
    assert key.creator_user_id == "user_2dHFtVWx2n56w6HkM0000000000"


def test_inference_key_fixture() -> None:
    key = parse_key(support.load("key_inference.json"))
    assert key.is_management_key is False
    assert key.limit == 100 and key.limit_remaining == Decimal("74.5") and key.limit_reset == "monthly"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"is_provisioning_key": True}, True), ({"is_provisioning_key": False}, False), ({}, None)],
)
def test_key_kind_falls_back_to_the_former_name_and_may_be_unknown(fields: dict[str, Any], expected) -> None:
    body = copy.deepcopy(support.load("key_management.json"))
    body["data"].pop("is_management_key")
    body["data"].pop("is_provisioning_key")
    body["data"].update(fields)
    assert parse_key(body).is_management_key is expected


def test_credits_fixture() -> None:
    credits = parse_credits(support.load("credits.json"))
    assert credits.total_credits == Decimal("100.5") and credits.total_usage == Decimal("25.75")


def _row(mutate) -> Any:
    body = copy.deepcopy(support.load("activity_day.json"))
    mutate(body["data"][0])
    return body


BROKEN_ACTIVITY = {
    "data missing": lambda b: b.pop("data"),
    "data not a list": lambda b: b.update(data={"rows": []}),
    "row not an object": lambda b: b["data"].append("oops"),
    "date missing": lambda b: b["data"][0].pop("date"),
    "date not a date": lambda b: b["data"][0].update(date="yesterday"),
    "date impossible": lambda b: b["data"][0].update(date="2025-02-30"),
    "usage missing": lambda b: b["data"][0].pop("usage"),
    "usage a bool": lambda b: b["data"][0].update(usage=True),
    "usage NaN": lambda b: b["data"][0].update(usage="NaN"),
    "prompt_tokens missing": lambda b: b["data"][0].pop("prompt_tokens"),
    "completion_tokens fractional": lambda b: b["data"][0].update(completion_tokens=12.5),
    "requests negative": lambda b: b["data"][0].update(requests=-1),
    "reasoning_tokens a word": lambda b: b["data"][0].update(reasoning_tokens="many"),
    "endpoint_id a number": lambda b: b["data"][0].update(endpoint_id=42),
    "model_permaslug too long": lambda b: b["data"][0].update(model_permaslug="x" * 201),
}


@pytest.mark.parametrize("mutate", BROKEN_ACTIVITY.values(), ids=BROKEN_ACTIVITY.keys())
def test_broken_activity_shapes_raise_response_error(mutate) -> None:
    body = copy.deepcopy(support.load("activity_day.json"))
    mutate(body)
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_activity(body)


@pytest.mark.parametrize("body", [None, [], {"data": None}, {"error": {"code": 500}}])
def test_activity_body_that_is_not_an_envelope(body) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_activity(body)


def test_optional_fields_may_be_absent_or_null() -> None:
    body = _row(lambda r: (r.pop("reasoning_tokens"), r.pop("byok_usage_inference"), r.update(endpoint_id=None)))
    item = parse_activity(body)[0]
    assert item.reasoning_tokens is None and item.byok_usage_inference is None and item.endpoint_id == ""


def test_integral_float_counts_and_string_amounts_are_accepted() -> None:
    item = parse_activity(_row(lambda r: r.update(prompt_tokens=50.0, usage="0.015")))[0]
    assert item.prompt_tokens == 50 and item.usage == Decimal("0.015")


@pytest.mark.parametrize(
    "body",
    [
        {"data": []},
        {"data": {"is_management_key": "yes"}},
        {"data": {"limit": "unlimited"}},
    ],
)
def test_broken_key_shapes_raise_response_error(body) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_key(body)


@pytest.mark.parametrize("body", [{"data": {"total_credits": 1}}, {"data": []}, {"credits": 1}])
def test_broken_credits_shapes_raise_response_error(body) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_credits(body)
