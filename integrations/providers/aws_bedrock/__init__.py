"""AWS Bedrock: token usage per model and region, read from CloudWatch with an assumed role or a key pair."""

from __future__ import annotations

from integrations.providers.aws_bedrock.connector import AwsBedrockProvider

provider = AwsBedrockProvider()

__all__ = ["AwsBedrockProvider", "provider"]
