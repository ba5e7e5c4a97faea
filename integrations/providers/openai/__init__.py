"""OpenAI: token usage per model and project, and costs, read with an organization Admin key."""

from __future__ import annotations

from integrations.providers.openai.connector import OpenAIProvider, classify_error

provider = OpenAIProvider()

__all__ = ["OpenAIProvider", "classify_error", "provider"]
