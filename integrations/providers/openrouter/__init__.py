"""OpenRouter: daily usage per model and routing endpoint, read with a management key."""

from __future__ import annotations

from integrations.providers.openrouter.connector import (
    OpenRouterProvider,
    classify_error,
)

provider = OpenRouterProvider()

__all__ = ["OpenRouterProvider", "classify_error", "provider"]
