"""Fixtures for the AWS Bedrock connector's tests: moto in-process (STS and CloudWatch), Doow's
own AWS credentials from the environment as in production, and the customer's datapoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from integrations.http import HttpClient
from integrations.providers.aws_bedrock import AwsBedrockProvider
from integrations.providers.aws_bedrock.tests.fakes import StubbedAws
from integrations.providers.aws_bedrock.tests.support import (
    EXTERNAL_ID,
    HOUR,
    KEY_ID,
    REGIONS,
    ROLE_ARN,
    SECRET,
    customer_client,
    days_ago,
    seed_cloudwatch,
)
from integrations.providers.base import Window

AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Doow's own AWS credentials, where boto3's default chain finds them; nothing from the host."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def provider() -> AwsBedrockProvider:
    return AwsBedrockProvider()  # a fresh instance: tests may lower its batch size


@pytest.fixture
def customer_cloudwatch(aws: None) -> Callable[[str], Any]:
    """CloudWatch clients inside the customer's account, per region."""
    return customer_client


@pytest.fixture
def two_days() -> Window:
    return Window(days_ago(3), days_ago(1))


@pytest.fixture
def seeded(customer_cloudwatch: Callable[[str], Any], two_days: Window) -> Window:
    """Datapoints over two whole days, and two hours either side that must not be read."""
    seed_cloudwatch(customer_cloudwatch, two_days.start - 2 * HOUR, two_days.end + 2 * HOUR)
    return two_days


@pytest.fixture
def role_credential() -> dict[str, str]:
    return {"role_arn": ROLE_ARN, "external_id": EXTERNAL_ID}


@pytest.fixture
def key_credential() -> dict[str, str]:
    return {"access_key_id": KEY_ID, "secret_access_key": SECRET}


@pytest.fixture
def aws_settings() -> dict[str, str]:
    return {"regions": ", ".join(REGIONS)}


@pytest.fixture
def http() -> HttpClient:
    # One attempt: botocore's own retries would really sleep; Stubber answers skip them anyway.
    return HttpClient(secrets=[SECRET], max_attempts=1, timeout=2.0)


@pytest.fixture
def stubbed(aws_env: None) -> StubbedAws:
    return StubbedAws()


@pytest.fixture
def stubbed_provider(stubbed: StubbedAws) -> AwsBedrockProvider:
    return AwsBedrockProvider(session_factory=stubbed)
