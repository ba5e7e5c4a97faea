"""What Test connection learnt, on the integration page in people's words (no JSON run-ons, raw
byte counts or ISO timestamps)."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from integrations.models import Integration

pytestmark = pytest.mark.django_db


def _page(admin_client, workspace, provider: str, details: dict) -> str:
    integration = Integration(workspace=workspace, provider=provider, name=f"{provider} facts")
    integration.set_credential({})
    integration.identity = {"account_id": "acct-1", "account_name": "Acme", "summary": "", "details": details}
    integration.save()
    response = admin_client.get(reverse("integrations:detail", kwargs={"ws": workspace.slug, "pk": integration.pk}))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_anthropic_workspaces_are_listed_by_name(admin_client, workspace):
    page = _page(admin_client, workspace, "anthropic", {
        "organization": {"id": "org-1", "name": "Acme"},
        "workspaces": [
            {"id": "default", "name": "Default workspace", "archived": False},
            {"id": "wrkspc_01", "name": "Production", "archived": False},
            {"id": "wrkspc_02", "name": "Old pilot", "archived": True},
        ],
        "workspaces_with_usage_last_7_days": ["wrkspc_01"],
    })  # fmt: skip
    assert "Default workspace, Production" in page
    assert "Archived workspaces (1)" in page and "Old pilot" in page
    assert "With usage in the last 7 days" in page
    assert "id: default" not in page and "archived: no" not in page


def test_vertex_shows_sizes_and_words_not_internal_keys(admin_client, workspace):
    page = _page(admin_client, workspace, "google_vertex", {
        "billing_table": "billing.export.gcp_billing_export_resource_v1_0",
        "location": "US",
        "query_project": "",
        "service_account": "doow@acme.iam.gserviceaccount.com",
        "projects": ["acme-ml"],
        "models": ["gemini-2.5-pro"],
        "unparsed_skus": ["Vertex AI Pipelines"],
        "estimated_bytes_per_query": 24000000,
        "max_bytes_billed": 21474836480,
    })  # fmt: skip
    assert "about 24.0 MB per sync query (capped at 21.5 GB)" in page
    assert "Other Vertex AI charges (cost only, no model)" in page
    for internal in ("Unparsed skus", "Max bytes billed", "21474836480", "Estimated bytes per query", "24000000"):
        assert internal not in page


def test_authress_creation_is_a_date(admin_client, workspace):
    page = _page(admin_client, workspace, "authress", {"service_client": "sc_1", "created": "2024-01-02T03:04:05.000Z"})
    assert "Account created" in page and "2 Jan 2024" in page
    assert "2024-01-02T03:04:05" not in page
