"""The pure parsing and mapping functions, on recorded fixtures and on broken shapes."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from integrations.providers.base import ProviderResponseError
from integrations.providers.fireworks.metrics import parse_metrics
from integrations.providers.fireworks.schema import parse_billing_usage
from integrations.providers.fireworks.tests import support


def test_serverless_fixture_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_serverless()) == Counter(support.EXPECTED_SERVERLESS)


def test_dedicated_fixture_maps_to_hand_computed_samples() -> None:
    assert Counter(support.parsed_dedicated()) == Counter(support.EXPECTED_DEDICATED)


def test_int64_strings_and_omitted_defaults() -> None:
    usage = parse_billing_usage(support.load("billing_serverless.json"))
    assert [r.prompt_tokens for r in usage.serverless] == [1200, 50, 900, 886211]
    assert [r.completion_tokens for r in usage.serverless] == [300, 0, 0, 8272]
    assert [r.cached_prompt_tokens for r in usage.serverless] == [None, None, None, 762880]
    assert usage.serverless[2].model == "accounts/fireworks/models/nomic-embed-text-v1p5"
    assert usage.serverless[3].start == datetime(2026, 11, 2, tzinfo=UTC)
    assert usage.dedicated == ()  # dedicatedCosts absent: proto3 JSON leaves an empty list out


def test_dedicated_row_falls_back_to_group_names() -> None:
    usage = parse_billing_usage(support.load("billing_dedicated.json"))
    coder = usage.dedicated[1]
    assert (coder.deployment_id, coder.accelerator_type, coder.placement) == ("coder", "NVIDIA_A100_80GB", "")
    assert coder.accelerator_seconds == Decimal("3600.5")


def test_empty_response_is_no_usage() -> None:
    usage = parse_billing_usage({})
    assert usage.serverless == () and usage.dedicated == ()


def test_metrics_fixture_sums_deployments_per_base_model() -> None:
    assert parse_metrics(support.load_text("metrics.txt")) == support.EXPECTED_RATES


def test_metrics_of_an_account_without_deployments_are_empty() -> None:
    assert parse_metrics("") == {}
    assert parse_metrics("# HELP up x\n# TYPE up gauge\nup 1\n") == {}


def _serverless(mutate) -> Any:
    body = copy.deepcopy(support.load("billing_serverless.json"))
    mutate(body)
    return body


def _dedicated(mutate) -> Any:
    body = copy.deepcopy(support.load("billing_dedicated.json"))
    mutate(body)
    return body


BROKEN = {
    "not an object": lambda: ["serverlessCosts"],
    "serverlessCosts not a list": lambda: _serverless(lambda b: b.update(serverlessCosts={"rows": []})),
    "row not an object": lambda: _serverless(lambda b: b["serverlessCosts"].append("oops")),
    "promptTokens not digits": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(promptTokens="12k")),
    "promptTokens negative": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(promptTokens="-5")),
    "promptTokens a float": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(promptTokens=1.5)),
    "completionTokens a bool": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(completionTokens=True)),
    "startTime missing": lambda: _serverless(lambda b: b["serverlessCosts"][0].pop("startTime")),
    "startTime not RFC 3339": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(startTime="yesterday")),
    "startTime without zone": lambda: _serverless(
        lambda b: b["serverlessCosts"][0].update(startTime="2026-11-01T00:00:00")
    ),
    "row spans two days": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(endTime="2026-11-03T00:00:00Z")),
    "row ends before it starts": lambda: _serverless(
        lambda b: b["serverlessCosts"][0].update(endTime="2026-10-31T00:00:00Z")
    ),
    "modelName not a string": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(modelName=42)),
    "group not an object": lambda: _serverless(lambda b: b["serverlessCosts"][0].update(group="model_name")),
    "acceleratorSeconds not numeric": lambda: _dedicated(
        lambda b: b["dedicatedCosts"][0].update(acceleratorSeconds="lots")
    ),
    "acceleratorSeconds NaN": lambda: _dedicated(lambda b: b["dedicatedCosts"][0].update(acceleratorSeconds="NaN")),
    "acceleratorSeconds negative": lambda: _dedicated(lambda b: b["dedicatedCosts"][0].update(acceleratorSeconds="-1")),
    "dedicatedCosts not a list": lambda: _dedicated(lambda b: b.update(dedicatedCosts="none")),
}


@pytest.mark.parametrize("body", BROKEN.values(), ids=BROKEN.keys())
def test_broken_billing_shapes_raise_response_error(body) -> None:
    with pytest.raises(ProviderResponseError, match="unexpected response"):
        parse_billing_usage(body())


BROKEN_METRICS = {
    "html": "<html>upstream proxy error</html>",
    "json": '{"code": 13, "message": "internal"}',
    "bad labels": "tokens_prompt_total:sum_by_deployment{base_model=accounts/x} 1\n",
    "no base_model": 'tokens_prompt_total:sum_by_deployment{deployment_id="d"} 1\n',
    "negative rate": 'tokens_prompt_total:sum_by_deployment{base_model="m"} -3\n',
    "infinite rate": 'request_counter_total:sum_by_deployment{base_model="m"} +Inf\n',
}


@pytest.mark.parametrize("text", BROKEN_METRICS.values(), ids=BROKEN_METRICS.keys())
def test_broken_metrics_raise_response_error(text: str) -> None:
    with pytest.raises(ProviderResponseError):
        parse_metrics(text)


def test_training_fixture_maps_to_tokens_and_gpu_seconds() -> None:
    from integrations.providers.base import UsageSample
    from integrations.providers.fireworks.schema import training_samples

    usage = parse_billing_usage(support.load("billing_training.json"))
    day1, day2, day3 = (datetime(2026, 11, d, tzinfo=UTC) for d in (1, 2, 3))
    llama, qwen = "accounts/fireworks/models/llama-v3p1-8b-instruct", "accounts/fireworks/models/qwen2p5-7b-instruct"
    assert Counter(training_samples(usage.training, account="acme")) == Counter([
        UsageSample(day1, day2, "training_tokens", Decimal(1_500_000), account="acme", model=llama),  # two rows add up
        UsageSample(day2, day3, "training_tokens", Decimal(400_000), account="acme", model=qwen),
        UsageSample(day2, day3, "compute_seconds", Decimal(28800), account="acme", model=qwen,
                    resource="NVIDIA_H100_80GB", operation="training"),
    ])  # fmt: skip


def test_rows_without_times_take_the_requested_day_or_mark_the_answer_undated() -> None:
    body = support.load("billing_serverless.json")
    for row in body["serverlessCosts"]:
        del row["startTime"], row["endTime"]
    day = datetime(2026, 11, 5, tzinfo=UTC)
    usage = parse_billing_usage(copy.deepcopy(body), day=day)
    assert not usage.undated and usage.serverless
    assert {(r.start, r.end) for r in usage.serverless} == {(day, day.replace(day=6))}
    undated = parse_billing_usage(body)  # a request of several days: no row can be placed
    assert undated.undated and undated.serverless == ()
