"""Fireworks AI: daily billing usage per model and deployment, and dedicated-deployment
throughput estimated from the metrics endpoint, read with an account API key."""

from __future__ import annotations

from integrations.providers.fireworks.connector import FireworksProvider, classify_error

provider = FireworksProvider()

__all__ = ["FireworksProvider", "classify_error", "provider"]
