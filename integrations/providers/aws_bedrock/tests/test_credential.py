"""Offline credential checks, the generated external id, and the setup steps shown to the admin."""

from __future__ import annotations

import json

import pytest

from integrations.providers.aws_bedrock import provider
from integrations.providers.aws_bedrock.iam import generate_external_id
from integrations.providers.aws_bedrock.tests.support import (
    EXTERNAL_ID,
    KEY_ID,
    ROLE_ARN,
    SECRET,
)
from integrations.providers.base import ConfigurationError

SEED = "ab" * 32


@pytest.mark.parametrize(
    ("credential", "complaint", "field"),
    [
        ({}, "role ARN", ""),
        ({"role_arn": ROLE_ARN, "access_key_id": KEY_ID, "external_id": EXTERNAL_ID}, "not both", "role_arn"),
        ({"role_arn": "arn:aws:iam::111122223333:user/ada", "external_id": EXTERNAL_ID}, "not of a role", "role_arn"),
        ({"role_arn": "arn:aws:iam::111122223333:root", "external_id": EXTERNAL_ID}, "not of a role", "role_arn"),
        (
            {"role_arn": "arn:aws:sts::111122223333:assumed-role/R/s", "external_id": EXTERNAL_ID},
            "assumed-role",
            "role_arn",
        ),
        ({"role_arn": "DoowUsageRead", "external_id": EXTERNAL_ID}, "does not look like a role ARN", "role_arn"),
        (
            {"role_arn": "arn:aws:iam::1111:role/R", "external_id": EXTERNAL_ID},
            "does not look like a role ARN",
            "role_arn",
        ),
        ({"role_arn": ROLE_ARN}, "external id is missing", ""),
        ({"access_key_id": KEY_ID}, "secret access key too", "secret_access_key"),
        ({"secret_access_key": SECRET}, "access key id too", "access_key_id"),
        ({"access_key_id": SECRET, "secret_access_key": KEY_ID}, "swapped", "access_key_id"),
        ({"access_key_id": "ASIAIOSFODNN7EXAMPLE", "secret_access_key": SECRET}, "temporary", "access_key_id"),
        ({"access_key_id": "my-key", "secret_access_key": SECRET}, "AKIA followed by", "access_key_id"),
        ({"access_key_id": KEY_ID, "secret_access_key": SECRET[:-3]}, "40 characters", "secret_access_key"),
    ],
)
def test_check_credential_explains_what_is_wrong(credential, complaint, field) -> None:
    with pytest.raises(ConfigurationError) as info:
        provider.check_credential(credential)
    assert complaint in info.value.message
    assert info.value.field == field
    assert SECRET not in str(info.value) + info.value.hint


def test_good_credentials_pass() -> None:
    provider.check_credential({"role_arn": ROLE_ARN, "external_id": EXTERNAL_ID})
    provider.check_credential({"role_arn": "arn:aws-us-gov:iam::111122223333:role/path/R", "external_id": EXTERNAL_ID})
    provider.check_credential({"access_key_id": KEY_ID, "secret_access_key": SECRET})


def test_external_id_is_generated_from_the_seed_and_never_taken_from_the_admin() -> None:
    first = provider.prepare_credential({"role_arn": ROLE_ARN, "external_id": "chosen-by-admin"}, seed=SEED)
    again = provider.prepare_credential({"role_arn": ROLE_ARN}, seed=SEED)
    other = provider.prepare_credential({"role_arn": ROLE_ARN}, seed="cd" * 32)
    assert first["external_id"] == again["external_id"] == generate_external_id(SEED)
    assert first["external_id"].startswith("doow-") and len(first["external_id"]) == 45
    assert other["external_id"] != first["external_id"]
    provider.check_credential(first)


def test_rotation_keeps_the_external_id_the_role_trusts() -> None:
    rotated = provider.prepare_credential({"role_arn": ROLE_ARN}, previous={"external_id": EXTERNAL_ID}, seed=SEED)
    assert rotated["external_id"] == EXTERNAL_ID


def test_a_key_pair_gets_no_external_id_and_an_unseeded_one_is_random() -> None:
    assert "external_id" not in provider.prepare_credential(
        {"access_key_id": KEY_ID, "secret_access_key": SECRET}, seed=SEED
    )
    assert generate_external_id() != generate_external_id()


def test_setup_steps_carry_the_policies_with_the_external_id() -> None:
    steps = provider.setup_instructions({"role_arn": ROLE_ARN, "external_id": EXTERNAL_ID}, {})
    trust, permissions = json.loads(steps[0].code), json.loads(steps[1].code)
    statement = trust["Statement"][0]
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    assert statement["Principal"] == {"AWS": "arn:aws:iam::DOOW_AWS_ACCOUNT_ID:root"}
    assert permissions["Statement"][0]["Action"] == ["cloudwatch:ListMetrics", "cloudwatch:GetMetricData"]
    assert permissions["Statement"][0]["Resource"] == "*"
    assert EXTERNAL_ID in steps[0].text


def test_setup_steps_without_a_credential_are_generic_and_with_a_key_only_the_policy() -> None:
    generic = provider.setup_instructions()  # what a template gets calling it without arguments
    assert "EXTERNAL_ID_SHOWN_BY_DOOW" in generic[0].code and "first Verify" in generic[0].text
    keys = provider.setup_instructions({"access_key_id": KEY_ID, "secret_access_key": SECRET})
    assert len(keys) == 1 and SECRET not in repr(keys)
