"""Replicate: predictions and compute seconds per model and deployment, read with an API token."""

from __future__ import annotations

from integrations.providers.replicate.connector import ReplicateProvider, classify_error

provider = ReplicateProvider()

__all__ = ["ReplicateProvider", "classify_error", "provider"]
