"""Inference profiles against their underlying model: each CloudWatch series (the foundation
model called directly, a cross-region profile, an application profile) is read once and kept on
its own row, so a model's total is their sum and nothing is counted twice; an application
profile is named by its foundation model when bedrock:GetInferenceProfile may be called
(remembered in the state), and keeps its own name when it may not."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from integrations.providers.aws_bedrock.schema import parse_inference_profile
from integrations.providers.aws_bedrock.tests.fakes import series
from integrations.providers.aws_bedrock.tests.support import HOUR, KEY_ACCOUNT, days_ago
from integrations.providers.base import Window

CREDENTIAL = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"
CROSS_REGION = "us." + MODEL
APP = f"arn:aws:bedrock:us-east-1:{KEY_ACCOUNT}:application-inference-profile/a1b2c3d4e5"
T = days_ago(1)
WINDOW = Window(T, T + HOUR)


def profile_answer(*regions: str) -> dict:
    return {
        "inferenceProfileName": "support-bot",
        "inferenceProfileArn": APP,
        "inferenceProfileId": "a1b2c3d4e5",
        "status": "ACTIVE",
        "type": "APPLICATION",
        "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{MODEL}"} for r in regions],
    }


def stub_window(stubbed, *, invocations=(5.0, 3.0, 2.0)) -> None:
    """ListMetrics lists the three ids (sorted: the ARN, the foundation model, the profile);
    GetMetricData answers each one's Invocations for the hour."""
    stubbed.caller()
    stubbed.models(MODEL, CROSS_REGION, APP)
    ids = sorted([MODEL, CROSS_REGION, APP])
    stubbed.data(
        [series(f"m{ids.index(m)}_0", [(T, v)]) for m, v in zip((MODEL, CROSS_REGION, APP), invocations, strict=True)]
    )
    stubbed.mantle()


def fetch(provider, http, state=None):
    return list(provider.fetch(CREDENTIAL, {"regions": "us-east-1"}, WINDOW, http=http, state=state))


def test_each_series_is_counted_once_and_the_application_profile_is_named_by_its_model(stubbed, stubbed_provider, http):
    stub_window(stubbed)
    stubbed.bedrock.add_response("get_inference_profile", profile_answer("us-east-1", "us-west-2"),
                                 {"inferenceProfileIdentifier": APP})  # fmt: skip
    state: dict = {}
    samples = fetch(stubbed_provider, http, state)
    requests = {(s.model, s.deployment): s.quantity for s in samples if s.metric == "requests"}
    assert requests == {(MODEL, ""): 5, (MODEL, CROSS_REGION): 3, (MODEL, APP): 2}
    by_model = Counter()
    for s in samples:
        by_model[(s.model, s.metric)] += s.quantity
    assert by_model[(MODEL, "requests")] == Decimal(10)  # 5 direct + 3 cross-region + 2 application, once each
    assert state["profile_models"] == {APP: MODEL}
    stubbed.bedrock.assert_no_pending_responses()

    # The next sync knows the profile: no second GetInferenceProfile.
    stub_window(stubbed)
    again = fetch(stubbed_provider, http, state)
    assert {(s.model, s.deployment) for s in again} == set(requests)
    stubbed.bedrock.assert_no_pending_responses()


def test_without_the_permission_the_application_profile_keeps_its_own_name(stubbed, stubbed_provider, http):
    stub_window(stubbed)
    stubbed.error("bedrock", "get_inference_profile", "AccessDeniedException", 403,
                  "User is not authorized to perform: bedrock:GetInferenceProfile")  # fmt: skip
    samples = fetch(stubbed_provider, http, {})
    requests = {(s.model, s.deployment): s.quantity for s in samples if s.metric == "requests"}
    assert requests == {(MODEL, ""): 5, (MODEL, CROSS_REGION): 3, ("application-inference-profile/a1b2c3d4e5", APP): 2}


def test_a_profile_naming_no_single_model_is_not_resolved() -> None:
    assert parse_inference_profile(profile_answer("us-east-1", "us-west-2")) == MODEL
    assert parse_inference_profile({"models": []}) == ""
    mixed = {"models": [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}"},
                        {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"}]}  # fmt: skip
    assert parse_inference_profile(mixed) == ""
