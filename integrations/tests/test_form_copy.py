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


def test_the_aws_trust_policy_is_shown_whole_with_a_copy_button(admin_client, settings):
    page = _page(admin_client, "aws_bedrock")
    blocks = re.findall(
        r'<pre id="(setup-code-\d+)"><code>(.*?)</code></pre>\s*<button type="button" class="button button-small copy-button" data-copy="([^"]+)"',
        page,
        re.S,
    )
    assert len(blocks) == 2 and all(pre == target for pre, _, target in blocks)  # each button copies its own block
    trust = html.unescape(blocks[0][1])
    assert '"sts:AssumeRole"' in trust and '"sts:ExternalId"' in trust  # the whole policy, not an excerpt
    assert 'src="/static/js/copy.js"' in page  # the button's script: a static file (no inline script under the CSP)
    # Wrapped in its box, never cut off or scrolled sideways.
    css = (settings.BASE_DIR / "static/css/doow.css").read_text()
    assert re.search(r"\.code-block pre \{[^}]*white-space: pre-wrap;[^}]*overflow-wrap: anywhere;", css)
