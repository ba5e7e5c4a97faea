"""The connect form's words: each provider's own example name, no help said twice, and "(optional)"
only on fields that are truly optional."""
from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from integrations.providers.registry import PROVIDERS

pytestmark = pytest.mark.django_db


def _page(admin_client, provider: str) -> str:
    response = admin_client.get(reverse("integrations:add", kwargs={"ws": "acme", "provider": provider}))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _label(page: str, field: str) -> str:
    match = re.search(rf'<label for="id_{field}">(.*?)</label>', page, re.S)
    assert match, f"no label for {field}"
    return re.sub(r"<[^>]+>", "", match[1]).strip()


@pytest.mark.parametrize("slug", sorted(PROVIDERS))
def test_the_name_hint_names_the_provider_being_connected(admin_client, slug):
    page = _page(admin_client, slug)
    name = PROVIDERS[slug].name
    assert f"e.g. “{name} – production”" in page
    if name != "OpenAI":
        assert "“OpenAI – production”" not in page


@pytest.mark.parametrize("slug", sorted(PROVIDERS))
def test_no_help_text_says_its_default_twice(slug):
    from integrations.forms import SETTING_PREFIX, IntegrationAddForm

    form = IntegrationAddForm(provider=PROVIDERS[slug])
    for spec in PROVIDERS[slug].setting_fields:
        if spec.default:
            help_text = form.fields[SETTING_PREFIX + spec.name].help_text
            assert help_text.count(spec.default) == 1, f"{spec.name}: {help_text!r}"


def test_aws_credential_alternatives_are_not_labelled_optional(admin_client):
    page = _page(admin_client, "aws_bedrock")
    assert _label(page, "credential_role_arn") == "Role ARN (recommended)"
    assert _label(page, "credential_access_key_id") == "Access key id"
    assert _label(page, "credential_secret_access_key") == "Secret access key"
    assert _label(page, "setting_endpoint_url") == "Endpoint URL (optional)"
