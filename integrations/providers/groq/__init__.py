"""Groq: token and request estimates per model and project, from the Enterprise metrics API."""

from __future__ import annotations

from integrations.providers.groq.connector import GroqProvider, classify_error

provider = GroqProvider()

__all__ = ["GroqProvider", "classify_error", "provider"]
