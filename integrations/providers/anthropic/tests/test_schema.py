"""The pure parsing and mapping functions, on recorded fixtures and on broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.anthropic.schema import (
    UsageResult,
    parse_cost_page,
    parse_organization,
    parse_usage_page,
    parse_workspace_list,
    rfc3339,
    usage_metrics,
    usage_samples,
)
from integrations.providers.anthropic.tests import support
from integrations.providers.base import ProviderResponseError, align_down, align_up


def test_usage_fixture_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_usage()) == Counter(support.EXPECTED_USAGE)


def test_usage_fixture_keeps_empty_bucket_cursor_and_ignores_the_decoy() -> None:
    page = parse_usage_page(support.load("usage_page.json"))
    assert [len(b.results) for b in page.buckets] == [2, 0, 2]
    assert page.has_more is True and page.next_page == "page_MjAyNS0wNS0xNFQwMzowMDowMFo="
    assert page.buckets[0].start == datetime(2025, 5, 14, tzinfo=UTC)
    first = page.buckets[0].results[0]
    # The decoy `cache_creation_input_tokens: 3` sits beside the real nested object.
    assert (first.cache_creation_5m, first.cache_creation_1h) == (800, 400)
    assert first.workspace_id is None and first.web_search_requests == 0
    assert page.buckets[2].results[0].web_search_requests is None  # server_tool_use: null
    assert page.buckets[2].results[1].web_search_requests is None  # server_tool_use absent


def test_changing_the_decoy_changes_nothing() -> None:
    body = support.load("usage_page.json")
    body["data"][0]["results"][0]["cache_creation_input_tokens"] = 10**9
    page = parse_usage_page(body)
    assert page == parse_usage_page(support.load("usage_page.json"))


def test_usage_metrics_follow_the_documented_formula() -> None:
    row = UsageResult("wrkspc_x", "m", uncached_input_tokens=1, cache_read_input_tokens=10, cache_creation_5m=100,
                      cache_creation_1h=1000, output_tokens=7, web_search_requests=None)  # fmt: skip
    assert usage_metrics(row) == [
        ("input_tokens", "", 1111),
        ("cached_input_tokens", "", 10),
        ("cache_write_tokens", "", 1100),
        ("output_tokens", "", 7),
    ]


def test_cost_fixture_converts_cents_to_dollars_and_sums_tiers() -> None:
    assert Counter(support.parsed_costs()) == Counter(support.EXPECTED_COSTS)
    page = parse_cost_page(support.load("cost_page.json"))
    amounts = [r.amount for r in page.buckets[0].results]
    assert amounts == [Decimal("1.2378912"), Decimal("0.105"), Decimal("0.003"), Decimal("2.5"), Decimal("0.0725")]
    assert {r.currency for r in page.buckets[0].results} == {"USD"}
    assert page.buckets[1].results == () and page.has_more is False and page.next_page is None


def test_cost_amount_as_a_number_and_currency_defaults() -> None:
    body = support.load("cost_page.json")
    body["data"][0]["results"][0]["amount"] = 12.5
    del body["data"][0]["results"][0]["currency"]
    result = parse_cost_page(body).buckets[0].results[0]
    assert result.amount == Decimal("0.125") and result.currency == "USD"


def test_organization_and_workspace_fixtures() -> None:
    org = parse_organization(support.load("organization.json"))
    assert (org.id, org.name) == ("12345678-1234-5678-1234-567812345678", "Organization Name")
    listing = parse_workspace_list(support.load("workspaces_page.json"))
    assert [(w.id, w.archived) for w in listing.items] == [
        ("wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", False),
        ("wrkspc_01XYZ789ABC123DEF456MNO", True),
    ]
    assert listing.last_id == "wrkspc_01XYZ789ABC123DEF456MNO" and listing.has_more is False


def _mutated(name: str, mutate) -> Any:
    body = copy.deepcopy(support.load(name))
    mutate(body)
    return body


BROKEN_USAGE = {
    "data null": lambda b: b.update(data=None),
    "data missing": lambda b: b.pop("data"),
    "data not a list": lambda b: b.update(data={"buckets": []}),
    "starting_at unix seconds": lambda b: b["data"][0].update(starting_at=1747180800),
    "starting_at without zone": lambda b: b["data"][0].update(starting_at="2025-05-14T00:00:00"),
    "ending_at before starting_at": lambda b: b["data"][0].update(ending_at="2025-05-13T00:00:00Z"),
    "results missing": lambda b: b["data"][0].pop("results"),
    "cache_creation missing (flat decoy only)": lambda b: b["data"][0]["results"][0].pop("cache_creation"),
    "cache_creation flattened": lambda b: b["data"][0]["results"][0].update(cache_creation=1200),
    "ephemeral_1h missing": lambda b: b["data"][0]["results"][0]["cache_creation"].pop("ephemeral_1h_input_tokens"),
    "cache_read null": lambda b: b["data"][0]["results"][0].update(cache_read_input_tokens=None),
    "uncached a string": lambda b: b["data"][0]["results"][0].update(uncached_input_tokens="1500"),
    "output a bool": lambda b: b["data"][0]["results"][0].update(output_tokens=True),
    "negative tokens": lambda b: b["data"][0]["results"][0].update(output_tokens=-1),
    "web searches a string": lambda b: b["data"][0]["results"][1]["server_tool_use"].update(web_search_requests="3"),
    "model not a string": lambda b: b["data"][0]["results"][0].update(model=42),
    "has_more a string": lambda b: b.update(has_more="true"),
}


@pytest.mark.parametrize("mutate", BROKEN_USAGE.values(), ids=BROKEN_USAGE.keys())
def test_broken_usage_shapes_raise_response_error(mutate) -> None:
    with pytest.raises(ProviderResponseError) as info:
        parse_usage_page(_mutated("usage_page.json", mutate))
    assert info.value.message.startswith("Anthropic returned an unexpected response:")


def test_a_body_that_is_not_an_object_raises() -> None:
    with pytest.raises(ProviderResponseError, match="usage report is not an object"):
        parse_usage_page([])


BROKEN_COSTS = {
    "amount missing": lambda b: b["data"][0]["results"][0].pop("amount"),
    "amount not a number": lambda b: b["data"][0]["results"][0].update(amount="12,5"),
    "amount infinite": lambda b: b["data"][0]["results"][0].update(amount="Infinity"),
    "amount a bool": lambda b: b["data"][0]["results"][0].update(amount=True),
    "amount an object": lambda b: b["data"][0]["results"][0].update(amount={"value": "1", "currency": "USD"}),
    "currency empty": lambda b: b["data"][0]["results"][0].update(currency=" "),
    "token_type not a string": lambda b: b["data"][0]["results"][0].update(token_type=["input"]),
}


@pytest.mark.parametrize("mutate", BROKEN_COSTS.values(), ids=BROKEN_COSTS.keys())
def test_broken_cost_shapes_raise_response_error(mutate) -> None:
    with pytest.raises(ProviderResponseError):
        parse_cost_page(_mutated("cost_page.json", mutate))


@pytest.mark.parametrize(
    "body", [{"name": "x"}, {"id": 7}, [], {"data": [{"name": "no id"}]}], ids=["org no id", "org id int", "list", "ws"]
)
def test_broken_organization_and_workspace_shapes(body) -> None:
    with pytest.raises(ProviderResponseError):
        if "data" in body:
            parse_workspace_list(body)
        else:
            parse_organization(body)


def test_alignment_and_rfc3339() -> None:
    moment = datetime(2025, 5, 14, 10, 37, 5, tzinfo=UTC)
    assert align_down(moment, timedelta(hours=1)) == datetime(2025, 5, 14, 10, tzinfo=UTC)
    assert align_up(moment, timedelta(days=1)) == datetime(2025, 5, 15, tzinfo=UTC)
    assert align_up(datetime(2025, 5, 15, tzinfo=UTC), timedelta(days=1)) == datetime(2025, 5, 15, tzinfo=UTC)
    assert rfc3339(moment) == "2025-05-14T10:37:05Z"


def test_bucket_with_an_offset_is_keyed_in_utc() -> None:
    body = support.load("usage_page.json")
    body["data"][0].update(starting_at="2025-05-14T02:00:00+02:00", ending_at="2025-05-14T03:00:00+02:00")
    samples = [s for b in parse_usage_page(body).buckets[:1] for s in usage_samples(b, account="")]
    assert {s.bucket_start for s in samples} == {datetime(2025, 5, 14, tzinfo=UTC)}
