"""The pure parsing and mapping functions, on recorded fixtures and on broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import ProviderResponseError
from integrations.providers.google_vertex.schema import (
    COLUMNS,
    BillingRow,
    billing_rows,
    billing_samples,
    parse_query_response,
    token_quantity,
)
from integrations.providers.google_vertex.tests import support


def test_recorded_page_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_page()) == Counter(support.EXPECTED_PAGE)


def test_recorded_page_envelope() -> None:
    page = parse_query_response(support.load("query_results_page.json"))
    assert page.complete and page.fields == COLUMNS
    assert (page.job_project, page.job_id, page.job_location) == (
        "acme-billing-prod",
        "job_Vx3rWq9kP2bL7mN0aZ5cYt8sE1dF",
        "US",
    )
    assert page.total_rows == 7 == len(page.rows) and page.page_token is None
    assert page.bytes_processed == 41943040
    assert page.rows[3][2] is None  # a null region stays None until the mapping


def test_incomplete_answer_has_a_job_and_no_rows() -> None:
    page = parse_query_response(support.load("query_incomplete.json"))
    assert not page.complete and page.job_id == "job_Vx3rWq9kP2bL7mN0aZ5cYt8sE1dF"
    assert page.fields == () and page.rows == () and page.total_rows is None


def test_a_plain_sum_of_cost_samples_is_the_net_cost() -> None:
    samples = support.parsed_page()
    gross = sum(s.quantity for s in samples if s.metric == "cost" and s.operation != "credits")
    credits = sum(s.quantity for s in samples if s.operation == "credits")
    assert gross == Decimal("3.6682475") and credits == Decimal("-0.072")
    assert sum(s.quantity for s in samples if s.metric == "cost") == Decimal("3.5962475")


def _row(**changes: Any) -> BillingRow:
    base: dict[str, Any] = {
        "day": date(2024, 11, 1), "project_id": "p", "region": "us-central1", "sku_id": "S-1",
        "sku_description": "Gemini 2.5 Pro Text Input - Predictions", "usage_unit": "count", "currency": "USD",
        "usage_amount": Decimal(1000), "cost": Decimal("0.00125"), "credits": Decimal(0),
    }  # fmt: skip
    return BillingRow(**{**base, **changes})


@pytest.mark.parametrize(
    ("unit", "tokens"),
    [("count", 1000), ("tokens", 1000), ("token", 1000), ("Count", 1000), ("1k tokens", 1_000_000),
     ("1000 count", 1_000_000), ("1M tokens", 1_000_000_000), ("character", None), ("characters", None),
     ("1k characters", None), ("seconds", None), ("requests", None), ("hour", None), ("", None),
     ("gibibyte hour", None)],
)  # fmt: skip
def test_only_token_units_become_token_metrics(unit: str, tokens: int | None) -> None:
    assert token_quantity(Decimal(1000), unit) == (Decimal(tokens) if tokens is not None else None)
    samples = billing_samples([_row(usage_unit=unit)], account="A")
    token_samples = [s for s in samples if s.metric != "cost"]
    assert [s.quantity for s in token_samples] == ([Decimal(tokens)] if tokens else [])
    assert [s.metric for s in samples if s.metric == "cost"] == ["cost"]  # the cost is kept either way


def test_an_unparsed_sku_in_tokens_keeps_only_its_cost() -> None:
    samples = billing_samples([_row(sku_description="Text Embedding 005 Input - Predictions")], account="A")
    assert [(s.metric, s.model, s.operation, s.resource) for s in samples] == [
        ("cost", "", "Text Embedding 005 Input - Predictions", "S-1")
    ]


def test_an_sku_without_description_is_named_by_its_id() -> None:
    (sample,) = billing_samples([_row(sku_description="", usage_unit="seconds")], account="A")
    assert sample.operation == "S-1" == sample.resource


def test_rows_sharing_a_key_add_up() -> None:
    # A null region and "" are two groups in BigQuery but one key here.
    samples = billing_samples(
        [_row(region=""), _row(region="", usage_amount=Decimal(500), cost=Decimal(1))], account="A"
    )
    totals = {s.metric: s.quantity for s in samples}
    assert totals == {"cost": Decimal("1.00125"), "input_tokens": Decimal(1500)}


def test_two_currencies_on_one_key_are_refused() -> None:
    with pytest.raises(ProviderResponseError, match="two currencies"):
        billing_samples([_row(), _row(currency="EUR")], account="A")


def test_long_values_are_cut_to_the_store_lengths() -> None:
    (sample,) = billing_samples([_row(sku_description="x " * 200, region="r" * 100, usage_unit="seconds")], account="A")
    assert len(sample.operation) == 200 and len(sample.region) == 64


def _page(mutate) -> Any:
    body = copy.deepcopy(support.load("query_results_page.json"))
    mutate(body)
    return body


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda b: b.pop("jobComplete"), "jobComplete"),
        (lambda b: b.update(jobComplete="true"), "jobComplete"),
        (lambda b: b.update(schema={"fields": "x"}), "schema.fields"),
        (lambda b: b["schema"]["fields"][0].pop("name"), "no name"),
        (lambda b: b.update(rows={"f": []}), "rows is not a list"),
        (lambda b: b["rows"][0]["f"].pop(), "rows[0].f"),
        (lambda b: b["rows"][1]["f"][7].update(v=1200), "not a string"),
        (lambda b: b.update(totalRows=7), "totalRows"),
        (lambda b: b.update(totalRows="-1"), "totalRows"),
        (lambda b: b.update(pageToken=5), "pageToken"),
        (lambda b: b.update(jobReference="job_1"), "jobReference"),
        (lambda b: b.update(jobReference={"jobId": 5}), "jobId"),
    ],
)
def test_broken_envelopes_are_response_errors(mutate, words: str) -> None:
    with pytest.raises(ProviderResponseError) as info:
        parse_query_response(_page(mutate))
    assert words in info.value.message


def test_a_body_that_is_not_an_object_is_a_response_error() -> None:
    with pytest.raises(ProviderResponseError, match="not an object"):
        parse_query_response([])


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [("usage_day", "2024-11-31", "usage_day"), ("usage_day", None, "usage_day"), ("cost", "a lot", "cost"),
     ("usage_amount", "NaN", "usage_amount"), ("credits", "Infinity", "credits"), ("sku_id", None, "sku_id"),
     ("currency", None, "currency")],
)  # fmt: skip
def test_broken_values_are_response_errors(column: str, value: str | None, words: str) -> None:
    page = parse_query_response(support.load("query_results_page.json"))
    rows = list(page.rows)
    rows[0] = tuple(value if name == column else v for name, v in zip(page.fields, rows[0], strict=True))
    with pytest.raises(ProviderResponseError) as info:
        billing_rows(page.fields, tuple(rows))
    assert words in info.value.message


def test_missing_columns_are_a_response_error_only_when_there_are_rows() -> None:
    page = parse_query_response(support.load("query_results_page.json"))
    with pytest.raises(ProviderResponseError, match="lacks the columns credits"):
        billing_rows(page.fields[:-1], tuple(r[:-1] for r in page.rows))
    assert billing_rows((), ()) == []
