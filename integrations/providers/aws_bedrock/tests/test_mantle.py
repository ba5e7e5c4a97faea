"""bedrock-mantle (the OpenAI-compatible and Anthropic Messages endpoint) through CloudWatch's
AWS/BedrockMantle namespace, against moto: only the Model level is read (the Account, Project
and Project+Model levels would count the same inferences again), its rows carry endpoint
"bedrock-mantle" so they never share a key with the same model's bedrock-runtime rows, and a
Stubber run checks the documented query shape."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

from integrations.providers.aws_bedrock import AwsBedrockProvider
from integrations.providers.aws_bedrock.tests.fakes import series
from integrations.providers.aws_bedrock.tests.support import CUSTOMER_ACCOUNT, HOUR, KEY_ACCOUNT, days_ago
from integrations.providers.base import Window

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
OSS = "openai.gpt-oss-120b-1:0"


def put(client, namespace, metric, dims, moment, value):
    client.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": n, "Value": v} for n, v in dims],
                "Timestamp": moment,
                "Value": value,
            }
        ],
    )


def test_mantle_model_level_is_read_apart_from_runtime_and_never_twice(customer_cloudwatch, role_credential, http):
    client = customer_cloudwatch("us-east-1")
    start = days_ago(1)
    window = Window(start, start + 3 * HOUR)
    h0, h1 = start, start + HOUR
    # bedrock-runtime traffic of the same model in hour 0.
    put(client, "AWS/Bedrock", "Invocations", [("ModelId", MODEL)], h0 + timedelta(minutes=5), 2)
    put(client, "AWS/Bedrock", "InputTokenCount", [("ModelId", MODEL)], h0 + timedelta(minutes=5), 500)
    # bedrock-mantle: the same inferences published at all four levels.
    for moment, model, inferences, tokens_in, tokens_out in (
        (h0, MODEL, 3, 1200, 300),
        (h1, MODEL, 1, 80, 20),
        (h1, OSS, 5, 900, 450),
    ):
        at = moment + timedelta(minutes=10)
        for dims in (
            [],
            [("ProjectId", "proj_abc")],
            [("ModelId", model)],
            [("ProjectId", "proj_abc"), ("ModelId", model)],
        ):
            put(client, "AWS/BedrockMantle", "Inferences", dims, at, inferences)
            put(client, "AWS/BedrockMantle", "InferenceClientErrors", dims, at, 1)
        for dims in ([], [("ProjectId", "proj_abc")], [("ModelId", model)]):
            put(client, "AWS/BedrockMantle", "TotalInputTokens", dims, at, tokens_in)
            put(client, "AWS/BedrockMantle", "TotalOutputTokens", dims, at, tokens_out)
        # Per-inference token datapoints (Project+Model only) are for percentiles: not read.
        put(client, "AWS/BedrockMantle", "InputTokens", [("ProjectId", "proj_abc"), ("ModelId", model)], at, tokens_in)

    answered: list = []
    state: dict = {}
    samples = list(
        AwsBedrockProvider().fetch(
            role_credential, {"regions": "us-east-1"}, window, http=http, state=state, answered=answered
        )
    )

    mantle = Counter()
    for s in samples:
        if s.endpoint == "bedrock-mantle":
            assert s.stream == "mantle" and s.account == CUSTOMER_ACCOUNT and s.region == "us-east-1"
            mantle[(s.bucket_start, s.model, s.metric)] += s.quantity
    assert mantle == {
        (h0, MODEL, "requests"): 3, (h0, MODEL, "input_tokens"): 1200, (h0, MODEL, "output_tokens"): 300,
        (h1, MODEL, "requests"): 1, (h1, MODEL, "input_tokens"): 80, (h1, MODEL, "output_tokens"): 20,
        (h1, OSS, "requests"): 5, (h1, OSS, "input_tokens"): 900, (h1, OSS, "output_tokens"): 450,
    }  # fmt: skip
    runtime = {(s.bucket_start, s.model, s.metric): s.quantity for s in samples if s.endpoint == ""}
    assert runtime == {(h0, MODEL, "requests"): 2, (h0, MODEL, "input_tokens"): 500}
    # Requests of the model over both endpoints: 2 + 3 + 1, each counted once.
    assert sum(s.quantity for s in samples if s.model == MODEL and s.metric == "requests") == Decimal(6)
    # One natural key per sample: nothing for the store to merge or overwrite.
    keys = [(s.bucket_start, s.model, s.deployment, s.endpoint, s.metric) for s in samples]
    assert len(keys) == len(set(keys))
    # Both streams answered, each for its own endpoint only.
    scopes = {(a.stream, tuple(sorted(dict(a.scope).get("endpoint", ())))) for a in answered}
    assert ("mantle", ("bedrock-mantle",)) in scopes and ("cloudwatch", ()) in scopes
    assert ["ModelId", OSS] in state["models_seen"]["AWS/BedrockMantle"]["us-east-1"]


def test_mantle_queries_use_the_listed_dimension_and_the_hourly_sum(stubbed, stubbed_provider, http):
    t = days_ago(1)
    stubbed.caller()
    stubbed.models()  # no bedrock-runtime traffic
    stubbed.mantle(OSS, dimension="Model")
    queries = [
        {
            "Id": f"n0_{j}",
            "Label": f"{metric} {OSS}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/BedrockMantle",
                    "MetricName": metric,
                    "Dimensions": [{"Name": "Model", "Value": OSS}],
                },
                "Period": 3600,
                "Stat": "Sum",
            },
            "ReturnData": True,
        }
        for j, metric in enumerate(("Inferences", "TotalInputTokens", "TotalOutputTokens"))
    ]
    expected = {"MetricDataQueries": queries, "StartTime": t, "EndTime": t + HOUR, "ScanBy": "TimestampAscending"}
    stubbed.data(
        [series("n0_0", [(t, 4.0)]), series("n0_1", [(t, 400.0)]), series("n0_2", [(t, 44.0)])], expected=expected
    )
    credential = {
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    }
    samples = list(stubbed_provider.fetch(credential, {"regions": "us-east-1"}, Window(t, t + HOUR), http=http))
    assert {(s.metric, s.quantity, s.endpoint, s.account) for s in samples} == {
        ("requests", 4, "bedrock-mantle", KEY_ACCOUNT),
        ("input_tokens", 400, "bedrock-mantle", KEY_ACCOUNT),
        ("output_tokens", 44, "bedrock-mantle", KEY_ACCOUNT),
    }
    stubbed.cloudwatch.assert_no_pending_responses()
