"""The pure parsing and mapping functions, on recorded fixtures and on broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.azure_openai.schema import (
    metrics_samples,
    model_id,
    parse_account,
    parse_accounts_page,
    parse_deployments_page,
    parse_metrics,
    parse_resource_id,
    parse_token,
)
from integrations.providers.azure_openai.tests import support
from integrations.providers.base import ProviderResponseError, align_down, align_up


def test_metrics_fixture_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_metrics()) == Counter(support.EXPECTED_METRICS)


def test_metrics_fixture_keeps_only_points_with_a_total() -> None:
    series = parse_metrics(support.load("metrics_response.json"))
    assert [(s.metric, s.deployment, len(s.points)) for s in series] == [
        ("ProcessedPromptTokens", "gpt-4o-prod", 2),
        ("ProcessedPromptTokens", "gpt-35-legacy", 2),  # an explicit 0.0 is a point
        ("ProcessedPromptTokens", "embeddings", 1),
        ("GeneratedTokens", "gpt-4o-prod", 2),
        ("GeneratedTokens", "gpt-35-legacy", 1),
        ("AzureOpenAIRequests", "gpt-4o-prod", 2),
        ("AzureOpenAIRequests", "gpt-35-legacy", 1),
        ("AzureOpenAIRequests", "embeddings", 1),
    ]
    assert series[0].points[0] == (datetime(2024, 11, 1, tzinfo=UTC), Decimal(1200))
    assert str(series[0].points[0][1]) == "1200"  # 1200.0 arrives; an integral count is stored


def test_accounts_fixture_parses_every_kind_and_the_next_link() -> None:
    page = parse_accounts_page(support.load("accounts_page.json"))
    assert [(a.name, a.kind, a.serves_openai) for a in page.items] == [
        ("contoso-openai-eus", "OpenAI", True),
        ("contoso-speech", "SpeechServices", False),
        ("contoso-foundry", "AIServices", True),
    ]
    foundry = page.items[2]
    assert (foundry.subscription_id, foundry.resource_group, foundry.location) == (
        support.SUB,
        "RG-Research",
        "swedencentral",
    )
    assert page.next_link and "skiptoken" in page.next_link


def test_deployments_fixture_names_model_and_version() -> None:
    page = parse_deployments_page(support.load("deployments_page.json"))
    assert [(d.name, d.model, d.sku) for d in page.items] == [
        ("gpt-4o-prod", "gpt-4o-2024-08-06", "GlobalStandard"),
        ("embeddings", "text-embedding-ada-002-2", "Standard"),
    ]
    assert page.next_link is None


def test_model_id() -> None:
    assert model_id("gpt-4o", "2024-08-06") == "gpt-4o-2024-08-06"
    assert model_id("gpt-35-turbo", "0613") == "gpt-35-turbo-0613"
    assert model_id("gpt-4o", "") == "gpt-4o"
    assert model_id("", "1") == ""


def test_token_response() -> None:
    token = parse_token(support.load("token_response.json"))
    assert token.expires_in == 3599 and token.access_token.startswith("eyJ")
    assert parse_token({"access_token": "abc", "expires_in": "3600"}).expires_in == 3600  # v1 sends a string
    for broken in (
        {},
        {"access_token": ""},
        {"access_token": "a", "expires_in": True},
        {"access_token": "a", "expires_in": "soon"},
        {"access_token": "a", "expires_in": 0},
        [],
    ):
        with pytest.raises(ProviderResponseError):
            parse_token(broken)


def test_resource_ids() -> None:
    rid = support.RECORDED_ACCOUNT.id
    assert parse_resource_id(rid) == (support.SUB, "rg-ai-prod", "contoso-openai-eus")
    assert parse_resource_id(rid.lower()) == (support.SUB, "rg-ai-prod", "contoso-openai-eus")  # ARM ignores case
    assert parse_resource_id(rid + "/deployments/x") is None
    assert parse_resource_id("/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z") is None
    with pytest.raises(ProviderResponseError, match="not a Cognitive Services account id"):
        parse_account({"id": "/subscriptions/x", "name": "n", "location": "eastus"})


def test_dimension_name_is_matched_whatever_its_case() -> None:
    body = copy.deepcopy(support.load("metrics_response.json"))
    body["value"][0]["timeseries"][0]["metadatavalues"][0]["name"]["value"] = "ModelDeploymentName"
    assert parse_metrics(body)[0].deployment == "gpt-4o-prod"


def test_no_filter_series_has_no_deployment() -> None:
    body = {
        "value": [
            {
                "name": {"value": "GeneratedTokens"},
                "timeseries": [{"metadatavalues": [], "data": [{"timeStamp": "2024-11-01T05:00:00Z", "total": 7}]}],
            }
        ]
    }
    (series,) = parse_metrics(body)
    assert series.deployment == "" and series.points[0][1] == Decimal(7)


def test_unknown_metrics_and_points_outside_the_window_are_dropped() -> None:
    series = parse_metrics(support.load("metrics_response.json"))
    samples = metrics_samples(
        series, account=support.RECORDED_ACCOUNT, models={}, start=support._at(1), end=support._at(2)
    )
    assert {s.bucket_start for s in samples} == {support._at(1)}
    other = parse_metrics(
        {
            "value": [
                {
                    "name": {"value": "TokenTransaction"},
                    "timeseries": [{"data": [{"timeStamp": "2024-11-01T01:00:00Z", "total": 5}]}],
                }
            ]
        }
    )
    assert (
        metrics_samples(other, account=support.RECORDED_ACCOUNT, models={}, start=support._at(0), end=support._at(3))
        == []
    )


def test_duplicate_series_for_one_deployment_add_up() -> None:
    body = support.load("metrics_response.json")
    body["value"][0]["timeseries"].append(copy.deepcopy(body["value"][0]["timeseries"][0]))
    samples = metrics_samples(
        parse_metrics(body), account=support.RECORDED_ACCOUNT, models={}, start=support._at(0), end=support._at(3)
    )
    first = [
        s
        for s in samples
        if s.metric == "input_tokens" and s.deployment == "gpt-4o-prod" and s.bucket_start == support._at(0)
    ]
    assert [s.quantity for s in first] == [Decimal(2400)]


def _broken(mutate: Any) -> dict[str, Any]:
    body = copy.deepcopy(support.load("metrics_response.json"))
    mutate(body)
    return body


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(value={}), "value is not a list"),
        (lambda b: b.update(interval="PT5M"), "interval 'PT5M'"),
        (lambda b: b["value"][0].update(name="ProcessedPromptTokens"), "name is not an object"),
        (lambda b: b["value"][0].update(errorCode="InvalidMetric", errorMessage="nope"), "failed with InvalidMetric"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(total="1200"), "total is not a number"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(total=True), "total is not a number"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(total=-1.0), "non-negative"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(timeStamp="yesterday"), "ISO 8601"),
        (lambda b: b["value"][0]["timeseries"][0].update(data=None), "data is not a list"),
    ],
)
def test_broken_metrics_raise_a_named_error(mutate: Any, message: str) -> None:
    with pytest.raises(ProviderResponseError, match=message):
        parse_metrics(_broken(mutate))


@pytest.mark.parametrize(
    "body",
    [[], {"value": None}, {"value": [{"id": 3}]}, {"value": [], "nextLink": 5}],
)
def test_broken_account_lists_raise(body: Any) -> None:
    with pytest.raises(ProviderResponseError):
        parse_accounts_page(body)


@pytest.mark.parametrize("body", [[], {"value": [{"sku": {}}]}, {"value": [{"name": "d", "properties": []}]}])
def test_broken_deployment_lists_raise(body: Any) -> None:
    with pytest.raises(ProviderResponseError):
        parse_deployments_page(body)


def test_alignment() -> None:
    moment = datetime(2024, 11, 1, 10, 37, 5, tzinfo=UTC)
    assert align_down(moment) == datetime(2024, 11, 1, 10, tzinfo=UTC)
    assert align_up(moment) == datetime(2024, 11, 1, 11, tzinfo=UTC)
    assert align_up(datetime(2024, 11, 1, 10, tzinfo=UTC)) == datetime(2024, 11, 1, 10, tzinfo=UTC)
