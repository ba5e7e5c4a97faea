"""Anthropic: token usage per model and workspace (cache reads and writes included), and costs,
read with an organization Admin API key."""

from __future__ import annotations

from integrations.providers.anthropic.connector import AnthropicProvider, classify_error

provider = AnthropicProvider()

__all__ = ["AnthropicProvider", "classify_error", "provider"]
