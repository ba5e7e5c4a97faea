"""The pure half: model id normalization, regions, query ids, the parsers and the mapping."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integrations.providers.aws_bedrock.schema import (
    batches,
    build_queries,
    normalize_model_id,
    parse_list_metrics_page,
    parse_metric_data_page,
    parse_regions,
    usage_samples,
)
from integrations.providers.aws_bedrock.tests import support
from integrations.providers.base import ConfigurationError, ProviderResponseError

T = datetime(2026, 11, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0"),
        ("eu.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        ("apac.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
        ("us-gov.anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("meta.llama3-70b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0"),  # one dot: a model id, kept
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2:1", "anthropic.claude-v2:1"),
        (
            "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.meta.llama3-3-70b-instruct-v1:0",
            "meta.llama3-3-70b-instruct-v1:0",
        ),
        (
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3",
            "application-inference-profile/a1b2c3",
        ),
        ("arn:aws:bedrock:us-east-1:111122223333:provisioned-model/pm123", "provisioned-model/pm123"),
    ],
)
def test_normalize_model_id(raw: str, model: str) -> None:
    assert normalize_model_id(raw) == model


def test_regions_are_split_deduplicated_and_checked() -> None:
    assert parse_regions(" us-east-1, EU-central-1 ,us-east-1,us-gov-west-1") == [
        "us-east-1",
        "eu-central-1",
        "us-gov-west-1",
    ]
    for bad in ("", " , ", "us-east", "Virginia", "us-east-1; eu-west-1"):
        with pytest.raises(ConfigurationError) as info:
            parse_regions(bad)
        assert info.value.field == "regions"


def test_query_ids_follow_cloudwatchs_rule_and_batches_keep_order() -> None:
    queries = build_queries([f"m{i}" for i in range(101)])
    assert len(queries) == 505 and queries[0].id == "m0_0" and queries[-1].id == "m100_4"
    sizes = [len(b) for b in batches(queries, 500)]
    assert sizes == [500, 5]
    payload = queries[7].payload()
    assert payload["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "ModelId", "Value": "m1"}]
    assert payload["Label"] == "OutputTokenCount m1" and payload["MetricStat"]["Period"] == 3600


def test_list_metrics_keeps_only_series_keyed_by_model_id_alone() -> None:
    ids, token = parse_list_metrics_page(support.load("list_metrics_page.json"))
    assert ids == [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3d4e5f6",
    ]
    assert token == "page-2"


def test_recorded_metric_data_becomes_the_expected_samples() -> None:
    assert Counter(support.parsed_metric_data()) == Counter(support.EXPECTED_METRIC_DATA)


def test_quantities_are_whole_numbers_when_the_sums_are() -> None:
    page = parse_metric_data_page({"MetricDataResults": [{"Id": "m0_0", "Timestamps": [T], "Values": [12.0]}]})
    assert str(page.series[0].points[0][1]) == "12"
    assert page.series[0].status == "Complete"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "is not an object"),
        ({"MetricDataResults": {}}, "is not a list"),
        ({}, "no AWS request id"),
        ({"MetricDataResults": [{"Id": "m0_0", "Timestamps": [T], "Values": []}]}, "1 timestamps but 0 values"),
        ({"MetricDataResults": [{"Id": "m0_0", "Timestamps": ["soon"], "Values": [1.0]}]}, "not a timestamp"),
        ({"MetricDataResults": [{"Id": "m0_0", "Timestamps": ["2026-11-01T10:00:00"], "Values": [1.0]}]}, "aware"),
        ({"MetricDataResults": [{"Id": "m0_0", "Timestamps": [T], "Values": ["7"]}]}, "not a finite number"),
        ({"MetricDataResults": [{"Id": "m0_0", "Timestamps": [T], "Values": [float("nan")]}]}, "not a finite number"),
        ({"MetricDataResults": [{"Id": "m0_0", "Timestamps": [T], "Values": [True]}]}, "not a finite number"),
        ({"MetricDataResults": [{"Timestamps": [], "Values": []}]}, "Id or StatusCode"),
        ({"MetricDataResults": [], "NextToken": 5}, "NextToken"),
    ],
)
def test_metric_data_shape_errors(body, complaint) -> None:
    with pytest.raises(ProviderResponseError) as info:
        parse_metric_data_page(body)
    assert complaint in info.value.message


def test_an_empty_genuine_reply_is_no_data() -> None:
    assert parse_list_metrics_page({"ResponseMetadata": {"RequestId": "r-1"}}) == ([], None)
    with pytest.raises(ProviderResponseError):
        parse_list_metrics_page({"Metrics": [{"Dimensions": "ModelId"}]})


def test_datapoints_inside_an_hour_are_summed_into_that_hour() -> None:
    points = {
        (T, "m", "Invocations"): Decimal(2),
        (T.replace(minute=30), "m", "Invocations"): Decimal(3),  # an unaligned stamp: same hour
        (T, "m", "CacheWriteInputTokenCount"): Decimal(10),
    }
    samples = usage_samples(points, account="a", region="r")
    assert {(s.metric, s.quantity) for s in samples} == {
        ("requests", 5),
        ("input_tokens", 10),  # cache writes alone still count as input
        ("cache_write_tokens", 10),
    }
    assert {s.bucket_start for s in samples} == {T}
