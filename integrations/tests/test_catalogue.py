"""Company Settings → Integrations offers every implemented provider, grouped by category."""

from __future__ import annotations

import re

from django.urls import reverse

from integrations.providers.registry import PROVIDERS

AI_PROVIDERS = {"openai", "anthropic", "groq", "fireworks", "openrouter", "replicate", "authress"}
CLOUD_PLATFORMS = {"aws_bedrock", "azure_openai", "google_vertex"}


def offered(body: str, heading: str) -> set[str]:
    """Provider slugs linked from the add-integration section under `heading`."""
    section = body.split(heading, 1)[1]
    for other in ("AI providers", "Cloud platforms"):
        if other != heading and other in section:
            section = section.split(other, 1)[0]
    return set(re.findall(r"/settings/integrations/add/([a-z_]+)/", section))


def test_the_page_offers_all_seven_ai_providers_and_three_cloud_platforms(admin_client, workspace):
    response = admin_client.get(reverse("integrations:list", kwargs={"ws": workspace.slug}))
    body = response.content.decode()
    assert response.status_code == 200
    assert offered(body, "AI providers") == AI_PROVIDERS
    assert offered(body, "Cloud platforms") == CLOUD_PLATFORMS
    assert set(PROVIDERS) == AI_PROVIDERS | CLOUD_PLATFORMS
    for slug in PROVIDERS:
        add = admin_client.get(reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": slug}))
        assert add.status_code == 200, slug
        body = add.content.decode()
        for field in PROVIDERS[slug].credential_fields:
            assert f'name="credential_{field.name}"' in body, (slug, field.name)
