"""What the demo connects to the sandbox: one integration per provider that the sandbox fakes.

`make demo` creates these in the demo workspace; `python -m sandbox` prints them.
"""

from __future__ import annotations

from typing import Any

from sandbox import (
    anthropic,
    authress,
    azure_openai,
    fireworks,
    google_vertex,
    groq,
    openai,
    openrouter,
    replicate,
)


def demo_integrations(url: str) -> list[dict[str, Any]]:
    """(provider slug, name, credential, settings) for every provider served at `url`."""
    return [
        {
            "provider": "openai",
            "name": "OpenAI (sandbox)",
            "credential": {"api_key": openai.ADMIN_KEY},
            "settings": {"base_url": f"{url}/openai/v1"},
        },
        {
            "provider": "anthropic",
            "name": "Anthropic (sandbox)",
            "credential": {"api_key": anthropic.ADMIN_KEY},
            "settings": {"base_url": f"{url}{anthropic.PREFIX}"},
        },
        {
            "provider": "openrouter",
            "name": "OpenRouter (sandbox)",
            "credential": {"api_key": openrouter.MANAGEMENT_KEY},
            "settings": {"base_url": f"{url}/openrouter{openrouter.BASE_PATH}"},
        },
        {
            "provider": "groq",
            "name": "Groq (sandbox)",
            "credential": {"api_key": groq.ENTERPRISE_KEY},
            "settings": {"base_url": groq.base_url(url)},
        },
        {
            "provider": "fireworks",
            "name": "Fireworks AI (sandbox)",
            "credential": {"api_key": fireworks.API_KEY},
            "settings": {"base_url": f"{url}/fireworks", "account_id": fireworks.ACCOUNT_ID},
        },
        {
            "provider": "replicate",
            "name": "Replicate (sandbox)",
            "credential": {"api_token": replicate.API_TOKEN},
            "settings": {"base_url": f"{url}{replicate.PREFIX}/v1"},
        },
        {
            "provider": "azure_openai",
            "name": "Azure OpenAI (sandbox)",
            "credential": {
                "tenant_id": azure_openai.TENANT_ID,
                "client_id": azure_openai.CLIENT_ID,
                "client_secret": azure_openai.CLIENT_SECRET,
            },
            "settings": {
                "subscription_id": azure_openai.SUBSCRIPTION_ID,
                "base_url": f"{url}{azure_openai.PREFIX}/arm",
                "login_url": f"{url}{azure_openai.PREFIX}/login",
            },
        },
        {
            "provider": "google_vertex",
            "name": "Google Vertex AI (sandbox)",
            "credential": {"service_account_json": google_vertex.service_account_json(url)},
            "settings": {
                "billing_table": google_vertex.BILLING_TABLE,
                "location": google_vertex.LOCATION,
                "base_url": f"{url}{google_vertex.PREFIX}",
            },
        },
        {
            "provider": "authress",
            "name": "Authress (sandbox)",
            "credential": {"access_key": authress.access_key(authress.CLIENT_ID, authress.KEY_ID)},
            "settings": {"base_url": f"{url}/authress"},
        },
    ]
