"""The pure parsing and mapping functions, on recorded fixtures and on broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import ProviderResponseError, align_down, align_up
from integrations.providers.openai.schema import (
    parse_completions_page,
    parse_costs_page,
    parse_project_list,
    split_line_item,
)
from integrations.providers.openai.tests import support


def test_completions_fixture_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_completions()) == Counter(support.EXPECTED_COMPLETIONS)


def test_completions_fixture_keeps_empty_bucket_and_cursor() -> None:
    page = parse_completions_page(support.load("completions_page.json"))
    assert [len(b.results) for b in page.buckets] == [2, 0, 1]
    assert page.has_more is True and page.next_page == "page_AAAAAGckz5A="
    # The unaligned first bucket is parsed as sent; only the mapping aligns its key.
    assert page.buckets[0].start == datetime(2024, 11, 1, 0, 30, tzinfo=UTC)


def test_costs_fixture_accepts_number_and_string_amounts() -> None:
    assert Counter(support.parsed_costs()) == Counter(support.EXPECTED_COSTS)
    page = parse_costs_page(support.load("costs_page.json"))
    assert [r.amount for r in page.buckets[0].results] == [Decimal("0.0125"), Decimal("1.034"), Decimal("0.5")]
    assert page.has_more is False and page.next_page is None


def test_project_list_fixture() -> None:
    projects = parse_project_list(support.load("projects_page.json"))
    assert [(p.id, p.status) for p in projects.items] == [("proj_abc", "active"), ("proj_def", "archived")]
    assert projects.last_id == "proj_def" and projects.has_more is False


def _completions(mutate) -> Any:
    body = copy.deepcopy(support.load("completions_page.json"))
    mutate(body)
    return body


def _costs(mutate) -> Any:
    body = copy.deepcopy(support.load("costs_page.json"))
    mutate(body)
    return body


BROKEN_COMPLETIONS = {
    "not an object": lambda b: None,
    "data missing": lambda b: b.pop("data"),
    "data not a list": lambda b: b.update(data={"buckets": []}),
    "start_time a string": lambda b: b["data"][0].update(start_time="1730421000"),
    "start_time a float": lambda b: b["data"][0].update(start_time=1730421000.5),
    "results missing (old spec's result)": lambda b: b["data"][0].update(result=b["data"][0].pop("results")),
    "input_tokens missing": lambda b: b["data"][0]["results"][0].pop("input_tokens"),
    "output_tokens null": lambda b: b["data"][0]["results"][0].update(output_tokens=None),
    "requests a bool": lambda b: b["data"][0]["results"][0].update(num_model_requests=True),
    "optional field a string": lambda b: b["data"][0]["results"][0].update(input_cached_tokens="400"),
    "model not a string": lambda b: b["data"][0]["results"][0].update(model=42),
    "has_more a string": lambda b: b.update(has_more="true"),
}


@pytest.mark.parametrize("mutate", BROKEN_COMPLETIONS.values(), ids=BROKEN_COMPLETIONS.keys())
def test_broken_completions_shapes_raise_response_error(mutate) -> None:
    body = None if mutate is BROKEN_COMPLETIONS["not an object"] else _completions(mutate)
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_completions_page(body)


BROKEN_COSTS = {
    "amount missing": lambda b: b["data"][0]["results"][0].pop("amount"),
    "value not numeric": lambda b: b["data"][0]["results"][0]["amount"].update(value="twelve"),
    "value a bool": lambda b: b["data"][0]["results"][0]["amount"].update(value=False),
    "value NaN": lambda b: b["data"][0]["results"][0]["amount"].update(value="NaN"),
    "value null": lambda b: b["data"][0]["results"][0]["amount"].update(value=None),
    "currency missing": lambda b: b["data"][0]["results"][0]["amount"].pop("currency"),
    "result not an object": lambda b: b["data"][0]["results"].append("oops"),
}


@pytest.mark.parametrize("mutate", BROKEN_COSTS.values(), ids=BROKEN_COSTS.keys())
def test_broken_costs_shapes_raise_response_error(mutate) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_costs_page(_costs(mutate))


@pytest.mark.parametrize(
    ("line_item", "expected"),
    [
        ("gpt-4o-2024-08-06, input", ("gpt-4o-2024-08-06", "input")),
        ("gpt-4o-mini-2024-07-18, cached input", ("gpt-4o-mini-2024-07-18", "cached input")),
        ("ft:gpt-4o-mini:acme::abc123, output", ("ft:gpt-4o-mini:acme::abc123", "output")),
        ("Web search tool calls", ("", "Web search tool calls")),
        ("Fine-tuning, training", ("", "Fine-tuning, training")),
        (None, ("", "")),
    ],
)
def test_split_line_item(line_item, expected) -> None:
    assert split_line_item(line_item) == expected


def test_alignment_helpers() -> None:
    moment = datetime(2024, 11, 1, 10, 37, 5, tzinfo=UTC)
    hour, day = timedelta(hours=1), timedelta(days=1)
    assert align_down(moment, hour) == datetime(2024, 11, 1, 10, tzinfo=UTC)
    assert align_up(moment, hour) == datetime(2024, 11, 1, 11, tzinfo=UTC)
    assert align_down(moment, day) == datetime(2024, 11, 1, tzinfo=UTC)
    assert align_up(moment, day) == datetime(2024, 11, 2, tzinfo=UTC)
    aligned = datetime(2024, 11, 1, tzinfo=UTC)
    assert align_up(aligned, day) == aligned == align_down(aligned, day)
