"""Google Vertex AI, read from the customer's Cloud Billing export in BigQuery."""

from __future__ import annotations

from integrations.providers.google_vertex.connector import GoogleVertexProvider

provider = GoogleVertexProvider()

__all__ = ["GoogleVertexProvider", "provider"]
