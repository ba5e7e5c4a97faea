"""Azure OpenAI: hourly tokens and requests per deployment from Azure Monitor, read with an app
registration (client secret) holding Monitoring Reader on the subscription."""

from __future__ import annotations

from integrations.providers.azure_openai.arm import arm_classifier
from integrations.providers.azure_openai.auth import bearer_token, classify_token_error
from integrations.providers.azure_openai.connector import AzureOpenAIProvider

provider = AzureOpenAIProvider()

__all__ = ["AzureOpenAIProvider", "arm_classifier", "bearer_token", "classify_token_error", "provider"]
