"""What the demo connects to the sandbox: one integration per provider that the sandbox fakes.

`make demo` creates these in the demo workspace; `python -m sandbox` prints them.
"""

from __future__ import annotations

from typing import Any

from sandbox import anthropic, authress, azure_openai, fireworks, google_vertex, groq, openai, openrouter, replicate


def _spec(provider: str, name: str, credential: dict[str, str], **settings: str) -> dict[str, Any]:
    return {"provider": provider, "name": f"{name} (sandbox)", "credential": credential, "settings": settings}


def demo_integrations(url: str) -> list[dict[str, Any]]:
    """(provider slug, name, credential, settings) for every provider served at `url`."""
    azure_credential = {
        "tenant_id": azure_openai.TENANT_ID,
        "client_id": azure_openai.CLIENT_ID,
        "client_secret": azure_openai.CLIENT_SECRET,
    }
    return [
        _spec("openai", "OpenAI", {"api_key": openai.ADMIN_KEY}, base_url=f"{url}/openai/v1"),
        _spec("anthropic", "Anthropic", {"api_key": anthropic.ADMIN_KEY}, base_url=f"{url}{anthropic.PREFIX}"),
        _spec(
            "openrouter",
            "OpenRouter",
            {"api_key": openrouter.MANAGEMENT_KEY},
            base_url=f"{url}/openrouter{openrouter.BASE_PATH}",
        ),
        _spec("groq", "Groq", {"api_key": groq.ENTERPRISE_KEY}, base_url=groq.base_url(url)),
        _spec(
            "fireworks",
            "Fireworks AI",
            {"api_key": fireworks.API_KEY},
            base_url=f"{url}/fireworks",
            account_id=fireworks.ACCOUNT_ID,
        ),
        _spec("replicate", "Replicate", {"api_token": replicate.API_TOKEN}, base_url=f"{url}{replicate.PREFIX}/v1"),
        _spec(
            "azure_openai",
            "Azure OpenAI",
            azure_credential,
            subscription_id=azure_openai.SUBSCRIPTION_ID,
            base_url=f"{url}{azure_openai.PREFIX}/arm",
            login_url=f"{url}{azure_openai.PREFIX}/login",
        ),
        _spec(
            "google_vertex",
            "Google Vertex AI",
            {"service_account_json": google_vertex.service_account_json(url)},
            billing_table=google_vertex.BILLING_TABLE,
            location=google_vertex.LOCATION,
            base_url=f"{url}{google_vertex.PREFIX}",
        ),
        _spec(
            "authress",
            "Authress",
            {"access_key": authress.access_key(authress.CLIENT_ID, authress.KEY_ID)},
            base_url=f"{url}/authress",
        ),
    ]
