"""The AWS Bedrock connector against moto: true totals per model, region, hour and day; the
assumed role with its external id; the key pair; batching past 500 queries; verify."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import boto3
from moto import mock_aws
from moto.sts.models import sts_backends

from integrations.providers.aws_bedrock import AwsBedrockProvider
from integrations.providers.aws_bedrock.tests.support import (
    CUSTOMER_ACCOUNT,
    DAY,
    EXTERNAL_ID,
    HOUR,
    KEY_ACCOUNT,
    MODELS,
    OUR_METRICS,
    REGIONS,
    ROLE_ARN,
    customer_client,
    days_ago,
    seed_cloudwatch,
    true_totals,
)
from integrations.providers.base import UsageSample, Window
from integrations.providers.testing import assert_totals_equal, totals_by


def fetch(
    provider: AwsBedrockProvider, credential: dict, settings: dict, window: Window, http: Any
) -> list[UsageSample]:
    return list(provider.fetch(credential, settings, window, http=http))


def recording_sessions(calls: list[tuple[str, dict]]) -> Any:
    """A session factory of real boto3 sessions (served by moto) that record every API call."""

    def factory(**kwargs: Any) -> Any:
        session = boto3.session.Session(**kwargs)
        session.events.register(
            "before-parameter-build", lambda model, params, **_: calls.append((model.name, dict(params)))
        )
        return session

    return factory


def test_fetch_reproduces_true_totals_per_model_region_hour_and_day(
    provider, role_credential, aws_settings, http, seeded
):
    samples = fetch(provider, role_credential, aws_settings, seeded, http)
    start, end = seeded.start, seeded.end

    assert {s.metric for s in samples} == OUR_METRICS
    assert {s.account for s in samples} == {CUSTOMER_ACCOUNT}
    assert_totals_equal(
        totals_by(samples, "region", "model", "deployment"),
        true_totals(start, end, "region", "model", "deployment"),
        "per model",
    )
    assert_totals_equal(
        totals_by(samples, "region", "bucket_start"), true_totals(start, end, "region", "bucket_start"), "per hour"
    )
    per_day = Counter()
    for s in samples:
        per_day[(s.metric, s.bucket_start.date())] += s.quantity
    assert_totals_equal(per_day, true_totals(start, end, "day"), "per day")
    # The "across all models" series and the hours either side of the window are not read.
    assert all(s.model for s in samples)
    assert all(start <= s.bucket_start < end and s.bucket_end - s.bucket_start == HOUR for s in samples)


def test_profile_and_direct_calls_of_one_model_stay_apart(provider, role_credential, aws_settings, http, seeded):
    samples = fetch(provider, role_credential, aws_settings, seeded, http)
    haiku = {(s.region, s.deployment) for s in samples if s.model == "anthropic.claude-3-5-haiku-20241022-v1:0"}
    assert haiku == {
        ("us-east-1", ""),
        ("us-east-1", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("eu-central-1", ""),
    }
    llama = {s.model for s in samples if "llama" in s.deployment}
    assert llama == {"meta.llama3-3-70b-instruct-v1:0"}


def test_assume_role_sends_the_external_id_and_session_name(provider, role_credential, aws_settings, http, seeded):
    fetch(provider, role_credential, aws_settings, Window(seeded.start, seeded.start + HOUR), http)
    assumed = sts_backends[CUSTOMER_ACCOUNT]["aws"].assumed_roles[-1]
    assert (assumed.role_arn, assumed.external_id, assumed.session_name) == (ROLE_ARN, EXTERNAL_ID, "doow-usage-sync")


def test_key_pair_reads_its_own_account(provider, key_credential, http, aws):
    window = Window(days_ago(2), days_ago(2) + 6 * HOUR)
    models = {"us-east-1": MODELS["us-east-1"][:1]}
    seed_cloudwatch(lambda region: boto3.client("cloudwatch", region_name=region), window.start, window.end, models)
    samples = fetch(provider, key_credential, {"regions": "us-east-1"}, window, http)
    assert {s.account for s in samples} == {KEY_ACCOUNT}  # from GetCallerIdentity of the key
    assert_totals_equal(totals_by(samples, "model"), true_totals(window.start, window.end, "model", models=models))


def test_unaligned_window_reads_whole_hours_of_its_span(provider, role_credential, aws_settings, http, seeded):
    window = Window(seeded.start + timedelta(hours=3, minutes=20), seeded.start + timedelta(hours=5, minutes=10))
    samples = fetch(provider, role_credential, aws_settings, window, http)
    hours = sorted({s.bucket_start for s in samples})
    assert hours == [seeded.start + timedelta(hours=h) for h in (3, 4, 5)]
    aligned = Window(seeded.start + timedelta(hours=3), seeded.start + timedelta(hours=6))
    assert_totals_equal(totals_by(samples), true_totals(aligned.start, aligned.end))


def test_more_than_500_models_page_list_metrics_and_batch_get_metric_data(aws_env, role_credential, http):
    calls: list[tuple[str, dict]] = []
    provider = AwsBedrockProvider(session_factory=recording_sessions(calls))
    window = Window(days_ago(1), days_ago(1) + 2 * HOUR)
    every = tuple(f"vendor.model-{i:03d}-v1:0" for i in range(501))
    busy = {"us-east-1": every[:10]}  # datapoints inside the window for 10 of them (keeps moto fast)
    with mock_aws():
        client = customer_client()
        # All 501 were active a day earlier, so ListMetrics lists them all: 2 pages at moto's 500.
        stale = [
            {
                "MetricName": "Invocations",
                "Dimensions": [{"Name": "ModelId", "Value": m}],
                "Timestamp": window.start - DAY,
                "Value": 1,
            }
            for m in every
        ]
        client.put_metric_data(Namespace="AWS/Bedrock", MetricData=stale)
        seed_cloudwatch(lambda region: client, window.start, window.end, busy)
        samples = fetch(provider, role_credential, {"regions": "us-east-1"}, window, http)

    listed = [p for name, p in calls if name == "ListMetrics" and p["Namespace"] == "AWS/Bedrock"]
    assert len(listed) == 2 and "NextToken" in listed[1]
    batches = [len(p["MetricDataQueries"]) for name, p in calls if name == "GetMetricData"]
    assert batches == [500, 500, 500, 500, 500, 5]  # 501 models × 5 metrics, at most 500 per call
    ids = [q["Id"] for name, p in calls if name == "GetMetricData" for q in p["MetricDataQueries"]]
    assert len(ids) == len(set(ids)) == 2505
    assert_totals_equal(totals_by(samples, "model"), true_totals(window.start, window.end, "model", models=busy))


def test_a_smaller_batch_size_gives_the_same_totals(role_credential, aws_settings, http, seeded):
    calls: list[tuple[str, dict]] = []
    provider = AwsBedrockProvider(session_factory=recording_sessions(calls))
    provider.max_queries_per_call = 4
    samples = fetch(provider, role_credential, aws_settings, seeded, http)
    sizes = [len(p["MetricDataQueries"]) for name, p in calls if name == "GetMetricData"]
    # us-east-1: 3 models × 5 metrics = 15 queries → 4+4+4+3; eu-central-1: 10 → 4+4+2.
    assert sizes == [4, 4, 4, 3, 4, 4, 2]
    for name, params in calls:
        if name == "GetMetricData":
            assert params["StartTime"] == seeded.start and params["EndTime"] == seeded.end
            stat = params["MetricDataQueries"][0]["MetricStat"]
            assert (stat["Period"], stat["Stat"]) == (3600, "Sum")
    assert_totals_equal(totals_by(samples, "region", "model"), true_totals(seeded.start, seeded.end, "region", "model"))


def test_http_client_counts_every_aws_call(provider, role_credential, aws_settings, http, seeded):
    fetch(provider, role_credential, aws_settings, seeded, http)
    # AssumeRole, then per region one ListMetrics page and one GetMetricData call, and one
    # ListMetrics page of AWS/BedrockMantle (empty here: nothing more to read).
    assert http.calls == 1 + len(REGIONS) * 3


def test_verify_names_the_account_and_the_models_per_region(provider, role_credential, http, seeded):
    identity = provider.verify(role_credential, {"regions": "us-east-1, eu-central-1, eu-west-3"}, http=http)
    assert identity.account_id == CUSTOMER_ACCOUNT
    assert "assumed-role/DoowUsageRead/doow-usage-sync" in identity.summary
    assert identity.details["models_by_region"]["us-east-1"] == sorted(MODELS["us-east-1"])
    assert identity.details["models_by_region"]["eu-west-3"] == ["none"]
    assert identity.details["external_id"] == EXTERNAL_ID
    assert "eu-west-3" in identity.details["warnings"][0]
    assert "us-east-1: 3" in identity.summary
